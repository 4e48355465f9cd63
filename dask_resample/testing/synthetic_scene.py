"""Sky, arrays and metadata shared by the synthetic datasets (:mod:`.synthetic`, :mod:`.synthetic_siaf`).

The scene of Gaussian sources that every exposure sees, its rendering
through a WCS, the dither pattern, the science/error/variance/DQ arrays and
cosmic rays of one exposure, JWST metadata, group ids and the image3
association. The detector WCSs and the file writers are in
:mod:`.synthetic` (simple distortion) and :mod:`.synthetic_siaf` (SIAF
distortion); both build on this module, which imports neither.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.modeling import models
from astropy.time import Time
from gwcs import wcs as gwcs_wcs

__all__ = ["CAL_STEPS", "SyntheticDataset", "add_cosmic_rays"]


# Observation identifiers shared by all exposures (see ``_group_id``).
_PROGRAM, _OBSERVATION, _VISIT = "01234", "001", "001"
_VISIT_GROUP, _SEQUENCE, _ACTIVITY = "02", "1", "01"
_VISIT_ID = f"jw{_PROGRAM}{_OBSERVATION}{_VISIT}_{_VISIT_GROUP}{_SEQUENCE}{_ACTIVITY}"
_VPARITY, _V3YANGLE = -1, 0.0
_MJD_START = 60310.0
_ARCSEC2_TO_SR = (math.pi / 180.0 / 3600.0) ** 2
# DQ values drawn for flagged pixels (single flags and typical combinations).
_DQ_VALUES = np.array([1, 2, 4, 1 | 2, 1 | 4, 2 | 4, 1 | 1024, 1 | 2048, 4096, 8192, 16, 4 | 16], np.uint32)
_DQ_PROBS = np.array([0.15, 0.12, 0.2, 0.12, 0.08, 0.05, 0.05, 0.05, 0.06, 0.04, 0.04, 0.04])


@dataclass(frozen=True)
class SyntheticDataset:
    """Files written by :func:`~dask_resample.testing.synthetic.write_dataset` (or ``write_siaf_dataset``).

    Attributes
    ----------
    directory : Path
        Directory holding the exposures and the association.
    asn_path : Path
        Image3 association (JSON) listing all exposures as ``science`` members.
    paths : tuple of Path
        The exposure files, in association order (dither-major, then detector).
    group_ids : tuple of str
        Group id of each path; the detectors of one dither share a group id.
    """

    directory: Path
    asn_path: Path
    paths: tuple[Path, ...]
    group_ids: tuple[str, ...]


# --------------------------------------------------------------------------- orientation
def _rotation_matrix(roll_deg: float) -> np.ndarray:
    """PC matrix for ``roll_ref`` with ``v3yangle = 0`` and ``vparity = -1``.

    Identical to ``stcal.alignment.util.calc_rotation_matrix``, so a mosaic
    built with the default orientation is aligned with the detector axes.
    """
    r = math.radians(roll_deg)
    return np.array([[_VPARITY * math.cos(r), math.sin(r)], [-_VPARITY * math.sin(r), math.cos(r)]])


# --------------------------------------------------------------------------- sky
@dataclass(frozen=True)
class _Scene:
    """Gaussian sources in the tangent plane of the base pointing (arcsec)."""

    ra0: float
    dec0: float
    xi: np.ndarray
    eta: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    amp: np.ndarray
    sigma_major: np.ndarray
    sigma_minor: np.ndarray
    theta: np.ndarray


def _standard_coords(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic standard coordinates (xi East, eta North) in arcsec."""
    a, d = np.radians(ra), np.radians(dec)
    a0, d0 = math.radians(ra0), math.radians(dec0)
    cos_d, cos_da = np.cos(d), np.cos(a - a0)
    den = np.sin(d) * math.sin(d0) + cos_d * math.cos(d0) * cos_da
    xi = cos_d * np.sin(a - a0) / den
    eta = (np.sin(d) * math.cos(d0) - cos_d * math.sin(d0) * cos_da) / den
    return np.degrees(xi) * 3600.0, np.degrees(eta) * 3600.0


