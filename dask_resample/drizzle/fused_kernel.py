"""One-pass ``square`` and ``turbo`` drizzle kernels (numba), at parity with drizzle's C.

Why
---
``stcal.resample`` (and :mod:`dask_resample.drizzle.kernel` today) drizzles an exposure with
drizzle's C ``Drizzle.add_image`` once for the data and once per variance plane
(``var_rnoise``, ``var_flat``, ``var_poisson``): four walks over the same input
pixels, each recomputing the same overlap geometry for one output array. The
kernels here walk the input once: for each input pixel they compute its footprint
on the output grid and its overlap with each output pixel once, and update every
output plane with it: data, weight, context bits, data quality, and any number of
extra planes drizzled with the same weights (the variances, a drizzled error).

Why numba
---------
numba and llvmlite publish wheels on PyPI for CPython 3.12 on Linux (x86-64,
aarch64), macOS and Windows, so ``pip install dask-resample[fast]`` needs no
compiler, unlike a C or Cython extension built from an sdist. The same Python
source can be compiled for a GPU by ``numba.cuda`` (see below).

The first call in a process compiles the kernel for the argument types it sees:
11-19 s for one kernel and its polygon set-up on a busy 2-core machine
(``benchmarks/bench_fused_kernel.py``). Each combination of optional arrays (weight
map, context, DQ, extra planes, per-input weight) and of dtypes is a
specialisation of its own, compiled once. ``cache=True`` writes the machine code
to ``__pycache__`` beside this file (or ``NUMBA_CACHE_DIR``), so later processes,
Dask workers included, load a specialisation in about 0.4 s; a new numba
version, CPU model or edit of this file compiles once more. :func:`warm_up`
compiles the common specialisations ahead of time. Importing numba adds about
50 MiB to a process.

Exact arithmetic (what makes the numbers drizzle's)
---------------------------------------------------
Everything below transcribes drizzle 2.2.0's ``src/cdrizzlebox.c`` and
``src/cdrizzlemap.c`` operation for operation, in the same precision (``float`` where
the C uses ``float``) and order, with no fast-math and no FMA contraction (numba's
defaults), ``error_model="numpy"`` (IEEE division by zero, as C), and C's ``round``
(half away from zero) where the C calls ``round`` (Python's rounds half to even).

Per call (``add_image``), as drizzle's ``tdriz``:

1. The input box ``xmin..xmax, ymin..ymax`` (``add_image``'s arguments, clipped to
   the image; ``xmax == 0`` means the last column) is shrunk to the rows and
   columns with a finite pixel map (``shrink_image_section``); fewer than two
   valid rows or columns raise ``ValueError("No or too few valid pixels in the
   pixel map.")``, as drizzle does.
2. The box's outline is mapped to the output, clipped to the output frame
   (Sutherland-Hodgman), and the clipped polygon is mapped back to the input by
   a golden-section inversion of the pixel map. Only input rows and columns
   inside that polygon (with drizzle's 0.03-pixel slack) are drizzled: an input
   pixel whose centre region falls outside the output frame contributes nothing,
   even where its footprint would overlap the frame's edge pixels.
3. ``in_units="counts"`` divides ``iscale`` by the exposure time (``float32``).

Per input pixel ``(j, i)`` (``y``, ``x``) with a finite map:

- ``d = float32(data[j, i]) * iscale`` (``float32``); ``w = float32(weight[j, i]) *
  wht_scale`` (``float32``, ``1 * wht_scale`` without a weight map).
- **square**: the corners of the pixel shrunk by ``pixfrac`` are interpolated
  bilinearly in the pixel map (``interpolate_four_points`` inside the map,
  ``interpolate_point`` with extrapolation on its outer two rows and columns); any
  NaN corner skips the pixel. ``jaco`` is half the cross product of the
  diagonals; the weight is ``w / jaco`` (double). For each output pixel of the
  corners' rounded bounding box (clipped to the frame), ``dover = boxer(...)``
  (exact polygon/unit-square overlap area, ``sgarea`` per edge).
- **turbo**: the pixel's centre ``(ox, oy) = pixmap[j, i]`` (NaN skips it) carries
  an axis-aligned square of half-side ``pfo = pixfrac / pixel_scale_ratio / 2``;
  ``dover = over(...) * (pixel_scale_ratio / pixfrac)**2`` for each output pixel
  with positive overlap.
- ``dow = float32(dover * w)``; ``dow == 0`` changes nothing.

Per output pixel ``(jj, ii)`` hit with ``dow != 0`` (``update_data``; ``vc`` the
weight before, all ``float32`` unless said)::

    vcd = double(vc + dow)                          # the float32 sum, widened
    img = d                                        if vc == 0
    img = float32((img * vc + dow * d) / vcd)      otherwise (numerator in float32)
    wht = float32(vcd)
    ctx[plane] |= 1 << (ctx_id % 32)               if dow > 0  (int32 planes; plane = ctx_id // 32)
    dq = dq_in                                     if vc == 0, else dq |= dq_in

After the pass, output pixels with ``wht == 0`` take the fill value (``put_fill``).

Extra planes
------------
Each extra input plane ``e`` is drizzled with the same ``dow`` as the data, as a
separate ``add_image`` with the same weight map would drizzle it:
``d_e = float32(e[j, i]) * iscale`` (``float32(sqrt(double(e[j, i]))) * iscale`` for
a variance, whose square root is drizzled), and the update above with
``c`` in place of ``vc``, where ``c`` is

- the data's own weight ``vc`` for a plane accumulated like the data over all
  inputs (a drizzled error: stcal's ``_driz_error`` has its own weight array, equal
  to the data's at every step because it receives the same ``dow`` sequence);
- the weight of this input alone for a variance (stcal drizzles each input's
  ``sqrt(var)`` onto a fresh frame). On a fresh frame this is the data's weight
  again; otherwise :class:`FusedDrizzle` keeps one per-input weight plane.

Extra planes share the data's ``iscale``, ``in_units`` and ``wht_scale``. stcal
drizzles its variances with ``in_units="cps"`` and ``wht_scale=1`` and its data
with the same, so this is its arithmetic; with ``in_units="counts"`` a variance's
square root is divided by the exposure time like the data (rates).

Variances, the stcal way (``stcal.resample.Resample.resample_variance_arrays``):
per input, with ``m`` the drizzled ``sqrt(var)`` (NaN where this input's weight is
0, ``fillval=NaN``), ``v = float32(m * m)``, and the per-pixel weight
``W = double(float32(1) / float32(m_rn * m_rn))`` where the drizzled read-noise
variance is finite and > 0, else 0 (``weight_type="ivm"``), or ``W = tmeasure``
(``"exptime"``); where ``v >= 0``, ``v`` finite and ``W > 0``::

    wsum = float32((0 if wsum is NaN else double(wsum)) + (double(v) * W) * W)
    wt   = float32(double(wt) + W)

(``wsum`` starts NaN, ``wt`` 0, both ``float32``), and at the end
``var = wsum * scaling / wt / wt`` in ``float32`` (``scaling =
1 / pixel_scale_ratio**2`` for imaging). :meth:`FusedDrizzle.add_image` does the
per-input step in a second pass over the output box the input touched, which
also resets the per-input planes for the next input.

Design for a GPU version
------------------------
The work is split into

1. **geometry**, per input pixel and per (input, output) pixel pair:
   :func:`_square_corners`, :func:`_boxer` / :func:`_sgarea`, :func:`_turbo_box`,
   :func:`_over`. These are pure scalar functions (scalars in, tuples of scalars
   out, reads of the pixel map only; no allocation, no exceptions), so
   ``numba.cuda.jit(device=True)`` compiles the same Python functions
   (``f.py_func``) as device functions unchanged;
2. **accumulation**, per output pixel hit: :func:`_mean_update`, the running
   weighted mean of one plane (scalars in, the new value out), applied to the
   data and each extra plane, with the weight, context and DQ updates beside it;
3. a **driver** (:func:`_square_pass`, :func:`_turbo_pass`) that walks the input
   rows the scanner (:func:`_init_image_scanner`, :func:`_scanline_limits`: per
   call, on the host) allows, calls 1, and does the loads and stores of 2 (the
   accumulation block is the same in both drivers). Arrays stay in the driver:
   numba counts a reference for every array passed to an inlined function, which
   per output pixel hit cost as much as the whole C update.

A GPU driver keeps 1 and the scanner and replaces 3: one thread per input pixel
computes its geometry, and contributions go to per-output-pixel sums
``sum(dow * d)``, ``sum(dow)`` (and ``sum(dow * d_e)`` per extra plane) with atomic
adds, the context with ``atomic_or``; the running mean ``img`` of :func:`_mean_update`
is then ``sum(dow * d) / sum(dow)``, the same quantity drizzle's running update
computes. Atomic float adds take contributions in no fixed order, so a GPU result
agrees with drizzle's C to float32 rounding (about 1e-6 relative), not
bit-for-bit; the CPU kernels here keep drizzle's input order and match it
exactly.

Not covered here: the ``point``, ``gaussian`` and ``lanczos`` kernels, and
``pixfrac <= 0.001`` (which drizzle replaces by ``point``); :class:`FusedDrizzle`
raises for them.
"""

# The C's ternaries (MAX, MIN, clamps) stay ternaries: min/max differ from them for NaN and signed zeros.
# ruff: noqa: FURB136, PLR1730

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numba
import numpy as np

__all__ = [
    "KERNELS",
    "FusedDrizzle",
    "drizzle_once",
    "finalize_variances",
    "warm_up",
]

#: Kernels implemented here (others keep drizzle's C).
KERNELS: tuple[str, ...] = ("square", "turbo")

#: Context bits per int32 plane, as drizzle's ``CTX_PLANE_BITS``.
CTX_PLANE_BITS = 32

# constants of cdrizzlemap.c
_VERTEX_ATOL = 1.0e-12
_APPROX_ZERO = 1.0e3 * 2.2250738585072014e-308  # 1e3 * DBL_MIN
_MAX_INV_ERR = 0.03
_GOLDEN = 0.6180339887498948482  # (sqrt(5) - 1) / 2
_MAX_INV_ITER = 50

