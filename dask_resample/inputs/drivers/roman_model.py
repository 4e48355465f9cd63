"""Driver for Roman WFI Level-2 images (``WfiImage`` ASDF files), associations and ``ModelLibrary``.

Needs the ``roman`` extra (romancal, roman_datamodels). The arrays are read as
romancal's ``ResampleData._input_model_to_dict`` reads them, by that very
method: ``data`` (float32), ``dq``, ``err`` and ``var_poisson``/``var_flat``
(float16, as stored), ``var_rnoise`` as stored or, when the file has none,
rebuilt from ``err`` (``romancal.lib.basic_utils.compute_var_rnoise``),
``var_sky`` for ``weight_type="ivm-sky"``
(``romancal.resample._utils.compute_var_sky``), the background level and
whether it was subtracted, the pixel area (``None`` when unset), the exposure
time (1 when unset) and the effective exposure time (the exposure-time map).

Group ids follow romancal's ``ModelLibrary``: the association member's
``group_id``, else the model's ``meta.group_id``, else
``meta.observation.observation_id``, else ``exposure<N>``.

What is read: for the metadata (:func:`describe`) and the WCS (:func:`load_wcs`)
the ASDF tree only (arrays are loaded lazily and never touched); for the pixels
(:func:`load_arrays`) every array of the model. Files are local paths or URLs
of any fsspec file system (opened as file objects, read by range by asdf).
"""

from __future__ import annotations

import contextlib
import copy
import mmap
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ... import geometry
from ...dqflags import ROMAN_PIXEL
from ..records import ExposureRef, InputError, InputSource, number, one_line
from . import _wcs, in_memory
from ._fitsfile import write_file

__all__ = [
    "EXTRA_MESSAGE",
    "KIND",
    "READS_VAR_SKY",
    "describe",
    "is_asdf_start",
    "is_datamodel",
    "is_model_library",
    "load_arrays",
    "load_wcs",
    "ref_from_datamodel",
    "require_extra",
    "sources_from_library",
]

KIND = "roman"
EXTRA_MESSAGE = "Roman inputs need the 'roman' extra: pip install 'dask-resample[roman]'"

#: This driver makes ``var_sky`` when asked (``weight_type="ivm-sky"``).
READS_VAR_SKY = True

#: The arrays of the model dictionary.
_ARRAYS = ("data", "dq", "err", "var_rnoise", "var_poisson", "var_flat", "var_sky")

#: romancal's marker of an unset number in the metadata.
_UNSET = -999999


def require_extra() -> None:
    """Raise a one-line :class:`InputError` naming the extra when romancal is missing."""
    try:
        import roman_datamodels.datamodels  # noqa: F401
        import romancal.resample.resample  # noqa: F401
    except ImportError:
        raise InputError(EXTRA_MESSAGE) from None


def is_asdf_start(head: bytes) -> bool:
    """True when a file starts like an ASDF file (``#ASDF``)."""
    return head.startswith(b"#ASDF")


def is_model_library(obj: Any) -> bool:
    """True for a :class:`romancal.datamodels.ModelLibrary`."""
    return (
        type(obj).__name__ == "ModelLibrary"
        and type(obj).__module__.startswith("romancal")
        and hasattr(obj, "group_indices")
    )


def is_datamodel(obj: Any) -> bool:
    """True for an open Roman datamodel."""
    return type(obj).__module__.startswith("roman_datamodels") and hasattr(obj, "meta") and hasattr(obj, "data")


# ----------------------------------------------------------------------------
# what romancal reads
# ----------------------------------------------------------------------------
class _Reader:
    """What ``ResampleData._input_model_to_dict`` uses of its instance: the weight type and the group id."""

    def __init__(self, weight_type: str, group_id: str) -> None:
        self.weight_type = weight_type
        self.input_models = SimpleNamespace(_model_to_group_id=lambda model: group_id)


