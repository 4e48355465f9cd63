"""Synthetic Roman WFI Level-2 images (``WfiImage`` ASDF files) with Roman's real focal-plane geometry.

Needs the ``roman`` extra and romanisim (a test dependency). Each detector's
WCS is romanisim's (``romanisim.models.wcs.get_wcs`` with ``usecrds=False``:
galsim's Roman model, the WFI detector layout and its SIP distortion
polynomials at a boresight, a position angle and a date), as a gwcs
(``wcs_from_fits_header``); no CRDS access is needed.

The arrays are small, for speed, with a WCS that stays the detector's own:

* a *sub-array* (``origin``): pixel ``(i, j)`` of the image is pixel
  ``(x0 + i, y0 + j)`` of the detector, at the native 0.11"/px and with the
  local distortion there;
* a *binned* detector (``binning=b``): pixel ``(i, j)`` is the centre of the
  ``b x b`` block of detector pixels it stands for, so a 4088/b square image
  covers the whole detector: all 18 detectors keep the focal plane's layout,
  gaps and distortion at an output grid small enough for a test.

Arrays follow the ``WfiImage`` schema types: ``data`` float32, ``dq`` uint32,
``err``, ``var_poisson``, ``var_rnoise`` and ``var_flat`` float16 (``var_rnoise``
may be left out, as romancal allows, to be rebuilt from ``err``).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RomanDataset", "detector_wcs", "make_image_model", "write_roman_dataset"]

#: Detector size of the WFI (pixels).
DETECTOR_PIXELS = 4088
#: Native pixel scale (arcsec).
PIXEL_SCALE_ARCSEC = 0.11
_ARCSEC2_TO_SR = (math.pi / 180.0 / 3600.0) ** 2
_DATE = "2027-06-01T00:00:00"
#: Roman DQ values drawn for flagged pixels (DO_NOT_USE, SATURATED, JUMP_DET, OUTLIER, combinations).
_DQ_VALUES = np.array([1, 2, 4, 1 | 2, 1 | 4, 128, 1 | 512, 4096], np.uint32)


@dataclass(frozen=True)
class RomanDataset:
    """Files written by :func:`write_roman_dataset`.

    Attributes
    ----------
    directory : Path
    asn_path : Path
        Association listing every image as a ``science`` member.
    paths : tuple of Path
        The images, exposure-major then detector.
    group_ids : tuple of str
        Group id of each image (the detectors of one exposure share one).
    """

    directory: Path
    asn_path: Path
    paths: tuple[Path, ...]
    group_ids: tuple[str, ...]


def detector_wcs(
    ra: float,
    dec: float,
    pa_deg: float,
    sca: int,
    shape_yx: tuple[int, int],
    *,
    origin: tuple[float, float] = (0.0, 0.0),
    binning: int = 1,
) -> Any:
    """The gwcs of (part of) WFI detector ``sca`` with the boresight at ``(ra, dec)`` and position angle ``pa_deg``.

    Parameters
    ----------
    ra, dec, pa_deg : float
        Boresight and position angle (degrees).
    sca : int
        Detector, 1 to 18.
    shape_yx : (int, int)
        Image shape.
    origin : (float, float)
        Detector pixel ``(x, y)`` of the image's first pixel block.
    binning : int
        Detector pixels per image pixel along each axis.

    Returns
    -------
    gwcs.wcs.WCS
        With its bounding box on the image.
    """
    import astropy.time
    import galsim
    from astropy.modeling import models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from romanisim.models.wcs_utils import getWCS

        wcs_dict = getWCS(
            world_pos=galsim.CelestialCoord(ra * galsim.degrees, dec * galsim.degrees),
            SCAs=[sca],
            date=astropy.time.Time(_DATE).datetime,
            PA=pa_deg * galsim.degrees,
        )
    b = float(binning)
    centre = (b - 1.0) / 2.0
    to_detector = (models.Scale(b) | models.Shift(origin[0] + centre)) & (
        models.Scale(b) | models.Shift(origin[1] + centre)
    )
    return _sip_gwcs(wcs_dict[sca].header.header, to_detector, shape_yx)


#: Degree of the fitted inverse of the distortion polynomials.
_INVERSE_DEGREE = 6


def _sip_gwcs(header: Any, prefix: Any, shape_yx: tuple[int, int]) -> Any:
    """The gwcs of a TAN-SIP header, as ``romanisim.models.wcs.wcs_from_fits_header`` builds it, with an inverse.

    The distortion polynomials get a fitted inverse polynomial (over the whole
    detector), so that the WCS can be inverted as a Roman Level-2 WCS can.
    ``prefix`` maps image pixels to detector pixels.
    """
    from astropy import coordinates
    from astropy import units as u
    from astropy import wcs as fits_wcs
    from astropy.modeling import fitting, models
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gwcs_wcs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = fits_wcs.WCS(header)
    x0, y0 = w.wcs.crpix
    cd = w.wcs.piximg_matrix
    cfx, cfy = np.dot(cd, [w.sip.a.ravel(), w.sip.b.ravel()])
    a, b = np.reshape(cfx, w.sip.a.shape), np.reshape(cfy, w.sip.b.shape)
    a[1, 0], a[0, 1], b[1, 0], b[0, 1] = cd[0, 0], cd[0, 1], cd[1, 0], cd[1, 1]

    def poly(mat: np.ndarray, degree: int) -> Any:
        p = models.Polynomial2D(degree=degree)
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                if 0 < i + j <= degree:
                    setattr(p, f"c{i}_{j}", mat[i, j])
        return p

    distortion = models.Mapping((0, 1, 0, 1)) | (poly(a, w.sip.a_order) & poly(b, w.sip.b_order))
    grid = np.linspace(-0.55 * DETECTOR_PIXELS, 0.55 * DETECTOR_PIXELS, 64)
    uu, vv = np.meshgrid(grid, grid)
    xi, eta = distortion(uu, vv)
    scale = math.sqrt(abs(np.linalg.det(cd)))
    fitter = fitting.LinearLSQFitter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "poorly conditioned": the inverse is checked to 0.01 pixel below
        inv_x = fitter(models.Polynomial2D(_INVERSE_DEGREE), xi / scale, eta / scale, uu)
        inv_y = fitter(models.Polynomial2D(_INVERSE_DEGREE), xi / scale, eta / scale, vv)
    residual = max(
        float(np.max(np.abs(inv_x(xi / scale, eta / scale) - uu))),
        float(np.max(np.abs(inv_y(xi / scale, eta / scale) - vv))),
    )
    if residual > 1e-2:  # the inverse places the fiducial (compute_scale) and nothing else
        raise ValueError(f"detector WCS: the fitted inverse distortion is off by {residual:.2g} pixel")
    distortion.inverse = (
        (models.Scale(1.0 / scale) & models.Scale(1.0 / scale)) | models.Mapping((0, 1, 0, 1)) | (inv_x & inv_y)
    )
    det2sky = (
        prefix
        | (models.Shift(-x0) & models.Shift(-y0))
        | distortion
        | models.Pix2Sky_TAN()
        | models.RotateNative2Celestial(*w.wcs.crval, 180.0)
    )
    detector = cf.Frame2D(name="detector", axes_names=("x", "y"), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(reference_frame=coordinates.ICRS(), name="world", unit=(u.deg, u.deg))
    wcs = gwcs_wcs.WCS([(detector, det2sky), (sky, None)])
    ny, nx = shape_yx
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.array_shape = (ny, nx)
    return wcs


def _render(sources: np.ndarray, ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    """Gaussian sources (rows of ra, dec, amplitude, sigma in arcsec) at the pixels' sky positions."""
    cosd = math.cos(math.radians(dec0))
    image = np.zeros(ra.shape)
    x = (ra - ra0) * cosd * 3600.0
    y = (dec - dec0) * 3600.0
    for sra, sdec, amp, sigma in sources:
        sx, sy = (sra - ra0) * cosd * 3600.0, (sdec - dec0) * 3600.0
        r2 = (x - sx) ** 2 + (y - sy) ** 2
        near = r2 < (6.0 * sigma) ** 2
        image[near] += amp * np.exp(-0.5 * r2[near] / sigma**2)
    return image


