"""Scoring with a trained bundle: one transaction at a time, or a whole period at once.

- ``row``: the fast single-row path (a float32 row straight into XGBoost's C entry point), and
  whether it is on.
- ``online``: the one online scorer (a history's features into a row, the row scored) that the
  service, the `parity` stage's replay and latency figure use; ``replay`` over a table.
- ``batch``: scoring a live period, the quality gate's check, alerts.
"""