def model_dict(model: Any, *, group_id: str, var_sky: bool) -> dict[str, Any]:
    """The ``stcal.resample`` model dictionary of a Roman datamodel, by romancal's own converter.

    Parameters
    ----------
    model : roman_datamodels.datamodels.ImageModel
    group_id : str
        The exposure's group id (see the module documentation).
    var_sky : bool
        Also compute the sky variance (``weight_type="ivm-sky"``).

    Returns
    -------
    dict
        The arrays in the types romancal gives them, read into memory, and the metadata
        (times as MJD floats where they are ``astropy.time.Time``).
    """
    from romancal.resample.resample import ResampleData

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = ResampleData._input_model_to_dict(_Reader("ivm-sky" if var_sky else "ivm", group_id), model)
    # the arrays read into memory (asdf's lazy arrays are not numpy arrays), in their stored types
    out = {k: (_in_memory(v) if k in _ARRAYS and v is not None else v) for k, v in d.items()}
    out["wcs"] = _detached(out["wcs"])
    for key in ("start_time", "end_time"):
        out[key] = _mjd(out.get(key))
    out["group_id"] = group_id
    out["wcsinfo"] = _plain(model.meta.wcsinfo)
    # whether var_rnoise is the file's (else rebuilt from err): romancal's outlier detection without
    # resampling weights by the datamodel's own arrays, where a missing var_rnoise means unit weights
    out["var_rnoise_stored"] = "var_rnoise" in model
    return out


def _in_memory(array: Any) -> np.ndarray:
    """An array read into memory: asdf's own buffer when it holds one (no second copy), else a copy.

    A memory-mapped block (or a view of one) is copied: it would not outlive the file.
    """
    a = np.asarray(array)
    base: Any = a
    while base is not None:
        if isinstance(base, np.memmap | mmap.mmap):
            return np.array(a)
        base = getattr(base, "base", None)
    return a


def _detached(wcs: Any) -> Any:
    """A copy of a WCS read from a file, holding its own arrays (usable after the file is closed)."""
    return copy.deepcopy(wcs)


def _mjd(value: Any) -> float | None:
    """A time as an MJD float (``astropy.time.Time`` or a number), else ``None``."""
    if value is None:
        return None
    mjd = getattr(value, "mjd", None)
    return number(mjd if mjd is not None else value)


def _plain(node: Any) -> dict[str, Any]:
    """A metadata node as a plain dictionary (unset numbers as ``None``)."""
    out = {}
    for key in node:
        value = node[key]
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and value == _UNSET:
            value = None
        out[str(key)] = value
    return out


def _group_id(model: Any, index: int, given: str | None) -> str:
    """The group id by romancal's ``ModelLibrary`` rules."""
    if given:
        return str(given)
    meta = model.meta
    if (gid := getattr(meta, "group_id", None)) is not None and gid != "":
        return str(gid)
    observation = getattr(meta, "observation", None)
    if observation is not None and (oid := getattr(observation, "observation_id", None)):
        return str(oid)
    return f"exposure{index + 1:04d}"


def _s_region(wcs: Any) -> str:
    """``S_REGION`` of the WCS's footprint, the polygon romancal's output grid is built from.

    romancal builds the grid from ``wcs.footprint()`` itself, not from the
    9-decimal ``S_REGION`` keyword: the vertices are written with 17 decimals,
    which read back as the very same numbers.
    """
    vertices = np.asarray(wcs.footprint(), dtype=np.float64).ravel()
    return "POLYGON ICRS  " + " ".join(f"{v:.17f}" for v in vertices)


def _pixel_area(model: Any) -> float | None:
    area = number(model.meta.photometry.pixel_area)
    return None if area is None or area == _UNSET else area


def _exposure_time(model: Any) -> float:
    t = number(model.meta.exposure.exposure_time)
    return 1.0 if t is None or t == _UNSET else t