def make_image_model(
    wcs: Any,
    shape_yx: tuple[int, int],
    *,
    rng: np.random.Generator,
    sources: np.ndarray,
    centre: tuple[float, float],
    pixel_scale_arcsec: float,
    exposure_time: float = 139.8,
    sky_level: float = 0.3,
    subtracted: bool = False,
    with_var_rnoise: bool = True,
    with_var_flat: bool = True,
    dq_fraction: float = 0.03,
    group_id: str | None = None,
    observation_id: str = "r0000101001001001001",
    filename: str = "image_cal.asdf",
    start_mjd: float = 61557.0,
    sca: int = 1,
    ra_dec_pa: tuple[float, float, float] = (0, 0, 0),
) -> Any:
    """A Roman ``ImageModel`` with the arrays, WCS and metadata romancal's resampling reads.

    Returns
    -------
    roman_datamodels.datamodels.ImageModel
    """
    import astropy.time
    from roman_datamodels import datamodels as rdm
    from stcal.alignment.util import compute_s_region_keyword

    ny, nx = shape_yx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = rdm.ImageModel.create_fake_data(shape=shape_yx)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    ra, dec = wcs(xx, yy, with_bounding_box=False)
    signal = _render(sources, np.asarray(ra), np.asarray(dec), *centre)
    level = (0.02 * rng.uniform(0.7, 1.5)) ** 2
    ramp = 1.0 + rng.uniform(-0.3, 0.3) * (xx / max(nx - 1, 1) - 0.5)
    var_rnoise = level * ramp
    var_poisson = 3e-3 * (100.0 / exposure_time) * (np.maximum(signal, 0.0) + sky_level)
    var_flat = (0.004 * (np.maximum(signal, 0.0) + sky_level)) ** 2 + 1e-7
    variance = var_rnoise + var_poisson + var_flat
    data = signal + sky_level + rng.standard_normal(shape_yx) * np.sqrt(variance)
    if subtracted:
        data -= sky_level
    dq = np.zeros(shape_yx, np.uint32)
    flagged = rng.random(shape_yx) < dq_fraction
    dq[flagged] = rng.choice(_DQ_VALUES, size=int(flagged.sum()))
    bad = (dq & 1).astype(bool)
    data = data.astype(np.float32)
    data[bad] = np.nan
    model.data = data
    model.dq = dq
    model.err = np.sqrt(variance).astype(np.float16)
    model.var_poisson = var_poisson.astype(np.float16)
    if with_var_rnoise:
        model.var_rnoise = var_rnoise.astype(np.float16)
    if with_var_flat:
        model.var_flat = var_flat.astype(np.float16)

    meta = model.meta
    meta.filename = filename
    meta.wcs = wcs
    ra0, dec0, pa = ra_dec_pa
    meta.instrument.detector = f"WFI{sca:02d}"
    meta.wcsinfo.aperture_name = f"WFI{sca:02d}_FULL"
    meta.wcsinfo.ra_ref, meta.wcsinfo.dec_ref = (float(v) for v in wcs(nx / 2.0 - 0.5, ny / 2.0 - 0.5))
    meta.wcsinfo.roll_ref = float(pa)
    meta.wcsinfo.v2_ref, meta.wcsinfo.v3_ref = 0.0, 0.0
    meta.wcsinfo.v3yangle, meta.wcsinfo.vparity = -60.0, -1
    meta.wcsinfo.s_region = compute_s_region_keyword(wcs.footprint())
    start = astropy.time.Time(start_mjd, format="mjd", scale="utc")
    meta.exposure.start_time = start
    meta.exposure.end_time = astropy.time.Time(start_mjd + exposure_time / 86400.0, format="mjd", scale="utc")
    meta.exposure.exposure_time = exposure_time
    meta.exposure.effective_exposure_time = exposure_time * 0.96
    meta.photometry.pixel_area = float(pixel_scale_arcsec**2 * _ARCSEC2_TO_SR)
    meta["background"] = {"level": float(sky_level), "method": "local", "subtracted": bool(subtracted)}
    meta.observation.observation_id = observation_id
    if group_id is not None:
        meta["group_id"] = group_id
    return model


