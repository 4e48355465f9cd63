"""The additions of :func:`dask_resample.drizzle.reduce.accumulate` compiled (numba): one pass per plane group.

Each function adds one input's partial into views of a tile's float64 sums,
pixel by pixel, with the operations of the numpy path in the same order
(``s + (float64(a) * float64(w))``; a variance's ``(v * w) * w``), so the sums
are the same bit for bit; no temporary array is made. LLVM does not contract a
multiply and an add into one fused operation without fast-math flags, which are
not set here. ``cache=True`` keeps the machine code beside this file (or in
``NUMBA_CACHE_DIR``), as :mod:`dask_resample.drizzle.fused_kernel` does.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["add_products", "add_variance_constant", "add_variance_ivm", "add_weighted", "warm_up"]


@numba.njit(cache=True, nogil=True)
def add_weighted(s_wd: np.ndarray, s_w: np.ndarray, img: np.ndarray, wht: np.ndarray) -> None:
    """``s_wd += img * wht`` and ``s_w += wht``, in float64 (views of the same shape)."""
    ny, nx = img.shape
    for y in range(ny):
        for x in range(nx):
            w = np.float64(wht[y, x])
            s_wd[y, x] += np.float64(img[y, x]) * w
            s_w[y, x] += w


@numba.njit(cache=True, nogil=True)
def add_products(s: np.ndarray, a: np.ndarray, wht: np.ndarray) -> None:
    """``s += a * wht`` in float64 (the drizzled error's sum)."""
    ny, nx = a.shape
    for y in range(ny):
        for x in range(nx):
            s[y, x] += np.float64(a[y, x]) * np.float64(wht[y, x])


@numba.njit(cache=True, nogil=True)
def add_variance_ivm(var_s: np.ndarray, var_w: np.ndarray, v: np.ndarray, rn: np.ndarray) -> None:
    """One variance with inverse read-noise weights ``w = float64(1 / rn)`` (the reciprocal in float32).

    Where ``rn`` is finite and positive, ``w > 0``, and ``v`` is finite and ``>= 0``:
    ``var_s += (v * w) * w`` and ``var_w += w``.
    """
    one = np.float32(1.0)
    ny, nx = v.shape
    for y in range(ny):
        for x in range(nx):
            r = rn[y, x]
            if not (r > 0 and np.isfinite(r)):
                continue
            w = np.float64(one / r)
            vv = v[y, x]
            if w > 0 and vv >= 0 and np.isfinite(vv):
                var_s[y, x] += (np.float64(vv) * w) * w
                var_w[y, x] += w


@numba.njit(cache=True, nogil=True)
def add_variance_constant(var_s: np.ndarray, var_w: np.ndarray, v: np.ndarray, w: float) -> None:
    """One variance with one weight ``w`` for every pixel (exposure-time weights); nothing when ``w <= 0``."""
    if not w > 0:
        return
    ny, nx = v.shape
    for y in range(ny):
        for x in range(nx):
            vv = v[y, x]
            if vv >= 0 and np.isfinite(vv):
                var_s[y, x] += (np.float64(vv) * w) * w
                var_w[y, x] += w


def warm_up() -> None:
    """Load the machine code for the types a tile task passes (float32 partials into float64 views)."""
    s = np.zeros((3, 3))
    view = s[1:, 1:]
    for writeable in (True, False):  # partials made in the task, and those mapped from scratch (read-only)
        part = np.ones((2, 2), np.float32)
        part.flags.writeable = writeable
        add_weighted(view, view, part, part)
        add_products(view, part, part)
        add_variance_ivm(view, view, part, part)
        add_variance_constant(view, view, part, 1.0)
