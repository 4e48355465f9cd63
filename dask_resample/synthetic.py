"""Synthetic NIRCam-like dithered exposures for demos, tests and benchmarks.

The exposures mimic calibrated (``*_cal.fits``) JWST/NIRCam short-wavelength
images closely enough that :class:`jwst.resample.resample.ResampleImage`
accepts them:

* every detector carries a distorted :class:`gwcs.wcs.WCS`
  (``detector`` -> ``world``) with an accurate fitted inverse;
* the detectors of one exposure sit side by side (like NRCA1/NRCA2) and
  share one association group id;
* dithers move the whole pointing by a few arcsec;
* all exposures see the same sky (a fixed set of Gaussian sources), so the
  sources line up in the mosaic;
* DQ flags, variance arrays and metadata follow the JWST conventions.

Files are written either as ``stdatamodels`` ``ImageModel`` files
(``fmt="jwst"``) or as plain multi-extension FITS files with a SIP WCS
(``fmt="fits"``), together with an image3 association.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import coordinates as coord
from astropy.io import fits
from astropy.modeling import fitting, models
from astropy.time import Time
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs
from stcal.alignment.util import compute_s_region_keyword

__all__ = ["DETECTOR_NAMES", "SyntheticDataset", "make_detector_wcs", "write_dataset", "write_siaf_dataset"]

#: Detector names used for the detectors of one exposure, in order.
DETECTOR_NAMES = ("NRCA1", "NRCA2", "NRCA3", "NRCA4", "NRCB1", "NRCB2", "NRCB3", "NRCB4")

# Observation identifiers shared by all exposures (see ``_group_id``).
_PROGRAM, _OBSERVATION, _VISIT = "01234", "001", "001"
_VISIT_GROUP, _SEQUENCE, _ACTIVITY = "02", "1", "01"
_VISIT_ID = f"jw{_PROGRAM}{_OBSERVATION}{_VISIT}_{_VISIT_GROUP}{_SEQUENCE}{_ACTIVITY}"
# Nominal V2/V3 (arcsec) of the centre of the detector row.
_V2_CENTER, _V3_CENTER = 86.0, -493.0
_VPARITY, _V3YANGLE = -1, 0.0
_MJD_START = 60310.0
_ARCSEC2_TO_SR = (math.pi / 180.0 / 3600.0) ** 2
# DQ values drawn for flagged pixels (single flags and typical combinations).
_DQ_VALUES = np.array([1, 2, 4, 1 | 2, 1 | 4, 2 | 4, 1 | 1024, 1 | 2048, 4096, 8192, 16, 4 | 16], np.uint32)
_DQ_PROBS = np.array([0.15, 0.12, 0.2, 0.12, 0.08, 0.05, 0.05, 0.05, 0.06, 0.04, 0.04, 0.04])
# Relative distortion pattern: (i, j) -> coefficient of u**i * v**j.
_DIST_X = {(2, 0): 0.8, (1, 1): 0.5, (0, 2): -0.3, (3, 0): 0.5, (2, 1): -0.2, (1, 2): 0.4, (0, 3): 0.1}
_DIST_Y = {(2, 0): -0.4, (1, 1): 0.6, (0, 2): 0.7, (3, 0): -0.1, (2, 1): 0.5, (1, 2): -0.3, (0, 3): 0.6}
_INVERSE_DEGREES = (5, 7, 9, 11)
_INVERSE_TOLERANCE = 2e-5  # pixel


@dataclass(frozen=True)
class SyntheticDataset:
    """Files written by :func:`write_dataset`.

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


# --------------------------------------------------------------------------- WCS
def _rotation_matrix(roll_deg: float) -> np.ndarray:
    """PC matrix for ``roll_ref`` with ``v3yangle = 0`` and ``vparity = -1``.

    Identical to ``stcal.alignment.util.calc_rotation_matrix``, so a mosaic
    built with the default orientation is aligned with the detector axes.
    """
    r = math.radians(roll_deg)
    return np.array([[_VPARITY * math.cos(r), math.sin(r)], [-_VPARITY * math.sin(r), math.cos(r)]])


