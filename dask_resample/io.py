"""Inputs: small exposure references on the client, arrays loaded on workers.

Accepted inputs (see :func:`collect_exposures`):

* an image3 association JSON (``*_asn.json``);
* a list of paths to JWST ``*_cal.fits`` files (``ImageModel``);
* a list of plain FITS files with ``SCI``/``ERR``/``DQ``/``VAR_*`` extensions and a
  celestial FITS WCS (SIP distortion allowed);
* a :class:`jwst.datamodels.ModelLibrary` (a model the library holds in memory,
  or has shelved to a temporary file after a change, is read from there);
* a list of in-memory :class:`Exposure` records;
* a list of :class:`ExposureRef` (renumbered in list order).

Group ids follow jwst's rules (``ModelLibrary.group_indices``: the association
member's ``group_id``, else the model's ``meta.group_id``, else the one built from
``meta.observation``). For plain FITS the same observation keywords are read from
the primary header.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .wcs_adapter import FitsImagingWCS

__all__ = [
    "Exposure",
    "ExposureRef",
    "InputError",
    "collect_exposures",
    "library_member_ref",
    "load_model_dict",
    "load_wcs",
]

log = logging.getLogger(__name__)


class InputError(ValueError):
    """An input file or parameter is unusable; the message names it."""


@dataclass(frozen=True)
class Exposure:
    """An exposure held in memory.

    Parameters
    ----------
    data : numpy.ndarray
        Science array (2-D).
    wcs : gwcs.wcs.WCS or astropy.wcs.WCS
        Celestial WCS of ``data``.
    dq, var_rnoise, var_poisson, var_flat, err : numpy.ndarray, optional
        Data quality and variance/error arrays, same shape as ``data``.
    exposure_time : float
        Exposure time in seconds.
    measurement_time : float, optional
        Measurement time (used for ``weight_type="exptime"`` when given).
    group_id, filename : str, optional
        Group id (defaults to one group per exposure) and a name for messages.
    level : float, optional
        Sky level, subtracted unless ``subtracted`` is true.
    """

    data: np.ndarray
    wcs: Any
    dq: np.ndarray | None = None
    var_rnoise: np.ndarray | None = None
    var_poisson: np.ndarray | None = None
    var_flat: np.ndarray | None = None
    err: np.ndarray | None = None
    exposure_time: float = 1.0
    measurement_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    duration: float | None = None
    group_id: str | None = None
    filename: str | None = None
    level: float | None = None
    subtracted: bool = True
    pixelarea_steradians: float | None = None


@dataclass(frozen=True)
class ExposureRef:
    """A small, picklable reference to one input exposure.

    Attributes
    ----------
    index : int
        Position in input order; input ``k`` sets context bit ``k % 32`` of plane ``k // 32``.
    source : str
        Path of the file (or ``"<memory>"``).
    kind : str
        ``"jwst"``, ``"fits"`` or ``"memory"``.
    filename : str
        Name used in messages and the input table.
    group_id : str
        Exposure group id.
    payload : Any
        For in-memory exposures only: the model dictionary.
    """

    index: int
    source: str
    kind: str
    filename: str
    group_id: str
    exposure_time: float | None = None
    measurement_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    duration: float | None = None
    s_region: str | None = None
    payload: Any = field(default=None, compare=False, repr=False)
    pixelarea_steradians: float | None = None

    def with_index(self, index: int) -> ExposureRef:
        """Return a copy renumbered to ``index``."""
        return dataclasses.replace(self, index=index)

    def to_record(self) -> dict[str, Any]:
        """Return the JSON row stored in the mosaic's input table."""
        return {
            "index": self.index,
            "filename": self.filename,
            "source": self.source,
            "group_id": self.group_id,
            "exposure_time": self.exposure_time,
            "measurement_time": self.measurement_time,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration": self.duration,
        }


