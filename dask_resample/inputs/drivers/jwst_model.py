"""Driver for JWST datamodel files (``*_cal.fits``), associations and ``ModelLibrary``.

Needs the ``jwst`` extra (jwst, stdatamodels). Group ids follow
``ModelLibrary``'s rules: the association member's ``group_id``, else the
model's ``meta.group_id``, else the one built from ``meta.observation``, else
``exposure<N>``. Metadata is read as ``stdatamodels``' ``read_metadata`` reads
it (the ASDF tree, updated from the FITS headers the schema maps; no arrays),
once per file, on a worker.

What is read, for a file at a URL (``s3://``, ``gs://``, ``memory://``, ...; a
local file is opened as a path, by stdatamodels itself):

* client check (:func:`dask_resample.inputs.io.resolve_inputs`): the first FITS block,
  2880 bytes, one ranged request;
* metadata (:func:`describe`): every HDU header (the file's integrity check) and
  the ``ASDF`` extension's data (the metadata tree and the gwcs), by range:
  one request per HDU of about its header plus 64 KiB read-ahead, about 0.5 MiB
  for a ``*_cal.fits`` file of eight HDUs, whatever the image size;
* WCS (:func:`load_wcs`): the gwcs, ``wcsinfo`` and the pixel area from the
  ``ASDF`` extension (as the datamodel has them), the shape from the ``SCI``
  header: the headers up to ``ASDF`` and its data, by range, no pixel;
* pixels (:func:`load_arrays`): the ``ASDF`` extension and the arrays the
  drizzle needs, each HDU in one ranged request, read directly
  (:mod:`.jwst_direct`) when the datamodel would take its metadata from the
  tree unchanged; otherwise (and in :func:`write_flagged`) the datamodel is built
  from the HDU list opened through fsspec (``ImageModel(hdulist)``), which reads
  every array the model holds (``SCI``, ``ERR``, ``DQ``, ``VAR_*``, and ``AREA``
  etc. where present): about the whole file.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ... import geometry
from ...store.location import Location, as_location
from ..dqmask import OUTLIER_BITS
from ..records import (
    ExposureRef,
    InputError,
    InputSource,
    group_id_from_observation,
    number,
    one_line,
)
from . import _wcs, in_memory
from ._fitsfile import open_fits, write_file
from .jwst_direct import read_model_dict

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

log = logging.getLogger(__name__)

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
    return in_memory.ref_from_model_dict(
        index,
        d,
        filename=str(model.meta.filename or f"model_{index}"),
        group_id=str(group_id),
        s_region=getattr(model.meta.wcsinfo, "s_region", None),
    )


# ----------------------------------------------------------------------------
# worker side
# ----------------------------------------------------------------------------
def describe(source: InputSource) -> ExposureRef:
    """Read one file's metadata (ASDF tree and headers only) and check the file is whole."""
    require_extra()
    location = source.location
    with open_fits(location, check=True) as hdul:  # one open: the check and the metadata share the headers
        meta = _hdulist_metadata(hdul, location)
        if location.is_local:
            path = Path(source.path)
            return _ref_from_meta(source, str(path), meta, lambda: load_wcs_from(path))
        return _ref_from_meta(source, location.url, meta, lambda: _hdulist_wcs(hdul, location))


def _ref_from_meta(
    source: InputSource,
    name: str,
    meta: Mapping[str, Any],
    wcs_of: Callable[[], tuple[Any, tuple[int, int], dict[str, Any]]],
) -> ExposureRef:
    """The reference of one file from its metadata tree (``wcs_of`` reads its WCS when needed)."""
    group_id = source.group_id or meta.get("group_id")
    if not group_id:
        group_id = group_id_from_observation(meta.get("observation") or {}) or f"exposure{source.index + 1:04d}"
    exposure = meta.get("exposure") or {}
    wcsinfo = meta.get("wcsinfo") or {}
    area = number((meta.get("photometry") or {}).get("pixelarea_steradians"))
    s_region = wcsinfo.get("s_region")
    if s_region:
        outline = _outline_from_s_region(s_region, name)
    if not s_region or area is None:  # rare: the WCS itself is needed (read once)
        wcs, shape, _ = wcs_of()
        if not s_region:
            s_region = geometry.s_region_from_wcs(wcs, shape)
            outline = geometry.outline_from_wcs(wcs, shape)
        if area is None:
            area = _wcs.mean_pixel_area(wcs, shape, source=name)
    return ExposureRef(
        index=source.index,
        source=name,
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
        storage_options=source.storage_options,
    )


def _local_metadata(path: Path) -> dict[str, Any]:
    """``meta`` of a local file, as ``stdatamodels``' ``read_metadata`` reads it (:func:`_hdulist_metadata`)."""
    location = as_location(str(path))
    with open_fits(location) as hdul:
        return _hdulist_metadata(hdul, location)


