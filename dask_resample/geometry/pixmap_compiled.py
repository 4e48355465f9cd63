"""The fast pixel map compiled (numba): the head program and the sky part in one pass.

:mod:`dask_resample.geometry.pixmap` evaluates a recognised input's head with astropy (in
blocks of 256 rows, each operation a full-block temporary) and then its sky part
with numpy. Here the same map is one compiled pass over the input rows:

1. the head, as a :class:`~dask_resample.geometry.pixmap_program.HeadProgram`, is run on a
   chunk of :data:`CHUNK` pixels of one row at a time. Its registers are rows of
   a small scratch array (a few tens of KiB, in cache), and each operation is an
   element-wise loop over the chunk with the arithmetic of astropy's
   ``evaluate``: the same operations in the same order, so the head's values are
   astropy's to the last bit (``AffineTransformation2D`` and ``Rotation2D`` to a
   unit or so in the last place: astropy forms them with ``numpy.dot``). A 2-D
   polynomial of degree 1 to 6 is one loop over the chunk of a per-pixel Horner
   evaluation unrolled for its degree (:func:`_horner2d`, ``r0, r1, r2`` in
   registers); other degrees take the Horner steps as the outer loop and the
   chunk as the inner one. Either way the loops over the chunk have no
   dependency chain and compile to SIMD instructions;
2. the sky part of :func:`dask_resample.geometry.pixmap._evaluate` (the input's native
   vector for ``tan``, ``sin`` or ``lonlat``, the 3x3 homography, the division)
   follows per pixel, written straight into the ``(ny, nx, 2)`` pixel map. For
   ``lonlat`` heads (jwst's V2/V3, within a few tenths of a degree of the
   telescope axis) the sines and cosines of angles up to :data:`SMALL_ANGLE`
   (5.7 degrees) are a short Taylor polynomial, within a unit in the last place
   of libm's (``tests/test_pixmap_compiled.py``); a chunk with a larger angle
   calls libm. Four libm calls per pixel cost more than the whole head
   (0.28-0.33 s against 0.09 s for a 2048x2048 NIRCam frame, measured here).

Pixels outside the input's bounding box are NaN without being evaluated (a
third of a MIRI imager frame). No full-frame temporary is made: the only
full-frame array is the pixel map itself.

Precision: no fast-math, no FMA contraction (numba's defaults) and
``error_model="numpy"``, as in :mod:`dask_resample.drizzle.fused_kernel`. The sky part
uses the small-angle polynomial, or libm's ``sin``/``cos``/``sqrt`` where numpy
uses its own loops, so the map can differ from the numpy evaluation by a unit
or two in the last place of the native vector (below 1e-11 output pixel).

GPU
---
The per-pixel work is made of pure scalar functions (:func:`_horner2d`,
:func:`_sincos_small`, :func:`_native_vector`, :func:`_project`, and the
per-element arithmetic of each operation): a ``numba.cuda`` driver would run the
program per thread on a ``cuda.local.array`` of registers (one pixel per thread
instead of one chunk per loop) with the same functions; only this module's CPU
drivers (``pixmap_compiled_head._run_program``, :func:`_fast_map`), which loop over chunks for
SIMD, would be replaced.

Compilation: ``cache=True`` writes the machine code beside this file (or to
``NUMBA_CACHE_DIR``); one specialisation serves every program (the program is
data), so a process compiles or loads it once. :func:`warm_up` does so ahead of
the first map.
"""

from __future__ import annotations

import math

import numpy as np

from .pixmap_compiled_head import _DEG2RAD, _R0, CHUNK, _jit, _jit_inline, _run_program, evaluate_head
from .pixmap_program import (
    OP_SHIFT,
    HeadProgram,
)

__all__ = ["CHUNK", "KIND_CODES", "evaluate_head", "fast_map", "warm_up"]

#: Codes of the kinds of :class:`dask_resample.geometry.pixmap.InputSky`.
KIND_CODES = {"tan": 0, "sin": 1, "lonlat": 2}

# status of a map
_OK = 0
_FAR_HEMISPHERE = 1


# --------------------------------------------------------------------------- sky part
#: Largest angle (rad) for which :func:`_sincos_small` is used (its series then is
#: within a unit in the last place of libm's sin and cos).
SMALL_ANGLE = 0.1

# Taylor coefficients of sin(x)/x - 1 and cos(x) - 1 in powers of x**2 (terms to x**9, x**10;
# at |x| <= 0.1 the next terms are below 3e-18 of the result).
_S1, _S2, _S3, _S4 = -1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0, 1.0 / 362880.0
_C1, _C2, _C3, _C4, _C5 = -0.5, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40320.0, -1.0 / 3628800.0


