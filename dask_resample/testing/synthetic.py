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

The sky, arrays and metadata are those of :mod:`.synthetic_scene`, shared with
:mod:`.synthetic_siaf` (exposures with SIAF distortion, whose
:func:`~dask_resample.testing.synthetic_siaf.write_siaf_dataset` is importable from here too).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from astropy import coordinates as coord
from astropy.io import fits
from astropy.modeling import fitting, models
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs
from stcal.alignment.util import compute_s_region_keyword

from .synthetic_scene import (
    _ARCSEC2_TO_SR,
    _MJD_START,
    _V3YANGLE,
    _VISIT_ID,
    _VPARITY,
    CAL_STEPS,
    SyntheticDataset,
    _dither_offsets,
    _exposure_arrays,
    _exposure_meta,
    _group_id,
    _make_scene,
    _render,
    _rotation_matrix,
    _write_association,
    add_cosmic_rays,
)
from .synthetic_siaf import write_siaf_dataset

__all__ = [
    "DETECTOR_NAMES",
    "SyntheticDataset",
    "add_cosmic_rays",
    "make_detector_wcs",
    "write_dataset",
    "write_siaf_dataset",
]


#: Detector names used for the detectors of one exposure, in order.
DETECTOR_NAMES = ("NRCA1", "NRCA2", "NRCA3", "NRCA4", "NRCB1", "NRCB2", "NRCB3", "NRCB4")

# Nominal V2/V3 (arcsec) of the centre of the detector row.
_V2_CENTER, _V3_CENTER = 86.0, -493.0
# Relative distortion pattern: (i, j) -> coefficient of u**i * v**j.
_DIST_X = {(2, 0): 0.8, (1, 1): 0.5, (0, 2): -0.3, (3, 0): 0.5, (2, 1): -0.2, (1, 2): 0.4, (0, 3): 0.1}
_DIST_Y = {(2, 0): -0.4, (1, 1): 0.6, (0, 2): 0.7, (3, 0): -0.1, (2, 1): 0.5, (1, 2): -0.3, (0, 3): 0.6}
_INVERSE_DEGREES = (5, 7, 9, 11)
_INVERSE_TOLERANCE = 2e-5  # pixel


# --------------------------------------------------------------------------- WCS
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