_KERNEL_CODE = {"square": 0, "turbo": 1}

# status codes of a pass
_OK = 0
_NO_PSCALE = 2

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
#: The per-pixel functions, inlined into the drivers (numba IR inlining: calls with
#: a dozen array arguments are otherwise not inlined by LLVM and dominate the time).
_jit_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


# --------------------------------------------------------------------------- scalar helpers


@_jit_inline
def _c_round(x: float) -> float:
    """C ``round``: halves away from zero (Python's ``round`` goes to even)."""
    a = abs(x)
    r: float = math.floor(a)  # a local annotation: numba compiles the same code
    if a - r >= 0.5:  # a - floor(a) is exact for doubles
        r += 1.0
    return math.copysign(r, x)


@_jit_inline
def _nintd(x: float) -> int:
    """drizzle's ``nintd``: ``(int) round(x)``."""
    return int(_c_round(x))


@_jit_inline
def _cmax(a: float, b: float) -> float:
    """C ``MAX(a, b)``: ``a > b ? a : b``."""
    return a if a > b else b


@_jit_inline
def _cmin(a: float, b: float) -> float:
    """C ``MIN(a, b)``: ``a < b ? a : b``."""
    return a if a < b else b


@_jit_inline
def _imax(a: int, b: int) -> int:
    """Integer ``MAX``."""
    return a if a > b else b


@_jit_inline
def _imin(a: int, b: int) -> int:
    """Integer ``MIN``."""
    return a if a < b else b


@_jit
def _cmod(a: int, b: int) -> int:
    """cdrizzlemap's ``mod``: ``(a + b) % b`` with C's truncating remainder."""
    q = a + b
    r = q % b
    if q < 0 and r != 0:
        r -= b
    return r


# --------------------------------------------------------------------------- geometry (per input pixel)


@_jit_inline
def _interpolate_point(pixmap: np.ndarray, x_in: float, y_in: float) -> tuple[bool, float, float]:
    """Bilinear interpolation (extrapolation at the edges) of the pixel map (``interpolate_point``).

    Returns
    -------
    ok, x_out, y_out
        ``ok`` is False when either output coordinate is NaN.
    """
    ny2 = pixmap.shape[0] - 2
    nx2 = pixmap.shape[1] - 2
    i0 = int(x_in)
    j0 = int(y_in)
    if i0 < 0:
        i0 = 0
    elif i0 > nx2:
        i0 = nx2
    if j0 < 0:
        j0 = 0
    elif j0 > ny2:
        j0 = ny2
    x = x_in - i0
    y = y_in - j0
    x1 = 1.0 - x
    y1 = 1.0 - y
    f00 = pixmap[j0, i0, 0]
    g00 = pixmap[j0, i0, 1]
    f10 = pixmap[j0, i0 + 1, 0]
    g10 = pixmap[j0, i0 + 1, 1]
    f01 = pixmap[j0 + 1, i0, 0]
    g01 = pixmap[j0 + 1, i0, 1]
    f11 = pixmap[j0 + 1, i0 + 1, 0]
    g11 = pixmap[j0 + 1, i0 + 1, 1]
    xo = f00 * x1 * y1 + f10 * x * y1 + f01 * x1 * y + f11 * x * y
    yo = g00 * x1 * y1 + g10 * x * y1 + g01 * x1 * y + g11 * x * y
    return not (math.isnan(xo) or math.isnan(yo)), xo, yo


@_jit_inline
def _square_corners(
    pixmap: np.ndarray, i: int, j: int, h: float
) -> tuple[bool, float, float, float, float, float, float, float, float]:
    """Output positions of the corners of input pixel ``(j, i)`` shrunk to half-side ``h``.

    Clockwise in the input grid: ``(-h, +h), (+h, +h), (+h, -h), (-h, -h)`` in
    ``(x, y)``. Inside the map, ``interpolate_four_points`` (nine map values,
    pre-weighted); on its outer two rows and columns, ``interpolate_point`` per
    corner, as ``do_kernel_square``.

    Returns
    -------
    ok, x0, x1, x2, x3, y0, y1, y2, y3
        ``ok`` is False when any corner is NaN.
    """
    map_ny = pixmap.shape[0]
    map_nx = pixmap.shape[1]
    if i > 0 and i < map_nx - 2 and j > 0 and j < map_ny - 2:
        ic = i - 1
        jc = j - 1
        hh = h * h
        h1h = (1 - h) * h
        h11 = (1 - h) * (1 - h)
        # f[a][b]: map value at x = ic + a, y = jc + b, times its factor
        f00 = pixmap[jc, ic, 0] * hh
        g00 = pixmap[jc, ic, 1] * hh
        f10 = pixmap[jc, ic + 1, 0] * h1h
        g10 = pixmap[jc, ic + 1, 1] * h1h
        f20 = pixmap[jc, ic + 2, 0] * hh
        g20 = pixmap[jc, ic + 2, 1] * hh
        f01 = pixmap[jc + 1, ic, 0] * h1h
        g01 = pixmap[jc + 1, ic, 1] * h1h
        f11 = pixmap[jc + 1, ic + 1, 0] * h11
        g11 = pixmap[jc + 1, ic + 1, 1] * h11
        f21 = pixmap[jc + 1, ic + 2, 0] * h1h
        g21 = pixmap[jc + 1, ic + 2, 1] * h1h
        f02 = pixmap[jc + 2, ic, 0] * hh
        g02 = pixmap[jc + 2, ic, 1] * hh
        f12 = pixmap[jc + 2, ic + 1, 0] * h1h
        g12 = pixmap[jc + 2, ic + 1, 1] * h1h
        f22 = pixmap[jc + 2, ic + 2, 0] * hh
        g22 = pixmap[jc + 2, ic + 2, 1] * hh
        x0 = f01 + f11 + f02 + f12
        y0 = g01 + g11 + g02 + g12
        x1 = f11 + f21 + f12 + f22
        y1 = g11 + g21 + g12 + g22
        x2 = f10 + f20 + f11 + f21
        y2 = g10 + g20 + g11 + g21
        x3 = f00 + f10 + f01 + f11
        y3 = g00 + g10 + g01 + g11
        ok = not (
            math.isnan(x0) or math.isnan(y0) or math.isnan(x1) or math.isnan(y1)
            or math.isnan(x2) or math.isnan(y2) or math.isnan(x3) or math.isnan(y3)
        )
        return ok, x0, x1, x2, x3, y0, y1, y2, y3
    xl = i - h
    xr = i + h
    yt = j + h
    yb = j - h
    ok0, x0, y0 = _interpolate_point(pixmap, xl, yt)
    if not ok0:
        return False, x0, x0, x0, x0, y0, y0, y0, y0
    ok1, x1, y1 = _interpolate_point(pixmap, xr, yt)
    if not ok1:
        return False, x0, x1, x1, x1, y0, y1, y1, y1
    ok2, x2, y2 = _interpolate_point(pixmap, xr, yb)
    if not ok2:
        return False, x0, x1, x2, x2, y0, y1, y2, y2
    ok3, x3, y3 = _interpolate_point(pixmap, xl, yb)
    return ok3, x0, x1, x2, x3, y0, y1, y2, y3


@_jit_inline
def _sgarea(x1: float, y1: float, x2: float, y2: float) -> float:
    """Signed area under segment ``(x1, y1)-(x2, y2)`` inside the unit square at the origin (``sgarea``)."""
    dx = x2 - x1
    dy = y2 - y1
    if dx == 0:
        return 0.0
    if dx < 0:
        sgn_dx = -1.0
        xlo = x2
        xhi = x1
    else:
        sgn_dx = 1.0
        xlo = x1
        xhi = x2
    if xlo >= 1.0 or xhi <= 0.0:
        return 0.0
    xlo = _cmax(xlo, 0.0)
    xhi = _cmin(xhi, 1.0)
    slope = dy / dx
    ylo = y1 + slope * (xlo - x1)
    yhi = y1 + slope * (xhi - x1)
    if ylo <= 0.0 and yhi <= 0.0:
        return 0.0
    if ylo >= 1.0 and yhi >= 1.0:
        return sgn_dx * (xhi - xlo)
    det = x1 * y2 - y1 * x2
    if ylo < 0.0:
        ylo = 0.0
        xlo = det / dy
    if yhi < 0.0:
        yhi = 0.0
        xhi = det / dy
    if ylo <= 1.0:
        if yhi <= 1.0:
            return sgn_dx * 0.5 * (xhi - xlo) * (yhi + ylo)
        xtop = (dx + det) / dy
        return sgn_dx * (0.5 * (xtop - xlo) * (1.0 + ylo) + xhi - xtop)
    xtop = (dx + det) / dy
    return sgn_dx * (0.5 * (xhi - xtop) * (1.0 + yhi) + xtop - xlo)


@_jit_inline
def _boxer(
    ii: float, jj: float,
    x0: float, x1: float, x2: float, x3: float,
    y0: float, y1: float, y2: float, y3: float,
) -> float:
    """Signed overlap of quadrilateral ``(x, y)`` with output pixel ``(jj, ii)`` (``boxer``)."""
    is_ = ii - 0.5
    js = jj - 0.5
    px0 = x0 - is_
    px1 = x1 - is_
    px2 = x2 - is_
    px3 = x3 - is_
    py0 = y0 - js
    py1 = y1 - js
    py2 = y2 - js
    py3 = y3 - js
    s = 0.0
    s += _sgarea(px0, py0, px1, py1)
    s += _sgarea(px1, py1, px2, py2)
    s += _sgarea(px2, py2, px3, py3)
    s += _sgarea(px3, py3, px0, py0)
    return s


@_jit_inline
def _turbo_box(ox: float, oy: float, pfo: float) -> tuple[float, float, float, float]:
    """The turbo kernel's axis-aligned box ``(x_lo, x_hi, y_lo, y_hi)`` around ``(ox, oy)``."""
    return ox - pfo, ox + pfo, oy - pfo, oy + pfo