def _make_scene(
    rng: np.random.Generator,
    n_sources: int,
    half_extent: tuple[float, float],
    ra0: float,
    dec0: float,
    roll_deg: float,
    pixel_scale_arcsec: float,
) -> _Scene:
    """Draw point-like (70%) and extended (30%) sources over the field."""
    u = rng.uniform(-half_extent[0], half_extent[0], n_sources)
    v = rng.uniform(-half_extent[1], half_extent[1], n_sources)
    xi_deg, eta_deg = (_rotation_matrix(roll_deg) * (pixel_scale_arcsec / 3600.0)) @ np.vstack([u, v])
    point = rng.random(n_sources) < 0.7
    amp = np.where(point, 10 ** rng.uniform(np.log10(0.5), 1.0, n_sources), 10 ** rng.uniform(-1.0, 0.3, n_sources))
    sig_major = np.where(point, rng.uniform(0.028, 0.036, n_sources), rng.uniform(0.08, 0.4, n_sources))
    axis_ratio = np.where(point, 1.0, rng.uniform(0.4, 1.0, n_sources))
    theta = rng.uniform(0.0, np.pi, n_sources)
    to_sky = models.Pix2Sky_TAN() | models.RotateNative2Celestial(ra0, dec0, 180.0)
    ra, dec = to_sky(xi_deg, eta_deg)
    return _Scene(
        ra0=ra0,
        dec0=dec0,
        xi=xi_deg * 3600.0,
        eta=eta_deg * 3600.0,
        ra=np.atleast_1d(ra),
        dec=np.atleast_1d(dec),
        amp=amp,
        sigma_major=sig_major,
        sigma_minor=sig_major * axis_ratio,
        theta=theta,
    )


def _render(scene: _Scene, wcs: gwcs_wcs.WCS, shape: tuple[int, int], pixel_scale_arcsec: float) -> np.ndarray:
    """Evaluate the scene at the sky position of every pixel centre.

    Each source is evaluated only in a cutout of +/- 5 sigma around its
    position; all cutouts are transformed with a single WCS call.
    """
    ny, nx = shape
    image = np.zeros(ny * nx)
    if scene.amp.size == 0:
        return image.reshape(shape)
    xs, ys = wcs.invert(scene.ra, scene.dec, with_bounding_box=False)
    half = np.ceil(5.0 * scene.sigma_major / pixel_scale_arcsec).astype(int) + 1
    x0 = np.maximum(np.round(xs).astype(int) - half, 0)
    x1 = np.minimum(np.round(xs).astype(int) + half, nx - 1)
    y0 = np.maximum(np.round(ys).astype(int) - half, 0)
    y1 = np.minimum(np.round(ys).astype(int) + half, ny - 1)
    cols, rows, src = [], [], []
    for k in np.flatnonzero((x1 >= x0) & (y1 >= y0)):
        yy, xx = np.mgrid[y0[k] : y1[k] + 1, x0[k] : x1[k] + 1]
        cols.append(xx.ravel())
        rows.append(yy.ravel())
        src.append(np.full(xx.size, k))
    if not cols:
        return image.reshape(shape)
    col, row, idx = np.concatenate(cols), np.concatenate(rows), np.concatenate(src)
    ra, dec = wcs(col.astype(float), row.astype(float), with_bounding_box=False)
    xi, eta = _standard_coords(ra, dec, scene.ra0, scene.dec0)
    dxi, deta = xi - scene.xi[idx], eta - scene.eta[idx]
    c, s = np.cos(scene.theta[idx]), np.sin(scene.theta[idx])
    a, b = (dxi * c + deta * s) / scene.sigma_major[idx], (-dxi * s + deta * c) / scene.sigma_minor[idx]
    values = scene.amp[idx] * np.exp(-0.5 * (a * a + b * b))
    image += np.bincount(row * nx + col, weights=values, minlength=ny * nx)
    return image.reshape(shape)


def _dither_offsets(n: int, scale_arcsec: float, rng: np.random.Generator) -> np.ndarray:
    """Deterministic sub-pixel-phased dither pattern (R2 sequence + jitter), arcsec."""
    alpha = np.array([0.7548776662466927, 0.5698402909980532])
    k = np.arange(n)[:, None]
    offsets = 2.0 * scale_arcsec * (np.mod(0.5 + k * alpha, 1.0) - 0.5)
    jitter = rng.normal(0.0, 0.05 * scale_arcsec, (n, 2))
    jitter[0] = 0.0
    return offsets + jitter


def _exposure_arrays(
    rng: np.random.Generator,
    signal: np.ndarray,
    sky_level: float,
    dq_fraction: float,
    exposure_time: float,
) -> dict[str, np.ndarray]:
    """Noise, variances and DQ for one exposure (DO_NOT_USE pixels are NaN)."""
    ny, nx = signal.shape
    # read-noise variance: per-exposure level with a linear gradient
    level = (0.012 * rng.uniform(0.7, 1.5)) ** 2
    gx, gy = rng.uniform(-0.3, 0.3, 2)
    ramp_x = 1.0 + gx * (np.arange(nx) / max(nx - 1, 1) - 0.5)
    ramp_y = 1.0 + gy * (np.arange(ny) / max(ny - 1, 1) - 0.5)
    var_rnoise = level * np.outer(ramp_y, ramp_x)
    # photon noise from the source, the sky and the (already removed) background
    var_poisson = 2e-4 * (1000.0 / exposure_time) * (np.maximum(signal, 0.0) + sky_level + 0.25)
    var_flat = (0.005 * (np.maximum(signal, 0.0) + sky_level)) ** 2 + 1e-8
    variance = var_rnoise + var_poisson + var_flat
    data = signal + sky_level + rng.standard_normal(signal.shape) * np.sqrt(variance)
    dq = np.zeros(signal.shape, np.uint32)
    flagged = rng.random(signal.shape) < dq_fraction
    dq[flagged] = rng.choice(_DQ_VALUES, size=int(flagged.sum()), p=_DQ_PROBS / _DQ_PROBS.sum())
    arrays = {
        "data": data,
        "err": np.sqrt(variance),
        "var_rnoise": var_rnoise,
        "var_poisson": var_poisson,
        "var_flat": var_flat,
    }
    bad = (dq & 1).astype(bool)
    out = {}
    for name, arr in arrays.items():
        arr = arr.astype(np.float32)
        arr[bad] = np.nan
        out[name] = arr
    out["dq"] = dq
    return out


