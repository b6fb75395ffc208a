"""Measuring a model: plots of the test period and the prequential backtest.

- ``plots``: ROC / precision-recall / confusion data for DVC, and PNG figures.
- ``backtest``: the handbook's prequential folds, mean and spread.
"""
