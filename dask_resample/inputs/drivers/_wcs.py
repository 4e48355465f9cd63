"""WCS helpers shared by the drivers: ``wcsinfo`` and pixel areas (footprints: :mod:`..geometry`).

What cannot be had from a WCS (no inverse transform, no convergence, a point
off the sky, a degenerate outline) is reported by a logged warning naming the
file and the reason, and the documented fallback is used; any other error is
a bug and propagates.
"""

from __future__ import annotations

import logging
import math
from typing import Any

__all__ = ["complete_wcsinfo", "mean_pixel_area", "unavailable_errors"]

log = logging.getLogger(__name__)


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """Exceptions of WCS evaluations that mean "not available from this WCS".

    A missing inverse (``NotImplementedError``), no convergence of an
    iterative inverse (astropy's and gwcs' ``NoConvergence``), values off the
    transform's domain (``ValueError``, ``ArithmeticError``) and a degenerate
    sky polygon (spherical_geometry's ``MalformedPolygonError``).
    """
    from astropy.wcs import NoConvergence

    errors: list[type[BaseException]] = [NotImplementedError, ValueError, ArithmeticError, NoConvergence]
    try:
        from gwcs.wcs import NoConvergence as GwcsNoConvergence

        errors.append(GwcsNoConvergence)
    except ImportError:  # pragma: no cover - gwcs is a dependency; older ones lack the class
        pass
    try:
        from spherical_geometry.polygon import MalformedPolygonError

        errors.append(MalformedPolygonError)
    except ImportError:  # pragma: no cover - installed with stcal
        pass
    return tuple(errors)


def complete_wcsinfo(info: dict[str, Any], wcs: Any, source: str | None = None) -> dict[str, Any]:
    """Fill the ``wcsinfo`` keys that ``stcal.alignment.util.wcs_from_sregions`` needs.

    Parameters
    ----------
    info : dict
        The exposure's ``wcsinfo`` (updated in place).
    wcs : gwcs.WCS or adapter
        Its WCS.
    source : str, optional
        The file (or model) it comes from, named in warnings.

    Returns
    -------
    dict
        ``info``.
    """
    if info.get("ra_ref") is None or info.get("dec_ref") is None or info.get("roll_ref") is None:
        shape_yx = getattr(wcs, "array_shape", None)
        if hasattr(wcs, "fits_wcs"):
            ra, dec = (float(v) for v in wcs.fits_wcs.wcs.crval)
        elif shape_yx:
            ny, nx = shape_yx
            ra, dec = (float(v) for v in wcs.pixel_to_world_values((nx - 1) / 2.0, (ny - 1) / 2.0))
        else:
            ra = dec = 0.0
        if info.get("ra_ref") is None or info.get("dec_ref") is None:
            info["ra_ref"], info["dec_ref"] = ra, dec
        if info.get("roll_ref") is None:
            info["roll_ref"] = _position_angle_of_y(wcs, info["ra_ref"], info["dec_ref"])
            info["v3yangle"] = 0.0
            info["vparity"] = _parity(wcs, info["ra_ref"], info["dec_ref"], source)
    if info.get("v3yangle") is None:
        info["v3yangle"] = 0.0
    if info.get("vparity") is None:
        info["vparity"] = _parity(wcs, info["ra_ref"], info["dec_ref"], source)
    return info


def _parity(wcs: Any, ra: float, dec: float, source: str | None = None) -> int:
    """-1 for an image with East to the left of North (the sky as seen), +1 for a mirrored one.

    This is the ``vparity`` under which ``stcal``'s output grid keeps the image's
    handedness (JWST imagers have -1): with ``v3yangle = 0`` and ``roll_ref`` the
    position angle of the image's +y axis, the output grid then has the input's
    orientation, East to the left for ordinary images. When the WCS cannot tell
    (see :func:`unavailable_errors`, or non-finite values), -1 is assumed and a
    warning names the file and the reason.
    """
    try:
        x0, y0 = (float(v) for v in wcs.world_to_pixel_values(ra, dec))
        ra_x, dec_x = (float(v) for v in wcs.pixel_to_world_values(x0 + 1.0, y0))
        ra_y, dec_y = (float(v) for v in wcs.pixel_to_world_values(x0, y0 + 1.0))
    except unavailable_errors() as exc:
        _assume_parity(source, f"{type(exc).__name__}: {_first_line(exc)}")
        return -1
    c = math.cos(math.radians(dec))
    dra_x, dra_y = ((ra_x - ra + 180.0) % 360.0 - 180.0) * c, ((ra_y - ra + 180.0) % 360.0 - 180.0) * c
    det = dra_x * (dec_y - dec) - dra_y * (dec_x - dec)
    if not math.isfinite(det):
        _assume_parity(source, f"non-finite sky positions around the reference point ({ra:.6f}, {dec:.6f})")
        return -1
    return 1 if det > 0 else -1


def _assume_parity(source: str | None, reason: str) -> None:
    log.warning(
        "%s: cannot tell the image's parity from its WCS (%s); assuming -1 (East to the left "
        "of North, as JWST imagers)",
        source or "an input",
        reason,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _position_angle_of_y(wcs: Any, ra: float, dec: float) -> float:
    """Position angle (deg, East of North) of the detector +y axis at (ra, dec)."""
    x0, y0 = wcs.world_to_pixel_values(ra, dec)
    ra1, dec1 = wcs.pixel_to_world_values(x0, y0 + 1.0)
    dra = math.radians(float(ra1) - ra) * math.cos(math.radians(dec))
    ddec = math.radians(float(dec1) - dec)
    return math.degrees(math.atan2(dra, ddec))


def mean_pixel_area(wcs: Any, shape_yx: tuple[int, int], source: str | None = None) -> float | None:
    """Mean pixel area in steradians (``stcal.resample.utils.compute_mean_pixel_area``).

    Parameters
    ----------
    wcs : gwcs.WCS or adapter
        The exposure's WCS.
    shape_yx : (int, int)
        Its array shape.
    source : str, optional
        The file (or model) it comes from, named in warnings.

    Returns
    -------
    float or None
        ``None`` when the WCS gives no area (see :func:`unavailable_errors`);
        a warning names the file and the reason.
    """
    from stcal.resample.utils import compute_mean_pixel_area

    try:
        area = compute_mean_pixel_area(wcs, shape=shape_yx)
    except unavailable_errors() as exc:
        _no_area(source, f"{type(exc).__name__}: {_first_line(exc)}")
        return None
    if area is None:
        _no_area(source, "no valid outline of the image on the sky")
        return None
    area = float(area)
    if not (math.isfinite(area) and area > 0):
        _no_area(source, f"computed area {area!r}")
        return None
    return area


def _no_area(source: str | None, reason: str) -> None:
    log.warning(
        "%s: no mean pixel area from the WCS (%s); the exposure has no pixel area", source or "an input", reason
    )