# ----------------------------------------------------------------------------
# collecting references (client side, small)
# ----------------------------------------------------------------------------
def collect_exposures(inputs: Any) -> list[ExposureRef]:
    """Turn user inputs into exposure references, in input order.

    Parameters
    ----------
    inputs : str, Path, sequence or ModelLibrary
        See the module documentation.

    Returns
    -------
    list of ExposureRef

    Raises
    ------
    InputError
        If an input is missing, unreadable or of an unknown kind.
    """
    if _is_model_library(inputs):
        return _refs_from_library(inputs)
    if isinstance(inputs, (str, os.PathLike)):
        path = Path(inputs)
        if path.suffix.lower() == ".json":
            return _refs_from_asn(path)
        inputs = [path]
    if isinstance(inputs, Exposure):
        inputs = [inputs]
    if isinstance(inputs, Mapping):
        raise InputError("inputs: a mapping is not a supported input; pass an association path or a list")
    items = list(inputs)
    if not items:
        raise InputError("inputs: no exposures given")
    if all(isinstance(x, Exposure) for x in items):
        return [_ref_from_memory(k, x) for k, x in enumerate(items)]
    if all(isinstance(x, ExposureRef) for x in items):
        return [ref.with_index(k) for k, ref in enumerate(items)]
    if all(_is_datamodel(x) for x in items):
        return [_ref_from_datamodel(k, m) for k, m in enumerate(items)]
    paths = []
    for x in items:
        if not isinstance(x, (str, os.PathLike)):
            raise InputError(f"inputs: unsupported item {type(x).__name__!r}; expected paths or Exposure records")
        paths.append(Path(x))
    if len(paths) == 1 and paths[0].suffix.lower() == ".json":
        return _refs_from_asn(paths[0])
    return _refs_from_paths(paths)


def _is_model_library(obj: Any) -> bool:
    return type(obj).__name__ == "ModelLibrary" and hasattr(obj, "group_indices")


def _is_datamodel(obj: Any) -> bool:
    return hasattr(obj, "meta") and hasattr(obj, "data") and hasattr(obj, "save")


def _check_file(path: Path, what: str = "input") -> None:
    if not path.exists():
        raise InputError(f"{path}: {what} file not found")
    if not path.is_file():
        raise InputError(f"{path}: {what} is not a file")


def _fits_kind(path: Path) -> str:
    """Return ``"jwst"`` for a JWST datamodel file, ``"fits"`` for plain FITS."""
    from astropy.io import fits

    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation warnings become the InputError below
            hdul = fits.open(path, memmap=False, lazy_load_hdus=True)
        with hdul:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                names = [h.name.upper() for h in hdul]
                hdul.verify("exception")
                _check_fits_size(path, hdul)
            if "SCI" not in names:
                raise InputError(f"{path}: no SCI extension")
            if "ASDF" in names:
                return "jwst"
            return "fits"
    except InputError:
        raise
    except Exception as exc:  # astropy raises many kinds for corrupt files
        raise InputError(f"{path}: not a readable FITS file ({_one_line(exc)})") from None


def _check_fits_size(path: Path, hdul: Any) -> None:
    """Raise :class:`InputError` if the HDUs do not exactly fill the file (truncated or corrupt)."""
    end = need = 0
    for k in range(len(hdul)):
        info = hdul.fileinfo(k)
        if info is None:
            continue
        end = max(end, int(info["datLoc"]) + int(info["datSpan"]))
        need = max(need, int(info["datLoc"]) + int(hdul[k].size))
    size = path.stat().st_size
    if size < need:
        raise InputError(f"{path}: truncated FITS file ({size} bytes, its headers describe {need})")
    if size > end:
        with open(path, "rb") as fh:
            fh.seek(end)
            tail = fh.read(2880)
        if tail.strip(b"\0 "):
            raise InputError(f"{path}: truncated or corrupt FITS file ({size - end} unreadable bytes after the last HDU)")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _refs_from_asn(path: Path) -> list[ExposureRef]:
    _check_file(path, "association")
    try:
        asn = json.loads(path.read_text())
        members = asn["products"][0]["members"]
    except Exception as exc:
        raise InputError(f"{path}: not a valid association ({_one_line(exc)})") from None
    for member in members:
        if member.get("exptype", "science").lower() != "science":
            continue
        member_path = path.parent / member["expname"]
        if not member_path.exists():
            raise InputError(f"{member_path}: file listed in association {path.name} not found")
        _fits_kind(member_path)
    members_paths = [path.parent / m["expname"] for m in members if m.get("exptype", "science").lower() == "science"]
    return _refs_from_library(_open_library(path, members_paths))


