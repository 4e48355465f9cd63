"""Each fused kernel's footprint of an input pixel, chosen when the pass is compiled.

The one-pass driver (:func:`~.passes._kernel_pass`) asks five questions of its kernel: its
constants for the call (:func:`setup`), an input pixel's footprint on the output
(:func:`footprint`), the pixel's weight over it (:func:`weight`), the footprint's
bounds (:func:`bounds`) and its overlap with one output pixel (:func:`overlap`).
Each takes a *tag* first, an instance of :class:`SquareKernel` or
:class:`TurboKernel`; numba picks the kernel's implementation from the tag's type
when it compiles the driver (``numba.extending.overload``), so the compiled pass
holds its kernel's geometry only and no branch per pixel. All take and return
scalars and tuples of scalars (the pixel map is read by :func:`footprint` only).

``square`` is drizzle's ``do_kernel_square`` (the shrunk pixel's quadrilateral,
``boxer``), ``turbo`` its ``do_kernel_turbo`` (an axis-aligned box around the
mapped centre, ``over``).
"""

# The C's ternaries (MAX, MIN) stay ternaries: min/max differ from them for NaN and signed zeros.
# ruff: noqa: FURB136, PLR1730

from __future__ import annotations

import inspect
import math
from collections import namedtuple
from typing import Any

import numpy as np
from numba.extending import overload

from .common import _NO_PSCALE, _OK
from .geometry import _boxer, _over, _square_corners, _turbo_box
from .scanner import _compute_pscale_ratio

__all__ = ["SquareKernel", "TurboKernel", "bounds", "footprint", "overlap", "setup", "weight"]

#: The tag of the ``square`` kernel (an empty named tuple: its type is what matters).
SquareKernel = namedtuple("SquareKernel", [])
#: The tag of the ``turbo`` kernel.
TurboKernel = namedtuple("TurboKernel", [])

#: Options of the kernels' compiled implementations (inlined into the driver).
_OPTIONS: dict[str, Any] = {"inline": "always", "jit_options": {"nogil": True, "error_model": "numpy"}}


def _is_square(tag: Any) -> bool:
    """Whether a tag's numba type is :class:`SquareKernel`'s (else it is :class:`TurboKernel`'s)."""
    if getattr(tag, "instance_class", None) not in (SquareKernel, TurboKernel):
        raise TypeError(f"not a fused kernel's tag: {tag}")
    return tag.instance_class is SquareKernel


# --------------------------------------------------------------------------- square


def _square_setup(tag: Any, pixmap: np.ndarray, poly: np.ndarray, npoly: int, pixfrac: float, psr: Any) -> Any:
    return _OK, 0.5 * pixfrac, 1.0


def _square_footprint(tag: Any, pixmap: np.ndarray, i: int, j: int, p0: float) -> Any:
    ok, x0, x1, x2, x3, y0, y1, y2, y3 = _square_corners(pixmap, i, j, p0)  # p0: the half side
    return ok, (x0, x1, x2, x3, y0, y1, y2, y3)


def _square_weight(tag: Any, wpix: Any, g: tuple) -> Any:
    x0, x1, x2, x3, y0, y1, y2, y3 = g
    jaco = 0.5 * ((x1 - x3) * (y0 - y2) - (x0 - x2) * (y1 - y3))
    return wpix / jaco


def _square_bounds(tag: Any, g: tuple) -> Any:
    x0, x1, x2, x3, y0, y1, y2, y3 = g
    return (
        min(min(y0, y1), min(y2, y3)),
        max(max(y0, y1), max(y2, y3)),
        min(min(x0, x1), min(x2, x3)),
        max(max(x0, x1), max(x2, x3)),
    )


def _square_overlap(tag: Any, ii: int, jj: int, g: tuple, p1: float) -> Any:
    x0, x1, x2, x3, y0, y1, y2, y3 = g
    dover = _boxer(float(ii), float(jj), x0, x1, x2, x3, y0, y1, y2, y3)
    return dover != 0.0, dover