@_jit_inline
def _over(ii: int, jj: int, xmin: float, xmax: float, ymin: float, ymax: float) -> float:
    """Overlap of an axis-aligned box with output pixel ``(jj, ii)`` (``over``)."""
    dx = _cmin(xmax, float(ii) + 0.5) - _cmax(xmin, float(ii) - 0.5)
    dy = _cmin(ymax, float(jj) + 0.5) - _cmax(ymin, float(jj) - 0.5)
    if dx > 0.0 and dy > 0.0:
        return dx * dy
    return 0.0


# --------------------------------------------------------------------------- input range and scanner (per call)


@_jit
def _shrink_image_section(
    pixmap: np.ndarray, xmin: int, xmax: int, ymin: int, ymax: int
) -> tuple[bool, int, int, int, int]:
    """Tightest box with a finite map value on each edge (``shrink_image_section``).

    Returns
    -------
    ok, xmin, xmax, ymin, ymax
        ``ok`` is False with fewer than two valid columns or rows.
    """
    imin = xmax
    jmin = ymax
    for j in range(ymin, ymax + 1):
        for i in range(xmin, xmax + 1):
            if not (math.isnan(pixmap[j, i, 0]) or math.isnan(pixmap[j, i, 1])):
                if i < imin:
                    imin = i
                if j < jmin:
                    jmin = j
                break
    imax = imin
    jmax = jmin
    for j in range(ymax, ymin - 1, -1):
        for i in range(xmax, xmin - 1, -1):
            if not (math.isnan(pixmap[j, i, 0]) or math.isnan(pixmap[j, i, 1])):
                if i > imax:
                    imax = i
                if j > jmax:
                    jmax = j
                break
    return not (imin >= imax or jmin >= jmax), imin, imax, jmin, jmax


@_jit
def _area(ax: float, ay: float, bx: float, by: float) -> float:
    """z component of ``a x b``."""
    return ax * by - ay * bx


