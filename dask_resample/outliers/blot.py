"""Blot the median back onto one input, reading only the median tiles it overlaps.

``stcal.outlier_detection.utils.gwcs_blot`` maps every input pixel onto the
median grid (``calc_pixmap``), sets unmapped pixels to -1 and calls drizzle's
``blot_image`` (bilinear interpolation) on the whole median image.
:func:`blot_median` does the same on the smallest window of the median that the
interpolation reads:

* drizzle's blot takes each position as float32 and interpolates between pixel
  ``floor(p)`` and ``floor(p) + 1``, with the image's last row/column handled
  apart; positions are therefore rounded to float32 first and then shifted by
  the window origin, which is exact, so every in-window position, its integer
  part and its fraction are the reference's;
* the window spans ``floor(p)`` to ``floor(p) + 1`` of every position that
  falls on the median (or stops at the median's own edge), so no position
  meets a window edge that the full image does not have.

The result is the reference's blot bit for bit, with memory of the input's size.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from ..geometry import TileGrid
from ..geometry.exposure_pixmap import compute_pixmap
from ..store.location import Location

__all__ = ["BLOT_ROWS", "BlotWindowError", "blot_median", "blot_window"]

#: Rows of the input blotted per call (bounds the float64 copy of the pixel map).
BLOT_ROWS = 256


class BlotWindowError(RuntimeError):
    """The input reads median tiles that the plan did not expect (the task would race their writes)."""


def blot_window(pixmap32: np.ndarray, shape_yx: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` of the median pixels the bilinear blot reads, ``None`` if none."""
    ny, nx = shape_yx
    x, y = pixmap32[..., 0], pixmap32[..., 1]
    inside = (x >= 0) & (x < nx) & (y >= 0) & (y < ny)
    if not inside.any():
        return None
    ix = x[inside].astype(np.int64)
    iy = y[inside].astype(np.int64)
    return int(iy.min()), min(ny, int(iy.max()) + 2), int(ix.min()), min(nx, int(ix.max()) + 2)


def blot_median(
    median_store: Location,
    median_wcs: Any,
    median_shape_yx: tuple[int, int],
    wcs_in: Any,
    shape_yx: tuple[int, int],
    *,
    stepsize: float = 1,
    order: int = 1,
    tiles: TileGrid | None = None,
    allowed_tiles: Collection[tuple[int, int]] | None = None,
    pixmap32: np.ndarray | None = None,
    fillval: float = np.nan,
) -> np.ndarray:
    """The median blotted onto one input (``fillval`` where the input maps outside the median).

    Parameters
    ----------
    median_store : Location
        Store whose ``data`` array is the median.
    median_wcs : gwcs.wcs.WCS
        WCS of the median grid.
    median_shape_yx : tuple of int
    wcs_in : WCS
        The input's WCS.
    shape_yx : tuple of int
        The input's shape.
    stepsize, order : float, int
        ``pixmap_stepsize`` and ``pixmap_order``.
    tiles, allowed_tiles : optional
        The median's tiling and the tiles this task waited for; reading
        outside them raises :class:`BlotWindowError`.
    pixmap32 : numpy.ndarray, optional
        The input's pixel map onto the median grid as float32, kept from its
        drizzle (the fast map where it applied, else ``calc_pixmap``'s); else
        ``calc_pixmap``'s, computed here.
    fillval : float
        Value of pixels outside the median (``gwcs_blot``'s ``fillval``: NaN in
        jwst, the step's ``fillval`` in romancal).
    """
    import zarr
    from drizzle.resample import blot_image

    if pixmap32 is None:
        pixmap = compute_pixmap(wcs_in, median_wcs, shape_yx, stepsize=stepsize, order=order, fast=False)
        pixmap32 = pixmap.astype(np.float32)
        del pixmap
    if pixmap32.shape != (*shape_yx, 2):
        raise ValueError(f"pixel map of shape {pixmap32.shape} for an input of shape {shape_yx}")
    pixmap32[np.isnan(pixmap32)] = -1  # as gwcs_blot (float32(-1) is what drizzle reads of its -1)
    out = np.full(shape_yx, fillval, np.float32)
    window = blot_window(pixmap32, median_shape_yx)
    if window is None:
        return out
    y0, y1, x0, x1 = window
    if tiles is not None and allowed_tiles is not None:
        needed = {t.key for t in tiles.overlapping(y0, y1, x0, x1)}
        if not needed <= set(allowed_tiles):
            raise BlotWindowError(
                f"blot window {window} reaches median tiles {sorted(needed - set(allowed_tiles))} "
                "outside the planned footprint"
            )
    median = zarr.open_array(median_store.zarr_store(read_only=True), path="data", mode="r")
    sub = np.ascontiguousarray(median[y0:y1, x0:x1])
    # each output pixel depends on its own position only: blot a band of rows at a time (bounded temporaries)
    for r0 in range(0, shape_yx[0], BLOT_ROWS):
        r1 = min(shape_yx[0], r0 + BLOT_ROWS)
        shifted = pixmap32[r0:r1].astype(np.float64)
        shifted[..., 0] -= x0
        shifted[..., 1] -= y0
        blot_image(data=sub, pixmap=shifted, out_img=out[r0:r1], fillval=fillval, iscale=1.0, interp="linear")
    return out