def _open_library(init: Any, paths: Sequence[Path] = ()):
    try:
        from jwst.datamodels import ModelLibrary
    except ImportError as exc:  # pragma: no cover
        raise InputError("JWST inputs need the 'jwst' extra: pip install 'dask-resample[jwst]'") from exc
    try:
        return ModelLibrary(init, on_disk=True)
    except Exception as exc:
        _raise_unreadable_metadata(paths)
        raise InputError(f"{init if isinstance(init, (str, Path)) else 'inputs'}: cannot open ({_one_line(exc)})") from None


def _raise_unreadable_metadata(paths: Sequence[Path]) -> None:
    """Name the first file whose JWST metadata (ASDF extension) cannot be read, if any."""
    from stdatamodels.jwst.datamodels.util import read_metadata

    for p in paths:
        try:
            read_metadata(str(p), flatten=False)
        except Exception as exc:
            raise InputError(f"{p}: corrupt JWST metadata in the ASDF extension ({_one_line(exc)})") from None


def _refs_from_library(library: Any) -> list[ExposureRef]:
    group_of: dict[int, str] = {}
    for gid, indices in library.group_indices.items():
        for i in indices:
            group_of[i] = gid
    refs = []
    on_disk = getattr(library, "on_disk", False)
    asn_dir = Path(getattr(library, "asn_dir", "."))
    for i in range(len(library)):
        expname = library.asn["products"][0]["members"][i]["expname"]
        try:
            meta = library.read_metadata(i)
        except Exception as exc:
            raise InputError(f"{asn_dir / expname}: cannot read its metadata ({_one_line(exc)})") from None
        refs.append(library_member_ref(library, i, group_id=group_of[i], meta=meta))
    return refs


def library_member_ref(library: Any, index: int, *, group_id: str, meta: Mapping | None = None) -> ExposureRef:
    """Reference to member ``index`` of a ``ModelLibrary``, where its current version lives.

    For an on-disk library that is the library's temporary file of a model shelved
    after a change, else the association member's file. For an in-memory library,
    a model the library already holds (it may have been changed in memory) becomes
    an in-memory exposure; a member not loaded yet is read from its file.

    Parameters
    ----------
    library : jwst.datamodels.ModelLibrary
        The library; it must not be open (``with library:``) when this is called.
    index : int
        Member index.
    group_id : str
        The member's exposure group id.
    meta : mapping, optional
        ``library.read_metadata(index)`` if already read.

    Returns
    -------
    ExposureRef
    """
    expname = library.asn["products"][0]["members"][index]["expname"]
    on_disk = getattr(library, "on_disk", False)
    asn_dir = getattr(library, "asn_dir", None)
    path = Path(asn_dir if asn_dir not in (None, "None") else ".") / expname
    if on_disk:
        path = Path(getattr(library, "_temp_filenames", {}).get(index, path))
    path = Path(os.path.abspath(path))
    in_memory = not on_disk and index in getattr(library, "_loaded_models", {})
    if on_disk or (not in_memory and path.exists()):
        if meta is None:
            try:
                meta = library.read_metadata(index)
            except Exception as exc:
                raise InputError(f"{path}: cannot read its metadata ({_one_line(exc)})") from None
        return _ref_from_meta(index, str(path), "jwst", Path(expname).name, group_id, meta)
    with library:
        model = library.borrow(index)
        try:
            return _ref_from_datamodel(index, model, group_id=group_id)
        finally:
            library.shelve(model, index, modify=False)


