"""Constants of drizzle's C, the numba decorators and the scalar helpers of the fused kernels."""

# The C's ternaries (MAX, MIN, clamps) stay ternaries: min/max differ from them for NaN and signed zeros.
# ruff: noqa: FURB136, PLR1730

from __future__ import annotations

import math

import numba

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