@_jit
def _orient_ccw(v: np.ndarray, n: int) -> None:
    """Reverse polygon ``v[:n]`` in place if it is clockwise (``orient_ccw``)."""
    if n < 3:
        return
    cx = 0.0
    cy = 0.0
    for k in range(n):
        cx += v[k, 0]
        cy += v[k, 1]
    cx /= n
    cy /= n
    if _area(v[0, 0] - cx, v[0, 1] - cy, v[1, 0] - cx, v[1, 1] - cy) >= 0.0:
        return
    for k in range(n // 2):
        m = n - 1 - k
        tx = v[k, 0]
        ty = v[k, 1]
        v[k, 0] = v[m, 0]
        v[k, 1] = v[m, 1]
        v[m, 0] = tx
        v[m, 1] = ty


@_jit
def _append_vertex(v: np.ndarray, n: int, x: float, y: float) -> int:
    """Append a vertex unless it repeats the last or the first (``append_vertex``); new count."""
    if n > 0 and abs(v[n - 1, 0] - x) < _VERTEX_ATOL and abs(v[n - 1, 1] - y) < _VERTEX_ATOL:
        return n
    if n > 0 and abs(v[0, 0] - x) < _VERTEX_ATOL and abs(v[0, 1] - y) < _VERTEX_ATOL:
        return n
    if n >= v.shape[0]:
        return n
    v[n, 0] = x
    v[n, 1] = y
    return n + 1


@_jit
def _simplify_polygon(v: np.ndarray, n: int) -> int:
    """Drop vertices on the line through their neighbours (``simplify_polygon``); new count."""
    if n < 3:
        return n
    hull = np.empty_like(v)
    nh = 0
    p_ = n - 1
    p = 0
    pn = 1
    for k in range(n):
        dpx = v[pn, 0] - v[p_, 0]
        dpy = v[pn, 1] - v[p_, 1]
        dqx = v[p, 0] - v[p_, 0]
        dqy = v[p, 1] - v[p_, 1]
        if abs(_area(dpx, dpy, dqx, dqy)) > _APPROX_ZERO and math.sqrt(dpx * dpx + dpy * dpy) > _VERTEX_ATOL:
            hull[nh, 0] = v[p, 0]
            hull[nh, 1] = v[p, 1]
            nh += 1
        p_ = p
        p = pn
        pn = _cmod(2 + k, n)
    for k in range(nh):
        v[k, 0] = hull[k, 0]
        v[k, 1] = hull[k, 1]
    return nh


@_jit
def _in_half_plane(ptx: float, pty: float, v_x: float, v_y: float, vx: float, vy: float) -> bool:
    """``is_point_strictly_in_hp(pt, v_, v)``."""
    return (_area(vx, vy, ptx, pty) - _area(v_x, v_y, ptx, pty) - _area(vx, vy, v_x, v_y)) > 0.0


@_jit
def _clip_polygon_to_window(p: np.ndarray, np_: int, wnd: np.ndarray, nw: int) -> tuple[np.ndarray, int, bool]:
    """Sutherland-Hodgman clip of polygon ``p`` by convex ``wnd`` (``clip_polygon_to_window``).

    Both inputs are oriented counter-clockwise in place first, as in the C.

    Returns
    -------
    vertices, count, failed
    """
    if np_ < 3 or nw < 3:
        return p, 0, True
    _orient_ccw(p, np_)
    _orient_ccw(wnd, nw)
    buf_a = p.copy()
    n_a = np_
    buf_b = np.empty_like(p)
    n_b = 0
    # ppin/ppout swap each window edge; start: ppin = b, ppout = a
    pin = buf_b
    n_in = n_b
    pout = buf_a
    n_out = n_a
    wp = nw - 1
    for k in range(nw):
        wv = k
        dwx = wnd[wv, 0] - wnd[wp, 0]
        dwy = wnd[wv, 1] - wnd[wp, 1]
        pin, pout = pout, pin
        n_in = n_out
        n_out = 0
        if n_in > 0:
            pp = n_in - 1
            for j in range(n_in):
                pv = j
                dpx = pin[pv, 0] - pin[pp, 0]
                dpy = pin[pv, 1] - pin[pp, 1]
                v1_inside = _in_half_plane(wnd[wp, 0], wnd[wp, 1], wnd[wv, 0], wnd[wv, 1], pin[pp, 0], pin[pp, 1])
                v2_inside = _in_half_plane(wnd[wp, 0], wnd[wp, 1], wnd[wv, 0], wnd[wv, 1], pin[pv, 0], pin[pv, 1])
                if v2_inside != v1_inside:
                    d = _area(dpx, dpy, dwx, dwy)
                    app_ = _area(pin[pv, 0], pin[pv, 1], pin[pp, 0], pin[pp, 1])
                    aww_ = _area(wnd[wv, 0], wnd[wv, 1], wnd[wp, 0], wnd[wp, 1])
                    vix = (app_ * dwx - aww_ * dpx) / d
                    viy = (app_ * dwy - aww_ * dpy) / d
                    if math.isfinite(vix) and math.isfinite(viy):
                        n_out = _append_vertex(pout, n_out, vix, viy)
                    if v2_inside:
                        n_out = _append_vertex(pout, n_out, pin[pv, 0], pin[pv, 1])
                elif v1_inside:
                    n_out = _append_vertex(pout, n_out, pin[pv, 0], pin[pv, 1])
                pp = pv
        wp = wv
    _orient_ccw(pout, n_out)
    n_out = _simplify_polygon(pout, n_out)
    return pout.copy(), n_out, False


@_jit
def _invert_pixmap(
    pixmap: np.ndarray, xmin: int, xmax: int, ymin: int, ymax: int, x_out: float, y_out: float
) -> tuple[bool, float, float]:
    """Input position of output point ``(x_out, y_out)`` by golden-section search (``invert_pixmap``)."""
    x_lo = float(xmin) - 0.5
    x_hi = float(xmax) + 0.5
    y_lo = float(ymin) - 0.5
    y_hi = float(ymax) + 0.5
    dx = x_hi - x_lo
    dy = y_hi - y_lo
    niter = 0
    while (dx > _MAX_INV_ERR or dy > _MAX_INV_ERR) and niter < _MAX_INV_ITER:
        niter += 1
        x1 = x_hi - _GOLDEN * dx
        x2 = x_lo + _GOLDEN * dx
        y1 = y_hi - _GOLDEN * dy
        y2 = y_lo + _GOLDEN * dy
        ok, xo, yo = _interpolate_point(pixmap, x1, y1)
        if not ok:
            return False, 0.0, 0.0
        ex = xo - x_out
        ey = yo - y_out
        d11 = ex * ex + ey * ey
        ok, xo, yo = _interpolate_point(pixmap, x1, y2)
        if not ok:
            return False, 0.0, 0.0
        ex = xo - x_out
        ey = yo - y_out
        d12 = ex * ex + ey * ey
        ok, xo, yo = _interpolate_point(pixmap, x2, y1)
        if not ok:
            return False, 0.0, 0.0
        ex = xo - x_out
        ey = yo - y_out
        d21 = ex * ex + ey * ey
        ok, xo, yo = _interpolate_point(pixmap, x2, y2)
        if not ok:
            return False, 0.0, 0.0
        ex = xo - x_out
        ey = yo - y_out
        d22 = ex * ex + ey * ey
        if d11 < d12 and d11 < d21 and d11 < d22:
            x_hi = x2
            y_hi = y2
        elif d12 < d11 and d12 < d21 and d12 < d22:
            x_hi = x2
            y_lo = y1
        elif d21 < d11 and d21 < d12 and d21 < d22:
            x_lo = x1
            y_hi = y2
        else:
            x_lo = x1
            y_lo = y1
        dx = x_hi - x_lo
        dy = y_hi - y_lo
    x_in = 0.5 * (x_lo + x_hi)
    y_in = 0.5 * (y_lo + y_hi)
    return niter != _MAX_INV_ITER, x_in, y_in


# scanner edges: columns of an edge row
_E_V1X, _E_V1Y, _E_V2X, _E_V2Y, _E_M, _E_C = 0, 1, 2, 3, 4, 5


@_jit
def _init_edge(e: np.ndarray, k: int, v1x: float, v1y: float, v2x: float, v2y: float, position: float) -> None:
    """``init_edge``: slope and the intercept shifted so whole pixels fit inside the edge."""
    e[k, _E_V1X] = v1x
    e[k, _E_V1Y] = v1y
    e[k, _E_V2X] = v2x
    e[k, _E_V2Y] = v2y
    m = (v2x - v1x) / (v2y - v1y)
    b = (v1x * v2y - v1y * v2x) / (v2y - v1y)
    e[k, _E_M] = m
    e[k, _E_C] = b - math.copysign(0.5 + 0.5 * abs(m), position)


@_jit
def _init_scanner(
    v: np.ndarray, n: int, left: np.ndarray, right: np.ndarray
) -> tuple[bool, int, int, float, float]:
    """Split polygon ``v[:n]`` into left and right edge chains (``init_scanner``).

    Returns
    -------
    ok, n_left, n_right, min_y, max_y
    """
    if n < 3:
        return False, 0, 0, 0.0, 0.0
    min_y = v[0, 1]
    min_left = 0
    for k in range(1, n):
        if v[k, 1] < min_y:
            min_left = k
            min_y = v[k, 1]
    i1 = _cmod(min_left - 1, n)
    i2 = _cmod(min_left + 1, n)
    min_right = i1 if v[i1, 1] < v[i2, 1] else i2
    if v[min_right, 1] <= min_y * (1.0 + math.copysign(_VERTEX_ATOL, min_y)):
        if v[min_left, 0] > v[min_right, 0]:
            min_left, min_right = min_right, min_left
    else:
        min_right = min_left
    max_y = v[0, 1]
    max_right = 0
    for k in range(1, n):
        if v[k, 1] > max_y:
            max_right = k
            max_y = v[k, 1]
    i1 = _cmod(max_right - 1, n)
    i2 = _cmod(max_right + 1, n)
    max_left = i1 if v[i1, 1] > v[i2, 1] else i2
    if v[max_left, 1] >= max_y * (1.0 - math.copysign(_VERTEX_ATOL, max_y)):
        if v[max_left, 0] > v[max_right, 0]:
            max_left, max_right = max_right, max_left
    else:
        max_left = max_right
    if max_left > min_left:
        min_left += n
    n_left = min_left - max_left
    for k in range(n_left):
        i1 = _cmod(min_left - k, n)
        i2 = _cmod(i1 - 1, n)
        _init_edge(left, k, v[i1, 0], v[i1, 1], v[i2, 0], v[i2, 1], -1.0)
    if max_right < min_right:
        max_right += n
    n_right = max_right - min_right
    for k in range(n_right):
        i1 = _cmod(min_right + k, n)
        i2 = _cmod(i1 + 1, n)
        _init_edge(right, k, v[i1, 0], v[i1, 1], v[i2, 0], v[i2, 1], 1.0)
    return True, n_left, n_right, min_y, max_y


@_jit
def _init_image_scanner(
    pixmap: np.ndarray, xmin: int, xmax: int, ymin: int, ymax: int, out_ny: int, out_nx: int
) -> tuple[bool, int, int, np.ndarray, np.ndarray, np.ndarray, float, float, np.ndarray, int]:
    """The input polygon that lands on the output frame, as a row scanner (``init_image_scanner``).

    Returns
    -------
    ok, y_first, y_last, left, right, state, min_y, max_y, polygon, n_vertices
        ``state`` holds the current left and right edge (-1 once the scan ended)
        and the edge counts; ``polygon[:n_vertices]`` is the bounding polygon in
        input coordinates. ``ok`` is False when nothing can be drizzled.
    """
    inpq = np.empty((8, 2))
    inpq[0, 0] = xmin - 0.5
    inpq[0, 1] = ymin - 0.5
    inpq[1, 0] = xmax + 0.5
    inpq[1, 1] = inpq[0, 1]
    inpq[2, 0] = inpq[1, 0]
    inpq[2, 1] = ymax + 0.5
    inpq[3, 0] = inpq[0, 0]
    inpq[3, 1] = inpq[2, 1]
    n_in = 4
    p = np.empty((8, 2))
    valid = True
    for k in range(4):
        ok, xo, yo = _interpolate_point(pixmap, inpq[k, 0], inpq[k, 1])
        if not ok:
            valid = False
            break
        p[k, 0] = xo
        p[k, 1] = yo
    if valid:
        q = np.empty((8, 2))
        q[0, 0] = -0.5
        q[0, 1] = -0.5
        q[1, 0] = out_nx - 0.5
        q[1, 1] = -0.5
        q[2, 0] = out_nx - 0.5
        q[2, 1] = out_ny - 0.5
        q[3, 0] = -0.5
        q[3, 1] = out_ny - 0.5
        pq, n_pq, failed = _clip_polygon_to_window(p, 4, q, 4)
        if not failed:
            for k in range(n_pq):
                ok, xi, yi = _invert_pixmap(pixmap, xmin, xmax, ymin, ymax, pq[k, 0], pq[k, 1])
                if not ok:
                    valid = False
                    break
                inpq[k, 0] = xi
                inpq[k, 1] = yi
            if valid:
                n_in = n_pq
                _orient_ccw(inpq, n_in)
    left = np.zeros((8, 6))
    right = np.zeros((8, 6))
    ok, n_left, n_right, min_y, max_y = _init_scanner(inpq, n_in, left, right)
    state = np.array([0, 0, n_left, n_right], dtype=np.int64)
    y_first = _imax(0, int(min_y + 0.5 + 2.0 * _MAX_INV_ERR))
    y_last = _imin(ymax, int(max_y + 2.0 * _MAX_INV_ERR))
    return ok, y_first, y_last, left, right, state, min_y, max_y, inpq, n_in


@_jit
def _scanline_limits(
    y: int, left: np.ndarray, right: np.ndarray, state: np.ndarray,
    min_y: float, max_y: float, xmin: int, xmax: int, ymin: int, ymax: int,
) -> tuple[int, int, int]:
    """Columns of input row ``y`` inside the scanner's polygon (``get_scanline_limits``).

    Call with increasing ``y``; ``state`` advances along the edges.

    Returns
    -------
    status, x_first, x_last
        status 0: columns found; 1: the scan ended; 2: the row is outside; 3: empty row.
    """
    x1 = 0
    x2 = 0
    el_max = state[2] - 1
    er_max = state[3] - 1
    if ymax >= ymin and (y < 0 or y > ymax):
        return 2, x1, x2
    pyb = y - 0.5
    pyt = y + 0.5
    if pyt <= min_y or pyb >= max_y + 1:
        return 2, x1, x2
    if state[0] < 0 or state[1] < 0:
        return 1, x1, x2
    while pyb > left[state[0], _E_V2Y]:
        if state[0] == el_max:
            state[0] = -1
            state[1] = -1
            return 1, x1, x2
        state[0] += 1
    while pyb > right[state[1], _E_V2Y]:
        if state[1] == er_max:
            state[0] = -1
            state[1] = -1
            return 1, x1, x2
        state[1] += 1
    xlb = left[state[0], _E_M] * y + left[state[0], _E_C] - _MAX_INV_ERR
    xrb = right[state[1], _E_M] * y + right[state[1], _E_C] + _MAX_INV_ERR
    edge_ymax = left[state[0], _E_V2Y] + 0.5 + _MAX_INV_ERR
    while pyt > edge_ymax:
        if state[0] == el_max:
            state[0] = -1
            state[1] = -1
            return 1, x1, x2
        state[0] += 1
        edge_ymax = left[state[0], _E_V2Y] + 0.5 + _MAX_INV_ERR
    edge_ymax = right[state[1], _E_V2Y] + 0.5 + _MAX_INV_ERR
    while pyt > edge_ymax:
        if state[1] == er_max:
            state[0] = -1
            state[1] = -1
            return 1, x1, x2
        state[1] += 1
        edge_ymax = right[state[1], _E_V2Y] + 0.5 + _MAX_INV_ERR
    xlt = left[state[0], _E_M] * y + left[state[0], _E_C] - _MAX_INV_ERR
    xrt = right[state[1], _E_M] * y + right[state[1], _E_C] + _MAX_INV_ERR
    fxmin = float(xmin)
    fxmax = float(xmax)
    if xmax >= xmin:
        if xlb < fxmin:
            xlb = fxmin
        if xlt < fxmin:
            xlt = fxmin
        if xrb > fxmax:
            xrb = fxmax
        if xrt > fxmax:
            xrt = fxmax
    if xlt >= xrt:
        x1 = int(_c_round(xlb))
        x2 = int(_c_round(xrb))
        if xlb >= xrb:
            return 3, x1, x2
    elif xlb >= xrb:
        x1 = int(_c_round(xlt))
        x2 = int(_c_round(xrt))
    else:
        x1 = int(_c_round(xlb if xlb > xlt else xlt))
        x2 = int(_c_round(xrb if xrb < xrt else xrt))
    return 0, x1, x2


@_jit
def _compute_pscale_ratio(pixmap: np.ndarray, poly: np.ndarray, n: int) -> tuple[bool, np.float32]:
    """Pixel scale ratio at the centroid of the bounding polygon (``compute_pscale_ratio``)."""
    a = 0.0
    j = n - 1
    for k in range(n):
        a += (poly[j, 0] + poly[k, 0]) * (poly[j, 1] - poly[k, 1])
        j = k
    a = 0.5 * a
    if abs(a) < _APPROX_ZERO or n < 3:
        return False, np.float32(0.0)
    sx = 0.0
    sy = 0.0
    j = n - 1
    for k in range(n):
        f = poly[j, 0] * poly[k, 1] - poly[k, 0] * poly[j, 1]
        sx += (poly[j, 0] + poly[k, 0]) * f
        sy += (poly[j, 1] + poly[k, 1]) * f
        j = k
    cx = sx / (6.0 * a)
    cy = sy / (6.0 * a)
    i = int(cx)
    jy = int(cy)
    nx = pixmap.shape[1]
    ny = pixmap.shape[0]
    if nx < 2 or ny < 2:
        return False, np.float32(0.0)
    i = _imax(_imin(i, nx - 2), 0)
    jy = _imax(_imin(jy, ny - 2), 0)
    ox = pixmap[jy, i, 0]
    oy = pixmap[jy, i, 1]
    ox1 = pixmap[jy, i + 1, 0]
    oy1 = pixmap[jy, i + 1, 1]
    ox2 = pixmap[jy + 1, i, 0]
    oy2 = pixmap[jy + 1, i, 1]
    if (math.isnan(ox) or math.isnan(oy) or math.isnan(ox1) or math.isnan(oy1)
            or math.isnan(ox2) or math.isnan(oy2)):
        return False, np.float32(0.0)
    cd11 = ox1 - ox
    cd12 = oy1 - oy
    cd21 = ox2 - ox
    cd22 = oy2 - oy
    return True, np.float32(math.sqrt(abs(cd11 * cd22 - cd12 * cd21)))


# --------------------------------------------------------------------------- accumulation (per output pixel hit)


@_jit_inline
def _mean_update(old: np.float32, c: np.float32, value: np.float32, dow: np.float32, cd: float) -> np.float32:
    """The running weighted mean of one plane after one contribution (``update_data``).

    ``c`` is the plane's weight before the contribution ``(value, dow)`` and ``cd``
    the widened float32 sum ``c + dow``: ``value`` if ``c == 0``, else
    ``float32((old * c + dow * value) / cd)`` with the numerator in float32.
    Scalars only: the drivers load and store (an array passed to an inlined
    function costs a reference count per call).
    """
    if c == 0.0:
        return value
    return np.float32((old * c + dow * value) / cd)


# --------------------------------------------------------------------------- drivers (one pass over the input)
#
# Optional outputs and inputs are passed as None: numba compiles one specialisation
# per combination actually used (and caches it), with the unused branches removed.


@_jit
def _square_pass(
    pixmap: np.ndarray, data: np.ndarray, weights: np.ndarray | None, wscale: np.float32,
    iscale: np.float32, pixfrac: float, xmin: int, xmax: int, ymin: int, ymax: int,
    out_img: np.ndarray, out_wht: np.ndarray, ctx: np.ndarray | None, ctx_bit: np.int32,
    dq: np.ndarray | None, out_dq: np.ndarray | None,
    extra_in: tuple | None, n_extra: int, extra_sqrt: np.ndarray, extra_own: np.ndarray,
    extra_out: np.ndarray | None, exp_wht: np.ndarray | None, box: np.ndarray,
) -> tuple[int, int, int]:
    """``do_kernel_square``: one pass over the input; ``box`` receives the touched output box.

    Returns
    -------
    status, nmiss, nskip
    """
    out_ny, out_nx = out_img.shape
    dh = 0.5 * pixfrac
    ok, y_first, y_last, left, right, state, min_y, max_y, _poly, _npoly = _init_image_scanner(
        pixmap, xmin, xmax, ymin, ymax, out_ny, out_nx
    )
    if not ok:
        return _OK, 0, 0
    nskip = (ymax - ymin) - (y_last - y_first)
    nmiss = nskip * (xmax - xmin)
    d_extra = np.zeros(max(n_extra, 1), np.float32)
    dq_val = np.uint32(0)
    by0 = out_ny
    by1 = -1
    bx0 = out_nx
    bx1 = -1
    for j in range(y_first, y_last + 1):
        code, x_first, x_last = _scanline_limits(j, left, right, state, min_y, max_y, xmin, xmax, ymin, ymax)
        if code == 1:
            nskip += y_last + 1 - j
            nmiss += (y_last + 1 - j) * (xmax - xmin)
            break
        elif code == 2 or code == 3:
            nmiss += xmax - xmin
            nskip += 1
            continue
        nmiss += (xmax - xmin) - (x_last + 1 - x_first)
        for i in range(x_first, x_last + 1):
            nhit = 0
            # geometry: the pixel's footprint, once
            ok, x0, x1, x2, x3, y0, y1, y2, y3 = _square_corners(pixmap, i, j, dh)
            if ok:
                jaco = 0.5 * ((x1 - x3) * (y0 - y2) - (x0 - x2) * (y1 - y3))
                d = np.float32(data[j, i]) * iscale
                if extra_in is not None:
                    for k in range(n_extra):
                        v = extra_in[k][j, i]
                        if extra_sqrt[k]:
                            d_extra[k] = np.float32(np.sqrt(np.float64(v))) * iscale
                        else:
                            d_extra[k] = np.float32(v) * iscale
                if weights is None:
                    wpix = np.float32(1.0) * wscale
                else:
                    wpix = np.float32(weights[j, i]) * wscale
                w = wpix / jaco
                if dq is not None:
                    dq_val = np.uint32(dq[j, i])
                jj0 = _imax(_nintd(min(min(y0, y1), min(y2, y3))), 0)
                jj1 = _imin(_nintd(max(max(y0, y1), max(y2, y3))), out_ny - 1)
                ii0 = _imax(_nintd(min(min(x0, x1), min(x2, x3))), 0)
                ii1 = _imin(_nintd(max(max(x0, x1), max(x2, x3))), out_nx - 1)
                for jj in range(jj0, jj1 + 1):
                    for ii in range(ii0, ii1 + 1):
                        # geometry: its overlap with one output pixel, once for every plane
                        dover = _boxer(float(ii), float(jj), x0, x1, x2, x3, y0, y1, y2, y3)
                        if dover != 0.0:
                            dow = np.float32(dover * w)
                            nhit += 1
                            # accumulation: every plane at (jj, ii), drizzle's set_bit then update_data
                            if ctx is not None:  # noqa: SIM102 (alone, numba prunes it at compile time)
                                if dow > 0.0:
                                    ctx[jj, ii] = ctx[jj, ii] | ctx_bit
                            if dow != 0.0:
                                by0 = min(by0, jj)
                                by1 = max(by1, jj)
                                bx0 = min(bx0, ii)
                                bx1 = max(bx1, ii)
                                vc = out_wht[jj, ii]
                                vcd = np.float64(vc + dow)  # the float32 sum, widened as the C keeps it
                                out_img[jj, ii] = _mean_update(out_img[jj, ii], vc, d, dow, vcd)
                                out_wht[jj, ii] = vcd
                                if out_dq is not None:
                                    if vc == 0.0:
                                        out_dq[jj, ii] = dq_val
                                    else:
                                        out_dq[jj, ii] = out_dq[jj, ii] | dq_val
                                if extra_out is not None:
                                    ve = vc
                                    ved = vcd
                                    if exp_wht is not None:
                                        ve = exp_wht[jj, ii]
                                        ved = np.float64(ve + dow)
                                        exp_wht[jj, ii] = ved
                                    for k in range(n_extra):
                                        if extra_own[k]:
                                            extra_out[k, jj, ii] = _mean_update(
                                                extra_out[k, jj, ii], ve, d_extra[k], dow, ved)
                                        else:
                                            extra_out[k, jj, ii] = _mean_update(
                                                extra_out[k, jj, ii], vc, d_extra[k], dow, vcd)
            if nhit == 0:
                nmiss += 1
    box[0] = by0
    box[1] = by1 + 1
    box[2] = bx0
    box[3] = bx1 + 1
    return _OK, nmiss, nskip


@_jit
def _turbo_pass(
    pixmap: np.ndarray, data: np.ndarray, weights: np.ndarray | None, wscale: np.float32,
    iscale: np.float32, pixfrac: float, pscale_ratio: np.float32, xmin: int, xmax: int, ymin: int, ymax: int,
    out_img: np.ndarray, out_wht: np.ndarray, ctx: np.ndarray | None, ctx_bit: np.int32,
    dq: np.ndarray | None, out_dq: np.ndarray | None,
    extra_in: tuple | None, n_extra: int, extra_sqrt: np.ndarray, extra_own: np.ndarray,
    extra_out: np.ndarray | None, exp_wht: np.ndarray | None, box: np.ndarray,
) -> tuple[int, int, int]:
    """``do_kernel_turbo``: one pass over the input; ``box`` receives the touched output box.

    A NaN ``pscale_ratio`` is estimated from the map at the centroid of the
    scanner's polygon, as drizzle does for ``pixel_scale_ratio=None``.

    Returns
    -------
    status, nmiss, nskip
    """
    out_ny, out_nx = out_img.shape
    ac = 1.0 / (pixfrac * pixfrac)
    ok, y_first, y_last, left, right, state, min_y, max_y, poly, npoly = _init_image_scanner(
        pixmap, xmin, xmax, ymin, ymax, out_ny, out_nx
    )
    if not ok:
        return _OK, 0, 0
    if math.isnan(pscale_ratio):
        ok, pscale_ratio = _compute_pscale_ratio(pixmap, poly, npoly)
        if not ok:
            return _NO_PSCALE, 0, 0
    pfo = pixfrac / np.float64(pscale_ratio) / 2.0
    dover_scale = ac * np.float64(pscale_ratio) * np.float64(pscale_ratio)
    nskip = (ymax - ymin) - (y_last - y_first)
    nmiss = nskip * (xmax - xmin)
    d_extra = np.zeros(max(n_extra, 1), np.float32)
    dq_val = np.uint32(0)
    by0 = out_ny
    by1 = -1
    bx0 = out_nx
    bx1 = -1
    for j in range(y_first, y_last + 1):
        code, x_first, x_last = _scanline_limits(j, left, right, state, min_y, max_y, xmin, xmax, ymin, ymax)
        if code == 1:
            nskip += y_last + 1 - j
            nmiss += (y_last + 1 - j) * (xmax - xmin)
            break
        elif code == 2 or code == 3:
            nmiss += xmax - xmin
            nskip += 1
            continue
        nmiss += (xmax - xmin) - (x_last + 1 - x_first)
        for i in range(x_first, x_last + 1):
            nhit = 0
            ox = pixmap[j, i, 0]
            oy = pixmap[j, i, 1]
            if not (math.isnan(ox) or math.isnan(oy)):
                # geometry: the pixel's box, once
                xxi, xxa, yyi, yya = _turbo_box(ox, oy, pfo)
                ii0 = _imax(_nintd(xxi), 0)
                ii1 = _imin(_nintd(xxa), out_nx - 1)
                jj0 = _imax(_nintd(yyi), 0)
                jj1 = _imin(_nintd(yya), out_ny - 1)
                d = np.float32(data[j, i]) * iscale
                if extra_in is not None:
                    for k in range(n_extra):
                        v = extra_in[k][j, i]
                        if extra_sqrt[k]:
                            d_extra[k] = np.float32(np.sqrt(np.float64(v))) * iscale
                        else:
                            d_extra[k] = np.float32(v) * iscale
                if weights is None:
                    wpix = np.float32(1.0) * wscale
                else:
                    wpix = np.float32(weights[j, i]) * wscale
                w = np.float64(wpix)
                if dq is not None:
                    dq_val = np.uint32(dq[j, i])
                for jj in range(jj0, jj1 + 1):
                    for ii in range(ii0, ii1 + 1):
                        # geometry: its overlap with one output pixel, once for every plane
                        dover = _over(ii, jj, xxi, xxa, yyi, yya)
                        if dover > 0.0:
                            dover *= dover_scale
                            nhit += 1
                            dow = np.float32(dover * w)
                            # accumulation: every plane at (jj, ii), drizzle's set_bit then update_data
                            if ctx is not None:  # noqa: SIM102 (alone, numba prunes it at compile time)
                                if dow > 0.0:
                                    ctx[jj, ii] = ctx[jj, ii] | ctx_bit
                            if dow != 0.0:
                                by0 = min(by0, jj)
                                by1 = max(by1, jj)
                                bx0 = min(bx0, ii)
                                bx1 = max(bx1, ii)
                                vc = out_wht[jj, ii]
                                vcd = np.float64(vc + dow)  # the float32 sum, widened as the C keeps it
                                out_img[jj, ii] = _mean_update(out_img[jj, ii], vc, d, dow, vcd)
                                out_wht[jj, ii] = vcd
                                if out_dq is not None:
                                    if vc == 0.0:
                                        out_dq[jj, ii] = dq_val
                                    else:
                                        out_dq[jj, ii] = out_dq[jj, ii] | dq_val
                                if extra_out is not None:
                                    ve = vc
                                    ved = vcd
                                    if exp_wht is not None:
                                        ve = exp_wht[jj, ii]
                                        ved = np.float64(ve + dow)
                                        exp_wht[jj, ii] = ved
                                    for k in range(n_extra):
                                        if extra_own[k]:
                                            extra_out[k, jj, ii] = _mean_update(
                                                extra_out[k, jj, ii], ve, d_extra[k], dow, ved)
                                        else:
                                            extra_out[k, jj, ii] = _mean_update(
                                                extra_out[k, jj, ii], vc, d_extra[k], dow, vcd)
            if nhit == 0:
                nmiss += 1
    box[0] = by0
    box[1] = by1 + 1
    box[2] = bx0
    box[3] = bx1 + 1
    return _OK, nmiss, nskip


# --------------------------------------------------------------------------- after the pass


@_jit
def _put_fill(out_img: np.ndarray, out_wht: np.ndarray, fill: np.float32, box: np.ndarray) -> None:
    """Fill value where the weight is 0, inside ``box`` (``put_fill``; elsewhere nothing changed)."""
    for jj in range(box[0], box[1]):
        for ii in range(box[2], box[3]):
            if out_wht[jj, ii] == 0.0:
                out_img[jj, ii] = fill


@_jit
def _variances_stcal(
    box: np.ndarray, counts: np.ndarray, planes: np.ndarray, n_var: int, rn_index: int, tmeasure: float,
    wsum: np.ndarray, wt: np.ndarray, reset: bool,
) -> None:
    """Add one input's drizzled variances, as ``Resample.resample_variance_arrays``.

    ``planes[k]`` holds the input's drizzled ``sqrt(var_k)``, valid where
    ``counts != 0`` (elsewhere NaN, drizzle's ``fillval=NaN``). The weight is
    ``1 / var_rnoise`` (float32 reciprocal) for ``rn_index >= 0`` (ivm), else
    ``tmeasure``. With ``reset``, the per-input planes are cleared for the next
    input (NaN, and ``counts`` to 0).
    """
    for jj in range(box[0], box[1]):
        for ii in range(box[2], box[3]):
            covered = counts[jj, ii] != 0.0
            if rn_index >= 0:
                w = 0.0
                if covered:
                    m = planes[rn_index, jj, ii]
                    rn = m * m
                    if rn > 0.0 and math.isfinite(rn):
                        w = np.float64(np.float32(1.0) / rn)
            else:
                w = tmeasure
            for k in range(n_var):
                if covered:
                    m = planes[k, jj, ii]
                    v = m * m
                    if v >= 0.0 and math.isfinite(v) and w > 0.0:
                        s = wsum[k, jj, ii]
                        s64 = 0.0 if math.isnan(s) else np.float64(s)
                        wsum[k, jj, ii] = s64 + (np.float64(v) * w) * w
                        wt[k, jj, ii] = np.float64(wt[k, jj, ii]) + w
                if reset:
                    planes[k, jj, ii] = np.nan
            if reset:
                counts[jj, ii] = 0.0


# --------------------------------------------------------------------------- Python interface


def _fill_value(fillval: Any) -> tuple[bool, float]:
    """drizzle's reading of ``fillval`` for a new output: ``(do_fill, value)``.

    ``None`` and ``"INDEF"`` on a new output mean NaN (``_process_fillval``).
    """
    if fillval is None:
        return True, float("nan")
    if isinstance(fillval, str):
        s = fillval.strip()
        if s.upper() in ("", "INDEF", "NAN"):
            return True, float("nan")
        return True, float(np.float32(float(s)))
    return True, float(np.float32(fillval))


def _input_range(
    shape_yx: tuple[int, int], xmin: int | None, xmax: int | None, ymin: int | None, ymax: int | None
) -> tuple[int, int, int, int]:
    """The input box as ``Drizzle.add_image`` then ``tdriz`` read it (before shrinking)."""
    in_ny, in_nx = shape_yx
    xmin = 0 if xmin is None or xmin < 0 else int(xmin)
    ymin = 0 if ymin is None or ymin < 0 else int(ymin)
    xmax = in_nx - 1 if xmax is None or xmax > in_nx - 1 else int(xmax)
    ymax = in_ny - 1 if ymax is None or ymax > in_ny - 1 else int(ymax)
    if xmax == 0 or xmax >= in_nx:
        xmax = in_nx - 1
    if ymax == 0 or ymax >= in_ny:
        ymax = in_ny - 1
    return xmin, xmax, ymin, ymax


def _float_plane(a: np.ndarray) -> np.ndarray:
    """A C-contiguous float32/float64 2D view (a copy only for other types or layouts)."""
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float32)
    return np.ascontiguousarray(a)


