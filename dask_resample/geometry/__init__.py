"""Geometry: the second stage of the data flow.

Pixel and sky geometry, no pixel I/O: output and tile grids, outlines and ``S_REGION`` polygons,
WCS conversions (``grids``, ``wcs_convert``, ``wcs_adapter``), the choice of the output grid from
the inputs (``grid``), Roman skycells (``skycells``) and the pixel maps from an input's pixels to
the output grid (``pixmap``, ``pixmap_program``, ``pixmap_compiled``). The names of ``grids`` are
re-exported here, so ``from dask_resample.geometry import OutputGrid`` works.
"""

from .grids import *  # noqa: F403 - every name of grids.__all__
from .grids import __all__ as __all__
