"""WCS helpers shared by the drivers: ``wcsinfo`` and pixel areas (footprints: :mod:`..geometry`)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["complete_wcsinfo", "mean_pixel_area"]


def complete_wcsinfo(info: dict[str, Any], wcs: Any) -> dict[str, Any]:
    """Fill the ``wcsinfo`` keys that ``stcal.alignment.util.wcs_from_sregions`` needs."""
    if info.get("ra_ref") is None or info.get("dec_ref") is None or info.get("roll_ref") is None:
        ny, nx = wcs.array_shape if getattr(wcs, "array_shape", None) else (None, None)
        if hasattr(wcs, "fits_wcs"):
            ra, dec = (float(v) for v in wcs.fits_wcs.wcs.crval)
        elif ny is not None:
            ra, dec = (float(v) for v in wcs.pixel_to_world_values((nx - 1) / 2.0, (ny - 1) / 2.0))
        else:
            ra = dec = 0.0
        if info.get("ra_ref") is None or info.get("dec_ref") is None:
            info["ra_ref"], info["dec_ref"] = ra, dec
        if info.get("roll_ref") is None:
            info["roll_ref"] = _position_angle_of_y(wcs, info["ra_ref"], info["dec_ref"])
            info["v3yangle"] = 0.0
            info["vparity"] = _parity(wcs, info["ra_ref"], info["dec_ref"])
    if info.get("v3yangle") is None:
        info["v3yangle"] = 0.0
    if info.get("vparity") is None:
        info["vparity"] = _parity(wcs, info["ra_ref"], info["dec_ref"])
    return info


def _parity(wcs: Any, ra: float, dec: float) -> int:
    """-1 for an image with East to the left of North (the sky as seen), +1 for a mirrored one.

    This is the ``vparity`` under which ``stcal``'s output grid keeps the image's
    handedness (JWST imagers have -1): with ``v3yangle = 0`` and ``roll_ref`` the
    position angle of the image's +y axis, the output grid then has the input's
    orientation, East to the left for ordinary images.
    """
    try:
        x0, y0 = (float(v) for v in wcs.world_to_pixel_values(ra, dec))
        ra_x, dec_x = (float(v) for v in wcs.pixel_to_world_values(x0 + 1.0, y0))
        ra_y, dec_y = (float(v) for v in wcs.pixel_to_world_values(x0, y0 + 1.0))
    except Exception:
        return -1
    c = math.cos(math.radians(dec))
    dra_x, dra_y = ((ra_x - ra + 180.0) % 360.0 - 180.0) * c, ((ra_y - ra + 180.0) % 360.0 - 180.0) * c
    det = dra_x * (dec_y - dec) - dra_y * (dec_x - dec)
    return 1 if det > 0 else -1


def _position_angle_of_y(wcs: Any, ra: float, dec: float) -> float:
    """Position angle (deg, East of North) of the detector +y axis at (ra, dec)."""
    x0, y0 = wcs.world_to_pixel_values(ra, dec)
    ra1, dec1 = wcs.pixel_to_world_values(x0, y0 + 1.0)
    dra = math.radians(float(ra1) - ra) * math.cos(math.radians(dec))
    ddec = math.radians(float(dec1) - dec)
    return math.degrees(math.atan2(dra, ddec))


def mean_pixel_area(wcs: Any, shape_yx: tuple[int, int]) -> float | None:
    """Mean pixel area in steradians (``stcal.resample.utils.compute_mean_pixel_area``)."""
    from stcal.resample.utils import compute_mean_pixel_area

    try:
        area = float(compute_mean_pixel_area(wcs, shape=shape_yx))
    except Exception:
        return None
    return area if math.isfinite(area) and area > 0 else None
