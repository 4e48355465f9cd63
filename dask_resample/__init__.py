"""dask-resample: distributed drizzle mosaics of astronomical exposures.

The main entry points are :func:`resample` (inputs in, a tiled Zarr mosaic out)
and :func:`open_mosaic` (a mosaic as a lazy :class:`xarray.Dataset`).
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import accessor  # noqa: E402,F401  (registers the ``ds.mosaic`` accessor)
from .api import plan_mosaic, resample  # noqa: E402
from .config import ResampleParams  # noqa: E402
from .io import Exposure, InputError  # noqa: E402
from .pyramid import write_pyramid  # noqa: E402
from .store import MosaicExistsError, open_mosaic  # noqa: E402

__all__ = [
    "Exposure",
    "InputError",
    "MosaicExistsError",
    "ResampleParams",
    "__version__",
    "open_mosaic",
    "plan_mosaic",
    "resample",
    "write_pyramid",
]
