"""Inputs: small exposure references on the client, arrays loaded on workers.

Accepted inputs (see :func:`collect_exposures`):

* an image3 association JSON (``*_asn.json``);
* a list of paths to JWST ``*_cal.fits`` files (``ImageModel``) and/or plain FITS
  images with a celestial FITS WCS (SIP distortion allowed), in any mix;
* a :class:`jwst.datamodels.ModelLibrary` (a model the library holds in memory,
  or has shelved to a temporary file after a change, is read from there);
* a list of in-memory :class:`Exposure` records or JWST datamodels;
* a list of :class:`ExposureRef` (renumbered in list order).

Reading happens in two steps. On the client, :func:`resolve_inputs` turns the
inputs into small :class:`InputSource` records after cheap checks (files exist,
start like FITS, the needed extra is installed), before any cluster starts.
Then each source is *described* by its format's driver
(:mod:`dask_resample.drivers`): its metadata is read and the file checked whole,
on the workers when there is a cluster. Group ids follow jwst's rules
(``ModelLibrary``: the association member's ``group_id``, else the model's
``meta.group_id``, else the one built from ``meta.observation``); plain FITS
files use the same observation keywords of their primary header.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .drivers import driver_for, in_memory, jwst_model
from .drivers._fitsfile import primary_header
from .failures import TaskFailure, first_failure
from .records import (
    Exposure,
    ExposureRef,
    InputError,
    InputSource,
    group_id_from_observation,
    one_line,
)

__all__ = [
    "Exposure",
    "ExposureRef",
    "InputError",
    "InputSource",
    "check_group_ids",
    "collect_exposures",
    "describe_sources",
    "group_id_from_observation",
    "load_model_dict",
    "load_wcs",
    "resolve_inputs",
]

log = logging.getLogger(__name__)


#: Group ids usable as Zarr group names in many-to-many mosaics.
SAFE_GROUP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$")


def check_group_ids(refs: Sequence[ExposureRef]) -> None:
    """Refuse group ids that are not safe store names (many-to-many mosaics).

    Raises
    ------
    InputError
        Naming the first file whose group id is unsafe.
    """
    for ref in refs:
        gid = ref.group_id
        if not SAFE_GROUP_ID.match(gid) or ".." in gid:
            raise InputError(
                f"{ref.source if ref.source != '<memory>' else ref.filename}: group id {gid!r} is not a safe "
                "store name (letters, digits, '.', '_', '+' and '-' only); fix GROUP_ID or the association"
            )


# ----------------------------------------------------------------------------
# client side: cheap resolution, before any cluster starts
# ----------------------------------------------------------------------------
def resolve_inputs(inputs: Any) -> list[InputSource | ExposureRef]:
    """Turn user inputs into sources to describe (files) or references (in memory), in input order.

    Only cheap checks are made (files exist and start like FITS, the needed
    extra is installed): metadata is read later by :func:`describe_sources`.

    Raises
    ------
    InputError
        If an input is missing or of an unknown kind (the message names it).
    """

    if jwst_model.is_model_library(inputs):
        return jwst_model.sources_from_library(inputs)
    if isinstance(inputs, (str, os.PathLike)):
        path = Path(inputs)
        if path.suffix.lower() == ".json":
            return _sources_from_asn(path)
        inputs = [path]
    if isinstance(inputs, Exposure):
        inputs = [inputs]
    if isinstance(inputs, Mapping):
        raise InputError("inputs: a mapping is not a supported input; pass an association path or a list")
    items = list(inputs)
    if not items:
        raise InputError("inputs: no exposures given")
    if all(isinstance(x, Exposure) for x in items):
        return [in_memory.ref_from_exposure(k, x) for k, x in enumerate(items)]
    if all(isinstance(x, ExposureRef) for x in items):
        return [ref.with_index(k) for k, ref in enumerate(items)]
    if all(isinstance(x, (InputSource, ExposureRef)) for x in items):  # resolved already
        if [x.index for x in items] != list(range(len(items))):
            raise InputError("inputs: resolved inputs must be numbered 0, 1, ... in input order")
        return items
    if all(jwst_model.is_datamodel(x) for x in items):
        return [jwst_model.ref_from_datamodel(k, m) for k, m in enumerate(items)]
    paths = []
    for x in items:
        if not isinstance(x, (str, os.PathLike)):
            raise InputError(f"inputs: unsupported item {type(x).__name__!r}; expected paths or Exposure records")
        paths.append(Path(x))
    if len(paths) == 1 and paths[0].suffix.lower() == ".json":
        return _sources_from_asn(paths[0])
    return [_source_from_path(k, p) for k, p in enumerate(paths)]


def _source_from_path(index: int, path: Path, *, group_id: str | None = None, named: str | None = None) -> InputSource:
    """A JWST datamodel file (``DATAMODL`` in the primary header) or a plain FITS file."""

    header = primary_header(path)
    kind = "jwst" if header.get("DATAMODL") else "fits"
    if kind == "jwst":
        try:
            jwst_model.require_extra()
        except InputError as exc:
            raise InputError(f"{named or path}: {exc}") from None
    return InputSource(index=index, path=str(Path(os.path.abspath(path))), kind=kind, filename=path.name,
                       group_id=group_id)


def _sources_from_asn(path: Path) -> list[InputSource]:
    """Science members of an image3 association (cheap checks only), in member order."""
    import json

    if not path.exists():
        raise InputError(f"{path}: association file not found")
    if not path.is_file():
        raise InputError(f"{path}: association is not a file")
    try:
        asn = json.loads(path.read_text())
        members = [m for m in asn["products"][0]["members"] if m.get("exptype", "science").lower() == "science"]
        names = [str(m["expname"]) for m in members]
    except Exception as exc:
        raise InputError(f"{path}: not a valid association ({one_line(exc)})") from None
    if not members:
        raise InputError(f"{path}: the association lists no science exposure")
    out = []
    for k, (member, name) in enumerate(zip(members, names, strict=True)):
        member_path = path.parent / name
        if not member_path.exists():
            raise InputError(f"{member_path}: file listed in association {path.name} not found")
        gid = member.get("group_id")
        out.append(_source_from_path(k, member_path, group_id=None if gid is None else str(gid), named=str(path)))
    return out


def describe_sources(sources: Sequence[InputSource]) -> list[Any]:
    """Describe a batch of sources with their drivers (a worker task).

    Returns
    -------
    list
        One :class:`ExposureRef` per source, or a
        :class:`~dask_resample.failures.TaskFailure` for a source that cannot be read.
    """

    return [TaskFailure.guard(driver_for(s.kind).describe, s) for s in sources]


#: Sources described by one worker task.
DESCRIBE_BATCH = 16


def collect_exposures(inputs: Any, *, client: Any = None) -> list[ExposureRef]:
    """Turn user inputs into exposure references, in input order.

    Parameters
    ----------
    inputs : str, Path, sequence or ModelLibrary
        See the module documentation.
    client : distributed.Client, optional
        Describe the files on its workers (in batches); else in this process.

    Returns
    -------
    list of ExposureRef

    Raises
    ------
    InputError
        If an input is missing, unreadable or of an unknown kind.
    """
    resolved = resolve_inputs(inputs)
    return describe_resolved(resolved, client=client)


def describe_resolved(resolved: Sequence[InputSource | ExposureRef], *, client: Any = None) -> list[ExposureRef]:
    """Describe the sources among ``resolved`` (on ``client``'s workers if given), keeping input order."""
    todo = [r for r in resolved if isinstance(r, InputSource)]
    batches = [todo[k : k + DESCRIBE_BATCH] for k in range(0, len(todo), DESCRIBE_BATCH)]
    if client is not None and batches:
        described = [ref for batch in client.gather(client.map(describe_sources, batches, pure=False))
                     for ref in batch]
    else:
        described = [ref for batch in batches for ref in describe_sources(batch)]

    if (failure := first_failure(described)) is not None:
        failure.raise_()
    by_index = {ref.index: ref for ref in described}
    return [by_index[r.index] if isinstance(r, InputSource) else r for r in resolved]


# ----------------------------------------------------------------------------
# loading (worker side), by the exposure's driver
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

    return driver_for(ref.kind).load_wcs(ref)


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

    return driver_for(ref.kind).load_arrays(ref, need_var=need_var, need_err=need_err)