@functools.lru_cache(maxsize=32)
def _distortion_coefficients(half: float, distortion: float) -> tuple[dict, dict, dict, dict, int]:
    """Forward and fitted inverse polynomial coefficients in normalised units.

    Coordinates are normalised by ``half`` (half the detector size), which
    keeps the inverse fit well conditioned for any detector size.  The
    inverse uses the lowest degree in ``_INVERSE_DEGREES`` that reproduces
    the forward transform to ``_INVERSE_TOLERANCE`` pixel.  Quadratic
    terms have amplitude ``distortion`` (pixel**-1) and cubic terms
    ``distortion * 1e-3`` (pixel**-2) in pixel units.
    """
    fwd = []
    for pattern, linear in ((_DIST_X, (1, 0)), (_DIST_Y, (0, 1))):
        coeffs = {f"c{linear[0]}_{linear[1]}": 1.0}
        for (i, j), c in pattern.items():
            amp = distortion if i + j == 2 else distortion * 1e-3
            coeffs[f"c{i}_{j}"] = c * amp * half ** (i + j - 1)
        fwd.append(coeffs)
    px, py = models.Polynomial2D(3, **fwd[0]), models.Polynomial2D(3, **fwd[1])
    # fit on a grid reaching 15% of the detector size beyond its edges
    grid = np.linspace(-1.3, 1.3, 81)
    gx, gy = np.meshgrid(grid, grid)
    dx, dy = px(gx, gy), py(gx, gy)
    fitter = fitting.LinearLSQFitter()
    for degree in _INVERSE_DEGREES:
        fits_xy = [fitter(models.Polynomial2D(degree), dx, dy, target) for target in (gx, gy)]
        error = half * np.max(np.hypot(fits_xy[0](dx, dy) - gx, fits_xy[1](dx, dy) - gy))
        if error < _INVERSE_TOLERANCE:
            break
    else:
        raise ValueError(
            f"distortion={distortion:g} is too large for a {2 * half:g}-pixel detector "
            f"(inverse polynomial error {error:.2g} pixel)"
        )
    inv = [dict(zip(f.param_names, (float(v) for v in f.parameters), strict=True)) for f in fits_xy]
    return fwd[0], fwd[1], inv[0], inv[1], degree


def _distortion_model(shape: tuple[int, int], distortion: float) -> models.Model:
    """Centred detector pixels -> undistorted ideal pixels, with inverse."""
    half = max(shape) / 2.0
    if distortion == 0:
        return models.Identity(2, name="distortion")
    fx, fy, ix, iy, degree = _distortion_coefficients(float(half), float(distortion))
    to_norm = models.Scale(1.0 / half) & models.Scale(1.0 / half)
    from_norm = models.Scale(half) & models.Scale(half)
    fwd = models.Mapping((0, 1, 0, 1)) | (models.Polynomial2D(3, **fx) & models.Polynomial2D(3, **fy))
    inv = models.Mapping((0, 1, 0, 1)) | (models.Polynomial2D(degree, **ix) & models.Polynomial2D(degree, **iy))
    fwd.inverse = inv
    model = to_norm | fwd | from_norm
    model.name = "distortion"
    return model


def _ideal_to_sky(ra_deg: float, dec_deg: float, roll_deg: float, pixel_scale_arcsec: float) -> models.Model:
    """Ideal pixel offsets from the pointing -> (RA, Dec) with a TAN projection."""
    matrix = _rotation_matrix(roll_deg) * (pixel_scale_arcsec / 3600.0)
    return (
        models.AffineTransformation2D(matrix, translation=[0.0, 0.0])
        | models.Pix2Sky_TAN()
        | models.RotateNative2Celestial(ra_deg, dec_deg, 180.0)
    )