def _ref_from_meta(index: int, source: str, kind: str, filename: str, group_id: str, meta: Mapping) -> ExposureRef:
    def get(key: str) -> Any:
        return meta.get(f"meta.{key}")

    return ExposureRef(
        index=index,
        source=source,
        kind=kind,
        filename=filename,
        group_id=str(group_id),
        exposure_time=_num(get("exposure.exposure_time")),
        measurement_time=_num(get("exposure.measurement_time")),
        start_time=_num(get("exposure.start_time")),
        end_time=_num(get("exposure.end_time")),
        duration=_num(get("exposure.duration")),
        s_region=get("wcsinfo.s_region"),
        pixelarea_steradians=_num(get("photometry.pixelarea_steradians")),
    )


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _refs_from_paths(paths: Sequence[Path]) -> list[ExposureRef]:
    kinds = [_fits_kind(p) for p in paths]
    if all(k == "jwst" for k in kinds):
        return _refs_from_library(_open_library(_asn_from_paths(paths), paths))
    if any(k == "jwst" for k in kinds):
        raise InputError("inputs: mixing JWST datamodel files and plain FITS files is not supported")
    return [_ref_from_plain_fits(k, p) for k, p in enumerate(paths)]


def _asn_from_paths(paths: Sequence[Path]) -> dict[str, Any]:
    """An in-memory image3 association listing ``paths`` (absolute) as science members."""
    from jwst.associations.asn_from_list import asn_from_list

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Input association file contains path information")
        asn = asn_from_list([str(Path(p).resolve()) for p in paths], product_name="mosaic")
        return json.loads(asn.dump()[1])


_OBS_KEYS = {
    "program_number": "PROGRAM",
    "observation_number": "OBSERVTN",
    "visit_number": "VISIT",
    "visit_group": "VISITGRP",
    "sequence_id": "SEQ_ID",
    "activity_id": "ACT_ID",
    "exposure_number": "EXPOSURE",
}


def _ref_from_plain_fits(index: int, path: Path) -> ExposureRef:
    from astropy.io import fits

    hdr = fits.getheader(path, 0)
    sci = fits.getheader(path, "SCI")
    obs = {k: hdr.get(v) for k, v in _OBS_KEYS.items()}
    if all(v is not None for v in obs.values()):
        try:
            from jwst.datamodels.utils import attrs_to_group_id

            group_id = attrs_to_group_id(obs)
        except ImportError:  # pragma: no cover
            group_id = "_".join(str(v) for v in obs.values())
    else:
        group_id = str(hdr.get("GROUP_ID", path.name))
    exptime = hdr.get("XPOSURE", hdr.get("EXPTIME", sci.get("EXPTIME", 1.0)))
    ref = ExposureRef(
        index=index,
        source=str(path),
        kind="fits",
        filename=path.name,
        group_id=str(group_id),
        exposure_time=_num(exptime),
        measurement_time=_num(hdr.get("TMEASURE")),
        start_time=_num(hdr.get("EXPSTART")),
        end_time=_num(hdr.get("EXPEND")),
        duration=_num(hdr.get("DURATION")),
        s_region=sci.get("S_REGION"),
    )
    load_wcs(ref)  # fail early on inputs without a celestial WCS
    return ref


def _ref_from_memory(index: int, exp: Exposure) -> ExposureRef:
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
    return ExposureRef(
        index=index,
        source="<memory>",
        kind="memory",
        filename=name,
        group_id=str(model["group_id"]),
        exposure_time=_num(exp.exposure_time),
        measurement_time=_num(exp.measurement_time),
        start_time=_num(exp.start_time),
        end_time=_num(exp.end_time),
        duration=_num(exp.duration),
        payload=model,
    )