def add_cosmic_rays(arrays: dict[str, np.ndarray], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Add cosmic-ray hits to ``arrays["data"]`` in place (not to err or the variances, as in real data).

    A hit is a short track of 1 to 4 pixels in a random direction, each of
    10 to 300 times the pixel's error above the data; pixels already NaN stay NaN.

    Returns
    -------
    numpy.ndarray of bool
        The pixels hit.
    """
    data = arrays["data"]
    ny, nx = data.shape
    n = rng.binomial(ny * nx, fraction / 2.5)
    y = rng.integers(0, ny, n)
    x = rng.integers(0, nx, n)
    length = rng.integers(1, 5, n)
    dy, dx = rng.integers(-1, 2, (2, n))
    hit = np.zeros(data.shape, bool)
    amp = np.zeros(data.shape, np.float32)
    err = arrays.get("err")
    sigma = np.nan_to_num(err if err is not None else np.full(data.shape, 0.01, np.float32), nan=0.01)
    for step in range(4):
        on = length > step
        yy, xx = np.clip(y[on] + step * dy[on], 0, ny - 1), np.clip(x[on] + step * dx[on], 0, nx - 1)
        hit[yy, xx] = True
        amp[yy, xx] = np.maximum(amp[yy, xx], rng.uniform(10, 300, on.sum()).astype(np.float32) * sigma[yy, xx])
    data += amp
    return hit


# --------------------------------------------------------------------------- writers
def _group_id(exposure_number: int) -> str:
    """Group id as built by ``jwst.datamodels.utils.attrs_to_group_id``."""
    return f"{_VISIT_ID}_{exposure_number}"


def _write_association(directory: Path, names: list[str]) -> Path:
    """Write ``synthetic_asn.json`` (image3, product ``synthetic_mosaic``)."""
    asn_path = directory / "synthetic_asn.json"
    members = [(name, "science") for name in names]
    try:
        from jwst.associations.asn_from_list import asn_from_list
    except ImportError:  # jwst is an optional dependency
        asn = {
            "asn_type": "image3",
            "asn_rule": "DMS_Level3_Base",
            "program": _PROGRAM,
            "asn_id": "a3001",
            "target": "none",
            "asn_pool": "synthetic_pool",
            "products": [{"name": "synthetic_mosaic", "members": [{"expname": n, "exptype": t} for n, t in members]}],
        }
        asn_path.write_text(json.dumps(asn, indent=4))
        return asn_path
    asn = asn_from_list(members, product_name="synthetic_mosaic", with_exptype=True)
    asn["asn_type"] = "image3"
    asn["asn_pool"] = "synthetic_pool"
    asn["program"] = _PROGRAM
    _, serialized = asn.dump(format="json")
    asn_path.write_text(serialized)
    return asn_path


#: Calibration steps recorded as complete in the synthetic ``*_cal.fits`` files.
CAL_STEPS = ("assign_wcs", "flat_field", "photom", "jump", "ramp_fit", "dq_init", "saturation")


def _exposure_meta(d: int, start: float, duration: float, exposure_time: float, sky_level: float) -> dict:
    """Observation, exposure and background metadata of dither ``d`` (flattened datamodel paths)."""
    t_start = Time(start, format="mjd", scale="utc")
    return {
        "telescope": "JWST",
        "bunit_data": "MJy/sr",
        "bunit_err": "MJy/sr",
        "observation.date": t_start.isot[:10],
        "observation.time": t_start.isot[11:],
        "observation.program_number": _PROGRAM,
        "observation.observation_number": _OBSERVATION,
        "observation.visit_number": _VISIT,
        "observation.visit_group": _VISIT_GROUP,
        "observation.sequence_id": _SEQUENCE,
        "observation.activity_id": _ACTIVITY,
        "observation.exposure_number": str(d + 1),
        "exposure.exposure_time": exposure_time,
        "exposure.effective_exposure_time": exposure_time,
        "exposure.measurement_time": exposure_time * 0.95,
        "exposure.duration": duration,
        "exposure.start_time": start,
        "exposure.end_time": start + duration / 86400.0,
        "exposure.nints": 1,
        "background.level": float(sky_level) if sky_level > 0 else 0.0,
        "background.subtracted": not sky_level > 0,
    }
