"""Features: one set of definitions, computed offline over a table and online for one transaction.

- ``definitions``: the feature config, names and the vectorised offline computation.
- ``online``: per-customer and per-terminal histories that give the same features one transaction at a time.
- ``dask``: the offline computation partitioned by customer and terminal on a Dask cluster.
"""
