"""Driver for exposures held in memory (:class:`~dask_resample.inputs.io.Exposure`).

The arrays travel with the reference (``ExposureRef.payload``), so these inputs
suit notebooks and tests rather than large mosaics on remote clusters.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ... import geometry
from ...geometry.wcs_adapter import FitsImagingWCS
from ..dqmask import flagged_arrays
from ..records import Exposure, ExposureRef, InputError, InputSource, number
from . import _wcs
from ._fitsfile import write_file

__all__ = ["describe", "load_arrays", "load_wcs", "ref_from_exposure", "ref_from_model_dict"]

KIND = "memory"


def _gwcs_like(wcs: Any, shape_yx: tuple[int, int]) -> Any:
    return wcs if hasattr(wcs, "output_frame") else FitsImagingWCS(wcs, shape_yx)


def ref_from_model_dict(
    index: int, model: dict[str, Any], *, filename: str, group_id: str, s_region: str | None = None
) -> ExposureRef:
    """Reference holding a ``stcal.resample`` model dictionary."""
    shape = tuple(np.shape(model["data"]))
    wcs = _gwcs_like(model["wcs"], shape)
    area = number(model.get("pixelarea_steradians")) or _wcs.mean_pixel_area(wcs, shape)
    return ExposureRef(
        index=index,
        source="<memory>",
        kind=KIND,
        filename=filename,
        group_id=str(group_id),
        exposure_time=number(model.get("exposure_time")),
        measurement_time=number(model.get("measurement_time")),
        start_time=number(model.get("start_time")),
        end_time=number(model.get("end_time")),
        duration=number(model.get("duration")),
        s_region=s_region or geometry.s_region_from_wcs(wcs, shape),
        pixelarea_steradians=area,
        outline=geometry.outline_from_wcs(wcs, shape),
        payload=model,
    )


def ref_from_exposure(index: int, exp: Exposure) -> ExposureRef:
    """Check an :class:`Exposure` and turn it into a reference."""
    data = np.asarray(exp.data)
    name = exp.filename or f"exposure_{index}"
    if data.ndim != 2:
        raise InputError(f"{name}: data must be 2-D, got shape {data.shape}")
    if exp.wcs is None:
        raise InputError(f"{name}: no WCS")
    for arr_name in ("dq", "var_rnoise", "var_poisson", "var_flat", "err"):
        arr = getattr(exp, arr_name)
        if arr is not None and np.shape(arr) != data.shape:
            raise InputError(f"{name}: {arr_name} shape {np.shape(arr)} differs from data shape {data.shape}")
    model = {
        "data": data,
        "dq": np.zeros(data.shape, np.uint32) if exp.dq is None else np.asarray(exp.dq),
        "filename": name,
        "group_id": exp.group_id or name,
        "wcs": exp.wcs,
        "exposure_time": exp.exposure_time,
        "measurement_time": exp.measurement_time,
        "start_time": exp.start_time,
        "end_time": exp.end_time,
        "duration": exp.duration,
        "pixelarea_steradians": exp.pixelarea_steradians,
        "level": exp.level,
        "subtracted": exp.subtracted,
        "var_rnoise": exp.var_rnoise,
        "var_poisson": exp.var_poisson,
        "var_flat": exp.var_flat,
        "err": exp.err,
    }
    return ref_from_model_dict(index, model, filename=name, group_id=str(model["group_id"]))


def describe(source: InputSource) -> ExposureRef:  # pragma: no cover - in-memory refs are built on the client
    """In-memory exposures are described when they are given."""
    raise InputError(f"{source.filename}: in-memory exposures are described on the client")


def load_wcs(ref: ExposureRef) -> tuple[Any, tuple[int, int], dict[str, Any]]:
    """WCS, shape and ``wcsinfo`` of an exposure."""
    model = ref.payload
    shape = tuple(np.shape(model["data"]))
    wcs = _gwcs_like(model["wcs"], shape)
    info = dict(model.get("wcsinfo") or {})
    info.setdefault("pixelarea_steradians", model.get("pixelarea_steradians"))
    return wcs, shape, _wcs.complete_wcsinfo(info, wcs)


def load_arrays(ref: ExposureRef, *, need_var: bool, need_err: bool) -> dict[str, Any]:
    """The model dictionary (a shallow copy)."""
    model = dict(ref.payload)
    model["wcs"] = _gwcs_like(model["wcs"], tuple(np.shape(model["data"])))
    return model


def write_flagged(
    ref: ExposureRef, mask: Any, path: Any, *, status: str, storage_options: Mapping[str, Any] | None = None
) -> str:
    """Write an in-memory exposure with its outliers flagged.

    An exposure with a gwcs becomes a JWST ``ImageModel`` file (arrays, WCS,
    exposure times, ``cal_step.outlier_detection``) when stdatamodels is
    installed; otherwise, and for a FITS WCS, a FITS file in the ``SCI`` layout
    with the WCS in the ``SCI`` header where it is a FITS WCS.

    Parameters
    ----------
    ref : ExposureRef
    mask : numpy.ndarray or None
        Outlier pixels.
    path : str or Path
        Target: a local path, or a URL (written to a local temporary file, then uploaded whole).
    status : str
        The outlier step's status.
    storage_options : mapping, optional
        Options of a URL target's file system.

    Returns
    -------
    str
        The path or URL written.
    """
    model = load_arrays(ref, need_var=True, need_err=True)
    arrays = flagged_arrays(model, mask)
    return write_file(path, lambda target: _write_flagged_file(ref, model, arrays, target, status), storage_options)


def _write_flagged_file(
    ref: ExposureRef, model: dict[str, Any], arrays: dict[str, Any], path: Path, status: str
) -> None:
    """The flagged exposure as an ``ImageModel`` file, else a FITS file in the ``SCI`` layout."""
    from astropy.io import fits

    wcs = model["wcs"]
    if not isinstance(wcs, FitsImagingWCS) and _write_image_model(ref, model, arrays, path, status):
        return
    header = fits.Header()
    inner = wcs.fits_wcs if isinstance(wcs, FitsImagingWCS) else wcs
    if hasattr(inner, "to_header"):
        header.update(inner.to_header(relax=True))
    primary = fits.PrimaryHDU()
    primary.header["FILENAME"] = path.name
    primary.header["S_OUTLIR"] = (status, "outlier detection")
    if ref.exposure_time is not None:
        primary.header["XPOSURE"] = ref.exposure_time
    if ref.measurement_time is not None:
        primary.header["TMEASURE"] = ref.measurement_time
    primary.header["GROUP_ID"] = ref.group_id
    hdus = [primary, fits.ImageHDU(np.asarray(arrays["data"], np.float32), header=header, name="SCI")]
    for name in ("err", "dq", "var_rnoise", "var_poisson", "var_flat"):
        if arrays[name] is not None:
            hdus.append(fits.ImageHDU(arrays[name], name=name.upper()))
    fits.HDUList(hdus).writeto(path)


def _write_image_model(
    ref: ExposureRef, model: dict[str, Any], arrays: dict[str, Any], path: Path, status: str
) -> bool:
    """Write a JWST ``ImageModel``; ``False`` if stdatamodels is not installed."""
    try:
        from stdatamodels.jwst import datamodels
    except ImportError:
        return False
    out = datamodels.ImageModel(data=np.asarray(arrays["data"], np.float32))
    for name in ("dq", "err", "var_rnoise", "var_poisson", "var_flat"):
        if arrays.get(name) is not None:
            setattr(out, name, arrays[name])
    out.meta.wcs = model["wcs"]
    out.meta.filename = path.name
    out.meta.group_id = ref.group_id
    for key, attr in (
        ("exposure_time", "exposure_time"),
        ("measurement_time", "measurement_time"),
        ("start_time", "start_time"),
        ("end_time", "end_time"),
        ("duration", "duration"),
    ):
        if model.get(key) is not None:
            setattr(out.meta.exposure, attr, model[key])
    if model.get("level") is not None:
        out.meta.background.level = float(model["level"])
        out.meta.background.subtracted = bool(model.get("subtracted"))
    if model.get("pixelarea_steradians"):
        out.meta.photometry.pixelarea_steradians = float(model["pixelarea_steradians"])
    out.meta.cal_step.outlier_detection = status
    out.save(str(path))
    return True