# --------------------------------------------------------------------------- turbo


def _turbo_setup(tag: Any, pixmap: np.ndarray, poly: np.ndarray, npoly: int, pixfrac: float, psr: Any) -> Any:
    if math.isnan(psr):
        ok, psr = _compute_pscale_ratio(pixmap, poly, npoly)
        if not ok:
            return _NO_PSCALE, 0.0, 0.0
    ac = 1.0 / (pixfrac * pixfrac)
    return _OK, pixfrac / np.float64(psr) / 2.0, ac * np.float64(psr) * np.float64(psr)


def _turbo_footprint(tag: Any, pixmap: np.ndarray, i: int, j: int, p0: float) -> Any:
    ox = pixmap[j, i, 0]
    oy = pixmap[j, i, 1]
    return not (math.isnan(ox) or math.isnan(oy)), _turbo_box(ox, oy, p0)  # p0: the half side


def _turbo_weight(tag: Any, wpix: Any, g: tuple) -> Any:
    return np.float64(wpix)


def _turbo_bounds(tag: Any, g: tuple) -> Any:
    xxi, xxa, yyi, yya = g
    return yyi, yya, xxi, xxa


def _turbo_overlap(tag: Any, ii: int, jj: int, g: tuple, p1: float) -> Any:
    xxi, xxa, yyi, yya = g
    dover = _over(ii, jj, xxi, xxa, yyi, yya)
    return dover > 0.0, dover * p1  # p1: the overlap's scale


# --------------------------------------------------------------------------- the questions (compiled only)


def setup(tag: Any, pixmap: np.ndarray, poly: np.ndarray, npoly: int, pixfrac: float, psr: Any) -> Any:
    """``(status, p0, p1)``: ``square`` the shrunk pixel's half side (and 1); ``turbo`` the box's
    half side and the overlap's scale, a NaN ``psr`` estimated from the map at the centroid of the
    scanner's polygon ``poly`` as drizzle does for ``pixel_scale_ratio=None``."""
    raise NotImplementedError("compiled into the fused passes only")


def footprint(tag: Any, pixmap: np.ndarray, i: int, j: int, p0: float) -> Any:
    """``(maps, g)``: whether input pixel ``(j, i)`` maps, and its footprint ``g``
    (``square``: the corners ``(x0, x1, x2, x3, y0, y1, y2, y3)``; ``turbo``: the box
    ``(x_lo, x_hi, y_lo, y_hi)``)."""
    raise NotImplementedError("compiled into the fused passes only")


def weight(tag: Any, wpix: Any, g: tuple) -> Any:
    """The pixel's weight ``wpix`` over its area on the output (``square``), as given (``turbo``)."""
    raise NotImplementedError("compiled into the fused passes only")


def bounds(tag: Any, g: tuple) -> Any:
    """``(y_lo, y_hi, x_lo, x_hi)`` of the footprint."""
    raise NotImplementedError("compiled into the fused passes only")


def overlap(tag: Any, ii: int, jj: int, g: tuple, p1: float) -> Any:
    """``(touches, dover)``: whether the footprint touches output pixel ``(jj, ii)``, and by how
    much (``square``: signed, ``boxer``; ``turbo``: ``over`` times the scale ``p1``)."""
    raise NotImplementedError("compiled into the fused passes only")


for _question, _square, _turbo in (
    (setup, _square_setup, _turbo_setup),
    (footprint, _square_footprint, _turbo_footprint),
    (weight, _square_weight, _turbo_weight),
    (bounds, _square_bounds, _turbo_bounds),
    (overlap, _square_overlap, _turbo_overlap),
):

    def _choose(*types: Any, square: Any = _square, turbo: Any = _turbo) -> Any:
        return square if _is_square(types[0]) else turbo

    _choose.__signature__ = inspect.signature(_question)  # type: ignore[attr-defined]  # numba checks it
    overload(_question, **_OPTIONS)(_choose)