class _NoValidation:
    """The context ``stdatamodels``' ``read_metadata`` gives its schema walk: no validation on assignment."""

    _validate_on_assignment = False


def _hdulist_metadata(hdul: Any, location: Location) -> dict[str, Any]:
    """``meta`` of an open file, as ``read_metadata`` reads it: headers and the ASDF extension only.

    ``read_metadata`` wants a path; this is its FITS branch on an HDU list
    (stdatamodels' own schema walk with ``ignore_arrays=True``). If this
    stdatamodels lacks that walk, the file is copied to a temporary file once
    and ``read_metadata`` reads it there.
    """
    try:
        import asdf
        from stdatamodels import fits_support
        from stdatamodels.jwst.datamodels import util

        load, flatten_logs = fits_support._load_from_schema, util._convert_cal_logs_to_string
        schema_of = _schema_getter(util._retrieve_schema)
    except (ImportError, AttributeError):
        return _copied_metadata(location)
    try:
        tree = asdf.util.load_yaml(io.BytesIO(hdul["ASDF"].data.tobytes()))
        schema = schema_of(hdul[0].header["DATAMODL"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load(hdul, schema, tree, _NoValidation(), skip_fits_update=False, ignore_arrays=True, keep_unknown=False)
        flatten_logs(tree)
        return tree["meta"]
    except Exception as exc:  # any failure of the reader: one line naming the file and the cause
        raise InputError(f"{location.url}: corrupt JWST metadata in the ASDF extension ({one_line(exc)})") from None


@functools.lru_cache(maxsize=1)
def _schema_getter(retrieve: Callable[[str], Any]) -> Callable[[str], Any]:
    """``retrieve`` (stdatamodels' schema loader) with its schemas kept: loading one costs about 0.2 s.

    The schema walk of :func:`_hdulist_metadata` only reads the schema.
    """
    return functools.lru_cache(maxsize=16)(retrieve)


def _copied_metadata(location: Location) -> dict[str, Any]:
    """``meta`` read by ``read_metadata`` from a local copy of the whole file (fallback)."""
    log.warning("%s: this stdatamodels cannot read metadata from an open file; copying it whole", location.url)
    with tempfile.TemporaryDirectory(prefix="dask-resample-") as tmp:
        path = Path(tmp) / location.name
        location.fs.get_file(location.path, str(path))
        return _local_metadata(path)


def _outline_from_s_region(s_region: str, name: str) -> tuple[tuple[float, float], ...]:
    """The sky outline of an ``S_REGION`` (``()`` when it holds no polygon: the plan samples the WCS instead).

    Parameters
    ----------
    s_region : str
        The file's ``wcsinfo.s_region``.
    name : str
        The file, named in the warning about an unreadable ``S_REGION``.
    """
    from stcal.alignment.util import sregion_to_footprint

    try:  # stcal reads the numbers with numpy: malformed text is a ValueError
        verts = np.vstack([sregion_to_footprint(s) for s in geometry.split_sregions(s_region)])
    except ValueError as exc:
        log.warning(
            "%s: cannot read S_REGION %r (%s); its footprint is sampled from the WCS instead",
            name,
            s_region,
            one_line(exc),
        )
        return ()
    return tuple((float(ra), float(dec)) for ra, dec in verts)


def load_wcs_from(path: Path) -> tuple[Any, tuple[int, int], dict[str, Any]]:
    """WCS, shape and ``wcsinfo`` of a local datamodel file."""
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
    except Exception as exc:  # any failure of the reader: one line naming the file and the cause
        raise InputError(f"{path}: cannot read ({one_line(exc)})") from None
    return wcs, shape, _wcs.complete_wcsinfo(info, wcs, source=str(path))


def _hdulist_wcs(hdul: Any, location: Location) -> tuple[Any, tuple[int, int], dict[str, Any]]:
    """WCS, shape and ``wcsinfo`` of an open file, from its headers and ASDF extension (no pixel).

    As the datamodel has them: the gwcs is the ASDF tree's ``meta.wcs``;
    ``wcsinfo`` and the pixel area are the tree's when the headers are those it
    was saved with (stdatamodels' FITS hash matches, when a datamodel skips its
    FITS update), else read from the headers. The ASDF file is left open (in
    memory): arrays of the gwcs stored in its blocks are read when first used.
    """
    import asdf
    from stdatamodels import fits_support

    name = location.url
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = asdf.open(io.BytesIO(hdul["ASDF"].data.tobytes()), memmap=False).tree
            wcs = (tree.get("meta") or {}).get("wcs")
            header = hdul["SCI"].header
            shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
            saved = tree.get("_fits_hash") is not None and tree["_fits_hash"] == fits_support.fits_hash(hdul)
    except Exception as exc:  # any failure of the reader: one line naming the file and the cause
        raise InputError(f"{name}: cannot read ({one_line(exc)})") from None
    if wcs is None:
        raise InputError(f"{name}: no celestial WCS (meta.wcs is empty)")
    meta = tree["meta"] if saved else _hdulist_metadata(hdul, location)
    info = dict(meta.get("wcsinfo") or {})
    info["pixelarea_steradians"] = (meta.get("photometry") or {}).get("pixelarea_steradians")
    return wcs, shape, _wcs.complete_wcsinfo(info, wcs, source=name)


def load_wcs(ref: ExposureRef) -> tuple[Any, tuple[int, int], dict[str, Any]]:
    """WCS, shape and ``wcsinfo`` of an exposure (at a URL: headers and ASDF extension only)."""
    location = ref.location
    if location.is_local:
        return load_wcs_from(Path(ref.source))
    require_extra()
    try:
        with open_fits(location) as hdul:
            return _hdulist_wcs(hdul, location)
    except InputError:
        raise
    except Exception as exc:  # any failure of the reader: one line naming the file and the cause
        raise InputError(f"{location.url}: cannot read ({one_line(exc)})") from None


@contextlib.contextmanager
def _open_model(location: Location) -> Iterator[Any]:
    """The datamodel of a file: opened by path, or built from the HDU list read by range at a URL."""
    from stdatamodels.jwst import datamodels

    if location.is_local:
        with datamodels.open(location.url) as model:
            yield model
        return
    with open_fits(location, whole=True) as hdul:
        kind = hdul[0].header.get("DATAMODL", "ImageModel")
        cls = getattr(datamodels, str(kind), None)
        if not (isinstance(cls, type) and issubclass(cls, datamodels.JwstDataModel)):
            raise InputError(f"{location.url}: unknown datamodel type DATAMODL={kind!r}")
        model = cls(hdul)
    with model:
        model.meta.filename = location.name  # as opening by path sets it
        yield model


def load_arrays(ref: ExposureRef, *, need_var: bool, need_err: bool) -> dict[str, Any]:
    """The ``stcal.resample`` model dictionary, read with jwst's own converter."""
    require_extra()
    from jwst.resample.resample import input_jwst_model_to_dict

    direct = _direct_model_dict(ref, need_var=need_var, need_err=need_err)
    if direct is not None:
        return direct
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _open_model(ref.location) as model:
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
    except Exception as exc:  # any failure of the reader: one line naming the file and the cause
        raise InputError(f"{ref.source}: cannot read ({one_line(exc)})") from None
    out["wcsinfo"] = None
    out["group_id"] = ref.group_id
    return out


def _direct_model_dict(ref: ExposureRef, *, need_var: bool, need_err: bool) -> dict[str, Any] | None:
    """:func:`load_arrays`' dictionary read straight from the file's HDUs (:mod:`.jwst_direct`), if it can be."""
    arrays = ("var_rnoise", *(("var_flat", "var_poisson") if need_var else ()), *(("err",) if need_err else ()))
    try:
        with open_fits(ref.location, whole=True) as hdul:
            out = read_model_dict(hdul, ref.location.name, arrays)
    except Exception as exc:  # the datamodel path reads it, or names the file and the cause
        log.debug("%s: read through the datamodel (%s)", ref.source, one_line(exc))
        return None
    if out is not None:
        out["group_id"] = ref.group_id
    return out


def write_flagged(
    ref: ExposureRef, mask: Any, path: str | Path, *, status: str, storage_options: Mapping[str, Any] | None = None
) -> str:
    """Write the exposure with its outliers flagged, as jwst's outlier step leaves it (``*_crf.fits``).

    DQ gets ``DO_NOT_USE | OUTLIER`` where ``mask`` is set, then jwst's own
    ``match_nans_and_flags`` runs; ``meta.cal_step.outlier_detection`` is
    ``status``. ``mask`` ``None`` (a skipped step) leaves the arrays as read.

    Parameters
    ----------
    ref : ExposureRef
        The input (read from its path or URL).
    mask : numpy.ndarray or None
        Outlier pixels.
    path : str or Path
        Target: a local path, or a URL (written to a local temporary file, then uploaded whole).
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
    from jwst.lib.pipe_utils import match_nans_and_flags

    def write(target: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _open_model(ref.location) as model:
                if mask is not None:
                    model.dq |= np.asarray(mask, dtype=np.uint32) * OUTLIER_BITS
                    match_nans_and_flags(model)
                model.meta.cal_step.outlier_detection = status
                model.meta.filename = target.name
                model.save(str(target))

    return write_file(path, write, ref.storage_options if storage_options is None else storage_options)