def make_detector_wcs(
    ra_deg: float,
    dec_deg: float,
    *,
    roll_deg: float = 0.0,
    shape: tuple[int, int] = (256, 256),
    pixel_scale_arcsec: float = 0.031,
    distortion: float = 1e-6,
    offset_pixels: tuple[float, float] = (0.0, 0.0),
) -> gwcs_wcs.WCS:
    """Build a distorted imaging WCS for one detector.

    The forward transform is: shift to the detector centre, polynomial
    distortion (2nd and 3rd order), shift by ``offset_pixels`` in the
    undistorted (ideal) frame, rotation/scale, gnomonic (TAN) projection
    and rotation to the sky at the pointing ``(ra_deg, dec_deg)``.

    Parameters
    ----------
    ra_deg, dec_deg : float
        Pointing (tangent point of the projection) in degrees.
    roll_deg : float, optional
        Roll (``roll_ref``) in degrees; with ``v3yangle = 0`` and
        ``vparity = -1`` the detector +y axis points at position angle
        ``roll_deg`` (East of North).
    shape : tuple of int, optional
        Detector shape ``(ny, nx)``.
    pixel_scale_arcsec : float, optional
        Undistorted pixel scale in arcsec.
    distortion : float, optional
        Amplitude of the quadratic distortion terms in pixel**-1 (cubic terms
        are ``distortion * 1e-3`` pixel**-2).  ``1e-6`` gives about one pixel
        of distortion at the corners of a 2048x2048 detector; ``0`` disables
        the distortion.  Values far beyond ~1e-5 (for 2048 pixels) raise
        `ValueError` because the inverse can no longer be fitted accurately.
    offset_pixels : tuple of float, optional
        Position ``(x, y)`` of the detector centre relative to the pointing,
        in ideal pixels.

    Returns
    -------
    gwcs.wcs.WCS
        WCS with frames ``detector`` and ``world`` (ICRS), a bounding box,
        ``pixel_shape``/``array_shape`` and an inverse accurate to better
        than 1e-4 pixel.
    """
    ny, nx = (int(s) for s in shape)
    center = (models.Shift(-(nx - 1) / 2.0) & models.Shift(-(ny - 1) / 2.0)) | _distortion_model((ny, nx), distortion)
    offset = models.Shift(float(offset_pixels[0])) & models.Shift(float(offset_pixels[1]))
    transform = center | offset | _ideal_to_sky(ra_deg, dec_deg, roll_deg, pixel_scale_arcsec)
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), axes_names=("x", "y"), unit=("pix", "pix"))
    world = cf.CelestialFrame(
        reference_frame=coord.ICRS(), name="world", axes_names=("lon", "lat"), unit=("deg", "deg")
    )
    wcs = gwcs_wcs.WCS([(detector, transform), (world, None)])
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.pixel_shape = (nx, ny)
    wcs.array_shape = (ny, nx)
    return wcs


def _sip_header(wcs: gwcs_wcs.WCS) -> fits.Header:
    """FITS TAN-SIP approximation of ``wcs`` (cubic forward, fitted inverse)."""
    return wcs.to_fits_sip(degree=3, max_inv_pix_error=0.01, inv_degree=range(3, 7))


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


def _write_jwst(path: Path, arrays: dict, wcs: gwcs_wcs.WCS, sip: fits.Header, meta: dict) -> None:
    from stdatamodels.jwst.datamodels import ImageModel

    with ImageModel(arrays["data"]) as model:
        for name in ("dq", "err", "var_rnoise", "var_poisson", "var_flat"):
            setattr(model, name, arrays[name])
        for key, value in meta.items():
            node = model.meta
            *parents, leaf = key.split(".")
            for p in parents:
                node = getattr(node, p)
            setattr(node, leaf, value)
        model.meta.wcs = wcs
        wcsinfo = model.meta.wcsinfo.instance
        wcsinfo.update({k.lower(): v for k, v in sip.items() if not k.startswith("NAXIS") and k != "MJDREF"})
        model.save(path)


