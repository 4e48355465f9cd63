"""Synthetic survey datasets: many single-detector exposures on a grid of pointings.

:mod:`dask_resample.testing.synthetic` writes a few dithered exposures of one field.
This module writes the other kind of dataset a survey produces: a
``cols x rows`` grid of pointings, each observed ``dithers`` times, with
neighbouring pointings overlapping by a small fraction of the field, thousands
of files if needed.  Exposures are written in parallel by a process pool.

Every exposure is a JWST ``ImageModel`` ``*_cal.fits`` file (readable by
:class:`jwst.datamodels.ModelLibrary`, so jwst's ``ResampleImage`` runs on the
dataset) with the distorted gwcs of :func:`dask_resample.testing.synthetic.make_detector_wcs`,
an ``S_REGION``, variance arrays, DQ flags and the metadata the resample step
reads; each exposure is a group of its own.  Sources come from one catalogue
over the whole survey, so they line up where exposures overlap.  Unlike
:func:`dask_resample.testing.synthetic.write_dataset`, no FITS SIP approximation of the
WCS is written and the metadata is assigned without per-attribute validation
(the model is validated once when it is saved), which makes a file about three
times cheaper to write.

The pointings share one tangent point; pointing ``(c, r)`` is centred
``((c - (cols - 1) / 2) * step, (r - (rows - 1) / 2) * step)`` ideal pixels
from it, with ``step = n * (1 - overlap)``, and dither ``d`` of a pointing
moves it by a few pixels (with sub-pixel phases), less than the overlap.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SurveyExposure", "SurveyLayout", "write_survey"]

_PROGRAM, _OBSERVATION, _VISIT = "01234", "002", "001"
_VISIT_GROUP, _SEQUENCE, _ACTIVITY = "02", "1", "01"
_VISIT_ID = f"jw{_PROGRAM}{_OBSERVATION}{_VISIT}_{_VISIT_GROUP}{_SEQUENCE}{_ACTIVITY}"
_MJD_START = 60400.0
_ARCSEC2_TO_SR = (math.pi / 180.0 / 3600.0) ** 2
# R2 low-discrepancy sequence: sub-pixel dither phases
_R2 = (0.7548776662466927, 0.5698402909980532)


@dataclass(frozen=True)
class SurveyExposure:
    """One exposure of a survey layout.

    Attributes
    ----------
    index : int
        Position in the association (pointing-major, then dither).
    col, row : int
        Pointing on the grid (x, y).
    dither : int
        Dither number within the pointing.
    offset_xy : tuple of float
        Centre of the detector relative to the common tangent point, ideal pixels (x, y).
    """

    index: int
    col: int
    row: int
    dither: int
    offset_xy: tuple[float, float]

    @property
    def name(self) -> str:
        """File name of the exposure (``*_cal.fits``)."""
        return f"{_VISIT_ID}_{self.index + 1:05d}_nrca1_cal.fits"

    @property
    def group_id(self) -> str:
        """Group id as jwst builds it from the observation attributes (one group per exposure)."""
        return f"{_VISIT_ID}_{self.index + 1}"


@dataclass(frozen=True)
class SurveyLayout:
    """A grid of pointings with dithers and overlaps.

    Attributes
    ----------
    grid_xy : tuple of int
        Pointings along x and along y (``cols, rows``).
    dithers : int
        Exposures per pointing.
    shape : tuple of int
        Detector shape ``(ny, nx)``; one detector per exposure.
    overlap : float
        Fraction of the field shared by neighbouring pointings along each axis.
    dither_pixels : float, optional
        Largest dither offset in pixels (default: a quarter of the overlap); must
        stay below half the overlap so that neighbouring pointings still overlap.
    pixel_scale_arcsec, ra_deg, dec_deg, roll_deg, distortion
        Detector pixel scale, common tangent point, roll and distortion
        amplitude (see :func:`dask_resample.testing.synthetic.make_detector_wcs`).
    count : int, optional
        Keep only the first ``count`` exposures (default: all).
    """

    grid_xy: tuple[int, int] = (10, 10)
    dithers: int = 2
    shape: tuple[int, int] = (1024, 1024)
    overlap: float = 0.04
    dither_pixels: float | None = None
    pixel_scale_arcsec: float = 0.031
    ra_deg: float = 53.16
    dec_deg: float = -27.78
    roll_deg: float = 20.0
    distortion: float = 1e-6
    count: int | None = field(default=None)

    def __post_init__(self) -> None:
        cols, rows = self.grid_xy
        if min(cols, rows, self.dithers) < 1:
            raise ValueError(f"grid_xy and dithers must be positive, got {self.grid_xy} and {self.dithers}")
        if not 0.0 <= self.overlap < 0.5:
            raise ValueError(f"overlap must be in [0, 0.5), got {self.overlap}")
        if self.overlap and 2 * self.dither_px >= self.overlap * min(self.shape):
            raise ValueError(
                f"dither_pixels={self.dither_px} leaves no overlap between neighbouring pointings "
                f"(overlap {self.overlap} of {min(self.shape)} pixels)"
            )

    @classmethod
    def for_count(cls, count: int, *, dithers: int = 2, aspect: float = 1.6, **kwargs: Any) -> SurveyLayout:
        """The smallest near-``aspect`` (cols / rows) grid holding ``count`` exposures.

        ``for_count(2000)`` is the 40 x 25 grid of pointings with 2 dithers.
        """
        pointings = math.ceil(count / dithers)
        rows = max(1, round(math.sqrt(pointings / aspect)))
        cols = math.ceil(pointings / rows)
        return cls(grid_xy=(cols, rows), dithers=dithers, count=count, **kwargs)

    @property
    def dither_px(self) -> float:
        """Largest dither offset in pixels."""
        if self.dither_pixels is not None:
            return float(self.dither_pixels)
        return 0.25 * self.overlap * min(self.shape)

    @property
    def step_pixels(self) -> tuple[float, float]:
        """Distance between neighbouring pointings, ideal pixels (x, y)."""
        ny, nx = self.shape
        return nx * (1.0 - self.overlap), ny * (1.0 - self.overlap)

    def exposures(self) -> list[SurveyExposure]:
        """All exposures, pointing-major (rows of pointings, then columns), then dither."""
        cols, rows = self.grid_xy
        sx, sy = self.step_pixels
        out: list[SurveyExposure] = []
        for r in range(rows):
            for c in range(cols):
                for d in range(self.dithers):
                    phase = (np.mod(0.5 + d * np.asarray(_R2), 1.0) - 0.5) * 2.0 if d else np.zeros(2)
                    dx, dy = (float(v) for v in phase * self.dither_px)
                    x = (c - (cols - 1) / 2.0) * sx + dx
                    y = (r - (rows - 1) / 2.0) * sy + dy
                    out.append(SurveyExposure(len(out), c, r, d, (x, y)))
        return out[: self.count] if self.count is not None else out

    def to_dict(self) -> dict[str, Any]:
        """Parameters as a JSON-able dictionary (for cache markers)."""
        return {
            "grid_xy": list(self.grid_xy), "dithers": self.dithers, "shape": list(self.shape),
            "overlap": self.overlap, "dither_pixels": self.dither_pixels,
            "pixel_scale_arcsec": self.pixel_scale_arcsec, "ra_deg": self.ra_deg, "dec_deg": self.dec_deg,
            "roll_deg": self.roll_deg, "distortion": self.distortion, "count": self.count,
        }  # fmt: skip


# --------------------------------------------------------------------------- sky
def _catalogue(layout: SurveyLayout, seed: int, per_field: int = 40) -> np.ndarray:
    """Sources over the whole survey: rows of (x, y ideal pixels, amplitude, sigma pixels)."""
    ny, nx = layout.shape
    cols, rows = layout.grid_xy
    sx, sy = layout.step_pixels
    half_x = ((cols - 1) * sx + nx) / 2.0 + layout.dither_px + 8
    half_y = ((rows - 1) * sy + ny) / 2.0 + layout.dither_px + 8
    n = max(1, int(per_field * (4 * half_x * half_y) / (nx * ny)))
    rng = np.random.default_rng([seed, 7])
    x = rng.uniform(-half_x, half_x, n)
    y = rng.uniform(-half_y, half_y, n)
    amp = 10 ** rng.uniform(-0.5, 1.0, n)
    sigma = np.where(rng.random(n) < 0.7, rng.uniform(0.9, 1.2, n), rng.uniform(2.0, 6.0, n))
    return np.column_stack([x, y, amp, sigma])


def _render(sources: np.ndarray, xs: np.ndarray, ys: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Round Gaussians at detector positions ``xs, ys``, each in a cutout of +/- 5 sigma."""
    ny, nx = shape
    image = np.zeros(shape)
    for x, y, amp, sigma in zip(xs, ys, sources[:, 2], sources[:, 3], strict=True):
        h = int(math.ceil(5 * sigma)) + 1
        x0, x1 = max(int(round(x)) - h, 0), min(int(round(x)) + h, nx - 1)
        y0, y1 = max(int(round(y)) - h, 0), min(int(round(y)) + h, ny - 1)
        if x1 < x0 or y1 < y0:
            continue
        yy, xx = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
        image[y0 : y1 + 1, x0 : x1 + 1] += amp * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma**2)
    return image


