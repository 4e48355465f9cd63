"""Execution: the stage that runs the flow on Dask.

The only place that builds Dask graphs, with their task keys and labels (``graph``), and the
job-queue clusters of HPC sites (``hpc``). ``dask_resample.cluster`` (``connect``), the public
entry point for where work runs, stays at the top level and calls ``hpc``.
"""