#: Extra input planes are passed in tuples of a multiple of this length.
_EXTRA_BLOCK = 4


def drizzle_once(
    kernel: str,
    pixmap: np.ndarray,
    data: np.ndarray,
    out_img: np.ndarray,
    out_wht: np.ndarray,
    *,
    exptime: float = 1.0,
    weight_map: np.ndarray | None = None,
    wht_scale: float = 1.0,
    pixfrac: float = 1.0,
    in_units: str = "cps",
    iscale: float = 1.0,
    pixel_scale_ratio: float | None = 1.0,
    xmin: int | None = None,
    xmax: int | None = None,
    ymin: int | None = None,
    ymax: int | None = None,
    out_ctx: np.ndarray | None = None,
    ctx_id: int = 0,
    dq: np.ndarray | None = None,
    out_dq: np.ndarray | None = None,
    extra: Sequence[np.ndarray] = (),
    extra_sqrt: Sequence[bool] = (),
    extra_own_weight: Sequence[bool] = (),
    extra_out: np.ndarray | None = None,
    exp_wht: np.ndarray | None = None,
    fill_value: float | None = None,
) -> tuple[int, int, tuple[int, int, int, int]]:
    """Drizzle one input onto existing output arrays in one pass (the low-level call).

    Parameters
    ----------
    kernel : {"square", "turbo"}
        Drizzle kernel.
    pixmap : numpy.ndarray
        ``(ny, nx, 2)`` float64 map of input pixel centres onto the output frame
        (``[..., 0]`` x, ``[..., 1]`` y), as drizzle takes it.
    data : numpy.ndarray
        ``(ny, nx)`` input data (float32 or float64; read as float32).
    out_img, out_wht : numpy.ndarray
        ``(out_ny, out_nx)`` float32 outputs, updated in place.
    exptime, weight_map, wht_scale, pixfrac, in_units, iscale, pixel_scale_ratio, xmin, xmax, ymin, ymax
        As ``drizzle.resample.Drizzle.add_image``. ``pixel_scale_ratio=None``
        estimates it from the map (turbo).
    out_ctx : numpy.ndarray, optional
        ``(out_ny, out_nx)`` int32 context plane that receives bit ``ctx_id % 32``
        (the caller picks plane ``ctx_id // 32``).
    dq, out_dq : numpy.ndarray, optional
        Input DQ (unsigned, at most 32 bits) and the uint32 output DQ.
    extra : sequence of numpy.ndarray
        Extra ``(ny, nx)`` input planes drizzled with the data's weights.
    extra_sqrt : sequence of bool
        Per extra plane: drizzle its square root (a variance).
    extra_own_weight : sequence of bool
        Per extra plane: its running mean uses ``exp_wht`` (the weight of this
        input alone) instead of ``out_wht``.
    extra_out : numpy.ndarray, optional
        ``(n_extra, out_ny, out_nx)`` float32 outputs of the extra planes.
    exp_wht : numpy.ndarray, optional
        ``(out_ny, out_nx)`` float32 weight of this input alone (required when
        any ``extra_own_weight``), updated in place.
    fill_value : float, optional
        Written where ``out_wht == 0`` in the touched box after the pass.

    Returns
    -------
    nmiss, nskip : int
        drizzle's counts of input pixels and rows that contributed nothing.
    box_yx : tuple of int
        ``(y0, y1, x0, x1)``: the output box that received contributions
        (empty when ``y0 >= y1``).

    Raises
    ------
    ValueError
        As drizzle: no valid pixels in the map, a bad ``exptime`` or
        ``wht_scale``, or no pixel scale ratio could be estimated.
    NotImplementedError
        For kernels other than square and turbo, or ``pixfrac <= 0.001``.
    """
    if kernel not in _KERNEL_CODE:
        raise NotImplementedError(f"kernel {kernel!r} is not fused (only {', '.join(KERNELS)})")
    if pixfrac <= 0.001:
        raise NotImplementedError("pixfrac <= 0.001: drizzle uses the point kernel")
    if exptime <= 0.0:
        raise ValueError("'exptime' *must* be a strictly positive number.")
    if wht_scale <= 0.0:
        raise ValueError("weight scale must be > 0")
    data = _float_plane(data)
    pixmap = np.ascontiguousarray(pixmap, dtype=np.float64)
    if pixmap.shape[:2] != data.shape or pixmap.ndim != 3 or pixmap.shape[2] != 2:
        raise ValueError("'pixmap' shape is not consistent with 'data' shape.")
    for a in (out_img, out_wht):
        if a.dtype != np.float32 or not a.flags.c_contiguous or a.ndim != 2:
            raise ValueError("outputs must be C-contiguous 2D float32 arrays")
    x0, x1, y0, y1 = _input_range(data.shape, xmin, xmax, ymin, ymax)
    ok, x0, x1, y0, y1 = _shrink_image_section(pixmap, x0, x1, y0, y1)
    if not ok:
        raise ValueError("No or too few valid pixels in the pixel map.")
    iscale32 = np.float32(iscale)
    if not (iscale32 > 0 and np.isfinite(iscale32)):
        raise ValueError("Argument 'iscale' must be positive and finite.")
    psr = np.float32(np.nan if pixel_scale_ratio is None else pixel_scale_ratio)
    if not (np.isnan(psr) or (psr > 0 and np.isfinite(psr))):
        raise ValueError("Argument 'pscale_ratio' must be positive and finite.")
    if in_units != "cps":
        iscale32 = np.float32(iscale32 / np.float32(exptime))
    weights = _float_plane(weight_map) if weight_map is not None else None
    if weights is not None and weights.shape != data.shape:
        raise ValueError("'weight_map' shape is not consistent with 'data' shape.")
    bit = ctx_id % CTX_PLANE_BITS
    ctx_bit = np.int32(np.array(1 << bit, np.int64).astype(np.uint32).view(np.int32))
    dq_in = None
    if dq is not None:
        kind = np.min_scalar_type(dq)
        if kind.kind not in "iu" or kind.itemsize > 4:
            raise TypeError("'dq' must be of an unsigned integer type with itemsize of 4 bytes or less.")
        dq_in = np.ascontiguousarray(dq)
        if out_dq is None:
            raise ValueError("'out_dq' is needed with 'dq'")
    else:
        out_dq = None
    n_extra = len(extra)
    extra_in = None
    sqrt_flags = np.zeros(1, np.bool_)
    own_flags = np.zeros(1, np.bool_)
    if n_extra:
        planes = [_float_plane(e) for e in extra]
        if any(p.shape != data.shape for p in planes):
            raise ValueError("extra planes must have the data's shape")
        if len({p.dtype for p in planes}) > 1:
            planes = [p.astype(np.float64) for p in planes]  # exact: float32 -> float64
        # padded to a multiple of 4 planes: one compiled specialisation per 4, not per count
        extra_in = tuple(planes + planes[:1] * (-n_extra % _EXTRA_BLOCK))
        sqrt_flags = np.array(list(extra_sqrt) or [False] * n_extra, dtype=np.bool_)
        own_flags = np.array(list(extra_own_weight) or [False] * n_extra, dtype=np.bool_)
        if extra_out is None or extra_out.shape != (n_extra, *out_img.shape) or extra_out.dtype != np.float32:
            raise ValueError("'extra_out' must be a float32 array (n_extra, out_ny, out_nx)")
    else:
        extra_out = None
    exp_w = None
    if n_extra and own_flags.any():
        if exp_wht is None:
            raise ValueError("'exp_wht' is needed for planes with their own weight")
        exp_w = exp_wht
    box = np.zeros(4, np.int64)
    common = (out_img, out_wht, out_ctx, ctx_bit, dq_in, out_dq,
              extra_in, n_extra, sqrt_flags, own_flags, extra_out, exp_w, box)
    pix = float(pixfrac)
    if kernel == "square":
        status, nmiss, nskip = _square_pass(pixmap, data, weights, np.float32(wht_scale),
                                            iscale32, pix, x0, x1, y0, y1, *common)
    else:
        status, nmiss, nskip = _turbo_pass(pixmap, data, weights, np.float32(wht_scale),
                                           iscale32, pix, psr, x0, x1, y0, y1, *common)
    if status == _NO_PSCALE:
        raise ValueError("Unable to estimate pscale_ratio")
    if box[0] > box[1]:
        box[:] = 0
    if fill_value is not None and box[0] < box[1]:
        _put_fill(out_img, out_wht, np.float32(fill_value), box)
    return int(nmiss), int(nskip), (int(box[0]), int(box[1]), int(box[2]), int(box[3]))


