"""Driver for plain FITS images with a celestial FITS WCS (TAN, TAN-SIP, ...).

Two layouts are read:

* the JWST-like layout: a ``SCI`` extension, with optional ``ERR``, ``DQ``,
  ``VAR_RNOISE``, ``VAR_POISSON`` and ``VAR_FLAT`` extensions of the same shape;
* a single image: the primary HDU if it holds a 2-D image, else the first 2-D
  image extension (what most ground-based and many archive images are); the
  extensions above are used too where they exist with the image's shape (a
  ``*_crf.fits`` file written by outlier detection adds ``DQ``).

Keywords (science HDU first, then the primary header; see the README):

* exposure time: ``XPOSURE``, ``EXPTIME``, ``EXPOSURE``, ``TEXPTIME`` (first
  found; 1 s if none); measurement time: ``TMEASURE``;
* times: ``EXPSTART``, ``EXPEND`` (MJD), ``DURATION``;
* group id: built from ``PROGRAM``, ``OBSERVTN``, ``VISIT``, ``VISITGRP``,
  ``SEQ_ID``, ``ACT_ID``, ``EXPOSURE`` as jwst builds it when all are present,
  else ``GROUP_ID``, else the file name (one group per file);
* sky: ``BKGLEVEL`` is subtracted unless ``BKGSUB`` is true;
* ``PIXAR_SR`` (pixel area, else computed from the WCS) and ``S_REGION``
  (else computed from the WCS).

Data are taken as rates (drizzle's ``in_units="cps"``), as for JWST files.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..records import ExposureRef, InputError, InputSource, group_id_from_observation, number, one_line
from ..wcs_adapter import FitsImagingWCS
from .. import geometry
from . import _wcs
from ._fitsfile import check_fits_file

__all__ = ["EXPTIME_KEYWORDS", "describe", "load_arrays", "load_wcs", "science_hdu"]

KIND = "fits"

#: Header keywords holding the exposure time, in order of preference.
EXPTIME_KEYWORDS: tuple[str, ...] = ("XPOSURE", "EXPTIME", "EXPOSURE", "TEXPTIME")

_OBS_KEYS = {
    "program_number": "PROGRAM",
    "observation_number": "OBSERVTN",
    "visit_number": "VISIT",
    "visit_group": "VISITGRP",
    "sequence_id": "SEQ_ID",
    "activity_id": "ACT_ID",
    "exposure_number": "EXPOSURE",
}
_EXTRA_ARRAYS = {"dq": "DQ", "err": "ERR", "var_rnoise": "VAR_RNOISE", "var_poisson": "VAR_POISSON",
                 "var_flat": "VAR_FLAT"}


def science_hdu(hdul: Any) -> str | int:
    """Name or index of the HDU holding the science image.

    Raises
    ------
    InputError
        If the file holds no 2-D image.
    """
    names = [h.name.upper() for h in hdul]
    if "SCI" in names:
        return "SCI"
    for k, hdu in enumerate(hdul):
        if hdu.is_image and hdu.header.get("NAXIS") == 2:
            return k
    raise InputError(f"{hdul.filename()}: no 2-D image (no SCI extension, no 2-D primary or image HDU)")


def _lookup(headers: tuple[Any, ...], *keys: str) -> Any:
    for key in keys:
        for hdr in headers:
            if key in hdr and hdr[key] is not None and str(hdr[key]).strip() != "":
                return hdr[key]
    return None


def _fits_wcs(path: Path, header: Any, hdul: Any) -> tuple[FitsImagingWCS, tuple[int, int]]:
    from astropy.wcs import WCS

    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            awcs = WCS(header, hdul)
    except Exception as exc:
        raise InputError(f"{path}: cannot read its FITS WCS ({one_line(exc)})") from None
    if not awcs.has_celestial or awcs.naxis != 2:
        raise InputError(f"{path}: no celestial FITS WCS in the science HDU")
    return FitsImagingWCS(awcs, shape), shape


def describe(source: InputSource) -> ExposureRef:
    """Read one file's headers and WCS; check the file is whole."""
    from astropy.io import fits

    path = Path(source.path)
    check_fits_file(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            hdu = science_hdu(hdul)
            sci = hdul[hdu].header.copy()
            primary = hdul[0].header.copy()
            wcs, shape = _fits_wcs(path, sci, hdul)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot read ({one_line(exc)})") from None
    headers = (sci, primary) if hdu != 0 else (primary,)
    group_id = source.group_id
    if group_id is None:
        obs = {k: primary.get(v) for k, v in _OBS_KEYS.items()}
        group_id = group_id_from_observation(obs) or _lookup(headers, "GROUP_ID") or path.name
    area = number(_lookup(headers, "PIXAR_SR"))
    return ExposureRef(
        index=source.index,
        source=str(path),
        kind=KIND,
        filename=source.filename,
        group_id=str(group_id),
        exposure_time=number(_lookup(headers, *EXPTIME_KEYWORDS)) or 1.0,
        measurement_time=number(_lookup(headers, "TMEASURE")),
        start_time=number(_lookup(headers, "EXPSTART")),
        end_time=number(_lookup(headers, "EXPEND")),
        duration=number(_lookup(headers, "DURATION")),
        s_region=_lookup(headers, "S_REGION") or geometry.s_region_from_wcs(wcs, shape),
        pixelarea_steradians=area if area else _wcs.mean_pixel_area(wcs, shape),
        outline=geometry.outline_from_wcs(wcs, shape),
        hdu=hdu,
    )


def load_wcs(ref: ExposureRef) -> tuple[Any, tuple[int, int], dict[str, Any]]:
    """WCS, shape and ``wcsinfo`` of an exposure."""
    from astropy.io import fits

    try:
        with fits.open(ref.source, memmap=False) as hdul:
            hdu = ref.hdu if ref.hdu is not None else science_hdu(hdul)
            wcs, shape = _fits_wcs(Path(ref.source), hdul[hdu].header, hdul)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{ref.source}: cannot read the science header ({one_line(exc)})") from None
    info = {"pixelarea_steradians": ref.pixelarea_steradians}
    return wcs, shape, _wcs.complete_wcsinfo(info, wcs)


def load_arrays(ref: ExposureRef, *, need_var: bool, need_err: bool) -> dict[str, Any]:
    """The ``stcal.resample`` model dictionary of one file."""
    from astropy.io import fits

    wcs, shape, info = load_wcs(ref)
    try:
        with fits.open(ref.source, memmap=False) as hdul:
            hdu = ref.hdu if ref.hdu is not None else science_hdu(hdul)
            names = {h.name.upper() for h in hdul}
            data = np.asarray(hdul[hdu].data, dtype=np.float32)
            extras: dict[str, np.ndarray | None] = dict.fromkeys(_EXTRA_ARRAYS)
            for key, ext in _EXTRA_ARRAYS.items():
                if ext in names and ext != hdu and hdul[ext].data is not None:
                    arr = np.asarray(hdul[ext].data, dtype=np.uint32 if key == "dq" else np.float32)
                    if hdu == "SCI" or arr.shape == shape:  # a single image takes same-shape extras only
                        extras[key] = arr
            headers = (hdul[hdu].header, hdul[0].header) if hdu != 0 else (hdul[0].header,)
            level = number(_lookup(headers, "BKGLEVEL"))
            subtracted = bool(_lookup(headers, "BKGSUB") or False)
    except Exception as exc:
        raise InputError(f"{ref.source}: cannot read ({one_line(exc)})") from None
    if data.shape != shape:
        raise InputError(f"{ref.source}: science data of shape {data.shape}, its header says {shape}")
    for key, arr in extras.items():
        if arr is not None and arr.shape != shape:
            raise InputError(f"{ref.source}: {_EXTRA_ARRAYS[key]} shape {arr.shape} differs from SCI {shape}")
    dq = extras.pop("dq")
    return {
        "data": data,
        "dq": np.zeros(shape, np.uint32) if dq is None else dq,
        **extras,
        "filename": ref.filename,
        "group_id": ref.group_id,
        "wcs": wcs,
        "wcsinfo": None,
        "exposure_time": ref.exposure_time,
        "measurement_time": ref.measurement_time,
        "start_time": ref.start_time,
        "end_time": ref.end_time,
        "duration": ref.duration,
        "pixelarea_steradians": info.get("pixelarea_steradians"),
        "level": level,
        "subtracted": subtracted,
    }


def write_flagged(ref: ExposureRef, mask: Any, path: Path, *, status: str) -> None:
    """Write the file with its outliers flagged, in its own layout.

    The science image (float32) and any ``ERR``/``VAR_*`` extension get NaN and
    a ``DQ`` extension (added if missing) gets ``DO_NOT_USE | OUTLIER`` where
    ``mask`` is set, made consistent as jwst's ``match_nans_and_flags`` does;
    ``S_OUTLIR`` in the primary header records ``status``. ``mask`` ``None`` (a
    skipped step) leaves the arrays as they are. Read back by this
    driver, the file gives exactly the arrays that the mask applied on reading
    gives.
    """
    from astropy.io import fits

    from ..dqmask import flagged_arrays

    model = load_arrays(ref, need_var=True, need_err=True)
    arrays = flagged_arrays(model, mask)
    with fits.open(ref.source, memmap=False) as hdul:
        hdu = ref.hdu if ref.hdu is not None else science_hdu(hdul)
        hdul[hdu].data = np.asarray(arrays["data"], np.float32)
        names = {h.name.upper() for h in hdul}
        for key, ext in _EXTRA_ARRAYS.items():
            if arrays.get(key) is None:
                continue
            if ext in names:
                hdul[ext].data = arrays[key]  # the HDU load_arrays read (the first of that name)
            elif key == "dq":
                hdul.append(fits.ImageHDU(arrays[key], name=ext))
        hdul[0].header["S_OUTLIR"] = (status, "outlier detection")
        hdul.writeto(path)