def _arrays(rng: np.random.Generator, signal: np.ndarray, exposure_time: float) -> dict[str, np.ndarray]:
    """Noise, variances and DQ for one exposure (DO_NOT_USE pixels are NaN, as in cal files)."""
    var_rnoise = np.full(signal.shape, (0.012 * rng.uniform(0.7, 1.5)) ** 2)
    var_poisson = 2e-4 * (1000.0 / exposure_time) * (np.maximum(signal, 0.0) + 0.25)
    var_flat = (0.005 * np.maximum(signal, 0.0)) ** 2 + 1e-8
    variance = var_rnoise + var_poisson + var_flat
    data = signal + rng.standard_normal(signal.shape) * np.sqrt(variance)
    dq = np.zeros(signal.shape, np.uint32)
    flagged = rng.random(signal.shape) < 0.01
    dq[flagged] = rng.choice(np.array([1, 4, 1 | 4, 16, 4096], np.uint32), size=int(flagged.sum()))
    bad = (dq & 1).astype(bool)
    out: dict[str, np.ndarray] = {}
    for name, arr in (("data", data), ("err", np.sqrt(variance)), ("var_rnoise", var_rnoise),
                      ("var_poisson", var_poisson), ("var_flat", var_flat)):  # fmt: skip
        arr = arr.astype(np.float32)
        arr[bad] = np.nan
        out[name] = arr
    out["dq"] = dq
    return out