# (FITS keyword, key of the ``meta`` dictionary built in ``write_dataset``)
_PRIMARY_KEYWORDS = (
    ("TELESCOP", "telescope"), ("INSTRUME", "instrument.name"), ("DETECTOR", "instrument.detector"),
    ("MODULE", "instrument.module"), ("CHANNEL", "instrument.channel"), ("FILTER", "instrument.filter"),
    ("PUPIL", "instrument.pupil"), ("EXP_TYPE", "exposure.type"), ("FILENAME", "filename"),
    ("DATE-OBS", "observation.date"), ("TIME-OBS", "observation.time"),
    ("EXPTIME", "exposure.exposure_time"), ("XPOSURE", "exposure.exposure_time"),
    ("EFFEXPTM", "exposure.effective_exposure_time"), ("TMEASURE", "exposure.measurement_time"),
    ("EXPSTART", "exposure.start_time"), ("EXPEND", "exposure.end_time"), ("DURATION", "exposure.duration"),
    ("BKGLEVEL", "background.level"), ("BKGSUB", "background.subtracted"),
    ("PROGRAM", "observation.program_number"), ("OBSERVTN", "observation.observation_number"),
    ("VISIT", "observation.visit_number"), ("VISITGRP", "observation.visit_group"),
    ("SEQ_ID", "observation.sequence_id"), ("ACT_ID", "observation.activity_id"),
    ("EXPOSURE", "observation.exposure_number"),
)  # fmt: skip
_SCI_KEYWORDS = (
    ("BUNIT", "bunit_data"), ("S_REGION", "wcsinfo.s_region"), ("RA_REF", "wcsinfo.ra_ref"),
    ("DEC_REF", "wcsinfo.dec_ref"), ("ROLL_REF", "wcsinfo.roll_ref"), ("V2_REF", "wcsinfo.v2_ref"),
    ("V3_REF", "wcsinfo.v3_ref"), ("V3I_YANG", "wcsinfo.v3yangle"), ("VPARITY", "wcsinfo.vparity"),
    ("PIXAR_SR", "photometry.pixelarea_steradians"), ("PIXAR_A2", "photometry.pixelarea_arcsecsq"),
)  # fmt: skip


def _write_fits(path: Path, arrays: dict, sip: fits.Header, meta: dict) -> None:
    primary = fits.Header([(key, meta[name]) for key, name in _PRIMARY_KEYWORDS])
    sci = fits.Header([(key, meta[name]) for key, name in _SCI_KEYWORDS])
    sci.update({k: v for k, v in sip.items() if not k.startswith("NAXIS")})
    err = fits.Header([("BUNIT", "MJy/sr")])
    var = fits.Header([("BUNIT", "(MJy/sr)^2")])
    hdus = [fits.PrimaryHDU(header=primary), fits.ImageHDU(arrays["data"], sci, name="SCI")]
    hdus.append(fits.ImageHDU(arrays["err"], err, name="ERR"))
    hdus.append(fits.ImageHDU(arrays["dq"], name="DQ"))
    for name in ("var_rnoise", "var_poisson", "var_flat"):
        hdus.append(fits.ImageHDU(arrays[name], var, name=name.upper()))
    fits.HDUList(hdus).writeto(path, overwrite=True)


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
            "products": [
                {"name": "synthetic_mosaic", "members": [{"expname": n, "exptype": t} for n, t in members]}
            ],
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


