"""Each fused kernel's footprint of an input pixel, chosen when the pass is compiled.

The one-pass driver (:func:`~.passes._kernel_pass`) asks its kernel: its constants for the
call (:func:`setup`), an input pixel's footprint on the output (:func:`footprint`), the
pixel's weight over it (:func:`weight`), the output pixels the footprint can reach
(:func:`bounds`), its overlap with one output pixel (:func:`overlap`), and whether that
overlap is a product of per-column and per-row factors (:func:`separable`,
:func:`axis_factor`: each factor is then computed once per input pixel, not once per
output pixel it reaches).
Each takes a *tag* first, an instance of :class:`SquareKernel`, :class:`TurboKernel`,
:class:`Lanczos2Kernel` or :class:`Lanczos3Kernel`; numba picks the kernel's
implementation from the tag's type when it compiles the driver
(``numba.extending.overload``), so the compiled pass holds its kernel's geometry only and
no branch per pixel. All take and return scalars and tuples of scalars (the pixel map is
read by :func:`footprint` only).

``square`` is drizzle's ``do_kernel_square`` (the shrunk pixel's quadrilateral,
``boxer``), ``turbo`` its ``do_kernel_turbo`` (an axis-aligned box around the
mapped centre, ``over``), ``lanczos2`` and ``lanczos3`` its ``do_kernel_lanczos``
(the separable Lanczos function of the offsets from the mapped centre, read from
drizzle's look-up table; ``pixfrac`` is ignored, as drizzle ignores it).
"""

# The C's ternaries (MAX, MIN) stay ternaries: min/max differ from them for NaN and signed zeros.
# ruff: noqa: FURB136, PLR1730

from __future__ import annotations

import inspect
import math
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import numpy as np
from numba.extending import overload

from .common import _LANCZOS_LUT_DELTA, _NO_PSCALE, _OK, _nintd, lanczos_lut
from .geometry import _boxer, _over, _square_corners, _turbo_box
from .scanner import _compute_pscale_ratio

__all__ = [
    "Lanczos2Kernel",
    "Lanczos3Kernel",
    "SquareKernel",
    "TurboKernel",
    "axis_factor",
    "bounds",
    "footprint",
    "overlap",
    "separable",
    "setup",
    "weight",
]

#: The tag of the ``square`` kernel (an empty named tuple: its type is what matters).
SquareKernel = namedtuple("SquareKernel", [])
#: The tag of the ``turbo`` kernel.
TurboKernel = namedtuple("TurboKernel", [])
#: The tag of the ``lanczos2`` kernel.
Lanczos2Kernel = namedtuple("Lanczos2Kernel", [])
#: The tag of the ``lanczos3`` kernel.
Lanczos3Kernel = namedtuple("Lanczos3Kernel", [])

#: Options of the kernels' compiled implementations (inlined into the driver).
_OPTIONS: dict[str, Any] = {"inline": "always", "jit_options": {"nogil": True, "error_model": "numpy"}}


def _tag_class(tag: Any) -> Any:
    """The kernel tag class of a tag's numba type."""
    cls = getattr(tag, "instance_class", None)
    if cls not in (SquareKernel, TurboKernel, Lanczos2Kernel, Lanczos3Kernel):
        raise TypeError(f"not a fused kernel's tag: {tag}")
    return cls


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
        _nintd(min(min(y0, y1), min(y2, y3))),
        _nintd(max(max(y0, y1), max(y2, y3))),
        _nintd(min(min(x0, x1), min(x2, x3))),
        _nintd(max(max(x0, x1), max(x2, x3))),
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
    return _nintd(yyi), _nintd(yya), _nintd(xxi), _nintd(xxa)


def _turbo_overlap(tag: Any, ii: int, jj: int, g: tuple, p1: float) -> Any:
    xxi, xxa, yyi, yya = g
    dover = _over(ii, jj, xxi, xxa, yyi, yya)
    return dover > 0.0, dover * p1  # p1: the overlap's scale


# --------------------------------------------------------------------------- lanczos2, lanczos3
#
# ``do_kernel_lanczos``: the footprint is the mapped centre (xx, yy) and the kernel's reach
# ``pfo = order / pscale_ratio``; output pixel (jj, ii) of ``floor(c - pfo) + 1 .. floor(c + pfo)``
# on each axis takes ``lut[ix] * lut[iy]``, ``ix = nintd(|(xx - ii) * sdp|)`` with
# ``sdp = pscale_ratio / lut_delta``, and is no hit where an index leaves the table.


def _lanczos_impls(order: int) -> tuple[Any, ...]:
    """The set-up, footprint, weight, bounds and overlap of the Lanczos kernel of ``order``."""
    lut = lanczos_lut(order)  # a constant of the compiled pass
    nlut = len(lut)
    fo = float(order)

    def _setup(tag: Any, pixmap: np.ndarray, poly: np.ndarray, npoly: int, pixfrac: float, psr: Any) -> Any:
        if math.isnan(psr):
            ok, psr = _compute_pscale_ratio(pixmap, poly, npoly)
            if not ok:
                return _NO_PSCALE, 0.0, 0.0
        return _OK, fo / np.float64(psr), np.float64(psr) / _LANCZOS_LUT_DELTA

    def _footprint(tag: Any, pixmap: np.ndarray, i: int, j: int, p0: float) -> Any:
        xx = pixmap[j, i, 0]
        yy = pixmap[j, i, 1]
        return not (math.isnan(xx) or math.isnan(yy)), (xx, yy, p0)  # p0: the reach pfo

    def _weight(tag: Any, wpix: Any, g: tuple) -> Any:
        return np.float64(wpix)

    def _bounds(tag: Any, g: tuple) -> Any:
        xx, yy, pfo = g
        return (
            int(math.floor(yy - pfo)) + 1,
            int(math.floor(yy + pfo)),
            int(math.floor(xx - pfo)) + 1,
            int(math.floor(xx + pfo)),
        )

    def _overlap(tag: Any, ii: int, jj: int, g: tuple, p1: float) -> Any:
        xx, yy, pfo = g
        ix = _nintd(abs((xx - float(ii)) * p1))  # p1: sdp
        iy = _nintd(abs((yy - float(jj)) * p1))
        if ix >= nlut or iy >= nlut:
            return False, 0.0
        return True, lut[ix] * lut[iy]

    def _separable(tag: Any) -> Any:
        return True

    def _axis_factor(tag: Any, g: tuple, axis: int, k: int, p1: float) -> Any:
        c = g[axis]
        ix = _nintd(abs((c - float(k)) * p1))  # p1: sdp
        return lut[ix] if ix < nlut else math.nan

    return _setup, _footprint, _weight, _bounds, _overlap, _separable, _axis_factor


