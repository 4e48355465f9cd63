"""The scans of :mod:`dask_resample.drizzle.map_scan` compiled (numba): one pass, no temporary.

Each walks the input range row by row, reading a pixel's x and y once. A NaN
centre compares false, so it is skipped as numpy's ``nanmin``/``nanmax`` skip it.
``cache=True`` keeps the machine code beside this file (or in ``NUMBA_CACHE_DIR``),
as :mod:`dask_resample.drizzle.fused_kernel` does.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["bounds", "reaching", "step"]


@numba.njit(cache=True, nogil=True)
def bounds(pixmap: np.ndarray, xmin: int, xmax: int, ymin: int, ymax: int) -> tuple[float, float, float, float]:
    """``(x_min, x_max, y_min, y_max)`` of the centres, NaN skipped (``inf``/``-inf`` when none)."""
    x0 = np.inf
    x1 = -np.inf
    y0 = np.inf
    y1 = -np.inf
    for j in range(ymin, ymax + 1):
        for i in range(xmin, xmax + 1):
            x = pixmap[j, i, 0]
            y = pixmap[j, i, 1]
            if x < x0:
                x0 = x
            if x > x1:
                x1 = x
            if y < y0:
                y0 = y
            if y > y1:
                y1 = y
    return x0, x1, y0, y1


@numba.njit(cache=True, nogil=True)
def step(pixmap: np.ndarray, xmin: int, xmax: int, ymin: int, ymax: int) -> float:
    """The largest ``|difference|`` between neighbours (rows and columns, x and y); -1 when none is finite."""
    s = -1.0
    for j in range(ymin, ymax + 1):
        for i in range(xmin, xmax + 1):
            for c in range(2):
                v = pixmap[j, i, c]
                if i < xmax:
                    d = abs(pixmap[j, i + 1, c] - v)
                    if d > s:
                        s = d
                if j < ymax:
                    d = abs(pixmap[j + 1, i, c] - v)
                    if d > s:
                        s = d
    return s


@numba.njit(cache=True, nogil=True)
def reaching(
    pixmap: np.ndarray, xmin: int, xmax: int, ymin: int, ymax: int, limits: np.ndarray, found: np.ndarray
) -> None:
    """Fill ``found[k]`` with the first/last row and column whose centre is inside box ``k``."""
    n = limits.shape[0]
    for j in range(ymin, ymax + 1):
        for i in range(xmin, xmax + 1):
            x = pixmap[j, i, 0]
            y = pixmap[j, i, 1]
            for k in range(n):
                if x > limits[k, 0] and x < limits[k, 1] and y > limits[k, 2] and y < limits[k, 3]:
                    if j < found[k, 0]:
                        found[k, 0] = j
                    found[k, 1] = j
                    if i < found[k, 2]:
                        found[k, 2] = i
                    if i > found[k, 3]:
                        found[k, 3] = i
