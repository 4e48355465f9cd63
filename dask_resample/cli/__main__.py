"""``python -m dask_resample.cli``: the ``dask-resample`` command."""

import sys

from .main import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