# ----------------------------------------------------------------------------
# client side
# ----------------------------------------------------------------------------
def sources_from_library(library: Any) -> list[InputSource | ExposureRef]:
    """Members of a romancal ``ModelLibrary``: files to describe on workers, or in-memory references."""
    require_extra()
    group_of = {i: gid for gid, indices in library.group_indices.items() for i in indices}
    members = library.asn["products"][0]["members"]
    out: list[InputSource | ExposureRef] = []
    for i in range(len(library)):
        path = _member_path(library, i)
        if path is not None:
            out.append(
                InputSource(
                    index=i, path=str(path), kind=KIND, filename=Path(members[i]["expname"]).name, group_id=group_of[i]
                )
            )
            continue
        with library:
            model = library.borrow(i)
            try:
                out.append(ref_from_datamodel(i, model, group_id=group_of[i]))
            finally:
                library.shelve(model, i, modify=False)
    return out


def _member_path(library: Any, index: int) -> Path | None:
    """The file holding member ``index``'s current version, or ``None`` when the library holds it in memory."""
    on_disk = getattr(library, "on_disk", False)
    if on_disk:
        temp = getattr(library, "_temp_filenames", {}).get(index)
        if temp is not None:
            return Path(temp).absolute()
    elif index in getattr(library, "_loaded_models", {}):
        return None
    asn_dir = getattr(library, "asn_dir", None) or getattr(library, "_asn_dir", None)
    if asn_dir in (None, "None"):
        return None
    path = (Path(asn_dir) / library.asn["products"][0]["members"][index]["expname"]).absolute()
    return path if path.exists() else None


def ref_from_datamodel(index: int, model: Any, group_id: str | None = None) -> ExposureRef:
    """An in-memory reference holding a Roman datamodel's arrays (the model dictionary).

    ``var_sky`` is computed here (it is needed only for ``weight_type="ivm-sky"``,
    which is not known yet).
    """
    require_extra()
    gid = _group_id(model, index, group_id)
    d = model_dict(model, group_id=gid, var_sky=True)
    # copies: the reference must not change when the caller later changes its model's arrays
    d.update({k: np.array(v) for k, v in d.items() if k in _ARRAYS and v is not None})
    d["wcsinfo"]["pixelarea_steradians"] = d.get("pixelarea_steradians")
    d["mission"] = "roman"  # a Roman exposure held in memory (outlier detection refuses to write it as JWST)
    name = str(model.meta.filename or f"model_{index}")
    return in_memory.ref_from_model_dict(index, d, filename=name, group_id=gid, s_region=_s_region(d["wcs"]))


# ----------------------------------------------------------------------------
# worker side
# ----------------------------------------------------------------------------
@contextlib.contextmanager
def _open(ref_or_source: ExposureRef | InputSource, *, validate: bool = False) -> Iterator[Any]:
    """The Roman datamodel of a file (a path, or a URL read through fsspec), closed afterwards.

    ``validate``: check the tree against its schemas (as ``roman_datamodels.open`` does by
    default). :func:`describe` does, once per file; the later reads of the same file do not,
    which saves about a second per open.
    """
    import asdf
    import roman_datamodels.datamodels as rdm

    location = ref_or_source.location
    name = location.url
    with warnings.catch_warnings(), contextlib.ExitStack() as stack:
        warnings.simplefilter("ignore")
        try:
            stack.enter_context(asdf.config_context()).validate_on_read = validate
            init: Any = location.url if location.is_local else stack.enter_context(location.open("rb"))
            model = stack.enter_context(rdm.open(init))
        except InputError:
            raise
        except Exception as exc:  # any failure of the reader: one line naming the file and the cause
            raise InputError(f"{name}: not a readable Roman datamodel ({one_line(exc)})") from None
        if not hasattr(model, "data") or getattr(model.meta, "wcs", None) is None:
            raise InputError(f"{name}: not a Roman Level-2 image with a WCS ({type(model).__name__})")
        yield model


