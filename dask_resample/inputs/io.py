"""Inputs: small exposure references on the client, arrays loaded on workers.

Accepted inputs (see :func:`collect_exposures`):

* an image3 association JSON (``*_asn.json``), a path or a URL; its members'
  names are relative to the association's directory (or URL), or absolute;
* a list of paths to JWST ``*_cal.fits`` files (``ImageModel``) and/or plain FITS
  images with a celestial FITS WCS (SIP distortion allowed), in any mix;
* URLs in place of paths: ``s3://bucket/x_cal.fits``, ``gs://...``,
  ``memory://...`` (any fsspec file system; ``file://`` is a local path), with
  the ``storage_options`` of their file system (credentials, ``endpoint_url``);
* Roman WFI Level-2 ASDF files (``*_cal.asdf``, ``WfiImage``; the ``roman``
  extra), in associations or lists, a :class:`romancal.datamodels.ModelLibrary`
  or open Roman datamodels;
* a :class:`jwst.datamodels.ModelLibrary` (a model the library holds in memory,
  or has shelved to a temporary file after a change, is read from there);
* a list of in-memory :class:`Exposure` records or JWST datamodels;
* a list of :class:`ExposureRef` (renumbered in list order).

Reading happens in two steps. On the client, :func:`resolve_inputs` turns the
inputs into small :class:`InputSource` records after cheap checks (files exist,
start like FITS, the needed extra is installed; for a URL: its file system's
library is installed, the object is there and readable with the storage
options, its first 2880 bytes, read by range, start like FITS), before any
cluster starts. A URL is never turned into a local path: the records carry it
with its storage options, and the workers read it from the store.
Then each source is *described* by its format's driver
(:mod:`dask_resample.inputs.drivers`): its metadata is read and the file checked whole,
on the workers when there is a cluster. Group ids follow jwst's rules
(``ModelLibrary``: the association member's ``group_id``, else the model's
``meta.group_id``, else the one built from ``meta.observation``); plain FITS
files use the same observation keywords of their primary header.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..store.location import Location, as_location
from .drivers import driver_for, in_memory, jwst_model, roman_model
from .drivers._fitsfile import BLOCK as FITS_BLOCK
from .drivers._fitsfile import fetch, map_inputs, primary_header
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
def resolve_inputs(
    inputs: Any, storage_options: Mapping[str, Any] | None = None
) -> Sequence[InputSource | ExposureRef]:
    """Turn user inputs into sources to describe (files) or references (in memory), in input order.

    Only cheap checks are made (files exist and start like FITS, the needed
    extra is installed): metadata is read later by :func:`describe_sources`.

    Parameters
    ----------
    inputs : str, Path, sequence or ModelLibrary
        See the module documentation. Paths may be URLs.
    storage_options : mapping, optional
        Options of the file system of URL inputs (credentials, ``endpoint_url``);
        they travel with the records to the workers. Ignored for local paths.

    Raises
    ------
    InputError
        If an input is missing or of an unknown kind (the message names it).
    StorageError
        If a URL cannot be served (library, credentials, bucket): the message names it and the fix.
    """

    if roman_model.is_model_library(inputs):  # first: both libraries look alike
        return roman_model.sources_from_library(inputs)
    if jwst_model.is_model_library(inputs):
        return jwst_model.sources_from_library(inputs)
    if isinstance(inputs, (str, os.PathLike)):
        location = as_location(inputs, storage_options)
        if _is_json(location):
            return _sources_from_asn(location)
        inputs = [location]
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
    if all(roman_model.is_datamodel(x) for x in items):
        return [roman_model.ref_from_datamodel(k, m) for k, m in enumerate(items)]
    if all(jwst_model.is_datamodel(x) for x in items):
        return [jwst_model.ref_from_datamodel(k, m) for k, m in enumerate(items)]
    locations = []
    for x in items:
        if not isinstance(x, (str, os.PathLike)):
            raise InputError(f"inputs: unsupported item {type(x).__name__!r}; expected paths or Exposure records")
        locations.append(as_location(x, storage_options))
    if len(locations) == 1 and _is_json(locations[0]):
        return _sources_from_asn(locations[0])
    return _sources_from_locations(locations)


def _is_json(location: Location) -> bool:
    return location.name.lower().endswith(".json")


def _sources_from_locations(
    locations: Sequence[Location], *, group_ids: Sequence[str | None] | None = None, asn: Location | None = None
) -> list[InputSource]:
    """Sources of files (association members if ``asn``), in order; URLs are checked in threads."""
    gids = list(group_ids) if group_ids is not None else [None] * len(locations)

    def source(k: int) -> InputSource:
        return _source_from_location(k, locations[k], group_id=gids[k], asn=asn)

    return map_inputs(source, list(range(len(locations))), remote=any(not loc.is_local for loc in locations))


def _source_from_location(
    index: int, location: Location, *, group_id: str | None = None, asn: Location | None = None
) -> InputSource:
    """A JWST datamodel file (``DATAMODL`` in the primary header) or a plain FITS file."""
    missing = "input file not found" if asn is None else f"file listed in association {asn.name} not found"
    named = None if asn is None else asn.url
    if location.is_local:
        if asn is not None and not os.path.exists(location.url):
            raise InputError(f"{location.url}: {missing}")
        return _source_from_path(index, Path(location.url), group_id=group_id, named=named)
    head = fetch(location, end=FITS_BLOCK, missing=missing)  # one ranged request: ASDF or FITS, and the header
    if roman_model.is_asdf_start(head):
        return _roman_source(index, location, group_id=group_id, named=named)
    header = primary_header(location, missing=missing, head=head)
    return InputSource(
        index=index,
        path=location.url,
        kind=_kind(header, named or location.url),
        filename=location.name,
        group_id=group_id,
        storage_options=location.storage_options,
    )


def _kind(header: Any, named: str) -> str:
    """``"jwst"`` for a datamodel file (its extra installed), else ``"fits"``."""
    kind = "jwst" if header.get("DATAMODL") else "fits"
    if kind == "jwst":
        try:
            jwst_model.require_extra()
        except InputError as exc:
            raise InputError(f"{named}: {exc}") from None
    return kind


def _roman_source(index: int, location: Location, *, group_id: str | None, named: str | None) -> InputSource:
    """An ASDF file: a Roman datamodel (its extra installed)."""
    try:
        roman_model.require_extra()
    except InputError as exc:
        raise InputError(f"{named or location.url}: {exc}") from None
    return InputSource(
        index=index,
        path=location.url,
        kind=roman_model.KIND,
        filename=location.name,
        group_id=group_id,
        storage_options=location.storage_options,
    )


def _source_from_path(index: int, path: Path, *, group_id: str | None = None, named: str | None = None) -> InputSource:
    """A local JWST datamodel file (``DATAMODL`` in the primary header) or a plain FITS file."""

    if path.is_file():
        with open(path, "rb") as fh:
            if roman_model.is_asdf_start(fh.read(16)):
                return _roman_source(index, Location(str(Path(os.path.abspath(path)))), group_id=group_id, named=named)
    header = primary_header(path)
    kind = _kind(header, named or str(path))
    return InputSource(
        index=index, path=str(Path(os.path.abspath(path))), kind=kind, filename=path.name, group_id=group_id
    )


def _sources_from_asn(location: Location) -> list[InputSource]:
    """Science members of an image3 association (cheap checks only), in member order.

    Member names are resolved as jwst resolves them: relative to the
    association's directory (its URL's parent for an association at a URL),
    unless absolute (a path or a URL).
    """
    name = location.url
    if location.is_local:
        path = Path(location.url)
        if not path.exists():
            raise InputError(f"{path}: association file not found")
        if not path.is_file():
            raise InputError(f"{path}: association is not a file")
        text = path.read_bytes()
    else:
        text = fetch(location, missing="association file not found")
    try:
        asn = json.loads(text)
        members = [m for m in asn["products"][0]["members"] if m.get("exptype", "science").lower() == "science"]
        names = [str(m["expname"]) for m in members]
    except Exception as exc:
        raise InputError(f"{name}: not a valid association ({one_line(exc)})") from None
    if not members:
        raise InputError(f"{name}: the association lists no science exposure")
    gids = [None if m.get("group_id") is None else str(m["group_id"]) for m in members]
    return _sources_from_locations([_member_location(location, n) for n in names], group_ids=gids, asn=location)


def _member_location(asn: Location, expname: str) -> Location:
    """Where an association member is: ``expname`` if absolute, else beside the association."""
    if "://" in expname:
        return as_location(expname, asn.storage_options)
    if asn.is_local or expname.startswith("/"):
        return Location(str(Path(asn.url).parent / expname) if asn.is_local else expname)
    scheme, rest = asn.parent.url.split("://", 1)
    return Location(f"{scheme}://{posixpath.normpath(posixpath.join(rest, expname))}", asn.storage_options)


def describe_sources(sources: Sequence[InputSource]) -> list[Any]:
    """Describe a batch of sources with their drivers (a worker task).

    Returns
    -------
    list
        One :class:`ExposureRef` per source, or a
        :class:`~dask_resample.inputs.failures.TaskFailure` for a source that cannot be read.
    """

    def describe(source: InputSource) -> Any:
        return TaskFailure.guard(driver_for(source.kind).describe, source)

    remote = [s for s in sources if not s.location.is_local]
    if len(remote) < 2:
        return [describe(s) for s in sources]
    # on an object store each description is a few ranged requests, latency-bound: overlap them
    # (the first alone, so that import-time state and caches are set up once); order is kept
    first = describe(sources[0])
    with ThreadPoolExecutor(max_workers=min(DESCRIBE_THREADS, len(sources) - 1)) as pool:
        return [first, *pool.map(describe, sources[1:])]


#: Sources described by one worker task.
DESCRIBE_BATCH = 16

#: Threads of one describing task when its sources are on an object store (requests in flight).
DESCRIBE_THREADS = 8


def collect_exposures(
    inputs: Any, *, client: Any = None, storage_options: Mapping[str, Any] | None = None
) -> list[ExposureRef]:
    """Turn user inputs into exposure references, in input order.

    Parameters
    ----------
    inputs : str, Path, sequence or ModelLibrary
        See the module documentation.
    client : distributed.Client, optional
        Describe the files on its workers (in batches); else in this process.
    storage_options : mapping, optional
        Options of the file system of URL inputs (see :func:`resolve_inputs`).

    Returns
    -------
    list of ExposureRef

    Raises
    ------
    InputError
        If an input is missing, unreadable or of an unknown kind.
    """
    resolved = resolve_inputs(inputs, storage_options=storage_options)
    return describe_resolved(resolved, client=client)


def describe_resolved(resolved: Sequence[InputSource | ExposureRef], *, client: Any = None) -> list[ExposureRef]:
    """Describe the sources among ``resolved`` (on ``client``'s workers if given), keeping input order."""
    todo = [r for r in resolved if isinstance(r, InputSource)]
    batches = [todo[k : k + DESCRIBE_BATCH] for k in range(0, len(todo), DESCRIBE_BATCH)]
    if client is not None and batches:
        described = [ref for batch in client.gather(client.map(describe_sources, batches, pure=False)) for ref in batch]
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


def load_model_dict(ref: ExposureRef, *, need_var: bool, need_err: bool, need_var_sky: bool = False) -> dict[str, Any]:
    """Read one exposure into the dictionary that ``stcal.resample`` expects.

    Parameters
    ----------
    ref : ExposureRef
    need_var, need_err : bool
        Whether variance arrays / the error array are needed.
    need_var_sky : bool
        Whether the sky variance is needed (``weight_type="ivm-sky"``): passed to the
        drivers that make one (``READS_VAR_SKY``); without it stcal weights every good
        pixel alike, as it does for inputs without ``var_sky``.

    Returns
    -------
    dict
        Keys ``data``, ``dq``, ``wcs``, ``var_rnoise``, ``var_poisson``,
        ``var_flat``, ``err``, exposure times, ``level``, ``subtracted``, ...
    """

    driver = driver_for(ref.kind)
    if need_var_sky and getattr(driver, "READS_VAR_SKY", False):
        # only the drivers that say READS_VAR_SKY take need_var_sky (InputDriver does not declare it)
        return driver.load_arrays(ref, need_var=need_var, need_err=need_err, need_var_sky=True)  # type: ignore[call-arg]
    return driver.load_arrays(ref, need_var=need_var, need_err=need_err)
