"""A fast pixel map for inputs that end in a celestial rotation and TAN outputs.

``stcal.resample.utils.calc_pixmap`` takes every input pixel through the input
WCS to (RA, Dec) and back through the output WCS. When the input WCS ends in a
spherical rotation to the sky (a zenithal projection followed by
``RotateNative2Celestial``, or jwst's V2/V3 -> world rotation sequence) and the
output is a FITS imaging TAN WCS, the sky part of that round trip is: a unit
vector on the input's native sphere, one 3x3 rotation (input native ->
celestial -> output native, composed once), a gnomonic projection (a division)
and the output's linear part (a 2x2 solve). For a TAN input the native vector is
linear in the projection-plane coordinates, so the whole sky part is a single
3x3 homography applied to the input's projection-plane coordinates.

The input's own pipeline up to the projection (distortion, affine,
velocity-aberration scale, ...), the "head", is translated into a small program
(:mod:`dask_resample.geometry.pixmap_program`) when every model in it is of a known type;
with numba installed (the ``fast`` extra) :mod:`dask_resample.geometry.pixmap_compiled`
then evaluates the head and the sky part in one compiled pass, with astropy's
arithmetic and no full-frame temporaries. A FITS TAN input without distortion has
the head ``CD @ (pixel + 1 - CRPIX)``, translated the same way. Otherwise (an unknown
model, a FITS input's SIP or lookup tables evaluated by astropy.wcs, no numba, or
:func:`compiled_head` off) the head is evaluated by gwcs/astropy as it is, in blocks of rows.

Structures are recognised from model types only; anything else is refused and
the caller uses the full WCS evaluation. Every fast map is checked against the
full evaluation on a sample of pixels (corners, edges, the bounding box edges
and an interior grid): any NaN mismatch or a difference beyond
:data:`CHECK_TOLERANCE_PX` rejects it.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..optional_module import OptionalModule
from .pixmap_recognise import (
    _R0,
    FastPixmapPlan,
    InputSky,
    OutputTan,
    plan_fast_pixmap,
    recognise_input,
    recognise_output,
)

__all__ = [
    "CHECK_TOLERANCE_PX",
    "FastPixmapPlan",
    "InputSky",
    "OutputTan",
    "check_against_reference",
    "compiled_available",
    "compiled_head",
    "fast_pixmap",
    "plan_fast_pixmap",
    "recognise_input",
    "recognise_output",
    "sample_pixels",
]

log = logging.getLogger(__name__)

#: Largest difference (output pixels) between the fast and the full pixel map that is accepted.
CHECK_TOLERANCE_PX = 1e-7

#: Rows evaluated at once (bounds the temporaries).
_BLOCK_ROWS = 256

#: Whether :func:`fast_pixmap` uses the compiled evaluation where it can (see :func:`compiled_head`).
_COMPILED = {"enabled": True}


# --------------------------------------------------------------------------- evaluation
def _native_vector(kind: str, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The input's native vector (not normalised for ``"tan"``: the projection is homogeneous)."""
    if kind == "tan":
        return a, b, np.ones_like(a)
    if kind == "sin":
        # orthographic: x = R cos(theta) sin(phi), y = -R cos(theta) cos(phi)
        ux, uy = -b / _R0, a / _R0
        with np.errstate(invalid="ignore"):
            uz = np.sqrt(1.0 - (ux * ux + uy * uy))
        return ux, uy, uz
    lon, lat = np.deg2rad(a), np.deg2rad(b)
    cos_lat = np.cos(lat)
    return cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)


