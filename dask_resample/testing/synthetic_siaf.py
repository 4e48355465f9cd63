"""Synthetic JWST exposures whose WCS is built as the pipeline's ``assign_wcs`` builds it.

The generic synthetic data (:mod:`dask_resample.testing.synthetic`) use one simple WCS
shape (cubic polynomial then TAN). Calibrated JWST images carry instead the
pipeline that ``jwst.assign_wcs`` builds::

    detector -> v2v3 -> v2v3vacorr -> world

* ``detector -> v2v3`` is the instrument distortion. The pipeline reads it from
  a CRDS ``distortion`` reference file; here the equivalent model is built from
  the SIAF polynomials of :mod:`pysiaf` (``Sci2IdlX/Y`` forward, ``Idl2SciX/Y``
  inverse, 1-based science pixels relative to ``XSciRef/YSciRef``, ideal ->
  V2/V3 with ``V3IdlYAngle``, ``VIdlParity``, ``V2Ref/V3Ref``), handed to the
  pipeline as an in-memory ``DistortionModel``. The MIRI imager's model carries
  the bounding box of the illuminated region (``MIRIM_ILLUM``: the Lyot
  coronagraph and the reference columns are outside), as its CRDS files do.
* everything else is jwst's own code: ``jwst.assign_wcs.assign_wcs.load_wcs``
  with the instrument's ``imaging`` pipeline (coordinate frames, subarray
  offset ``SUBSTRT1/2`` and subarray bounding box, velocity-aberration scale
  ``dva_corr_model``, ``v23tosky``, ``S_REGION`` from the footprint within the
  bounding box) and ``update_fits_wcsinfo`` for the SIP keywords.

The telescope pointing is one attitude per dither (a few arcsec apart); each
detector's ``ra_ref/dec_ref/roll_ref`` are that attitude evaluated at its
``v2_ref/v3_ref``, so the detectors of one exposure are placed as on the sky.

Writing needs ``jwst`` and ``pysiaf`` (the ``test`` extra), imported by the
functions that use them; importing this module needs neither. The instrument
setups and distortion models are in :mod:`.synthetic_siaf_distortion`, the
sky, arrays and metadata in :mod:`.synthetic_scene`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .synthetic_scene import (
    _ARCSEC2_TO_SR,
    _MJD_START,
    _VISIT_ID,
    CAL_STEPS,
    SyntheticDataset,
    _dither_offsets,
    _exposure_arrays,
    _exposure_meta,
    _group_id,
    _make_scene,
    _render,
    _standard_coords,
    _write_association,
    add_cosmic_rays,
)
from .synthetic_siaf_distortion import (
    INSTRUMENT_SETUPS,
    InstrumentSetup,
    SiafDetector,
    _aperture,
    illuminated_box_origin,
    siaf_distortion,
)

__all__ = ["INSTRUMENT_SETUPS", "InstrumentSetup", "SiafDetector", "siaf_distortion", "write_siaf_dataset"]


# --------------------------------------------------------------------------- pointing
@dataclass(frozen=True)
class _Placement:
    """Where one detector's array sits: subarray metadata and reference point."""

    setup: InstrumentSetup
    detector: SiafDetector
    subarray: str
    xstart: int  # 1-based, full frame
    ystart: int
    xsize: int
    ysize: int
    v2_ref: float  # arcsec
    v3_ref: float


def _full_shape(setup: InstrumentSetup, det: SiafDetector) -> tuple[int, int]:
    ap = _aperture(setup.instrument, det.aperture)
    return int(ap.YSciSize), int(ap.XSciSize)


