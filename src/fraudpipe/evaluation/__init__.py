"""Measuring a model: plots of the test period, the prequential backtest, online/offline parity.

- ``plots``: ROC / precision-recall / confusion data for DVC, and PNG figures.
- ``backtest``: the handbook's prequential folds, mean and spread.
- ``parity``: the test period replayed through the online scorer against the offline features and
  scores, and that replay's latency.
"""