def write_roman_dataset(
    directory: str | Path,
    *,
    n_exposures: int = 2,
    detectors: tuple[int, ...] = (1,),
    shape: tuple[int, int] = (48, 48),
    binning: int = 1,
    origin: tuple[float, float] | None = None,
    ra: float = 270.0,
    dec: float = 66.0,
    pa_deg: float = 30.0,
    dither_arcsec: float = 1.3,
    seed: int = 0,
    n_sources: int = 40,
    with_var_rnoise: bool = True,
    with_var_flat: bool = True,
    subtracted: bool = False,
    target: str | None = None,
    centre_on: tuple[float, float] | None = None,
) -> RomanDataset:
    """Write dithered Roman images (one file per exposure and detector) and their association.

    Parameters
    ----------
    directory : path-like
    n_exposures : int
        Dithered exposures (one group id each).
    detectors : tuple of int
        WFI detectors (1 to 18) of every exposure.
    shape : (int, int)
        Image shape of each detector.
    binning : int
        Detector pixels per image pixel (see the module documentation); with
        ``binning=1`` the image is a sub-array at ``origin`` (default: the
        detector's centre).
    ra, dec, pa_deg : float
        Boresight of the first exposure and the position angle (degrees).
    dither_arcsec : float
        Scale of the dither pattern.
    seed : int
    n_sources : int
        Gaussian sources over the field of the first exposure.
    with_var_rnoise, with_var_flat : bool
        Store these variance arrays (romancal rebuilds ``var_rnoise`` from ``err`` without it).
    subtracted : bool
        Whether the background level was subtracted already.
    target : str, optional
        The association's ``target`` (a skycell name).
    centre_on : (float, float), optional
        Place the boresight so that the first detector's image of the first
        exposure is centred on this (RA, Dec) (``ra``/``dec`` are then ignored).

    Returns
    -------
    RomanDataset
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ny, nx = shape
    if origin is None:
        origin = ((DETECTOR_PIXELS - binning * nx) / 2.0, (DETECTOR_PIXELS - binning * ny) / 2.0)
    pixel_scale = PIXEL_SCALE_ARCSEC * binning
    if centre_on is not None:
        ra, dec = _boresight_for(centre_on, pa_deg, detectors[0], shape, origin, binning)
    cosd = math.cos(math.radians(dec))
    offsets = [(0.0, 0.0)] + [tuple(rng.uniform(-dither_arcsec, dither_arcsec, 2)) for _ in range(n_exposures - 1)]
    # the sky: sources over the footprints of the first exposure
    first = [detector_wcs(ra, dec, pa_deg, sca, shape, origin=origin, binning=binning) for sca in detectors]
    corners = np.vstack([w.footprint() for w in first])
    ra_c, dec_c = float(np.mean(corners[:, 0])), float(np.mean(corners[:, 1]))
    src = np.column_stack(
        [
            rng.uniform(corners[:, 0].min(), corners[:, 0].max(), n_sources),
            rng.uniform(corners[:, 1].min(), corners[:, 1].max(), n_sources),
            10 ** rng.uniform(-0.5, 1.0, n_sources),
            rng.uniform(0.8, 2.5, n_sources) * pixel_scale,
        ]
    )
    paths, gids = [], []
    for e, (dx, dy) in enumerate(offsets):
        e_ra, e_dec = ra + dx / 3600.0 / cosd, dec + dy / 3600.0
        gid = f"r0000101001001001001_{e + 1:04d}"
        for sca in detectors:
            wcs = (
                first[detectors.index(sca)]
                if e == 0
                else detector_wcs(e_ra, e_dec, pa_deg, sca, shape, origin=origin, binning=binning)
            )
            name = f"r0000101001001001001_{e + 1:04d}_wfi{sca:02d}_cal.asdf"
            model = make_image_model(
                wcs,
                shape,
                rng=rng,
                sources=src,
                centre=(ra_c, dec_c),
                pixel_scale_arcsec=pixel_scale,
                exposure_time=139.8 + 10.0 * e,
                sky_level=0.3 + 0.05 * e,
                subtracted=subtracted,
                with_var_rnoise=with_var_rnoise,
                with_var_flat=with_var_flat,
                group_id=gid,
                observation_id=gid,
                filename=name,
                start_mjd=61557.0 + e * 0.01,
                sca=sca,
                ra_dec_pa=(e_ra, e_dec, pa_deg),
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.save(str(directory / name))
            paths.append(directory / name)
            gids.append(gid)
    asn_path = write_association(directory, [p.name for p in paths], target=target)
    return RomanDataset(directory, asn_path, tuple(paths), tuple(gids))


def _boresight_for(
    target: tuple[float, float],
    pa_deg: float,
    sca: int,
    shape: tuple[int, int],
    origin: tuple[float, float],
    binning: int,
) -> tuple[float, float]:
    """The boresight that puts the centre of detector ``sca``'s image at ``target`` (a few fixed-point steps)."""
    ra, dec = target
    ny, nx = shape
    for _ in range(4):
        wcs = detector_wcs(ra, dec, pa_deg, sca, shape, origin=origin, binning=binning)
        c_ra, c_dec = (float(v) for v in wcs((nx - 1) / 2.0, (ny - 1) / 2.0))
        d_ra = ((target[0] - c_ra + 180.0) % 360.0) - 180.0
        ra, dec = (ra + d_ra) % 360.0, dec + (target[1] - c_dec)
    return ra, dec


def write_association(
    directory: Path, names: list[str], *, target: str | None = None, name: str = "roman_asn.json"
) -> Path:
    """Write a Level-3 association listing ``names`` as science members (``target``: a skycell name)."""
    asn = {
        "asn_type": "image",
        "asn_rule": "DMS_ELPP_Base",
        "asn_id": "a3001",
        "asn_pool": "synthetic_pool",
        "program": "00001",
        "target": target or "none",
        "products": [{"name": "roman_mosaic", "members": [{"expname": n, "exptype": "science"} for n in names]}],
    }
    path = Path(directory) / name
    path.write_text(json.dumps(asn, indent=2))
    return path