def write_dataset(
    directory: str | Path,
    *,
    n_dithers: int = 4,
    n_detectors: int = 2,
    shape: tuple[int, int] = (256, 256),
    pixel_scale_arcsec: float = 0.031,
    ra_deg: float = 53.16,
    dec_deg: float = -27.78,
    roll_deg: float = 20.0,
    dither_arcsec: float = 1.5,
    n_sources: int = 60,
    sky_level: float = 0.0,
    dq_fraction: float = 0.01,
    fmt: str = "jwst",
    seed: int = 0,
    exposure_time: float = 1000.0,
    distortion: float = 1e-6,
    cosmic_rays: float = 0.0,
) -> SyntheticDataset:
    """Write a dithered NIRCam-like dataset and its image3 association.

    Parameters
    ----------
    directory : str or Path
        Output directory (created if needed).
    n_dithers : int, optional
        Number of dither positions (exposures); each is one group.
    n_detectors : int, optional
        Detectors per exposure (1-8), placed side by side along x with a gap
        of ``nx // 16`` pixels (named NRCA1..NRCA4, NRCB1..NRCB4).
    shape : tuple of int, optional
        Detector shape ``(ny, nx)``.
    pixel_scale_arcsec : float, optional
        Detector pixel scale in arcsec.
    ra_deg, dec_deg, roll_deg : float, optional
        Base pointing and roll (``roll_ref``) in degrees.
    dither_arcsec : float, optional
        Dither offsets lie within +/- ``dither_arcsec`` of the base pointing.
    n_sources : int, optional
        Number of Gaussian sources in the scene (about 70% point-like).
    sky_level : float, optional
        Constant sky added to the data (MJy/sr).  When positive, the files
        record ``background.level = sky_level`` and ``subtracted = False``
        so the resampler removes it; otherwise ``level = 0`` and
        ``subtracted = True``.
    dq_fraction : float, optional
        Fraction of pixels with non-zero DQ.  Pixels flagged DO_NOT_USE have
        NaN data, error and variances, as in calibrated JWST files.
    fmt : {"jwst", "fits"}, optional
        ``"jwst"`` writes ``ImageModel`` files ``*_cal.fits`` with a gwcs;
        ``"fits"`` writes plain FITS files ``*.fits`` with a TAN-SIP WCS.
    seed : int, optional
        Seed for the scene, the dither jitter and the per-exposure noise.
    exposure_time : float, optional
        Exposure time in seconds (scales the Poisson variance).
    distortion : float, optional
        Distortion amplitude, see :func:`make_detector_wcs`.
    cosmic_rays : float, optional
        Fraction of each exposure's pixels hit by a cosmic ray (see
        :func:`add_cosmic_rays`); 0 for none.

    Returns
    -------
    SyntheticDataset
        Paths of the association and of the exposures with their group ids.
    """
    if fmt not in ("jwst", "fits"):
        raise ValueError(f"fmt must be 'jwst' or 'fits', got {fmt!r}")
    if not 1 <= n_detectors <= len(DETECTOR_NAMES):
        raise ValueError(f"n_detectors must be between 1 and {len(DETECTOR_NAMES)}")
    if n_dithers < 1:
        raise ValueError("n_dithers must be at least 1")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ny, nx = (int(s) for s in shape)

    rng = np.random.default_rng([seed, 0])
    dithers = _dither_offsets(n_dithers, dither_arcsec, rng)
    gap = max(nx // 16, 4)
    det_x = (np.arange(n_detectors) - (n_detectors - 1) / 2.0) * (nx + gap)
    dither_pix = dithers / pixel_scale_arcsec
    half_extent = (
        (n_detectors * nx + (n_detectors - 1) * gap) / 2.0 + np.abs(dither_pix[:, 0]).max() + 0.05 * nx,
        ny / 2.0 + np.abs(dither_pix[:, 1]).max() + 0.05 * ny,
    )
    scene = _make_scene(rng, n_sources, half_extent, ra_deg, dec_deg, roll_deg, pixel_scale_arcsec)
    base = _ideal_to_sky(ra_deg, dec_deg, roll_deg, pixel_scale_arcsec)

    pixel_area_a2 = pixel_scale_arcsec**2
    duration = exposure_time * 1.02 + 10.0
    paths: list[Path] = []
    group_ids: list[str] = []
    for d in range(n_dithers):
        ra_p, dec_p = (float(v) for v in base(*dither_pix[d]))
        start = _MJD_START + d * (duration + 60.0) / 86400.0
        for j in range(n_detectors):
            k = d * n_detectors + j
            detector = DETECTOR_NAMES[j]
            wcs = make_detector_wcs(
                ra_p,
                dec_p,
                roll_deg=roll_deg,
                shape=(ny, nx),
                pixel_scale_arcsec=pixel_scale_arcsec,
                distortion=distortion,
                offset_pixels=(float(det_x[j]), 0.0),
            )
            signal = _render(scene, wcs, (ny, nx), pixel_scale_arcsec)
            arrays = _exposure_arrays(
                np.random.default_rng([seed, 1, k]), signal, sky_level, dq_fraction, exposure_time
            )
            if cosmic_rays > 0:
                add_cosmic_rays(arrays, cosmic_rays, np.random.default_rng([seed, 2, k]))
            ra_ref, dec_ref = (float(v) for v in wcs((nx - 1) / 2.0, (ny - 1) / 2.0))
            s_region = compute_s_region_keyword(wcs.footprint())
            name = f"{_VISIT_ID}_{d + 1:05d}_{detector.lower()}"
            path = directory / (f"{name}_cal.fits" if fmt == "jwst" else f"{name}.fits")
            meta = {
                "filename": path.name,
                "instrument.name": "NIRCAM",
                "instrument.detector": detector,
                "instrument.channel": "SHORT",
                "instrument.module": detector[3],
                "instrument.filter": "F200W",
                "instrument.pupil": "CLEAR",
                **_exposure_meta(d, start, duration, exposure_time, sky_level),
                "exposure.type": "NRC_IMAGE",
                "subarray.name": "FULL" if (ny, nx) == (2048, 2048) else "GENERIC",
                "subarray.xstart": 1,
                "subarray.ystart": 1,
                "subarray.xsize": nx,
                "subarray.ysize": ny,
                "wcsinfo.ra_ref": ra_ref,
                "wcsinfo.dec_ref": dec_ref,
                "wcsinfo.roll_ref": float(roll_deg),
                "wcsinfo.v2_ref": _V2_CENTER + _VPARITY * float(det_x[j]) * pixel_scale_arcsec,
                "wcsinfo.v3_ref": _V3_CENTER,
                "wcsinfo.v3yangle": _V3YANGLE,
                "wcsinfo.vparity": _VPARITY,
                "wcsinfo.s_region": s_region,
                "photometry.pixelarea_arcsecsq": pixel_area_a2,
                "photometry.pixelarea_steradians": pixel_area_a2 * _ARCSEC2_TO_SR,
            }
            sip = _sip_header(wcs)
            if fmt == "jwst":
                meta.update({f"cal_step.{step}": "COMPLETE" for step in CAL_STEPS})
                _write_jwst(path, arrays, wcs, sip, meta)
            else:
                _write_fits(path, arrays, sip, meta)
            paths.append(path)
            group_ids.append(_group_id(d + 1))

    asn_path = _write_association(directory, [p.name for p in paths])
    return SyntheticDataset(directory=directory, asn_path=asn_path, paths=tuple(paths), group_ids=tuple(group_ids))


def write_siaf_dataset(directory: str | Path, **kwargs) -> SyntheticDataset:
    """Write exposures whose WCS ``jwst.assign_wcs`` builds from SIAF distortion (NIRCam, MIRI).

    See :func:`dask_resample.synthetic_siaf.write_siaf_dataset` for the
    parameters; needs ``jwst`` and ``pysiaf`` (the ``test`` extra).
    """
    from .synthetic_siaf import write_siaf_dataset as _write_siaf_dataset

    return _write_siaf_dataset(directory, **kwargs)