def describe(source: InputSource) -> ExposureRef:
    """Read one file's metadata and WCS footprint (the ASDF tree; no array is read)."""
    require_extra()
    with _open(source, validate=True) as model:
        try:
            wcs = model.meta.wcs
            shape = _shape(model)
            exposure = model.meta.exposure
            ref = ExposureRef(
                index=source.index,
                source=source.location.url,
                kind=KIND,
                filename=source.filename,
                group_id=_group_id(model, source.index, source.group_id),
                exposure_time=_exposure_time(model),
                measurement_time=None,
                start_time=_mjd(getattr(exposure, "start_time", None)),
                end_time=_mjd(getattr(exposure, "end_time", None)),
                duration=None,
                s_region=_s_region(wcs),
                pixelarea_steradians=_pixel_area(model),
                outline=geometry.outline_from_wcs(wcs, shape),
                storage_options=source.storage_options,
            )
        except InputError:
            raise
        except Exception as exc:  # any failure of the reader: one line naming the file and the cause
            raise InputError(f"{source.location.url}: cannot read its metadata ({one_line(exc)})") from None
    return ref


def _shape(model: Any) -> tuple[int, int]:
    """The image shape, from the array's header (the array itself is not read)."""
    data = model._instance["data"] if hasattr(model, "_instance") else model.data
    ny, nx = (int(n) for n in np.shape(data))
    return ny, nx


def load_wcs(ref: ExposureRef) -> tuple[Any, tuple[int, int], dict[str, Any]]:
    """WCS, shape and ``wcsinfo`` (with ``pixelarea_steradians``) of an exposure (no array is read)."""
    require_extra()

    with _open(ref) as model:
        wcs = _detached(model.meta.wcs)
        shape = _shape(model)
        info = _plain(model.meta.wcsinfo)
        info["pixelarea_steradians"] = _pixel_area(model)
    return wcs, shape, _wcs.complete_wcsinfo(info, wcs, source=ref.source)


def load_arrays(ref: ExposureRef, *, need_var: bool, need_err: bool, need_var_sky: bool = False) -> dict[str, Any]:
    """The ``stcal.resample`` model dictionary, read by romancal's own converter.

    Every array romancal reads is read (``need_var``/``need_err`` do not make it
    read less); ``var_sky`` only with ``need_var_sky``.
    """
    require_extra()
    with _open(ref) as model:
        try:
            out = model_dict(model, group_id=ref.group_id, var_sky=need_var_sky)
        except Exception as exc:  # any failure of the reader: one line naming the file and the cause
            raise InputError(f"{ref.source}: cannot read ({one_line(exc)})") from None
    out["wcsinfo"] = None
    return out


def write_flagged(
    ref: ExposureRef, mask: Any, path: Any, *, status: str, storage_options: Mapping[str, Any] | None = None
) -> str:
    """Write the image with its outliers flagged, as romancal's ``OutlierDetectionStep`` leaves it.

    DQ gains Roman's ``DO_NOT_USE | OUTLIER`` where ``mask`` is set and nothing
    else changes (no array is made NaN); ``meta.cal_step.outlier_detection`` is
    ``status`` (when the file has ``meta.cal_step``) and ``meta.filename`` the
    new file's name. Every other array is written as stored. ``mask`` ``None``
    (a skipped step) leaves DQ as read.

    Parameters
    ----------
    ref : ExposureRef
        The input (read from its path or URL).
    mask : numpy.ndarray or None
        Outlier pixels.
    path : str or Path or Location
        Target, an ``.asdf`` name: a local path, or a URL (written to a local
        temporary file, then uploaded whole).
    status : str
        ``meta.cal_step.outlier_detection``.
    storage_options : mapping, optional
        Options of a URL target's file system (default: the input's).

    Returns
    -------
    str
        The path or URL written.
    """
    require_extra()

    bits = np.uint32(ROMAN_PIXEL["DO_NOT_USE"] | ROMAN_PIXEL["OUTLIER"])

    def write(target: Path) -> None:
        with _open(ref) as model:
            if mask is not None:
                dq = np.array(model.dq, dtype=np.uint32)
                if np.shape(mask) != dq.shape:
                    raise InputError(f"{ref.source}: outlier mask of shape {np.shape(mask)} for DQ of shape {dq.shape}")
                dq |= np.asarray(mask, dtype=np.uint32) * bits
                model.dq = dq
            if "cal_step" in model.meta:
                model.meta.cal_step["outlier_detection"] = status
            model.meta.filename = target.name
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.save(str(target))

    return write_file(path, write, ref.storage_options if storage_options is None else storage_options)