@_jit_inline
def _sincos_small(x: float) -> tuple[float, float]:
    """``(sin(x), cos(x))`` for ``|x| <= SMALL_ANGLE``: a polynomial (SIMD-friendly, no libm call)."""
    x2 = x * x
    s = x + x * (x2 * (_S1 + x2 * (_S2 + x2 * (_S3 + x2 * _S4))))
    c = 1.0 + x2 * (_C1 + x2 * (_C2 + x2 * (_C3 + x2 * (_C4 + x2 * _C5))))
    return s, c


@_jit_inline
def _native_vector(kind: int, a: float, b: float, small: bool) -> tuple[float, float, float]:
    """The input's native vector, as :func:`dask_resample.geometry.pixmap._native_vector` (one pixel).

    ``small``: both angles of a ``lonlat`` pixel are within :data:`SMALL_ANGLE`
    (sine and cosine by :func:`_sincos_small`, else by libm).
    """
    if kind == 0:  # tan: homogeneous plane coordinates
        return a, b, 1.0
    if kind == 1:  # sin: orthographic
        ux = -b / _R0
        uy = a / _R0
        return ux, uy, np.sqrt(1.0 - (ux * ux + uy * uy))
    lon = a * _DEG2RAD
    lat = b * _DEG2RAD
    if small:
        sin_lon, cos_lon = _sincos_small(lon)
        sin_lat, cos_lat = _sincos_small(lat)
    else:
        sin_lon, cos_lon = math.sin(lon), math.cos(lon)
        sin_lat, cos_lat = math.sin(lat), math.cos(lat)
    return cos_lat * cos_lon, cos_lat * sin_lon, sin_lat


@_jit_inline
def _project(h: np.ndarray, n0: float, n1: float, n2: float) -> tuple[float, float, float]:
    """Output ``(x, y)`` and ``w`` of a native vector through the 3x3 homography ``h``."""
    w = h[2, 0] * n0 + h[2, 1] * n1 + h[2, 2] * n2
    ox = (h[0, 0] * n0 + h[0, 1] * n1 + h[0, 2] * n2) / w
    oy = (h[1, 0] * n0 + h[1, 1] * n1 + h[1, 2] * n2) / w
    return ox, oy, w


@_jit_inline
def _sky_chunk(kind: int, small: bool, h: np.ndarray, a: np.ndarray, b: np.ndarray, n: int, out: np.ndarray) -> int:
    """Sky part of ``n`` pixels: ``out[i] = (x, y)``; the number of pixels with ``w <= 0``.

    One loop per case, without branches or early exits inside, so that each
    compiles to SIMD instructions.
    """
    bad = 0
    if kind == 0:
        for i in range(n):
            n0, n1, n2 = _native_vector(0, a[i], b[i], False)
            ox, oy, w = _project(h, n0, n1, n2)
            out[i, 0] = ox
            out[i, 1] = oy
            bad += w <= 0.0
    elif kind == 1:
        for i in range(n):
            n0, n1, n2 = _native_vector(1, a[i], b[i], False)
            ox, oy, w = _project(h, n0, n1, n2)
            out[i, 0] = ox
            out[i, 1] = oy
            bad += w <= 0.0
    elif small:
        for i in range(n):
            n0, n1, n2 = _native_vector(2, a[i], b[i], True)
            ox, oy, w = _project(h, n0, n1, n2)
            out[i, 0] = ox
            out[i, 1] = oy
            bad += w <= 0.0
    else:
        for i in range(n):
            n0, n1, n2 = _native_vector(2, a[i], b[i], False)
            ox, oy, w = _project(h, n0, n1, n2)
            out[i, 0] = ox
            out[i, 1] = oy
            bad += w <= 0.0
    return bad


@_jit_inline
def _all_small(a: np.ndarray, b: np.ndarray, n: int) -> bool:
    """Whether the first ``n`` angles (deg) of ``a`` and ``b`` are all within :data:`SMALL_ANGLE`
    (False if any is NaN)."""
    limit = SMALL_ANGLE / _DEG2RAD
    inside = 0
    for i in range(n):
        inside += (abs(a[i]) <= limit) & (abs(b[i]) <= limit)
    return inside == n


