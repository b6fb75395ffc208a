"""Measuring a model: plots of the test period, the prequential backtest, online/offline parity.

- ``plots``: the data `dvc plots` draws: ROC, precision-recall, confusion, feature importance,
  calibration and the score distribution per class, as JSON records.
- ``backtest``: the handbook's prequential folds, mean and spread.
- ``parity``: the test period replayed through the online scorer against the offline features and
  scores, and that replay's latency.
"""
