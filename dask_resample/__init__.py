"""dask-resample: distributed drizzle mosaics of astronomical exposures.

The main entry points are :func:`resample` (inputs in, a tiled Zarr mosaic out),
:func:`open_mosaic` (a mosaic as a lazy :class:`xarray.Dataset`) and
:func:`detect_outliers` (jwst's imaging outlier detection, ``*_crf.fits`` out) and
:func:`update` (a living mosaic: add or remove exposures, one version per update).
"""

from __future__ import annotations

from ._version import __version__
from .api import plan_mosaic, resample
from .execution.workers import prepare_workers
from .inputs.io import Exposure, InputError
from .living import GridSpec, history, living_output_wcs, update
from .outliers import OutlierParams, detect_outliers
from .params import ResampleParams
from .planning.plan import MosaicPlan
from .products import accessor  # noqa: F401  (registers the ``ds.mosaic`` accessor)
from .products.pyramid import write_pyramid
from .store import MosaicExistsError, open_mosaic

__all__ = [
    "Exposure",
    "GridSpec",
    "InputError",
    "MosaicExistsError",
    "MosaicPlan",
    "OutlierParams",
    "ResampleParams",
    "__version__",
    "detect_outliers",
    "history",
    "living_output_wcs",
    "open_mosaic",
    "plan_mosaic",
    "prepare_workers",
    "resample",
    "update",
    "write_pyramid",
]
