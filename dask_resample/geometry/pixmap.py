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
arithmetic and no full-frame temporaries. Otherwise (an unknown model, a FITS
input's SIP evaluated by astropy.wcs, no numba, or :func:`compiled_head` off) the
head is evaluated by gwcs/astropy as it is, in blocks of rows.

Structures are recognised from model types only; anything else is refused and
the caller uses the full WCS evaluation. Every fast map is checked against the
full evaluation on a sample of pixels (corners, edges, the bounding box edges
and an interior grid): any NaN mismatch or a difference beyond
:data:`CHECK_TOLERANCE_PX` rejects it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .pixmap_program import HeadProgram, compile_head

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

#: Radius of the projection sphere (deg), as in FITS WCS paper II.
_R0 = 180.0 / math.pi

#: Rows evaluated at once (bounds the temporaries).
_BLOCK_ROWS = 256

#: Whether :func:`fast_pixmap` uses the compiled evaluation where it can (see :func:`compiled_head`).
_COMPILED = {"enabled": True}


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class InputSky:
    """The input WCS split into its head and its final rotation to the sky.

    Attributes
    ----------
    head : callable
        ``(x, y) -> (a, b)``: the input pipeline up to the sky part, evaluated
        by astropy/gwcs as it is (no bounding box).
    kind : str
        What ``(a, b)`` are: ``"tan"`` or ``"sin"`` projection-plane coordinates
        (deg), or ``"lonlat"`` spherical angles (deg) of a 3-D rotation sequence.
    to_celestial : numpy.ndarray
        3x3 rotation of unit vectors from the head's sphere to celestial.
    bbox_xy : tuple or None
        Input bounding box ``((xlo, xhi), (ylo, yhi))``; pixels outside are NaN.
    program : HeadProgram or None
        The head translated for the compiled evaluation; ``None`` when some
        model of the head is not one :mod:`dask_resample.geometry.pixmap_program` knows.
    """

    head: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    kind: str
    to_celestial: np.ndarray
    bbox_xy: tuple[tuple[float, float], tuple[float, float]] | None
    program: HeadProgram | None = None


@dataclass(frozen=True)
class OutputTan:
    """A FITS imaging TAN output WCS.

    Attributes
    ----------
    from_celestial : numpy.ndarray
        3x3 rotation of unit vectors from celestial to the output's native sphere.
    matrix, offset : numpy.ndarray
        Linear part: projection-plane coordinates (deg) = ``matrix @ (x, y) + offset``.
    """

    from_celestial: np.ndarray
    matrix: np.ndarray
    offset: np.ndarray


@dataclass(frozen=True)
class FastPixmapPlan:
    """What :func:`fast_pixmap` evaluates.

    Attributes
    ----------
    source : InputSky
    homography : numpy.ndarray
        3x3 map from the input's native vector to homogeneous output pixels
        ``(x*w, y*w, w)``; ``w > 0`` on the output's near hemisphere.
    """

    source: InputSky
    homography: np.ndarray


# --------------------------------------------------------------------------- recognition
def _series(model: Any) -> list[Any]:
    """Flatten the ``|`` chain of a model (FITS imaging transforms are expanded)."""
    from astropy.modeling.core import CompoundModel
    from gwcs.fitswcs import FITSImagingWCSTransform

    if isinstance(model, CompoundModel) and model.op == "|":
        return _series(model.left) + _series(model.right)
    if isinstance(model, FITSImagingWCSTransform):
        return _series(model.forward)
    return [model]


def _any_node(model: Any, predicate: Callable[[Any], bool]) -> bool:
    from astropy.modeling.core import CompoundModel
    from gwcs.fitswcs import FITSImagingWCSTransform

    if predicate(model):
        return True
    if isinstance(model, CompoundModel):
        return _any_node(model.left, predicate) or _any_node(model.right, predicate)
    if isinstance(model, FITSImagingWCSTransform):
        return _any_node(model.forward, predicate)
    return False


def _euler_matrix(angles_deg: list[float], axes: str) -> np.ndarray:
    """Rotation of vectors as astropy's rotation models build it (``R_n @ ... @ R_1``).

    Each factor is ``astropy.coordinates.matrix_utilities.rotation_matrix(angle, axis)``
    (a rotation of the coordinate frame). The product is formed in extended
    precision (``numpy.longdouble`` where the platform has it), so the composed
    sky rotation is exact to about one double-precision unit.
    """
    ld = np.longdouble
    out = np.eye(3, dtype=ld)
    for angle, axis in zip(angles_deg, axes, strict=True):
        rad = ld(angle) * (ld(np.pi) + ld(1.2246467991473532e-16)) / ld(180)  # pi to extended precision
        c, s = np.cos(rad), np.sin(rad)
        i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
        m = np.eye(3, dtype=ld)
        m[i, i] = m[j, j] = c
        m[i, j], m[j, i] = s, -s
        out = m @ out
    return out


def _native_to_celestial(rot: Any) -> np.ndarray:
    """Matrix of a ``RotateNative2Celestial`` model (astropy's Euler angles)."""
    lon, lat, lon_pole = (float(np.squeeze(p.value)) for p in (rot.lon, rot.lat, rot.lon_pole))
    return _euler_matrix([lon_pole - 90.0, -(90.0 - lat), -(90.0 + lon)], "zxz")


def _sequence_matrix(rot: Any) -> np.ndarray:
    """Matrix of a ``RotationSequence3D`` (or ``SphericalRotationSequence``)."""
    return _euler_matrix(list(np.ravel(rot.angles.value)), rot.axes_order)


def _is_pair(model: Any, kind: type) -> bool:
    from astropy.modeling.core import CompoundModel

    return (isinstance(model, CompoundModel) and model.op == "&" and type(model.left) is kind
            and type(model.right) is kind)


def _linear_2d(model: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(A, b)`` with ``model(p) = A @ p + b`` for the linear 2-D models of a FITS WCS, else None."""
    from astropy.modeling import models as m

    if _is_pair(model, m.Shift):
        return np.eye(2), np.array([float(model.left.offset.value), float(model.right.offset.value)])
    if _is_pair(model, m.Scale) or _is_pair(model, m.Multiply):
        return np.diag([float(model.left.factor.value), float(model.right.factor.value)]), np.zeros(2)
    if type(model) is m.AffineTransformation2D:
        return np.array(model.matrix.value, float).reshape(2, 2), np.array(model.translation.value, float).ravel()
    if type(model) is m.Identity and model.n_inputs == 2:
        return np.eye(2), np.zeros(2)
    if type(model) is m.Mapping and model.n_inputs == 2 and tuple(model.mapping) in ((0, 1), (1, 0)):
        return (np.eye(2) if tuple(model.mapping) == (0, 1) else np.eye(2)[::-1]), np.zeros(2)
    return None


def _has_units(model: Any) -> bool:
    """True if any parameter of the model carries a unit (quantities are left to the full path)."""
    return any(getattr(model, name).unit is not None for name in model.param_names)


def recognise_input(wcs_in: Any) -> InputSky | None:
    """Split an input WCS into its head and its final rotation to the sky.

    Recognised endings (by model type):

    * ``Pix2Sky_TAN | RotateNative2Celestial`` (gnomonic, and the orthographic
      ``Pix2Sky_SIN`` without its oblique parameters);
    * ``SphericalToCartesian | RotationSequence3D... | CartesianToSpherical``
      (jwst's V2/V3 -> world), or a final ``SphericalRotationSequence``.

    :class:`~dask_resample.geometry.wcs_adapter.FitsImagingWCS` inputs with a celestial
    ``TAN`` or ``TAN-SIP`` WCS are recognised too (SIP and lookup-table
    distortions are evaluated by astropy.wcs).

    Parameters
    ----------
    wcs_in : gwcs.wcs.WCS or FitsImagingWCS

    Returns
    -------
    InputSky or None
        ``None`` when the structure is not recognised.
    """
    from .wcs_adapter import FitsImagingWCS

    if isinstance(wcs_in, FitsImagingWCS):
        return _recognise_fits_input(wcs_in)
    try:
        transform = wcs_in.forward_transform
        bbox = wcs_in.bounding_box
    except (AttributeError, NotImplementedError):
        return None
    if transform is None or transform.n_inputs != 2 or transform.n_outputs != 2 or _has_units(transform):
        return None
    bbox_xy = None
    if bbox is not None:
        from astropy.modeling.bounding_box import ModelBoundingBox

        if type(bbox) is not ModelBoundingBox or bbox.ignored or len(bbox.intervals) != 2:
            return None
        (x0, x1), (y0, y1) = bbox.bounding_box(order="F")
        bbox_xy = ((float(x0), float(x1)), (float(y0), float(y1)))
    chain = _series(transform)
    ending = _input_ending(chain)
    if ending is None:
        return None
    n_tail, kind, matrix = ending
    head_models = chain[:-n_tail]
    if not head_models:
        return None
    head = functools.reduce(lambda a, b: a | b, head_models) if len(head_models) > 1 else head_models[0]
    if head.n_inputs != 2 or head.n_outputs != 2:
        return None

    def evaluate_head(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return head(x, y, with_bounding_box=False)

    return InputSky(head=evaluate_head, kind=kind, to_celestial=matrix, bbox_xy=bbox_xy,
                    program=compile_head(head_models))


def _input_ending(chain: list[Any]) -> tuple[int, str, np.ndarray] | None:
    """Recognise the sky part at the end of a ``|`` chain: ``(n models, kind, matrix)``."""
    from astropy.modeling import models as m
    from gwcs.geometry import CartesianToSpherical, SphericalToCartesian

    last = chain[-1]
    if isinstance(last, m.RotateNative2Celestial) and len(chain) >= 2:
        proj = chain[-2]
        if isinstance(proj, m.Pix2Sky_Gnomonic):
            return 2, "tan", _native_to_celestial(last)
        if isinstance(proj, m.Pix2Sky_SlantOrthographic) and float(proj.xi.value) == 0 and float(proj.eta.value) == 0:
            return 2, "sin", _native_to_celestial(last)
        return None
    if isinstance(last, m.SphericalRotationSequence):
        return 1, "lonlat", _sequence_matrix(last)
    if isinstance(last, CartesianToSpherical):
        matrix = np.eye(3)
        k = len(chain) - 2
        while k >= 0 and isinstance(chain[k], m.RotationSequence3D) and not isinstance(
            chain[k], m.SphericalRotationSequence
        ):
            matrix = matrix @ _sequence_matrix(chain[k])
            k -= 1
        if k < 0 or k == len(chain) - 2 or not isinstance(chain[k], SphericalToCartesian):
            return None
        return len(chain) - k, "lonlat", matrix
    return None


def _recognise_fits_input(wcs_in: Any) -> InputSky | None:
    """A FITS celestial TAN (or TAN-SIP) WCS, as evaluated by ``FitsImagingWCS``."""
    fw = wcs_in.fits_wcs
    w = fw.wcs
    try:
        w.set()
    except Exception:  # pragma: no cover - an invalid WCS fails in the full path too
        return None
    ctype = [str(c).upper() for c in w.ctype]
    if w.naxis != 2 or w.lng != 0 or w.lat != 1 or any(c[4:8] != "-TAN" or c[8:] not in ("", "-SIP") for c in ctype):
        return None
    if getattr(w.cel, "offset", False) or any(str(u) != "deg" for u in w.cunit):
        return None
    pc = np.array(w.get_pc(), float)
    cdelt = np.array(w.get_cdelt(), float)
    linear = cdelt[:, None] * pc
    crpix = np.array(w.crpix, float)
    rotation = _euler_matrix([float(w.lonpole) - 90.0, -(90.0 - float(w.crval[1])), -(90.0 + float(w.crval[0]))], "zxz")

    def evaluate_head(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fx, fy = fw.pix2foc(x, y, 0)
        px, py = fx + (1.0 - crpix[0]), fy + (1.0 - crpix[1])
        return linear[0, 0] * px + linear[0, 1] * py, linear[1, 0] * px + linear[1, 1] * py

    return InputSky(head=evaluate_head, kind="tan", to_celestial=rotation, bbox_xy=None)


def recognise_output(wcs_out: Any) -> OutputTan | None:
    """Recognise a FITS imaging TAN output WCS.

    Accepted: a gwcs whose forward transform is linear 2-D models (shifts,
    scales, ``AffineTransformation2D``) followed by ``Pix2Sky_TAN`` and
    ``RotateNative2Celestial`` (``gwcs.fitswcs.FITSImagingWCSTransform`` is
    such a chain), without user-defined inverses anywhere.

    Parameters
    ----------
    wcs_out : gwcs.wcs.WCS

    Returns
    -------
    OutputTan or None
    """
    from astropy.modeling import models as m

    try:
        transform = wcs_out.forward_transform
    except (AttributeError, NotImplementedError):
        return None
    if transform is None or transform.n_inputs != 2 or transform.n_outputs != 2 or _has_units(transform):
        return None
    if _any_node(transform, lambda n: getattr(n, "_user_inverse", None) is not None):
        return None
    chain = _series(transform)
    if len(chain) < 2 or not isinstance(chain[-1], m.RotateNative2Celestial):
        return None
    if not isinstance(chain[-2], m.Pix2Sky_Gnomonic):
        return None
    matrix, offset = np.eye(2), np.zeros(2)
    for model in chain[:-2]:
        lin = _linear_2d(model)
        if lin is None:
            return None
        a, b = lin
        matrix, offset = a @ matrix, a @ offset + b
    if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) == 0:
        return None
    return OutputTan(from_celestial=_native_to_celestial(chain[-1]).T, matrix=matrix, offset=offset)


def plan_fast_pixmap(wcs_in: Any, wcs_out: Any) -> FastPixmapPlan | None:
    """Recognise both WCSs and compose the sky part into one 3x3 matrix.

    Returns
    -------
    FastPixmapPlan or None
        ``None`` when either WCS is not recognised.
    """
    try:
        source = recognise_input(wcs_in)
        target = recognise_output(wcs_out) if source is not None else None
    except Exception as exc:  # an unusual model that the type walk did not foresee
        log.debug("fast pixel map refused: %s: %s", type(exc).__name__, exc)
        return None
    if source is None or target is None:
        return None
    ld = np.longdouble
    r0 = ld(180) / (ld(np.pi) + ld(1.2246467991473532e-16))
    # output native vector n' -> (u*w, v*w, w) with (u, v) gnomonic plane coordinates (deg)
    project = np.array([[0, r0, 0], [-r0, 0, 0], [0, 0, 1]], dtype=ld)
    # (u, v) -> output pixel: solve matrix @ p = (u, v) - offset (2x2 inverse by cofactors)
    a = target.matrix.astype(ld)
    inv = np.array([[a[1, 1], -a[0, 1]], [-a[1, 0], a[0, 0]]]) / (a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0])
    unaffine = np.eye(3, dtype=ld)
    unaffine[:2, :2] = inv
    unaffine[:2, 2] = -inv @ target.offset.astype(ld)
    homography = unaffine @ project @ target.from_celestial @ source.to_celestial
    if source.kind == "tan":
        # input plane (x, y, 1) -> native vector proportional to (-y, x, R0)
        homography = homography @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, r0]], dtype=ld)
    return FastPixmapPlan(source=source, homography=homography.astype(np.float64))


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


@functools.lru_cache(maxsize=1)
def compiled_available() -> bool:
    """Whether numba, and so :mod:`dask_resample.geometry.pixmap_compiled`, can be imported here."""
    try:
        from . import pixmap_compiled  # noqa: F401
    except ImportError:
        return False
    return True


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
        from .pixmap_compiled import fast_map

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
def sample_pixels(shape_yx: tuple[int, int], bbox_xy: Any = None, n_edge: int = 17,
                  n_grid: int = 9) -> tuple[np.ndarray, np.ndarray]:
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


def check_against_reference(pixmap: np.ndarray, reference_xy: tuple[np.ndarray, np.ndarray],
                            y: np.ndarray, x: np.ndarray, tolerance: float = CHECK_TOLERANCE_PX) -> float | None:
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