def _placements(
    setup: InstrumentSetup, detectors: tuple[SiafDetector, ...], subarray: str | tuple[int, int] | None
) -> list[_Placement]:
    """Subarray geometry and ``v2_ref/v3_ref`` of each detector.

    ``subarray`` is ``None`` (full frame), a SIAF subarray name (the aperture
    ``<prefix>_<name>`` must exist for each detector) or a shape ``(ny, nx)``:
    a ``GENERIC`` subarray placed on each detector as close as possible to the
    mean reference point of the detectors, so that nearby detectors' arrays
    face each other across the gap.
    """
    full_aps = [_aperture(setup.instrument, d.aperture) for d in detectors]
    out = []
    if subarray is None or isinstance(subarray, str):
        for det, full in zip(detectors, full_aps, strict=True):
            if subarray is None:
                ap = full
                name, xs, ys = "FULL", 1, 1
            else:
                prefix = det.aperture.rsplit("_", 1)[0]
                ap = _aperture(setup.instrument, f"{prefix}_{subarray}")
                name = subarray
                xs, ys = (int(v) for v in ap.dms_corner())
            out.append(
                _Placement(
                    setup, det, name, xs, ys, int(ap.XSciSize), int(ap.YSciSize), float(ap.V2Ref), float(ap.V3Ref)
                )
            )
        return out
    ny, nx = (int(s) for s in subarray)
    v2c = float(np.mean([a.V2Ref for a in full_aps]))
    v3c = float(np.mean([a.V3Ref for a in full_aps]))
    for det, full in zip(detectors, full_aps, strict=True):
        fny, fnx = int(full.YSciSize), int(full.XSciSize)
        if ny > fny or nx > fnx:
            raise ValueError(f"subarray shape {(ny, nx)} is larger than {det.aperture} {(fny, fnx)}")
        dist = siaf_distortion(setup.instrument, det.aperture)
        xc, yc = (float(v) for v in dist.inverse(v2c, v3c))
        lo_x = 0
        if setup.illuminated_aperture is not None:
            lo_x = illuminated_box_origin(setup.instrument, setup.illuminated_aperture)[0]
        x0 = int(np.clip(round(xc - nx / 2.0), lo_x, fnx - nx))
        y0 = int(np.clip(round(yc - ny / 2.0), 0, fny - ny))
        v2, v3 = (float(v) for v in dist(x0 + (nx - 1) / 2.0, y0 + (ny - 1) / 2.0))
        out.append(_Placement(setup, det, "GENERIC", x0 + 1, y0 + 1, nx, ny, v2, v3))
    return out


def _attitude(v2: float, v3: float, ra: float, dec: float, pa_v3: float) -> np.ndarray:
    from pysiaf.utils import rotations

    return rotations.attitude(v2, v3, ra, dec, pa_v3)


def _sky_of(attitude: np.ndarray, v2: float, v3: float) -> tuple[float, float, float]:
    """RA, Dec and V3 position angle (deg) of telescope point ``(v2, v3)``."""
    from pysiaf.utils import rotations

    ra, dec = rotations.pointing(attitude, v2, v3)
    return float(ra), float(dec), float(rotations.posangle(attitude, v2, v3)) % 360.0


# --------------------------------------------------------------------------- one exposure
def _build_model(
    placement: _Placement,
    *,
    attitude: np.ndarray,
    va_scale: float,
    meta: dict[str, Any],
) -> Any:
    """An ``ImageModel`` (zero data) whose WCS ``jwst.assign_wcs`` built."""
    from jwst.assign_wcs.assign_wcs import load_wcs
    from jwst.assign_wcs.util import update_fits_wcsinfo
    from stdatamodels.jwst.datamodels import (
        DistortionModel,
        FilteroffsetModel,
        ImageModel,
    )

    setup = placement.setup
    model = ImageModel(np.zeros((placement.ysize, placement.xsize), np.float32))
    ra_ref, dec_ref, roll_ref = _sky_of(attitude, placement.v2_ref, placement.v3_ref)
    meta = dict(meta)
    meta.update(
        {
            "instrument.name": setup.instrument,
            "instrument.detector": placement.detector.detector,
            "instrument.filter": setup.filter,
            "exposure.type": setup.exp_type,
            "subarray.name": placement.subarray,
            "subarray.xstart": placement.xstart,
            "subarray.ystart": placement.ystart,
            "subarray.xsize": placement.xsize,
            "subarray.ysize": placement.ysize,
            "subarray.fastaxis": 1,
            "subarray.slowaxis": 2,
            "aperture.name": _aperture_name(placement),
            "wcsinfo.ra_ref": ra_ref,
            "wcsinfo.dec_ref": dec_ref,
            "wcsinfo.roll_ref": roll_ref,
            "wcsinfo.v2_ref": placement.v2_ref,
            "wcsinfo.v3_ref": placement.v3_ref,
            "wcsinfo.v3yangle": float(_aperture(setup.instrument, placement.detector.aperture).V3IdlYAngle),
            "wcsinfo.vparity": int(_aperture(setup.instrument, placement.detector.aperture).VIdlParity),
            "wcsinfo.wcsaxes": 2,
            "velocity_aberration.scale_factor": float(va_scale),
        }
    )
    if setup.pupil is not None:
        meta["instrument.pupil"] = setup.pupil
    if setup.channel is not None:
        meta["instrument.channel"] = setup.channel
        meta["instrument.module"] = placement.detector.detector[3]
    _set_meta(model, meta)

    distortion = DistortionModel()
    distortion.model = siaf_distortion(setup.instrument, placement.detector.aperture, setup.illuminated_aperture)
    reference_files: dict[str, Any] = {"distortion": distortion, "filteroffset": None}
    if setup.instrument == "MIRI":
        offsets = FilteroffsetModel()
        offsets.filters = []
        reference_files["filteroffset"] = offsets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_wcs(model, reference_files)
        update_fits_wcsinfo(model, max_pix_error=0.01, max_inv_pix_error=0.01, npoints=12)
    return model