def _meta(layout: SurveyLayout, exp: SurveyExposure, wcs: Any, s_region: str, exposure_time: float) -> dict:
    """The metadata tree of one exposure (what the resample step and ModelLibrary read)."""
    from astropy.time import Time

    ny, nx = layout.shape
    duration = exposure_time * 1.02 + 10.0
    start = _MJD_START + exp.index * (duration + 60.0) / 86400.0
    t = Time(start, format="mjd", scale="utc").isot
    ra_ref, dec_ref = (float(v) for v in wcs((nx - 1) / 2.0, (ny - 1) / 2.0))
    area = layout.pixel_scale_arcsec**2
    return {
        "filename": exp.name,
        "telescope": "JWST",
        "instrument": {"name": "NIRCAM", "detector": "NRCA1", "channel": "SHORT", "module": "A",
                       "filter": "F200W", "pupil": "CLEAR"},
        "observation": {"date": t[:10], "time": t[11:], "program_number": _PROGRAM,
                        "observation_number": _OBSERVATION, "visit_number": _VISIT, "visit_group": _VISIT_GROUP,
                        "sequence_id": _SEQUENCE, "activity_id": _ACTIVITY, "exposure_number": str(exp.index + 1)},
        "exposure": {"type": "NRC_IMAGE", "exposure_time": exposure_time, "effective_exposure_time": exposure_time,
                     "measurement_time": exposure_time * 0.95, "duration": duration, "start_time": start,
                     "end_time": start + duration / 86400.0, "nints": 1},
        "subarray": {"name": "FULL" if (ny, nx) == (2048, 2048) else "GENERIC", "xstart": 1, "ystart": 1,
                     "xsize": nx, "ysize": ny},
        "wcsinfo": {"ra_ref": ra_ref, "dec_ref": dec_ref, "roll_ref": float(layout.roll_deg), "v2_ref": 86.0,
                    "v3_ref": -493.0, "v3yangle": 0.0, "vparity": -1, "s_region": s_region},
        "photometry": {"pixelarea_arcsecsq": area, "pixelarea_steradians": area * _ARCSEC2_TO_SR},
        "background": {"level": 0.0, "subtracted": True},
        "cal_step": {step: "COMPLETE" for step in ("assign_wcs", "flat_field", "photom", "jump", "ramp_fit",
                                                    "dq_init", "saturation")},
        "bunit_data": "MJy/sr",
        "bunit_err": "MJy/sr",
    }  # fmt: skip