@_jit
def _fast_map(
    ops: np.ndarray,
    coeffs: np.ndarray,
    flags: np.ndarray,
    n_registers: int,
    out_a: int,
    out_b: int,
    kind: int,
    h: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    pixmap: np.ndarray,
) -> int:
    """Fill ``pixmap`` (``(ny, nx, 2)``); rows ``rows[0]..rows[1]`` and columns
    ``cols[0]..cols[1]`` (inclusive) are evaluated, the rest is NaN.

    Returns ``_FAR_HEMISPHERE`` as soon as a chunk has a pixel with ``w <= 0``, else ``_OK``.
    """
    ny, nx = pixmap.shape[0], pixmap.shape[1]
    regs = np.empty((n_registers + 2, CHUNK))
    nan = np.nan
    for row in range(ny):
        if row < rows[0] or row > rows[1]:
            for col in range(nx):
                pixmap[row, col, 0] = nan
                pixmap[row, col, 1] = nan
            continue
        for col in range(cols[0]):
            pixmap[row, col, 0] = nan
            pixmap[row, col, 1] = nan
        for col in range(cols[1] + 1, nx):
            pixmap[row, col, 0] = nan
            pixmap[row, col, 1] = nan
        y = float(row)
        for c0 in range(cols[0], cols[1] + 1, CHUNK):
            n = min(CHUNK, cols[1] + 1 - c0)
            for i in range(n):
                regs[0, i] = float(c0 + i)
                regs[1, i] = y
            _run_program(ops, coeffs, flags, regs, n)
            a = regs[out_a]
            b = regs[out_b]
            small = kind == 2 and _all_small(a, b, n)
            if _sky_chunk(kind, small, h, a, b, n, pixmap[row, c0 : c0 + n]) > 0:
                return _FAR_HEMISPHERE
    return _OK


def fast_map(
    program: HeadProgram,
    kind: str,
    homography: np.ndarray,
    bbox_xy: tuple[tuple[float, float], tuple[float, float]] | None,
    shape_yx: tuple[int, int],
) -> np.ndarray | None:
    """The fast pixel map of :func:`dask_resample.geometry.pixmap.fast_pixmap`, compiled.

    Parameters
    ----------
    program : HeadProgram
        The input's head.
    kind : {"tan", "sin", "lonlat"}
        What the head's outputs are (:class:`dask_resample.geometry.pixmap.InputSky`).
    homography : numpy.ndarray
        3x3 map from the native vector to homogeneous output pixels.
    bbox_xy : tuple or None
        Input bounding box ``((xlo, xhi), (ylo, yhi))``; pixels outside are NaN.
    shape_yx : tuple of int
        Input shape ``(ny, nx)``.

    Returns
    -------
    numpy.ndarray or None
        ``(ny, nx, 2)`` float64, ``[..., 0]`` is x; ``None`` if some pixel maps
        to the output's far hemisphere.
    """
    ny, nx = (int(s) for s in shape_yx)
    pixmap = np.empty((ny, nx, 2), np.float64)
    rows, cols = np.array([0, ny - 1], np.int64), np.array([0, nx - 1], np.int64)
    if bbox_xy is not None:
        (x0, x1), (y0, y1) = bbox_xy
        cols = _inside(x0, x1, nx)
        rows = _inside(y0, y1, ny)
    status = _fast_map(
        program.ops,
        program.coeffs,
        program.flags,
        program.n_registers,
        program.outputs[0],
        program.outputs[1],
        KIND_CODES[kind],
        np.ascontiguousarray(homography, np.float64),
        rows,
        cols,
        pixmap,
    )
    return None if status == _FAR_HEMISPHERE else pixmap


def _inside(lo: float, hi: float, n: int) -> np.ndarray:
    """First and last integer ``v`` of ``[0, n - 1]`` inside ``[lo, hi]``; ``(0, -1)`` if none.

    astropy's bounding-box rule: ``v`` is outside if ``v < lo`` or ``v > hi``
    (so a NaN bound excludes nothing).
    """
    if math.isnan(lo) or lo <= 0:
        first = 0
    else:
        first = n if math.isinf(lo) else min(n, math.ceil(lo))
    if math.isnan(hi) or hi >= n - 1:
        last = n - 1
    else:
        last = -1 if math.isinf(hi) else max(-1, math.floor(hi))
    return np.array([first, last] if first <= last else [0, -1], np.int64)


def warm_up() -> None:
    """Compile (or load from numba's cache) the drivers, on a one-operation program."""
    program = HeadProgram(
        ops=np.array([[OP_SHIFT, 2, -1, 0, -1, 0, 1, 0, 0]], np.int64),
        coeffs=np.zeros(1),
        flags=np.zeros(0, np.int64),
        n_registers=3,
        outputs=(2, 1),
    )
    fast_map(program, "tan", np.eye(3), None, (2, 2))
    evaluate_head(program, np.zeros(1), np.zeros(1))