def _aperture_name(placement: _Placement) -> str:
    """SIAF aperture of the exposure (the full frame for full-frame and ``GENERIC`` arrays)."""
    if placement.subarray in ("FULL", "GENERIC"):
        return placement.detector.aperture
    return f"{placement.detector.aperture.rsplit('_', 1)[0]}_{placement.subarray}"


def _set_meta(model: Any, meta: dict[str, Any]) -> None:
    for key, value in meta.items():
        node = model.meta
        *parents, leaf = key.split(".")
        for p in parents:
            node = getattr(node, p)
        setattr(node, leaf, value)


def _pixel_area_arcsec2(wcs: Any, x: float, y: float) -> float:
    """Area on the sky (arcsec**2) of the pixel at ``(x, y)`` (tangent-plane Jacobian)."""
    xs = np.array([x - 0.5, x + 0.5, x - 0.5, x + 0.5])
    ys = np.array([y - 0.5, y - 0.5, y + 0.5, y + 0.5])
    ra, dec = wcs(xs, ys, with_bounding_box=False)
    xi, eta = _standard_coords(np.asarray(ra), np.asarray(dec), float(ra[0]), float(dec[0]))
    dx = np.array([(xi[1] - xi[0] + xi[3] - xi[2]) / 2.0, (eta[1] - eta[0] + eta[3] - eta[2]) / 2.0])
    dy = np.array([(xi[2] - xi[0] + xi[3] - xi[1]) / 2.0, (eta[2] - eta[0] + eta[3] - eta[1]) / 2.0])
    return float(abs(dx[0] * dy[1] - dx[1] * dy[0]))


