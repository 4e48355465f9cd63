"""An exposure's pixel map on the mosaic: what ``stcal``'s ``calc_pixmap`` computes, with bounded memory.

:func:`compute_pixmap` evaluates the WCSs in blocks of rows (``pixmap_stepsize=1``), or
evaluates ``calc_pixmap``'s spline in blocks of rows (``pixmap_stepsize > 1``): the same
values, holding only the map. With ``fast=True`` a recognised input/output pair is
mapped by :mod:`dask_resample.geometry.pixmap` and checked against the full evaluation.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from .grids import without_bounding_box
from .pixmap import check_against_reference, fast_pixmap, plan_fast_pixmap, sample_pixels

__all__ = ["FAST_PIXMAP_KERNELS", "FAST_PIXMAP_MIN_PIXELS", "PIXMAP_BLOCK_ROWS", "compute_pixmap"]

log = logging.getLogger(__name__)


#: Rows of the input evaluated at once by :func:`compute_pixmap` (bounds WCS temporaries).
PIXMAP_BLOCK_ROWS = 256

#: Smallest input (pixels) drizzled with the fast pixel map: below it the full
#: evaluation costs about as much as the fast path's recognition and self-check.
FAST_PIXMAP_MIN_PIXELS = 256 * 256

#: Kernels whose drizzled result is a continuous function of the pixel map (exact overlap
#: areas), so the fast map's last-bit differences from ``calc_pixmap`` (below 1e-8 pixel)
#: stay below 1e-7 of the output. The others select output pixels and kernel values by
#: truncating positions (point: nearest pixel; gaussian, lanczos: support cut-off and
#: tabulated values), where a position that differs in its last bit can move a whole
#: contribution: they keep the reference's own pixel map.
FAST_PIXMAP_KERNELS: tuple[str, ...] = ("square", "turbo")


def compute_pixmap(
    wcs_in: Any,
    wcs_out: Any,
    shape_yx: tuple[int, int],
    *,
    stepsize: float = 1,
    order: int = 1,
    fast: bool = False,
) -> np.ndarray:
    """Pixel map of an input onto the output frame, as ``stcal.resample.utils.calc_pixmap``.

    For ``stepsize == 1`` the WCS is evaluated in blocks of rows: the transforms are
    element-wise, so the result is identical to ``calc_pixmap`` while the peak memory
    of the WCS temporaries is bounded. Otherwise ``calc_pixmap`` itself is used.

    With ``fast=True`` (and ``stepsize == 1``) a recognised input/output pair is
    mapped by :mod:`dask_resample.geometry.pixmap` (one composed sky rotation instead of
    the WCS's spherical trigonometry), checked against this full evaluation on a
    sample of pixels; anything not recognised or not agreeing to
    :data:`~dask_resample.geometry.pixmap.CHECK_TOLERANCE_PX` uses the full evaluation.

    Returns
    -------
    numpy.ndarray
        Shape ``(ny, nx, 2)``; ``[..., 0]`` is x and ``[..., 1]`` is y in the output frame.
    """
    from stcal.resample.utils import calc_pixmap

    ny, nx = shape_yx
    if stepsize != 1 and max(ny, nx) > 10:
        pixmap = _spline_pixmap(wcs_in, wcs_out, shape_yx, stepsize, order)
        if pixmap is None:
            return calc_pixmap(wcs_in, wcs_out, shape_yx, stepsize=stepsize, order=order)
        return pixmap
    if fast:
        pixmap = _fast_pixmap_checked(wcs_in, wcs_out, (ny, nx))
        if pixmap is not None:
            return pixmap
    pixmap = np.empty((ny, nx, 2), np.float64)
    x_row = np.arange(nx, dtype=np.float64)
    for r0 in range(0, ny, PIXMAP_BLOCK_ROWS):
        r1 = min(ny, r0 + PIXMAP_BLOCK_ROWS)
        y, x = np.meshgrid(np.arange(r0, r1, dtype=np.float64), x_row, indexing="ij")
        pixmap[r0:r1, :, 0], pixmap[r0:r1, :, 1] = _full_values(wcs_in, wcs_out, x, y)
    return pixmap


def _spline_pixmap(
    wcs_in: Any, wcs_out: Any, shape_yx: tuple[int, int], stepsize: float, order: int
) -> np.ndarray | None:
    """``calc_pixmap``'s ``stepsize > 1`` map, its spline evaluated in blocks of rows (the same values).

    ``stcal.resample.utils.calc_pixmap`` fits a ``RectBivariateSpline`` to the map on
    a coarse grid and evaluates it on the whole input at once: two whole-input
    temporaries and their stacked copy, three times the map itself. The spline's
    value at a pixel does not depend on the other pixels evaluated with it, so
    evaluating it a block of rows at a time into the map gives the same values with
    only the map held. ``None`` where ``calc_pixmap`` itself takes another branch
    (a small input range, a coarse grid with non-finite values).
    """
    from scipy import interpolate

    ny, nx = shape_yx
    xmin, xmax, ymin, ymax = 0, nx - 1, 0, ny - 1
    bbox = getattr(wcs_in, "bounding_box", None)
    if bbox is not None:
        try:
            bbox = bbox.bounding_box(order="F")
        except AttributeError:
            bbox = tuple(bbox)
        ((bx0, bx1), (by0, by1)) = bbox
        xmin, xmax = max(0, math.ceil(bx0)), min(nx - 1, math.floor(bx1))
        ymin, ymax = max(0, math.ceil(by0)), min(ny - 1, math.floor(by1))
    width, height = xmax - xmin + 1, ymax - ymin + 1
    if max(width, height) <= 10:
        return None
    if order not in (1, 3):
        raise ValueError("Interpolation order should be either 1 or 3.")
    y_in, x_in = np.arange(ymin, ymax + 1), np.arange(xmin, xmax + 1)
    x_coarse = np.linspace(xmin, xmax, max(math.ceil(width / stepsize), min(10, width)))
    y_coarse = np.linspace(ymin, ymax, max(math.ceil(height / stepsize), min(10, height)))
    sparse = np.meshgrid(x_coarse, y_coarse)
    cx, cy = _full_values(wcs_in, wcs_out, sparse[0], sparse[1])
    if not (np.all(np.isfinite(cx)) and np.all(np.isfinite(cy))):
        return None
    fx = interpolate.RectBivariateSpline(y_coarse, x_coarse, cx, kx=order, ky=order)
    fy = interpolate.RectBivariateSpline(y_coarse, x_coarse, cy, kx=order, ky=order)
    whole = (xmin, xmax, ymin, ymax) == (0, nx - 1, 0, ny - 1)
    pixmap = np.empty((ny, nx, 2)) if whole else np.full((ny, nx, 2), np.nan)
    for r0 in range(0, height, PIXMAP_BLOCK_ROWS):
        rows = y_in[r0 : r0 + PIXMAP_BLOCK_ROWS]
        pixmap[rows[0] : rows[-1] + 1, xmin : xmax + 1, 0] = fx(rows, x_in)
        pixmap[rows[0] : rows[-1] + 1, xmin : xmax + 1, 1] = fy(rows, x_in)
    return pixmap


def _full_values(wcs_in: Any, wcs_out: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Output ``(x, y)`` of input pixels through both WCSs (output bounding box disabled)."""
    with without_bounding_box(wcs_out):
        return wcs_out.world_to_pixel_values(*wcs_in.pixel_to_world_values(x, y))


def _fast_pixmap_checked(wcs_in: Any, wcs_out: Any, shape_yx: tuple[int, int]) -> np.ndarray | None:
    """The fast pixel map if the WCS pair is recognised and it agrees with the full evaluation on samples."""

    plan = plan_fast_pixmap(wcs_in, wcs_out)
    if plan is None:
        log.debug("fast pixel map: WCS structure not recognised; full evaluation")
        return None
    pixmap = fast_pixmap(plan, shape_yx)
    if pixmap is None:
        log.debug("fast pixel map: input reaches the output's far hemisphere; full evaluation")
        return None
    y, x = sample_pixels(shape_yx, plan.source.bbox_xy)
    reference = _full_values(wcs_in, wcs_out, x.astype(np.float64), y.astype(np.float64))
    diff = check_against_reference(pixmap, reference, y, x)
    if diff is None:
        log.info("fast pixel map disagrees with the full WCS evaluation; full evaluation used")
        return None
    return pixmap
