"""Monitoring: drift and performance of a current window against the training period.

- ``drift``: the statistics, the checks and their verdict.
- ``window``: the current window, from batch predictions or the service's log.
- ``report``: the HTML report an analyst reads.
"""
