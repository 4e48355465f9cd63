"""Geometry: the second stage of the data flow.

Pixel and sky geometry, no pixel I/O: output and tile grids, outlines and ``S_REGION`` polygons,
WCS conversions (``grids``, ``wcs_convert``, ``wcs_adapter``), the choice of the output grid from
the inputs (``grid``), Roman skycells (``skycells``) and the pixel maps from an input's pixels to
the output grid (``pixmap``, ``pixmap_program``, ``pixmap_compiled``). The names of ``grids`` are
re-exported here, so ``from dask_resample.geometry import OutputGrid`` works.
"""

from .grids import (
    OUTLINE_POINTS_PER_EDGE,
    OutputGrid,
    Tile,
    TileGrid,
    affine_fits_header,
    affine_gwcs,
    corner_footprint,
    cutout_box,
    fits_wcs_from_cards,
    gwcs_from_text,
    gwcs_to_text,
    image_corners_xy,
    outline_from_wcs,
    pixel_bounds,
    s_region_from_wcs,
    sky_polygons,
    split_sregions,
    sregion_polygons,
    subgrid_metadata,
    wcs_to_fits_header,
    without_bounding_box,
)

__all__ = [
    "OUTLINE_POINTS_PER_EDGE",
    "OutputGrid",
    "Tile",
    "TileGrid",
    "affine_fits_header",
    "affine_gwcs",
    "corner_footprint",
    "cutout_box",
    "fits_wcs_from_cards",
    "gwcs_from_text",
    "gwcs_to_text",
    "image_corners_xy",
    "outline_from_wcs",
    "pixel_bounds",
    "s_region_from_wcs",
    "sky_polygons",
    "split_sregions",
    "sregion_polygons",
    "subgrid_metadata",
    "wcs_to_fits_header",
    "without_bounding_box",
]