# --------------------------------------------------------------------------- dataset
def write_siaf_dataset(
    directory: str | Path,
    *,
    instrument: str = "nircam_sw",
    n_dithers: int = 3,
    n_detectors: int = 1,
    subarray: str | tuple[int, int] | None = (160, 160),
    ra_deg: float = 53.16,
    dec_deg: float = -27.78,
    roll_deg: float = 20.0,
    dither_arcsec: float = 2.0,
    n_sources: int = 60,
    sky_level: float = 0.0,
    dq_fraction: float = 0.01,
    seed: int = 0,
    exposure_time: float = 1000.0,
    cosmic_rays: float = 0.0,
) -> SyntheticDataset:
    """Write dithered exposures with a pipeline-built (SIAF distortion) WCS and their association.

    Parameters
    ----------
    directory : str or Path
        Output directory (created if needed).
    instrument : {"nircam_sw", "nircam_lw", "miri"}, optional
        Configuration from :data:`INSTRUMENT_SETUPS`.
    n_dithers : int, optional
        Dither positions; each is one exposure (one association group).
    n_detectors : int, optional
        Detectors per exposure (the first ``n_detectors`` of the setup).
    subarray : str, tuple of int or None, optional
        ``None``: full frame (2048x2048 for NIRCam, 1032x1024 for MIRI, whose
        bounding box then excludes the Lyot coronagraph and reference
        columns). A SIAF subarray name (e.g. ``"SUB160"``, ``"SUB640"``,
        ``"SUB256"``): that subarray's position (``SUBSTRT1/2``) and size.
        A shape ``(ny, nx)``: a ``GENERIC`` subarray of that size on each
        detector, placed near the detectors' common centre.
    ra_deg, dec_deg : float, optional
        Sky position of the pointing's boresight (mean reference point of the
        detectors) at the first dither.
    roll_deg : float, optional
        Position angle of V3 at the boresight (deg).
    dither_arcsec : float, optional
        Dither offsets lie within +/- ``dither_arcsec`` in V2/V3.
    n_sources, sky_level, dq_fraction, seed, exposure_time, cosmic_rays
        As for :func:`dask_resample.testing.synthetic.write_dataset`; source sizes are
        scaled to the instrument's point-spread function.

    Returns
    -------
    SyntheticDataset
        Paths of the association and of the ``*_cal.fits`` files (dither-major)
        with their group ids.
    """
    if instrument not in INSTRUMENT_SETUPS:
        raise ValueError(f"instrument must be one of {sorted(INSTRUMENT_SETUPS)}, got {instrument!r}")
    setup = INSTRUMENT_SETUPS[instrument]
    if not 1 <= n_detectors <= len(setup.detectors):
        raise ValueError(f"n_detectors must be between 1 and {len(setup.detectors)} for {instrument}")
    if n_dithers < 1:
        raise ValueError("n_dithers must be at least 1")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    placements = _placements(setup, setup.detectors[:n_detectors], subarray)
    v2_b = float(np.mean([p.v2_ref for p in placements]))
    v3_b = float(np.mean([p.v3_ref for p in placements]))

    rng = np.random.default_rng([seed, 0])
    dithers = _dither_offsets(n_dithers, dither_arcsec, rng)
    va_scales = 1.0 + rng.uniform(0.5e-5, 3e-5, n_dithers)
    attitudes = [_attitude(v2_b + float(dv2), v3_b + float(dv3), ra_deg, dec_deg, roll_deg) for dv2, dv3 in dithers]

    duration = exposure_time * 1.02 + 10.0
    models_: list[list[Any]] = []
    for d in range(n_dithers):
        start = _MJD_START + d * (duration + 60.0) / 86400.0
        meta = _common_meta(d, start, duration, exposure_time, sky_level)
        models_.append([_build_model(p, attitude=attitudes[d], va_scale=va_scales[d], meta=meta) for p in placements])

    # the scene covers every footprint (plus a margin), in the tangent plane at the boresight
    corners = np.hstack([np.asarray(m.meta.wcs.footprint(), float).T for row in models_ for m in row])
    xi, eta = _standard_coords(corners[0], corners[1], ra_deg, dec_deg)
    half = max(float(np.abs(xi).max()), float(np.abs(eta).max())) * 1.05
    scene = _make_scene(rng, n_sources, (half, half), ra_deg, dec_deg, 0.0, 1.0)
    factor = setup.psf_sigma_arcsec / 0.032
    scene = replace(scene, sigma_major=scene.sigma_major * factor, sigma_minor=scene.sigma_minor * factor)

    paths: list[Path] = []
    group_ids: list[str] = []
    for d, row in enumerate(models_):
        for j, model in enumerate(row):
            k = d * n_detectors + j
            wcs = model.meta.wcs
            shape = model.data.shape
            scale = math.sqrt(_pixel_area_arcsec2(wcs, (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0))
            signal = _render(scene, wcs, shape, scale)
            arrays = _exposure_arrays(
                np.random.default_rng([seed, 1, k]), signal, sky_level, dq_fraction, exposure_time
            )
            if cosmic_rays > 0:
                add_cosmic_rays(arrays, cosmic_rays, np.random.default_rng([seed, 2, k]))
            for name, value in arrays.items():
                setattr(model, name, value)
            area = scale**2
            model.meta.photometry.pixelarea_arcsecsq = area
            model.meta.photometry.pixelarea_steradians = area * _ARCSEC2_TO_SR
            detector = model.meta.instrument.detector
            path = directory / f"{_VISIT_ID}_{d + 1:05d}_{detector.lower()}_cal.fits"
            model.meta.filename = path.name
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.save(path)
            model.close()
            paths.append(path)
            group_ids.append(_group_id(d + 1))

    asn_path = _write_association(directory, [p.name for p in paths])
    return SyntheticDataset(directory=directory, asn_path=asn_path, paths=tuple(paths), group_ids=tuple(group_ids))


def _common_meta(d: int, start: float, duration: float, exposure_time: float, sky_level: float) -> dict[str, Any]:
    meta = _exposure_meta(d, start, duration, exposure_time, sky_level)
    meta.update({f"cal_step.{step}": "COMPLETE" for step in CAL_STEPS})
    return meta
