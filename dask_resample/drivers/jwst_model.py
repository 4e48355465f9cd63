"""Driver for JWST datamodel files (``*_cal.fits``), associations and ``ModelLibrary``.

Needs the ``jwst`` extra (jwst, stdatamodels). Group ids follow
``ModelLibrary``'s rules: the association member's ``group_id``, else the
model's ``meta.group_id``, else the one built from ``meta.observation``, else
``exposure<N>``. Metadata is read with ``stdatamodels``' ``read_metadata``
(the ASDF tree, no arrays), once per file, on a worker.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..records import ExposureRef, InputError, InputSource, group_id_from_observation, number, one_line
from .. import geometry
from . import _wcs
from ._fitsfile import check_fits_file

__all__ = [
    "describe",
    "is_datamodel",
    "is_model_library",
    "library_member_ref",
    "load_arrays",
    "load_wcs",
    "ref_from_datamodel",
    "sources_from_library",
]

KIND = "jwst"
EXTRA_MESSAGE = "JWST inputs need the 'jwst' extra: pip install 'dask-resample[jwst]'"


def require_extra() -> None:
    """Raise a one-line :class:`InputError` naming the extra when stdatamodels is missing."""
    try:
        import stdatamodels.jwst.datamodels  # noqa: F401
    except ImportError:
        raise InputError(EXTRA_MESSAGE) from None


def is_model_library(obj: Any) -> bool:
    """True for a :class:`jwst.datamodels.ModelLibrary`."""
    return type(obj).__name__ == "ModelLibrary" and hasattr(obj, "group_indices")


def is_datamodel(obj: Any) -> bool:
    """True for an open JWST datamodel."""
    return hasattr(obj, "meta") and hasattr(obj, "data") and hasattr(obj, "save")


# ----------------------------------------------------------------------------
# client side: what to read
# ----------------------------------------------------------------------------
def sources_from_library(library: Any) -> list[InputSource | ExposureRef]:
    """Members of a ``ModelLibrary``: files to describe on workers, or in-memory references."""
    group_of: dict[int, str] = {}
    for gid, indices in library.group_indices.items():
        for i in indices:
            group_of[i] = gid
    out: list[InputSource | ExposureRef] = []
    for i in range(len(library)):
        path, in_memory = _member_location(library, i)
        if in_memory:
            out.append(library_member_ref(library, i, group_id=group_of[i]))
        else:
            name = Path(library.asn["products"][0]["members"][i]["expname"]).name
            out.append(InputSource(index=i, path=str(path), kind=KIND, filename=name, group_id=group_of[i]))
    return out


def _member_location(library: Any, index: int) -> tuple[Path, bool]:
    """Where member ``index``'s current version lives: (path, held in memory)."""
    expname = library.asn["products"][0]["members"][index]["expname"]
    on_disk = getattr(library, "on_disk", False)
    asn_dir = getattr(library, "asn_dir", None)
    path = Path(asn_dir if asn_dir not in (None, "None") else ".") / expname
    if on_disk:
        # a model shelved after a change lives in the library's temporary file
        path = Path(getattr(library, "_temp_filenames", {}).get(index, path))
    path = Path(os.path.abspath(path))
    in_memory = not on_disk and index in getattr(library, "_loaded_models", {})
    return path, in_memory or not (on_disk or path.exists())


def library_member_ref(library: Any, index: int, *, group_id: str, meta: Mapping | None = None) -> ExposureRef:
    """Reference to member ``index`` of a ``ModelLibrary``, where its current version lives.

    For an on-disk library that is the library's temporary file of a model shelved
    after a change, else the association member's file. For an in-memory library,
    a model the library already holds (it may have been changed in memory) becomes
    an in-memory exposure; a member not loaded yet is read from its file.
    The library must not be open (``with library:``) when this is called.
    """
    path, in_memory = _member_location(library, index)
    if not in_memory:
        name = Path(library.asn["products"][0]["members"][index]["expname"]).name
        return describe(InputSource(index=index, path=str(path), kind=KIND, filename=name, group_id=group_id))
    with library:
        model = library.borrow(index)
        try:
            return ref_from_datamodel(index, model, group_id=group_id)
        finally:
            library.shelve(model, index, modify=False)


def ref_from_datamodel(index: int, model: Any, group_id: str | None = None) -> ExposureRef:
    """An in-memory reference holding a datamodel's arrays (the model dictionary)."""
    from jwst.resample.resample import input_jwst_model_to_dict

    if group_id is None:
        group_id = getattr(model.meta, "group_id", None)
        if not group_id:
            group_id = group_id_from_observation(model.meta.observation.instance) or f"exposure{index + 1:04d}"
    d = input_jwst_model_to_dict(model, weight_type="ivm", enable_var=True, compute_err="driz_err")
    d = {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in d.items()}
    d["wcsinfo"] = dict(model.meta.wcsinfo.instance)
    d["group_id"] = group_id
    from . import in_memory

    return in_memory.ref_from_model_dict(
        index, d, filename=str(model.meta.filename or f"model_{index}"), group_id=str(group_id),
        s_region=getattr(model.meta.wcsinfo, "s_region", None),
    )


