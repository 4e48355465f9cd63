"""Execution: the stage that runs the flow on Dask.

The only place that builds Dask graphs, with their task keys and labels (``graph``); a graph
run with its progress (``progress``); the run's cluster and the workers' preparation
(``workers``); a plan run into a finished mosaic, with resume and replacement (``run``); and the
job-queue clusters of HPC sites (``hpc``). ``dask_resample.cluster`` (``connect``), the public
entry point for where work runs, stays at the top level and calls ``hpc``.
"""