def _ref_from_datamodel(index: int, model: Any, group_id: str | None = None) -> ExposureRef:
    from jwst.resample.resample import input_jwst_model_to_dict

    if group_id is None:
        group_id = getattr(model.meta, "group_id", None)
        if not group_id:
            from jwst.datamodels.utils import attrs_to_group_id

            group_id = attrs_to_group_id(model.meta.observation)
    d = input_jwst_model_to_dict(model, weight_type="ivm", enable_var=True, compute_err="driz_err")
    d = {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in d.items()}
    d["wcsinfo"] = dict(model.meta.wcsinfo.instance)
    d["group_id"] = group_id
    return ExposureRef(
        index=index,
        source="<memory>",
        kind="memory",
        filename=str(model.meta.filename or f"model_{index}"),
        group_id=str(group_id),
        exposure_time=_num(d["exposure_time"]),
        measurement_time=_num(d["measurement_time"]),
        start_time=_num(d["start_time"]),
        end_time=_num(d["end_time"]),
        duration=_num(d["duration"]),
        s_region=getattr(model.meta.wcsinfo, "s_region", None),
        payload=d,
    )


# ----------------------------------------------------------------------------
# loading (worker side)
# ----------------------------------------------------------------------------
def load_wcs(ref: ExposureRef) -> tuple[Any, tuple[int, int], dict[str, Any]]:
    """Load the WCS of an exposure, its array shape and its ``wcsinfo``.

    Returns
    -------
    wcs : gwcs.wcs.WCS or FitsImagingWCS
    shape_yx : tuple of int
    wcsinfo : dict
        ``ra_ref``, ``dec_ref``, ``roll_ref``, ``v3yangle``, ``vparity`` and
        ``pixelarea_steradians`` where known.

    Raises
    ------
    InputError
        If the file has no usable celestial WCS.
    """
    if ref.kind == "memory":
        model = ref.payload
        wcs = model["wcs"]
        if not hasattr(wcs, "output_frame"):
            wcs = FitsImagingWCS(wcs, model["data"].shape)
        info = dict(model.get("wcsinfo") or {})
        info.setdefault("pixelarea_steradians", model.get("pixelarea_steradians"))
        return wcs, tuple(model["data"].shape), _complete_wcsinfo(info, wcs)
    if ref.kind == "jwst":
        from stdatamodels.jwst import datamodels

        try:
            with datamodels.open(ref.source) as model:
                wcs = model.meta.wcs
                if wcs is None:
                    raise InputError(f"{ref.source}: no celestial WCS (meta.wcs is empty)")
                shape = tuple(model.data.shape)
                info = dict(model.meta.wcsinfo.instance)
                info["pixelarea_steradians"] = model.meta.photometry.pixelarea_steradians
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{ref.source}: cannot read ({_one_line(exc)})") from None
        return wcs, shape, _complete_wcsinfo(info, wcs)
    from astropy.io import fits
    from astropy.wcs import WCS

    try:
        with fits.open(ref.source, memmap=False) as hdul:
            hdr = hdul["SCI"].header
            shape = (int(hdr["NAXIS2"]), int(hdr["NAXIS1"]))
            awcs = WCS(hdr, hdul)
            pixar = hdr.get("PIXAR_SR")
    except Exception as exc:
        raise InputError(f"{ref.source}: cannot read SCI header ({_one_line(exc)})") from None
    if not awcs.has_celestial or awcs.naxis != 2:
        raise InputError(f"{ref.source}: SCI has no celestial FITS WCS")
    wcs = FitsImagingWCS(awcs, shape)
    return wcs, shape, _complete_wcsinfo({"pixelarea_steradians": pixar}, wcs)


def _complete_wcsinfo(info: dict[str, Any], wcs: Any) -> dict[str, Any]:
    """Fill the ``wcsinfo`` keys that ``stcal.alignment.util.wcs_from_sregions`` needs."""
    if info.get("ra_ref") is None or info.get("dec_ref") is None or info.get("roll_ref") is None:
        ny, nx = wcs.array_shape if getattr(wcs, "array_shape", None) else (None, None)
        if hasattr(wcs, "fits_wcs"):
            ra, dec = (float(v) for v in wcs.fits_wcs.wcs.crval)
        elif ny is not None:
            ra, dec = (float(v) for v in wcs.pixel_to_world_values((nx - 1) / 2.0, (ny - 1) / 2.0))
        else:
            ra = dec = 0.0
        info.setdefault("ra_ref", ra)
        info.setdefault("dec_ref", dec)
        if info.get("ra_ref") is None:
            info["ra_ref"], info["dec_ref"] = ra, dec
        if info.get("roll_ref") is None:
            info["roll_ref"] = _position_angle_of_y(wcs, info["ra_ref"], info["dec_ref"])
            info["v3yangle"] = 0.0
            info["vparity"] = 1
    info.setdefault("v3yangle", 0.0)
    info.setdefault("vparity", 1)
    if info.get("v3yangle") is None:
        info["v3yangle"] = 0.0
    if info.get("vparity") is None:
        info["vparity"] = 1
    return info