# ----------------------------------------------------------------------------
# worker side
# ----------------------------------------------------------------------------
def describe(source: InputSource) -> ExposureRef:
    """Read one file's metadata (ASDF tree only) and check the file is whole."""
    require_extra()
    from stdatamodels.jwst.datamodels.util import read_metadata

    path = Path(source.path)
    check_fits_file(path)
    try:
        meta = read_metadata(str(path), flatten=False)["meta"]
    except Exception as exc:
        raise InputError(f"{path}: corrupt JWST metadata in the ASDF extension ({one_line(exc)})") from None
    group_id = source.group_id or meta.get("group_id")
    if not group_id:
        group_id = group_id_from_observation(meta.get("observation") or {}) or f"exposure{source.index + 1:04d}"
    exposure = meta.get("exposure") or {}
    wcsinfo = meta.get("wcsinfo") or {}
    area = number((meta.get("photometry") or {}).get("pixelarea_steradians"))
    s_region = wcsinfo.get("s_region")
    if s_region:
        outline = _outline_from_s_region(s_region)
    if not s_region or area is None:  # rare: the WCS itself is needed (read once)
        wcs, shape, _ = load_wcs_from(path)
        if not s_region:
            s_region = geometry.s_region_from_wcs(wcs, shape)
            outline = geometry.outline_from_wcs(wcs, shape)
        if area is None:
            area = _wcs.mean_pixel_area(wcs, shape)
    return ExposureRef(
        index=source.index,
        source=str(path),
        kind=KIND,
        filename=source.filename,
        group_id=str(group_id),
        exposure_time=number(exposure.get("exposure_time")),
        measurement_time=number(exposure.get("measurement_time")),
        start_time=number(exposure.get("start_time")),
        end_time=number(exposure.get("end_time")),
        duration=number(exposure.get("duration")),
        s_region=s_region,
        pixelarea_steradians=area,
        outline=outline,
    )


def _outline_from_s_region(s_region: str) -> tuple[tuple[float, float], ...]:
    from stcal.alignment.util import sregion_to_footprint

    from ..geometry import split_sregions

    try:
        verts = np.vstack([sregion_to_footprint(s) for s in split_sregions(s_region)])
    except Exception:
        return ()
    return tuple((float(ra), float(dec)) for ra, dec in verts)


def load_wcs_from(path: Path) -> tuple[Any, tuple[int, int], dict[str, Any]]:
    """WCS, shape and ``wcsinfo`` of a datamodel file."""
    require_extra()
    from stdatamodels.jwst import datamodels

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with datamodels.open(str(path)) as model:
                wcs = model.meta.wcs
                if wcs is None:
                    raise InputError(f"{path}: no celestial WCS (meta.wcs is empty)")
                shape = tuple(model.data.shape)
                info = dict(model.meta.wcsinfo.instance)
                info["pixelarea_steradians"] = model.meta.photometry.pixelarea_steradians
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot read ({one_line(exc)})") from None
    return wcs, shape, _wcs.complete_wcsinfo(info, wcs)


def load_wcs(ref: ExposureRef) -> tuple[Any, tuple[int, int], dict[str, Any]]:
    """WCS, shape and ``wcsinfo`` of an exposure."""
    return load_wcs_from(Path(ref.source))


def load_arrays(ref: ExposureRef, *, need_var: bool, need_err: bool) -> dict[str, Any]:
    """The ``stcal.resample`` model dictionary, read with jwst's own converter."""
    require_extra()
    from jwst.resample.resample import input_jwst_model_to_dict
    from stdatamodels.jwst import datamodels

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with datamodels.open(ref.source) as model:
                model.meta.group_id = ref.group_id
                # var_rnoise always (inverse-variance weights); the other variances when asked for
                d = input_jwst_model_to_dict(
                    model,
                    weight_type="ivm",
                    enable_var=need_var,
                    compute_err="driz_err" if need_err else None,
                )
                # the arrays outlive the closed model (read into memory, not mapped): no copies
                out = {k: (np.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in d.items()}
    except Exception as exc:
        raise InputError(f"{ref.source}: cannot read ({one_line(exc)})") from None
    out["wcsinfo"] = None
    out["group_id"] = ref.group_id
    return out



def write_flagged(ref: ExposureRef, mask: Any, path: Path, *, status: str) -> None:
    """Write the exposure with its outliers flagged, as jwst's outlier step leaves it (``*_crf.fits``).

    DQ gets ``DO_NOT_USE | OUTLIER`` where ``mask`` is set, then jwst's own
    ``match_nans_and_flags`` runs; ``meta.cal_step.outlier_detection`` is
    ``status``. ``mask`` ``None`` (a skipped step) leaves the arrays as read.
    """
    require_extra()
    from jwst.lib.pipe_utils import match_nans_and_flags
    from stdatamodels.jwst import datamodels

    from ..dqmask import OUTLIER_BITS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with datamodels.open(ref.source) as model:
            if mask is not None:
                model.dq |= np.asarray(mask, dtype=np.uint32) * OUTLIER_BITS
                match_nans_and_flags(model)
            model.meta.cal_step.outlier_detection = status
            model.meta.filename = path.name
            model.save(str(path))