def _write_one(args: tuple[Path, SurveyLayout, SurveyExposure, np.ndarray, int, float]) -> str:
    """Write one exposure (``args``: directory, layout, exposure, nearby sources, seed, exposure time)."""
    # imported here for their cost: a SurveyLayout alone (sizes, projections) needs none of them
    from stcal.alignment.util import compute_s_region_keyword
    from stdatamodels.jwst.datamodels import ImageModel

    from .synthetic import make_detector_wcs  # deferred: gwcs, astropy.modeling, stcal: in the writing processes only

    directory, layout, exp, near, seed, exposure_time = args
    ny, nx = layout.shape
    wcs = make_detector_wcs(
        layout.ra_deg, layout.dec_deg, roll_deg=layout.roll_deg, shape=(ny, nx),
        pixel_scale_arcsec=layout.pixel_scale_arcsec, distortion=layout.distortion, offset_pixels=exp.offset_xy,
    )  # fmt: skip
    # exact detector positions of the sources near the field, through the WCS
    if len(near):
        sky = make_detector_wcs(
            layout.ra_deg,
            layout.dec_deg,
            roll_deg=layout.roll_deg,
            shape=(1, 1),
            pixel_scale_arcsec=layout.pixel_scale_arcsec,
            distortion=0.0,
        )
        ra, dec = sky(near[:, 0], near[:, 1], with_bounding_box=False)
        xs, ys = wcs.invert(ra, dec, with_bounding_box=False)
        signal = _render(near, np.atleast_1d(xs), np.atleast_1d(ys), (ny, nx))
    else:
        signal = np.zeros((ny, nx))
    arrays = _arrays(np.random.default_rng([seed, 1, exp.index]), signal, exposure_time)
    s_region = compute_s_region_keyword(wcs.footprint())
    with ImageModel(arrays["data"], validate_on_assignment=False) as model:
        for name in ("dq", "err", "var_rnoise", "var_poisson", "var_flat"):
            setattr(model, name, arrays[name])
        _update(model.meta.instance, _meta(layout, exp, wcs, s_region, exposure_time))
        model.meta.wcs = wcs
        model.save(directory / exp.name)
    return exp.name


def _update(node: dict, values: dict) -> None:
    for key, value in values.items():
        if isinstance(value, dict):
            _update(node.setdefault(key, {}), value)
        else:
            node[key] = value


def write_association(directory: Path, names: Sequence[str], product: str = "survey_mosaic") -> Path:
    """Write an image3 association ``<product>_asn.json`` listing ``names`` as science members."""
    asn = {
        "asn_type": "image3",
        "asn_rule": "DMS_Level3_Base",
        "asn_id": "a3001",
        "asn_pool": "synthetic_pool",
        "program": _PROGRAM,
        "target": "none",
        "products": [{"name": product, "members": [{"expname": n, "exptype": "science"} for n in names]}],
    }
    path = Path(directory) / f"{product}_asn.json"
    path.write_text(json.dumps(asn, indent=1))
    return path


def write_survey(
    directory: str | Path,
    layout: SurveyLayout,
    *,
    processes: int | None = None,
    seed: int = 0,
    exposure_time: float = 1000.0,
) -> Path:
    """Write every exposure of ``layout`` and an image3 association; return the association's path.

    Parameters
    ----------
    directory : str or Path
        Output directory (created if needed); existing files of the same name are replaced.
    layout : SurveyLayout
        Pointings, dithers, detector shape and overlaps.
    processes : int, optional
        Size of the process pool (default: the number of CPUs; 1 writes in this process).
    seed : int, optional
        Seed of the source catalogue and of the noise.
    exposure_time : float, optional
        Exposure time in seconds (scales the Poisson variance).

    Returns
    -------
    Path
        The association ``survey_mosaic_asn.json`` (members in :meth:`SurveyLayout.exposures` order).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    exposures = layout.exposures()
    sources = _catalogue(layout, seed)
    reach = 0.75 * max(layout.shape) + 30.0  # ideal pixels from the centre: the field, its distortion, a margin
    jobs = [
        (directory, layout, e,
         sources[(np.abs(sources[:, 0] - e.offset_xy[0]) < reach) & (np.abs(sources[:, 1] - e.offset_xy[1]) < reach)],
         seed, exposure_time)
        for e in exposures
    ]  # fmt: skip
    processes = processes or os.cpu_count() or 1
    if processes == 1 or len(jobs) == 1:
        names = [_write_one(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=processes) as pool:
            names = list(pool.map(_write_one, jobs, chunksize=max(1, min(16, len(jobs) // (4 * processes)))))
    return write_association(directory, names)