def _position_angle_of_y(wcs: Any, ra: float, dec: float) -> float:
    """Position angle (deg, East of North) of the detector +y axis at (ra, dec)."""
    x0, y0 = wcs.world_to_pixel_values(ra, dec)
    ra1, dec1 = wcs.pixel_to_world_values(x0, y0 + 1.0)
    dra = math.radians(float(ra1) - ra) * math.cos(math.radians(dec))
    ddec = math.radians(float(dec1) - dec)
    return math.degrees(math.atan2(dra, ddec))


def load_model_dict(ref: ExposureRef, *, need_var: bool, need_err: bool) -> dict[str, Any]:
    """Read one exposure into the dictionary that ``stcal.resample`` expects.

    Parameters
    ----------
    ref : ExposureRef
    need_var, need_err : bool
        Whether variance arrays / the error array are needed.

    Returns
    -------
    dict
        Keys ``data``, ``dq``, ``wcs``, ``var_rnoise``, ``var_poisson``,
        ``var_flat``, ``err``, exposure times, ``level``, ``subtracted``, ...
    """
    if ref.kind == "memory":
        model = dict(ref.payload)
        if not hasattr(model["wcs"], "output_frame"):
            model["wcs"] = FitsImagingWCS(model["wcs"], model["data"].shape)
        return model
    if ref.kind == "jwst":
        from jwst.resample.resample import input_jwst_model_to_dict
        from stdatamodels.jwst import datamodels

        try:
            with datamodels.open(ref.source) as model:
                model.meta.group_id = ref.group_id
                d = input_jwst_model_to_dict(
                    model,
                    weight_type="ivm",
                    enable_var=True,
                    compute_err="driz_err" if need_err else None,
                )
                out = {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in d.items()}
        except Exception as exc:
            raise InputError(f"{ref.source}: cannot read ({_one_line(exc)})") from None
        out["wcsinfo"] = None
        out["group_id"] = ref.group_id
        return out
    return _load_plain_fits(ref, need_var=need_var, need_err=need_err)


def _load_plain_fits(ref: ExposureRef, *, need_var: bool, need_err: bool) -> dict[str, Any]:
    from astropy.io import fits

    wcs, shape, info = load_wcs(ref)
    try:
        with fits.open(ref.source, memmap=False) as hdul:
            names = {h.name.upper() for h in hdul}

            def arr(name: str, dtype: Any) -> np.ndarray | None:
                if name not in names or hdul[name].data is None:
                    return None
                return np.asarray(hdul[name].data, dtype=dtype)

            data = arr("SCI", np.float32)
            dq = arr("DQ", np.uint32)
            out = {
                "data": data,
                "dq": np.zeros(shape, np.uint32) if dq is None else dq,
                "var_rnoise": arr("VAR_RNOISE", np.float32),
                "var_poisson": arr("VAR_POISSON", np.float32),
                "var_flat": arr("VAR_FLAT", np.float32),
                "err": arr("ERR", np.float32),
            }
            hdr = hdul[0].header
    except Exception as exc:
        raise InputError(f"{ref.source}: cannot read ({_one_line(exc)})") from None
    if data is None or data.shape != shape:
        raise InputError(f"{ref.source}: SCI data missing or of the wrong shape")
    level = hdr.get("BKGLEVEL")
    out.update(
        {
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
            "level": None if level is None else float(level),
            "subtracted": bool(hdr.get("BKGSUB", False)),
        }
    )
    return out


def iter_chunks(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Yield consecutive lists of at most ``size`` items."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
