"""The fast pixel map's plan: recognition of an input WCS that ends in a celestial rotation and of a
TAN output, and their sky parts composed into one homography (:func:`plan_fast_pixmap`).

:mod:`dask_resample.geometry.pixmap` evaluates the plan and checks it; see its docstring.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .pixmap_program import HeadProgram, compile_head
from .wcs_adapter import FitsImagingWCS

log = logging.getLogger(__name__)

#: Radius of the projection sphere (deg), as in FITS WCS paper II.
_R0 = 180.0 / math.pi


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

    return (
        isinstance(model, CompoundModel) and model.op == "&" and type(model.left) is kind and type(model.right) is kind
    )


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

    return InputSky(
        head=evaluate_head, kind=kind, to_celestial=matrix, bbox_xy=bbox_xy, program=compile_head(head_models)
    )


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
        while (
            k >= 0
            and isinstance(chain[k], m.RotationSequence3D)
            and not isinstance(chain[k], m.SphericalRotationSequence)
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

    program = None
    if not fw.has_distortion and not w.get_pv():
        # no SIP, lookup tables or det2im (pix2foc is then the identity on pixels), and no PVi_m
        # terms, which wcslib would apply in the projection itself
        program = compile_head(_linear_fits_head(crpix, linear))
    return InputSky(head=evaluate_head, kind="tan", to_celestial=rotation, bbox_xy=None, program=program)


def _linear_fits_head(crpix: np.ndarray, linear: np.ndarray) -> list[Any]:
    """The head of a FITS TAN WCS without distortion as models: ``linear @ (pixel + 1 - crpix)``.

    Without SIP, lookup tables or detector-to-image corrections, ``pix2foc`` returns
    an integer pixel as it is, so on the input's pixels the compiled evaluation of
    these models makes the same operations as ``evaluate_head`` of
    :func:`_recognise_fits_input`.
    """
    from astropy.modeling.models import AffineTransformation2D, Shift

    return [
        Shift(1.0 - crpix[0]) & Shift(1.0 - crpix[1]),
        AffineTransformation2D(matrix=linear, translation=[0.0, 0.0]),
    ]


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
