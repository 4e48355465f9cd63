"""Command line: the user's edge of the flow.

The parser and entry point (``main``), the options, their value resolution (command line >
option file > defaults) and records built from the records' field metadata (``options``), and
the subcommands, which only call the package (``commands``). :func:`main` is re-exported here:
it is the ``dask-resample`` console script (``dask_resample.cli:main``) and what
``python -m dask_resample.cli`` runs.
"""

from .main import main

__all__ = ["main"]
