"""Constants of drizzle's C, the numba decorators and the scalar helpers of the fused kernels."""

# The C's ternaries (MAX, MIN, clamps) stay ternaries: min/max differ from them for NaN and signed zeros.
# ruff: noqa: FURB136, PLR1730

from __future__ import annotations

import math

import numba
import numpy as np

#: Kernels implemented here (others keep drizzle's C).
KERNELS: tuple[str, ...] = ("square", "turbo", "lanczos2", "lanczos3")

#: Context bits per int32 plane, as drizzle's ``CTX_PLANE_BITS``.
CTX_PLANE_BITS = 32

# constants of cdrizzlemap.c
_VERTEX_ATOL = 1.0e-12
_APPROX_ZERO = 1.0e3 * 2.2250738585072014e-308  # 1e3 * DBL_MIN
_MAX_INV_ERR = 0.03
_GOLDEN = 0.6180339887498948482  # (sqrt(5) - 1) / 2
_MAX_INV_ITER = 50

_KERNEL_CODE = {"square": 0, "turbo": 1, "lanczos2": 2, "lanczos3": 3}

# constants of cdrizzlebox.c
_LANCZOS_LUT_DELTA = 0.003  # lut_delta: spacing of the Lanczos look-up table

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
    f = math.floor(a)
    r = f + 1.0 if a - f >= 0.5 else f  # a - floor(a) is exact for doubles; one assignment (numba's SSA)
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


def lanczos_lut(order: int) -> np.ndarray:
    """drizzle's Lanczos look-up table of ``order`` (``create_lanczos_lut``, as ``do_kernel_lanczos`` sizes it).

    ``nlut = ceil(order / lut_delta) + 1`` values; ``lut[0] = 1`` and ``lut[i] =
    sin(pi x) sin(pi x / order) / (pi x * pi x / order)`` at ``x = i * lut_delta``
    (0 beyond ``order``). Evaluated with the C library's ``sin`` (:func:`math.sin`),
    as the C evaluates it: the table is bit-identical to drizzle's.
    """
    nlut = math.ceil(order / _LANCZOS_LUT_DELTA) + 1
    lut = np.empty(nlut, np.float64)
    lut[0] = 1.0
    fo = float(order)
    for i in range(1, nlut):
        x = float(i) * _LANCZOS_LUT_DELTA
        if x <= fo:
            poff = math.pi * x
            r = poff / fo
            lut[i] = math.sin(poff) * math.sin(r) / (poff * r)
        else:
            lut[i] = 0.0
    return lut