class FusedDrizzle:
    """Drizzle inputs onto one output frame, each input in a single pass.

    The counterpart of ``drizzle.resample.Drizzle`` (``square`` and ``turbo``)
    together with stcal's variance handling: :meth:`add_image` accumulates the
    data, weight, context and DQ as ``Drizzle.add_image`` does, the extra
    ``planes`` as further ``Drizzle`` objects with the same arguments would (a
    drizzled error), and each variance as ``Resample.resample_variance_arrays``
    (see the module docstring for the exact math).

    Parameters
    ----------
    out_shape : tuple of int
        ``(ny, nx)`` of the output frame.
    kernel : {"square", "turbo"}
        Drizzle kernel.
    fillval : float, str or None
        Value of uncovered data pixels (``None``: NaN), as ``Drizzle``.
    begin_ctx_id, max_ctx_id, disable_ctx
        Context IDs as ``Drizzle`` (bit ``id % 32`` of int32 plane ``id // 32``).
    plane_names : sequence of str
        Extra planes drizzled like the data (their fill value is ``plane_fillval``).
    plane_fillval : float
        Fill value of the extra planes (stcal's drizzled error uses the data's).
    variance_names : sequence of str
        Variance planes, accumulated the stcal way.
    variance_weight : {"ivm", "exptime"}
        stcal's ``weight_type`` for the variance sums (``ivm`` needs
        ``rnoise_name`` among ``variance_names``).
    rnoise_name : str
        The read-noise variance (the ``ivm`` weight).
    accumulate_variances : bool
        False keeps only the last input's drizzled variances
        (:meth:`input_variance`), for callers that combine inputs themselves.
    """

    def __init__(
        self,
        out_shape: tuple[int, int],
        kernel: str = "square",
        fillval: float | str | None = None,
        begin_ctx_id: int = 0,
        max_ctx_id: int | None = None,
        disable_ctx: bool = False,
        plane_names: Sequence[str] = (),
        plane_fillval: float | str | None = None,
        variance_names: Sequence[str] = (),
        variance_weight: str = "ivm",
        rnoise_name: str = "var_rnoise",
        accumulate_variances: bool = True,
    ) -> None:
        if kernel not in _KERNEL_CODE:
            raise NotImplementedError(f"kernel {kernel!r} is not fused (only {', '.join(KERNELS)})")
        if variance_weight not in ("ivm", "exptime"):
            raise ValueError(f"unknown variance weight {variance_weight!r}")
        ny, nx = (int(s) for s in out_shape)
        self.kernel = kernel
        self.out_shape = (ny, nx)
        self._fill = _fill_value(fillval)[1]
        self._plane_fill = _fill_value(plane_fillval)[1]
        self.out_img = np.full((ny, nx), self._fill, np.float32)
        self.out_wht = np.zeros((ny, nx), np.float32)
        self.disable_ctx = disable_ctx
        if disable_ctx:
            self.out_ctx: np.ndarray | None = None
            self._ctx_id: int | None = None
        else:
            if begin_ctx_id < 0:
                raise ValueError("Invalid context image ID")
            max_id = begin_ctx_id if max_ctx_id is None else max_ctx_id
            if max_id < begin_ctx_id:
                raise ValueError("'max_ctx_id' cannot be smaller than 'begin_ctx_id'.")
            self.out_ctx = np.zeros((max_id // CTX_PLANE_BITS + 1, ny, nx), np.int32)
            self._ctx_id = begin_ctx_id
        self.out_dq: np.ndarray | None = None
        self.plane_names = tuple(plane_names)
        self.variance_names = tuple(variance_names)
        self.variance_weight = variance_weight
        self.rnoise_name = rnoise_name
        self.accumulate_variances = accumulate_variances
        n_p, n_v = len(self.plane_names), len(self.variance_names)
        # extra planes: the mean-like planes, then the per-input sqrt(variance) planes
        self._extra_out = np.empty((n_p + n_v, ny, nx), np.float32)
        self._extra_out[:n_p] = self._plane_fill
        self._extra_out[n_p:] = np.nan
        self._exp_wht: np.ndarray | None = None
        # stcal's running sums (only when accumulating)
        n_sum = n_v if accumulate_variances else 0
        self.var_wsum = np.full((n_sum, ny, nx), np.nan, np.float32)
        self.var_wt = np.zeros((n_sum, ny, nx), np.float32)
        self._last_box = (0, 0, 0, 0)
        self._last_counts: np.ndarray | None = None
        self._squared: set[int] = set()  # per-input planes squared by input_variance
        self.ncoadds = 0
        self.total_exptime = 0.0

    @property
    def out_planes(self) -> dict[str, np.ndarray]:
        """The extra planes accumulated like the data, by name."""
        return {n: self._extra_out[k] for k, n in enumerate(self.plane_names)}

    @property
    def ctx_id(self) -> int | None:
        """Context ID of the next input."""
        return self._ctx_id

    def input_variance(self, name: str) -> np.ndarray:
        """The last input's drizzled variance ``(drizzled sqrt(var))**2`` (NaN where it has no weight).

        Only with ``accumulate_variances=False`` (otherwise the per-input planes
        are cleared once added to the sums). The plane is squared in place, so
        no frame is allocated: the result is a view, valid until the next
        :meth:`add_image`.
        """
        if self.accumulate_variances:
            raise RuntimeError("per-input variances are cleared when accumulated")
        k = len(self.plane_names) + self.variance_names.index(name)
        m = self._extra_out[k]
        if k not in self._squared:
            counts = self._last_counts if self._last_counts is not None else self.out_wht
            np.multiply(m, m, out=m)
            m[counts == 0] = np.nan
            self._squared.add(k)
        return m

    def add_image(
        self,
        data: np.ndarray,
        exptime: float,
        pixmap: np.ndarray,
        *,
        planes: Mapping[str, np.ndarray] | None = None,
        variances: Mapping[str, np.ndarray] | None = None,
        dq: np.ndarray | None = None,
        iscale: float = 1.0,
        pixel_scale_ratio: float | None = 1.0,
        weight_map: np.ndarray | None = None,
        wht_scale: float = 1.0,
        pixfrac: float = 1.0,
        in_units: str = "cps",
        xmin: int | None = None,
        xmax: int | None = None,
        ymin: int | None = None,
        ymax: int | None = None,
        tmeasure: float | None = None,
    ) -> tuple[int, int]:
        """Drizzle one input (data, weight, context, DQ, planes and variances) in one pass.

        Parameters
        ----------
        data, exptime, pixmap, dq, iscale, pixel_scale_ratio, weight_map
            As ``drizzle.resample.Drizzle.add_image``.
        wht_scale, pixfrac, in_units, xmin, xmax, ymin, ymax
            As ``drizzle.resample.Drizzle.add_image``.
        planes : mapping, optional
            Input arrays of ``plane_names`` (all of them).
        variances : mapping, optional
            Input variance arrays of ``variance_names``; a missing or empty one is
            skipped for this input, as stcal does.
        tmeasure : float, optional
            The variance weight for ``variance_weight="exptime"`` (stcal's
            ``get_tmeasure``: measurement time, else exposure time).

        Returns
        -------
        nmiss, nskip : int
            As ``Drizzle.add_image``.
        """
        ny, nx = self.out_shape
        n_p = len(self.plane_names)
        if not self.accumulate_variances and self._last_box[0] < self._last_box[1]:
            # the previous input's variance planes and weight: cleared for this one
            y0, y1, x0, x1 = self._last_box
            self._extra_out[n_p:, y0:y1, x0:x1] = np.nan
            if self._exp_wht is not None:
                self._exp_wht[y0:y1, x0:x1] = 0.0
        self._squared.clear()
        if self.disable_ctx:
            ctx_plane = None
            ctx_id = 0
        else:
            assert self.out_ctx is not None and self._ctx_id is not None  # set when ctx is enabled
            ctx_id = self._ctx_id
            plane_no = ctx_id // CTX_PLANE_BITS
            if plane_no >= self.out_ctx.shape[0]:
                grow = np.zeros((plane_no + 1 - self.out_ctx.shape[0], ny, nx), np.int32)
                self.out_ctx = np.concatenate([self.out_ctx, grow])
            ctx_plane = self.out_ctx[plane_no]
            self._ctx_id += 1
        if exptime <= 0.0:
            raise ValueError("'exptime' *must* be a strictly positive number.")
        self.total_exptime += exptime
        if dq is not None and self.out_dq is None:
            self.out_dq = np.zeros((ny, nx), np.uint32)
        planes = dict(planes or {})
        missing = [n for n in self.plane_names if n not in planes]
        if missing:
            raise ValueError(f"planes missing: {missing}")
        var_in: dict[int, np.ndarray] = {}
        for k, name in enumerate(self.variance_names):
            v = (variances or {}).get(name)
            if v is None or np.size(v) == 0:
                continue
            if np.shape(v) != np.shape(data):
                continue  # stcal: "Data shape mismatch ... Skipping"
            var_in[k] = v
        fresh = self.ncoadds == 0  # out_wht is this input's weight alone
        extra = [planes[n] for n in self.plane_names]
        sqrt_flags = [False] * n_p
        own = [False] * n_p
        idx = list(range(n_p))
        for k, v in var_in.items():
            extra.append(v)
            sqrt_flags.append(True)
            own.append(not fresh)
            idx.append(n_p + k)
        # the kernel writes the planes it is given, in order: a view per used plane
        extra_out: np.ndarray | None
        if len(idx) == self._extra_out.shape[0]:
            extra_out = self._extra_out
        else:
            extra_out = np.ascontiguousarray(self._extra_out[idx]) if idx else None
        exp_wht = None
        if any(own):
            if self._exp_wht is None:
                self._exp_wht = np.zeros((ny, nx), np.float32)
            exp_wht = self._exp_wht
        nmiss, nskip, box = drizzle_once(
            self.kernel, pixmap, data, self.out_img, self.out_wht,
            exptime=exptime, weight_map=weight_map, wht_scale=wht_scale, pixfrac=pixfrac,
            in_units=in_units, iscale=iscale, pixel_scale_ratio=pixel_scale_ratio,
            xmin=xmin, xmax=xmax, ymin=ymin, ymax=ymax,
            out_ctx=ctx_plane, ctx_id=ctx_id, dq=dq, out_dq=self.out_dq,
            extra=extra, extra_sqrt=sqrt_flags, extra_own_weight=own, extra_out=extra_out,
            exp_wht=exp_wht, fill_value=self._fill,
        )
        if extra_out is not None and extra_out is not self._extra_out:
            self._extra_out[idx] = extra_out
        self.ncoadds += 1
        if box[0] < box[1] and n_p:
            fb = np.array(box, np.int64)
            for k in range(n_p):
                _put_fill(self._extra_out[k], self.out_wht, np.float32(self._plane_fill), fb)
        counts = exp_wht if exp_wht is not None else self.out_wht
        self._last_counts = counts if not self.accumulate_variances else None
        if var_in and self.accumulate_variances:
            self._add_variances(var_in, box, counts, tmeasure)
        self._last_box = box
        return nmiss, nskip

    def _add_variances(
        self, var_in: Mapping[int, np.ndarray], box: tuple[int, int, int, int],
        counts: np.ndarray, tmeasure: float | None,
    ) -> None:
        """stcal's per-input variance step over ``box``; clears the per-input planes."""
        n_p = len(self.plane_names)
        if box[0] >= box[1]:
            return
        if self.variance_weight == "ivm":
            k_rn = self.variance_names.index(self.rnoise_name) if self.rnoise_name in self.variance_names else -1
            if k_rn < 0 or k_rn not in var_in:
                raise ValueError("ivm variance weights need this input's read-noise variance")
            tm = 0.0
        else:
            k_rn = -1
            if tmeasure is None:
                raise ValueError("variance_weight='exptime' needs tmeasure")
            tm = float(tmeasure)
        used = sorted(var_in)
        planes = self._extra_out[n_p:]
        if len(used) != len(self.variance_names):
            # sums only for the variances this input has (stcal skips the others)
            sub = np.ascontiguousarray(planes[used])
            wsum = np.ascontiguousarray(self.var_wsum[used])
            wt = np.ascontiguousarray(self.var_wt[used])
            rn = used.index(k_rn) if k_rn >= 0 else -1
            _variances_stcal(np.array(box, np.int64), counts.copy(), sub, len(used), rn, tm, wsum, wt, False)
            self.var_wsum[used] = wsum
            self.var_wt[used] = wt
            y0, y1, x0, x1 = box
            planes[:, y0:y1, x0:x1] = np.nan
            if counts is not self.out_wht:
                counts[y0:y1, x0:x1] = 0
            return
        reset = counts is not self.out_wht
        _variances_stcal(np.array(box, np.int64), counts, planes, len(used), k_rn, tm,
                         self.var_wsum, self.var_wt, reset)
        if not reset:
            y0, y1, x0, x1 = box
            planes[:, y0:y1, x0:x1] = np.nan

    def variances(self, pixel_scale_ratio: float | None, imaging: bool = True) -> dict[str, np.ndarray]:
        """The final variances, as ``Resample.finalize_resample_variance``."""
        return finalize_variances(self.var_wsum, self.var_wt, self.variance_names, pixel_scale_ratio, imaging)


def finalize_variances(
    wsum: np.ndarray, wt: np.ndarray, names: Sequence[str], pixel_scale_ratio: float | None, imaging: bool = True
) -> dict[str, np.ndarray]:
    """``var = wsum * scaling / wt / wt`` in float32, as ``Resample.finalize_resample_variance``.

    Parameters
    ----------
    wsum, wt : numpy.ndarray
        ``(n, ny, nx)`` float32 sums of ``var * W**2`` and of ``W``.
    names : sequence of str
        Names of the ``n`` planes.
    pixel_scale_ratio : float or None
        ``scaling = 1 / pixel_scale_ratio**2`` for imaging, ``pixel_scale_ratio``
        otherwise, 1 for None.
    imaging : bool
        Whether the output WCS is an imaging one.

    Returns
    -------
    dict
        Name to float32 variance (NaN where ``wt == 0``).
    """
    if pixel_scale_ratio is None:
        scaling = 1.0
    elif imaging:
        scaling = 1.0 / pixel_scale_ratio**2
    else:
        scaling = pixel_scale_ratio
    out = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "invalid value*", RuntimeWarning)
        warnings.filterwarnings("ignore", "divide by zero*", RuntimeWarning)
        for k, name in enumerate(names):
            out[name] = (wsum[k] * scaling / wt[k] / wt[k]).astype(np.float32)
    return out


def warm_up() -> None:
    """Compile (or load from the cache) both kernels for float32 inputs, variances included."""
    ny, nx = 8, 8
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    pixmap = np.dstack([x + 0.25, y + 0.25])
    data = np.ones((ny, nx), np.float32)
    for kernel in KERNELS:
        for fresh in (True, False):
            d = FusedDrizzle((ny, nx), kernel=kernel, fillval=0.0, variance_names=("var_rnoise", "var_flat"))
            if not fresh:
                d.add_image(data, 1.0, pixmap, weight_map=data,
                            variances={"var_rnoise": data, "var_flat": data})
            d.add_image(data, 1.0, pixmap, weight_map=data, dq=np.zeros((ny, nx), np.uint32),
                        variances={"var_rnoise": data, "var_flat": data})
