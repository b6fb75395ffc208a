"""Scoring with a trained bundle: one transaction at a time, or a whole period at once.

- ``row``: the fast single-row path (a float32 row straight into XGBoost's ``inplace_predict``).
- ``online``: the online scorer (state + row scorer) and its replay over a table.
- ``batch``: scoring a live period, the quality gate's check, alerts.
"""
