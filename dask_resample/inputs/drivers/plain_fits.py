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

Files are opened lazily, by range at a URL (``s3://``, ``gs://``,
``memory://``, ...; :func:`~dask_resample.inputs.drivers._fitsfile.open_fits`), each
read one request of what it needs plus 64 KiB read-ahead:

* client check (:func:`dask_resample.inputs.io.resolve_inputs`): the first FITS block,
  2880 bytes, one ranged request;
* metadata (:func:`describe`) and WCS (:func:`load_wcs`): every HDU header
  (the integrity check; :func:`load_wcs` stops at the science HDU) and the data
  of WCS lookup-table extensions if the WCS has any: a few KiB of headers and
  one request per HDU, whatever the image size;
* pixels (:func:`load_arrays`): the headers, the science image, ``DQ`` and
  ``VAR_RNOISE`` where present, and ``ERR``, ``VAR_POISSON``, ``VAR_FLAT``
  only when asked for (errors, variances); no other extension's data;
* :func:`write_flagged`: every HDU (the file is rewritten whole).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ... import geometry
from ...geometry.wcs_adapter import FitsImagingWCS
from ..dqmask import flagged_arrays
from ..records import ExposureRef, InputError, InputSource, group_id_from_observation, number, one_line
from . import _wcs
from ._fitsfile import open_fits, write_file

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
_EXTRA_ARRAYS = {
    "dq": "DQ",
    "err": "ERR",
    "var_rnoise": "VAR_RNOISE",
    "var_poisson": "VAR_POISSON",
    "var_flat": "VAR_FLAT",
}
#: Arrays read only when asked for (``need_err``, ``need_var``); the others are always read.
_ERR_ARRAYS = ("err",)
_VAR_ARRAYS = ("var_poisson", "var_flat")


def science_hdu(hdul: Any, name: str | None = None) -> str | int:
    """Name or index of the HDU holding the science image.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
    name : str, optional
        The file's path or URL for messages (default: the HDU list's file name).

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
    raise InputError(f"{name or hdul.filename()}: no 2-D image (no SCI extension, no 2-D primary or image HDU)")


def _lookup(headers: tuple[Any, ...], *keys: str) -> Any:
    for key in keys:
        for hdr in headers:
            if key in hdr and hdr[key] is not None and str(hdr[key]).strip() != "":
                return hdr[key]
    return None


def _fits_wcs(path: str | Path, header: Any, hdul: Any) -> tuple[FitsImagingWCS, tuple[int, int]]:
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
    location = source.location
    name = str(Path(source.path)) if location.is_local else location.url
    try:
        with open_fits(location, check=True) as hdul:
            hdu = science_hdu(hdul, name)
            sci = hdul[hdu].header.copy()
            primary = hdul[0].header.copy()
            wcs, shape = _fits_wcs(name, sci, hdul)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{name}: cannot read ({one_line(exc)})") from None
    headers = (sci, primary) if hdu != 0 else (primary,)
    group_id = source.group_id
    if group_id is None:
        obs = {k: primary.get(v) for k, v in _OBS_KEYS.items()}
        group_id = group_id_from_observation(obs) or _lookup(headers, "GROUP_ID") or location.name
    area = number(_lookup(headers, "PIXAR_SR"))
    return ExposureRef(
        index=source.index,
        source=name,
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
        storage_options=source.storage_options,
    )


def load_wcs(ref: ExposureRef) -> tuple[Any, tuple[int, int], dict[str, Any]]:
    """WCS, shape and ``wcsinfo`` of an exposure."""
    try:
        with open_fits(ref.location) as hdul:
            return _wcs_of(ref, hdul)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{ref.source}: cannot read the science header ({one_line(exc)})") from None


def _wcs_of(ref: ExposureRef, hdul: Any) -> tuple[Any, tuple[int, int], dict[str, Any]]:
    """WCS, shape and ``wcsinfo`` from an open file."""
    hdu = ref.hdu if ref.hdu is not None else science_hdu(hdul, ref.source)
    wcs, shape = _fits_wcs(ref.source, hdul[hdu].header, hdul)
    info = {"pixelarea_steradians": ref.pixelarea_steradians}
    return wcs, shape, _wcs.complete_wcsinfo(info, wcs)


def load_arrays(ref: ExposureRef, *, need_var: bool, need_err: bool) -> dict[str, Any]:
    """The ``stcal.resample`` model dictionary of one file.

    ``ERR`` is read only when ``need_err``, ``VAR_POISSON`` and ``VAR_FLAT``
    only when ``need_var`` (as jwst's ``input_jwst_model_to_dict`` takes them);
    the science image, ``DQ`` and ``VAR_RNOISE`` always.
    """
    skip = (() if need_err else _ERR_ARRAYS) + (() if need_var else _VAR_ARRAYS)
    try:
        with open_fits(ref.location, whole=True) as hdul:
            try:
                wcs, shape, info = _wcs_of(ref, hdul)
            except InputError:
                raise
            except Exception as exc:
                raise InputError(f"{ref.source}: cannot read the science header ({one_line(exc)})") from None
            hdu = ref.hdu if ref.hdu is not None else science_hdu(hdul, ref.source)
            names = {h.name.upper() for h in hdul}
            data = np.asarray(hdul[hdu].data, dtype=np.float32)
            extras: dict[str, np.ndarray | None] = dict.fromkeys(_EXTRA_ARRAYS)
            for key, ext in _EXTRA_ARRAYS.items():
                if key not in skip and ext in names and ext != hdu and hdul[ext].data is not None:
                    arr = np.asarray(hdul[ext].data, dtype=np.uint32 if key == "dq" else np.float32)
                    if hdu == "SCI" or arr.shape == shape:  # a single image takes same-shape extras only
                        extras[key] = arr
            headers = (hdul[hdu].header, hdul[0].header) if hdu != 0 else (hdul[0].header,)
            level = number(_lookup(headers, "BKGLEVEL"))
            subtracted = bool(_lookup(headers, "BKGSUB") or False)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{ref.source}: cannot read ({one_line(exc)})") from None
    if data.shape != shape:
        raise InputError(f"{ref.source}: science data of shape {data.shape}, its header says {shape}")
    for key, extra in extras.items():
        if extra is not None and extra.shape != shape:
            raise InputError(f"{ref.source}: {_EXTRA_ARRAYS[key]} shape {extra.shape} differs from SCI {shape}")
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


def write_flagged(
    ref: ExposureRef, mask: Any, path: str | Path, *, status: str, storage_options: Mapping[str, Any] | None = None
) -> str:
    """Write the file with its outliers flagged, in its own layout.

    The science image (float32) and any ``ERR``/``VAR_*`` extension get NaN and
    a ``DQ`` extension (added if missing) gets ``DO_NOT_USE | OUTLIER`` where
    ``mask`` is set, made consistent as jwst's ``match_nans_and_flags`` does;
    ``S_OUTLIR`` in the primary header records ``status``. ``mask`` ``None`` (a
    skipped step) leaves the arrays as they are. Read back by this
    driver, the file gives exactly the arrays that the mask applied on reading
    gives.

    Parameters
    ----------
    ref : ExposureRef
        The input (read from its path or URL).
    mask : numpy.ndarray or None
        Outlier pixels.
    path : str or Path
        Target: a local path, or a URL (written to a local temporary file, then uploaded whole).
    status : str
        ``S_OUTLIR``.
    storage_options : mapping, optional
        Options of a URL target's file system (default: the input's).

    Returns
    -------
    str
        The path or URL written.
    """
    from astropy.io import fits

    model = load_arrays(ref, need_var=True, need_err=True)
    arrays = flagged_arrays(model, mask)

    def write(target: Path) -> None:
        with open_fits(ref.location, whole=True) as hdul:
            hdu = ref.hdu if ref.hdu is not None else science_hdu(hdul, ref.source)
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
            hdul.writeto(target)

    return write_file(path, write, ref.storage_options if storage_options is None else storage_options)
