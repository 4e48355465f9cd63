"""Scans of an exposure's pixel map: where it lands, its steepest step, which input pixels reach a box.

Every drizzle task asks these of its pixel map (``(ny, nx, 2)``, x then y, in mosaic
pixels) before it drizzles:

* :func:`map_bounds`, the extent of the mapped centres over the input range: the
  exposure's frame (:func:`dask_resample.drizzle.kernel._frame_box`);
* :func:`map_step`, the largest step between neighbouring pixels: how far an input
  pixel's kernel footprint can reach (:func:`~dask_resample.drizzle.passes.input_crop`,
  :func:`~dask_resample.drizzle.windows.window_visits`);
* :func:`reaching_boxes`, for each of some output boxes, the first and last input
  row and column whose mapped centre falls inside it: the input pixels an update
  re-drizzles (:func:`~dask_resample.drizzle.passes.input_crop`) or a window visits.

With numba installed (the ``fast`` extra) each is one compiled pass over the range
(:mod:`dask_resample.drizzle.map_scan_compiled`), with no temporary; otherwise numpy
takes the range in blocks of :data:`BLOCK_ROWS` rows. The two give the same values:
NaN centres are ignored (a NaN compares false), an infinite one counts.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..optional_module import OptionalModule

__all__ = ["BLOCK_ROWS", "map_bounds", "map_step", "reaching_boxes"]

#: Rows of the pixel map one numpy block holds (bounds the temporaries of the fallback).
BLOCK_ROWS = 256

#: Input range ``(xmin, xmax, ymin, ymax)``, inclusive, as ``stcal``'s ``resample_range``.
Range = tuple[int, int, int, int]


def _compiled() -> Any:
    """The compiled scans (:mod:`.map_scan_compiled`), or ``None`` without numba."""
    return _COMPILED.get()


#: :mod:`.map_scan_compiled`, imported on first use (``None`` without numba).
_COMPILED = OptionalModule(".map_scan_compiled", __package__)


def _plain(pixmap: np.ndarray) -> np.ndarray:
    """The map as a plain ndarray (a memory-mapped file's map, without a copy)."""
    return pixmap if type(pixmap) is np.ndarray else np.asarray(pixmap)


def map_bounds(pixmap: np.ndarray, rng: Range) -> tuple[float, float, float, float] | None:
    """``(x_min, x_max, y_min, y_max)`` of the mapped centres over ``rng``, NaN ignored.

    Parameters
    ----------
    pixmap : numpy.ndarray
        ``(ny, nx, 2)`` pixel map.
    rng : tuple of int
        ``(xmin, xmax, ymin, ymax)``, inclusive.

    Returns
    -------
    tuple of float or None
        ``None`` when one of the four is not finite (no pixel maps, or one maps to infinity).
    """
    xmin, xmax, ymin, ymax = rng
    compiled = _compiled()
    if compiled is not None:
        found = compiled.bounds(_plain(pixmap), xmin, xmax, ymin, ymax)
    else:
        found = (np.inf, -np.inf, np.inf, -np.inf)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for r0 in range(ymin, ymax + 1, BLOCK_ROWS):
                sub = pixmap[r0 : min(ymax + 1, r0 + BLOCK_ROWS), xmin : xmax + 1]
                x, y = sub[..., 0], sub[..., 1]
                found = (
                    np.fmin(found[0], np.nanmin(x)),
                    np.fmax(found[1], np.nanmax(x)),
                    np.fmin(found[2], np.nanmin(y)),
                    np.fmax(found[3], np.nanmax(y)),
                )
    if not np.isfinite(found).all():
        return None
    return tuple(float(v) for v in found)  # type: ignore[return-value]


def map_step(pixmap: np.ndarray, rng: Range) -> float:
    """The largest ``|difference|`` of x or y between neighbouring pixels of ``rng`` (rows and columns).

    Pairs with a NaN are ignored. ``0.0`` for a range of one pixel; NaN when no pair is finite.
    """
    xmin, xmax, ymin, ymax = rng
    if xmin == xmax and ymin == ymax:
        return 0.0
    compiled = _compiled()
    if compiled is not None:
        step = float(compiled.step(_plain(pixmap), xmin, xmax, ymin, ymax))
    else:
        step = -1.0
        with warnings.catch_warnings(), np.errstate(invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            for r0 in range(ymin, ymax + 1, BLOCK_ROWS):
                r1 = min(ymax + 1, r0 + BLOCK_ROWS + 1)  # one row more: the step to the next block
                sub = pixmap[r0:r1, xmin : xmax + 1]
                for axis in (0, 1):
                    if sub.shape[axis] > 1:
                        step = float(np.fmax(step, np.nanmax(np.abs(np.diff(sub, axis=axis)))))
    return step if step >= 0 else float("nan")


def reaching_boxes(pixmap: np.ndarray, rng: Range, limits: np.ndarray) -> np.ndarray:
    """For each box, the first and last input row and column of ``rng`` whose centre lies inside it.

    Parameters
    ----------
    pixmap : numpy.ndarray
        ``(ny, nx, 2)`` pixel map.
    rng : tuple of int
        ``(xmin, xmax, ymin, ymax)``, inclusive.
    limits : numpy.ndarray
        ``(n, 4)`` float64: ``(x_lo, x_hi, y_lo, y_hi)`` of each box, open
        (``x_lo < x < x_hi`` and ``y_lo < y < y_hi``).

    Returns
    -------
    numpy.ndarray
        ``(n, 4)`` int64: ``(row_first, row_last, col_first, col_last)`` in whole-input
        pixels; ``row_last < 0`` where no centre lies inside the box.
    """
    xmin, xmax, ymin, ymax = rng
    limits = np.ascontiguousarray(limits, dtype=np.float64).reshape(-1, 4)
    found = np.empty((len(limits), 4), dtype=np.int64)
    found[:, 0::2] = np.iinfo(np.int64).max
    found[:, 1::2] = -1
    compiled = _compiled()
    if compiled is not None:
        compiled.reaching(_plain(pixmap), xmin, xmax, ymin, ymax, limits, found)
        return found
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for r0 in range(ymin, ymax + 1, BLOCK_ROWS):
            sub = pixmap[r0 : min(ymax + 1, r0 + BLOCK_ROWS), xmin : xmax + 1]
            x, y = sub[..., 0], sub[..., 1]
            bx0, bx1, by0, by1 = np.nanmin(x), np.nanmax(x), np.nanmin(y), np.nanmax(y)  # NaN: no pixel maps
            for k, (ax0, ax1, ay0, ay1) in enumerate(limits):
                if bx1 <= ax0 or bx0 >= ax1 or by1 <= ay0 or by0 >= ay1 or np.isnan(bx0):
                    continue  # these rows miss the box
                hit = (x > ax0) & (x < ax1) & (y > ay0) & (y < ay1)
                rows = np.flatnonzero(hit.any(axis=1))
                if rows.size == 0:
                    continue
                cols = np.flatnonzero(hit.any(axis=0))
                found[k] = (
                    min(found[k, 0], r0 + rows[0]),
                    max(found[k, 1], r0 + rows[-1]),
                    min(found[k, 2], xmin + cols[0]),
                    max(found[k, 3], xmin + cols[-1]),
                )
    return found