_LANCZOS2 = _lanczos_impls(2)
_LANCZOS3 = _lanczos_impls(3)


# --------------------------------------------------------------------------- not separable: square, turbo


def _not_separable(tag: Any) -> Any:
    return False


def _no_axis_factor(tag: Any, g: tuple, axis: int, k: int, p1: float) -> Any:
    return math.nan


# --------------------------------------------------------------------------- the questions (compiled only)


def setup(tag: Any, pixmap: np.ndarray, poly: np.ndarray, npoly: int, pixfrac: float, psr: Any) -> Any:
    """``(status, p0, p1)``: ``square`` the shrunk pixel's half side (and 1); ``turbo`` the box's
    half side and the overlap's scale; ``lanczos*`` the reach ``order / psr`` and the table's
    scale ``psr / lut_delta``. ``turbo`` and ``lanczos*`` estimate a NaN ``psr`` from the map at
    the centroid of the scanner's polygon ``poly``, as drizzle does for ``pixel_scale_ratio=None``."""
    raise NotImplementedError("compiled into the fused passes only")


def footprint(tag: Any, pixmap: np.ndarray, i: int, j: int, p0: float) -> Any:
    """``(maps, g)``: whether input pixel ``(j, i)`` maps, and its footprint ``g``
    (``square``: the corners ``(x0, x1, x2, x3, y0, y1, y2, y3)``; ``turbo``: the box
    ``(x_lo, x_hi, y_lo, y_hi)``; ``lanczos*``: the mapped centre and the reach ``(x, y, pfo)``)."""
    raise NotImplementedError("compiled into the fused passes only")


def weight(tag: Any, wpix: Any, g: tuple) -> Any:
    """The pixel's weight ``wpix`` over its area on the output (``square``), as given (the others)."""
    raise NotImplementedError("compiled into the fused passes only")


def bounds(tag: Any, g: tuple) -> Any:
    """``(y_lo, y_hi, x_lo, x_hi)``: the output pixels (inclusive, before clipping to the frame)
    the footprint can reach, as the C computes them (``nintd`` of the footprint's extent for
    ``square`` and ``turbo``, ``floor(c - pfo) + 1 .. floor(c + pfo)`` for ``lanczos*``)."""
    raise NotImplementedError("compiled into the fused passes only")


def overlap(tag: Any, ii: int, jj: int, g: tuple, p1: float) -> Any:
    """``(touches, dover)``: whether the footprint touches output pixel ``(jj, ii)``, and by how
    much (``square``: signed, ``boxer``; ``turbo``: ``over`` times the scale ``p1``; ``lanczos*``:
    the product of the table's values, which may be negative)."""
    raise NotImplementedError("compiled into the fused passes only")


def separable(tag: Any) -> Any:
    """Whether the overlap is the product of a column's and a row's factor (:func:`axis_factor`):
    ``lanczos*`` (the driver then computes each factor once per input pixel), not ``square`` and
    ``turbo``. A constant of the compiled pass."""
    raise NotImplementedError("compiled into the fused passes only")


def axis_factor(tag: Any, g: tuple, axis: int, k: int, p1: float) -> Any:
    """A separable kernel's factor of output column ``k`` (``axis`` 0) or row ``k`` (``axis`` 1),
    NaN where that offset has no hit; the overlap with output pixel ``(jj, ii)`` is then
    ``factor(0, ii) * factor(1, jj)``, exactly :func:`overlap`'s product."""
    raise NotImplementedError("compiled into the fused passes only")


#: Each question, with its ``square`` and ``turbo`` implementations (the Lanczos ones in that order above).
_QUESTIONS: tuple[tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]], ...] = (
    (setup, _square_setup, _turbo_setup),
    (footprint, _square_footprint, _turbo_footprint),
    (weight, _square_weight, _turbo_weight),
    (bounds, _square_bounds, _turbo_bounds),
    (overlap, _square_overlap, _turbo_overlap),
    (separable, _not_separable, _not_separable),
    (axis_factor, _no_axis_factor, _no_axis_factor),
)

for _k, (_question, _square, _turbo) in enumerate(_QUESTIONS):
    _impls = {SquareKernel: _square, TurboKernel: _turbo, Lanczos2Kernel: _LANCZOS2[_k], Lanczos3Kernel: _LANCZOS3[_k]}

    def _choose(*types: Any, impls: dict = _impls) -> Any:
        return impls[_tag_class(types[0])]

    _choose.__signature__ = inspect.signature(_question)  # type: ignore[attr-defined]  # numba checks it
    overload(_question, **_OPTIONS)(_choose)
