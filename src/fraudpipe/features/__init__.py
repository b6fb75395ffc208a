"""Features: one set of definitions, computed offline over a table and online for one transaction.

- ``definitions``: the feature config, names, the per-value formulas and the vectorised offline computation.
- ``windows``: the offline window machinery (rows grouped by key, windows by bisection, prefix sums).
- ``inputs``: the transaction table and the distance feature's coordinates, checked and found.
- ``online/``: per-customer and per-terminal histories that give the same features one transaction at a time.
- ``dask``: the offline computation partitioned by customer and terminal on a Dask cluster.
"""
