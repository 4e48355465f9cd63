"""WCS helpers shared by the drivers: outlines on the sky and ``wcsinfo``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["complete_wcsinfo", "mean_pixel_area", "outline_from_wcs", "pixel_bounds", "s_region_from_wcs"]

#: Points per edge of the outline sampled through a WCS (distortion bulges between corners).
OUTLINE_POINTS_PER_EDGE = 16


def pixel_bounds(wcs: Any, shape_yx: tuple[int, int]) -> tuple[float, float, float, float]:
    """Pixel-edge bounds ``(x0, x1, y0, y1)`` of the valid region: the bounding box, else the array."""
    bbox = getattr(wcs, "bounding_box", None)
    if bbox is not None:
        try:
            (x0, x1), (y0, y1) = bbox.bounding_box(order="F")
        except AttributeError:
            (x0, x1), (y0, y1) = tuple(bbox)
        return float(x0), float(x1), float(y0), float(y1)
    ny, nx = shape_yx
    return -0.5, nx - 0.5, -0.5, ny - 0.5


def outline_from_wcs(wcs: Any, shape_yx: tuple[int, int]) -> tuple[tuple[float, float], ...]:
    """(RA, Dec) of points along the edges of the valid region, in degrees."""
    x0, x1, y0, y1 = pixel_bounds(wcs, shape_yx)
    t = np.linspace(0.0, 1.0, OUTLINE_POINTS_PER_EDGE, endpoint=False)
    x = np.concatenate([x0 + (x1 - x0) * t, np.full_like(t, x1), x1 - (x1 - x0) * t, np.full_like(t, x0)])
    y = np.concatenate([np.full_like(t, y0), y0 + (y1 - y0) * t, np.full_like(t, y1), y1 - (y1 - y0) * t])
    ra, dec = (np.asarray(v, float) for v in _without_bbox(wcs, x, y))
    good = np.isfinite(ra) & np.isfinite(dec)
    return tuple(zip(ra[good].tolist(), dec[good].tolist(), strict=True))


def _without_bbox(wcs: Any, x: np.ndarray, y: np.ndarray) -> tuple:
    # the points sit on the box's edges; evaluate them even where a bounding box would say "outside"
    try:
        return wcs(x, y, with_bounding_box=False)
    except TypeError:
        return wcs.pixel_to_world_values(x, y)


def s_region_from_wcs(wcs: Any, shape_yx: tuple[int, int]) -> str:
    """``S_REGION`` of the four corners of the valid region, as the pipeline computes it."""
    from stcal.alignment.util import compute_s_region_keyword

    ny, nx = shape_yx
    fp = wcs.footprint() if hasattr(wcs, "footprint") else None
    if fp is None:
        x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
        y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
        fp = np.column_stack(wcs.pixel_to_world_values(x, y))
    return compute_s_region_keyword(np.asarray(fp))


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
            info["vparity"] = 1
    if info.get("v3yangle") is None:
        info["v3yangle"] = 0.0
    if info.get("vparity") is None:
        info["vparity"] = 1
    return info


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
