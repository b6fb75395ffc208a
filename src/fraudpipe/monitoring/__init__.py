"""Monitoring: drift and performance of a current window against the training period.

- ``config``: ``MonitorConfig`` (conf/monitor/), parsed without importing the statistics.
- ``statistics``: the drift statistics, one module per family (ks, chi2, wasserstein,
  jensen_shannon, psi), each registered by name with its drift rule.
- ``checks``: per-feature drift (the test chosen by type and size), dataset drift, prediction
  drift, performance once labels are known.
- ``segments``: bias by segment, the largest gaps between groups, calibration.
- ``monitor``: ``monitor()``, every check at once, the alert and its reasons (``MonitorResult``).
- ``window``: the current window, from batch predictions or the service's log.
- ``report``: the HTML report an analyst reads.
"""