def _evaluate(plan: FastPixmapPlan, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output ``(x, y)`` and the homogeneous ``w`` of input pixels ``(x, y)``."""
    src = plan.source
    a, b = src.head(x, y)
    n0, n1, n2 = _native_vector(src.kind, np.asarray(a, float), np.asarray(b, float))
    h = plan.homography
    w = h[2, 0] * n0 + h[2, 1] * n1 + h[2, 2] * n2
    ox = (h[0, 0] * n0 + h[0, 1] * n1 + h[0, 2] * n2) / w
    oy = (h[1, 0] * n0 + h[1, 1] * n1 + h[1, 2] * n2) / w
    if src.bbox_xy is not None:
        (x0, x1), (y0, y1) = src.bbox_xy
        outside = (x < x0) | (x > x1) | (y < y0) | (y > y1)  # astropy's bounding-box rule
        ox[outside] = np.nan
        oy[outside] = np.nan
        w[outside] = np.nan
    return ox, oy, w


def compiled_available() -> bool:
    """Whether numba, and so :mod:`dask_resample.geometry.pixmap_compiled`, can be imported here."""
    return _PIXMAP_COMPILED.available()


#: The compiled pixel map's module, imported on first use (numba, the ``fast`` extra).
_PIXMAP_COMPILED = OptionalModule(".pixmap_compiled", __package__)


@contextlib.contextmanager
def compiled_head(enabled: bool) -> Iterator[None]:
    """Use (or not) the compiled evaluation in :func:`fast_pixmap` within the block.

    ``compiled_head(False)`` gives the numpy evaluation (the head by astropy in
    blocks of rows) even where the compiled one applies: for benchmarks and
    tests. The setting is process-wide.
    """
    before = _COMPILED["enabled"]
    _COMPILED["enabled"] = bool(enabled)
    try:
        yield
    finally:
        _COMPILED["enabled"] = before


def fast_pixmap(plan: FastPixmapPlan, shape_yx: tuple[int, int]) -> np.ndarray | None:
    """Evaluate the fast pixel map on every pixel of an input.

    The compiled evaluation (:func:`dask_resample.geometry.pixmap_compiled.fast_map`) is
    used when the head was translated (``plan.source.program``), numba is
    installed and :func:`compiled_head` is on; otherwise the head is evaluated
    by astropy in blocks of rows and the sky part by numpy.

    Parameters
    ----------
    plan : FastPixmapPlan
    shape_yx : tuple of int
        Input shape ``(ny, nx)``.

    Returns
    -------
    numpy.ndarray or None
        ``(ny, nx, 2)``, ``[..., 0]`` is x; ``None`` if some pixel maps to the
        output's far hemisphere (left to the full evaluation).
    """
    src = plan.source
    if src.program is not None and _COMPILED["enabled"] and compiled_available():
        from .pixmap_compiled import fast_map  # deferred: numba, only where it is installed

        return fast_map(src.program, src.kind, plan.homography, src.bbox_xy, shape_yx)
    ny, nx = shape_yx
    pixmap = np.empty((ny, nx, 2), np.float64)
    x_row = np.arange(nx, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        for r0 in range(0, ny, _BLOCK_ROWS):
            r1 = min(ny, r0 + _BLOCK_ROWS)
            y, x = np.meshgrid(np.arange(r0, r1, dtype=np.float64), x_row, indexing="ij")
            ox, oy, w = _evaluate(plan, x, y)
            if np.any(w <= 0):
                return None
            pixmap[r0:r1, :, 0] = ox
            pixmap[r0:r1, :, 1] = oy
    return pixmap


# --------------------------------------------------------------------------- self-check
def sample_pixels(
    shape_yx: tuple[int, int], bbox_xy: Any = None, n_edge: int = 17, n_grid: int = 9
) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixels ``(y, x)`` to check: corners, edges, bounding-box edges and a grid.

    Returns
    -------
    y, x : numpy.ndarray
        Unique pixel indices inside the array.
    """
    ny, nx = shape_yx
    ys = [np.linspace(0, ny - 1, n_edge), np.linspace(0, ny - 1, n_edge), np.zeros(n_edge), np.full(n_edge, ny - 1)]
    xs = [np.zeros(n_edge), np.full(n_edge, nx - 1), np.linspace(0, nx - 1, n_edge), np.linspace(0, nx - 1, n_edge)]
    gy, gx = np.meshgrid(np.linspace(0, ny - 1, n_grid), np.linspace(0, nx - 1, n_grid), indexing="ij")
    ys.append(gy.ravel())
    xs.append(gx.ravel())
    if bbox_xy is not None:
        (bx0, bx1), (by0, by1) = bbox_xy
        cols = {c for v in (bx0, bx1) if np.isfinite(v) for c in (math.floor(v), math.ceil(v))}
        rows = {r for v in (by0, by1) if np.isfinite(v) for r in (math.floor(v), math.ceil(v))}
        line_y, line_x = np.linspace(0, ny - 1, n_edge), np.linspace(0, nx - 1, n_edge)
        for c in cols:
            ys.append(line_y)
            xs.append(np.full(n_edge, c))
        for r in rows:
            ys.append(np.full(n_edge, r))
            xs.append(line_x)
    y = np.clip(np.rint(np.concatenate(ys)), 0, ny - 1).astype(np.int64)
    x = np.clip(np.rint(np.concatenate(xs)), 0, nx - 1).astype(np.int64)
    flat = np.unique(y * nx + x)
    return flat // nx, flat % nx


def check_against_reference(
    pixmap: np.ndarray,
    reference_xy: tuple[np.ndarray, np.ndarray],
    y: np.ndarray,
    x: np.ndarray,
    tolerance: float = CHECK_TOLERANCE_PX,
) -> float | None:
    """Compare a fast pixel map with the full evaluation at sample pixels.

    Parameters
    ----------
    pixmap : numpy.ndarray
        Fast pixel map ``(ny, nx, 2)``.
    reference_xy : tuple of numpy.ndarray
        Output ``(x, y)`` of the full evaluation at the samples.
    y, x : numpy.ndarray
        Sample pixel indices.
    tolerance : float
        Largest accepted difference in output pixels.

    Returns
    -------
    float or None
        The largest difference if the NaN patterns agree and it is within
        ``tolerance``, else ``None``.
    """
    ref = np.stack([np.asarray(reference_xy[0], float), np.asarray(reference_xy[1], float)], axis=-1)
    fast = pixmap[y, x]
    if not np.array_equal(np.isnan(fast), np.isnan(ref)):
        return None
    finite = np.isfinite(ref)
    if not np.array_equal(finite, np.isfinite(fast)):
        return None
    diff = float(np.max(np.abs(fast[finite] - ref[finite]), initial=0.0))
    return diff if diff <= tolerance else None
