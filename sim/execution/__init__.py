"""Where a study's work runs besides this process: a Dask cluster (cluster.py: the client, and the
capacity study's blocks on it) and the workers of a sweep's process pool (pool_worker.py)."""
