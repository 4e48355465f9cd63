"""The inputs of an update: earlier ones from the descriptions the mosaic keeps, added ones read once.

An update does not read the earlier inputs' metadata again: it plans from the
descriptions kept in the mosaic (:class:`~dask_resample.living.records.InputRecord`).
Each earlier input's file is checked first (one ``stat``, or one ``HEAD`` on an
object store: :func:`~dask_resample.living.records.file_signature`); a file whose
size or modification stamp changed has its content fingerprint computed again:

* the same fingerprint: its kept description is used (and its new signature kept);
* another fingerprint (its content changed): it is described again; the tiles
  it reached and the tiles it reaches now are recomputed (the update plans the
  previous version from its kept description and the new one from the new).

A missing earlier input is refused (a run from scratch could not read it either),
unless the update removes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..inputs.io import ExposureRef, InputError, describe_resolved, resolve_inputs
from ..store import Location, as_location
from .records import InputRecord, content_fingerprint, file_signature

__all__ = ["CheckedInputs", "check_inputs", "sources_of"]

log = logging.getLogger(__name__)

#: Files stat-ed at once on an object store (requests in flight).
SIGNATURE_THREADS = 16


@dataclass(frozen=True)
class CheckedInputs:
    """The inputs of one update, described.

    Attributes
    ----------
    before : list of ExposureRef
        The earlier inputs as the previous version was made from them (their kept
        descriptions), numbered in its input order (removed ones included).
    current : list of InputRecord
        The earlier inputs as they are now (signatures refreshed, changed ones
        described again), in the same order.
    current_refs : list of ExposureRef
        Their references (removed inputs: their kept description).
    added : list of InputRecord
        The added inputs.
    added_refs : list of ExposureRef
        Their references, numbered after the earlier inputs.
    changed : list of int
        Positions of the earlier inputs whose content changed.
    n_described : int
        Inputs whose metadata was read from their files.
    """

    before: list[ExposureRef]
    current: list[InputRecord]
    current_refs: list[ExposureRef]
    added: list[InputRecord]
    added_refs: list[ExposureRef]
    changed: list[int]
    n_described: int


def sources_of(inputs: Any, storage_options: Mapping[str, Any] | None) -> list[str]:
    """Paths or URLs of ``inputs`` (cheap checks only); in-memory exposures are refused."""
    resolved = resolve_inputs(inputs, storage_options=storage_options)
    out = []
    for r in resolved:
        path = getattr(r, "path", None) or getattr(r, "source", None)
        if path is None or isinstance(r, ExposureRef) and r.kind == "memory":
            raise InputError("add: a living mosaic takes files (paths or URLs), not in-memory exposures")
        out.append(str(path))
    return out


def _map[T, R](function: Callable[[T], R], items: Sequence[T], client: Any) -> list[R]:
    """``function`` over ``items``: on ``client``'s workers when given, else here."""
    if not items:
        return []
    if client is not None:
        return list(client.gather(client.map(function, list(items), pure=False)))
    return [function(item) for item in items]


def _signatures(locations: Sequence[Location]) -> list[str | None]:
    """Each file's signature, ``None`` for a missing file (object stores: several requests in flight)."""

    def one(location: Location) -> str | None:
        try:
            return file_signature(location)
        except FileNotFoundError:
            return None

    if sum(1 for loc in locations if not loc.is_local) < 2:
        return [one(loc) for loc in locations]
    with ThreadPoolExecutor(max_workers=SIGNATURE_THREADS) as pool:
        return list(pool.map(one, locations))


def _describe(sources: Sequence[str], storage_options: Mapping[str, Any] | None, client: Any) -> list[ExposureRef]:
    """Describe files (their drivers read their metadata, on ``client``'s workers when given)."""
    if not sources:
        return []
    return describe_resolved(resolve_inputs(list(sources), storage_options=storage_options), client=client)


def check_inputs(
    location: Location,
    earlier: Sequence[InputRecord],
    removed: set[int],
    added_sources: Sequence[str],
    *,
    storage_options: Mapping[str, Any] | None,
    client: Any,
) -> CheckedInputs:
    """Describe an update's inputs: the earlier ones from their kept descriptions where still valid, the added ones.

    Parameters
    ----------
    location : Location
        The living mosaic (for messages).
    earlier : sequence of InputRecord
        Its inputs at the version the update starts from, in input order.
    removed : set of int
        Positions in ``earlier`` of the inputs the update removes (not checked).
    added_sources : sequence of str
        Paths or URLs of the added inputs.
    storage_options : mapping, optional
    client : distributed.Client, optional
        Fingerprints and descriptions run on its workers.

    Returns
    -------
    CheckedInputs

    Raises
    ------
    InputError
        An earlier input (not removed) whose file is missing.
    """
    n_old = len(earlier)
    kept = [k for k in range(n_old) if k not in removed]
    signatures = _signatures([as_location(earlier[k].source, storage_options) for k in kept])
    now: dict[int, str] = {}
    for k, signature in zip(kept, signatures, strict=True):
        if signature is None:
            raise InputError(
                f"{earlier[k].filename}: an input of the living mosaic {location} is missing "
                f"({earlier[k].source}); put it back, or remove it from the mosaic (remove=[...])"
            )
        now[k] = signature
    stale = [k for k in kept if now[k] != earlier[k].signature or earlier[k].description is None]
    added_locations = [as_location(s, storage_options) for s in added_sources]
    added_signatures = [file_signature(loc) for loc in added_locations]
    prints = _map(
        content_fingerprint, [as_location(earlier[k].source, storage_options) for k in stale] + added_locations, client
    )
    stale_prints = dict(zip(stale, prints[: len(stale)], strict=True))
    added_prints = prints[len(stale) :]

    changed = [k for k in stale if stale_prints[k] != earlier[k].fingerprint]
    to_describe = sorted(
        {
            *changed,
            *(k for k in stale if earlier[k].description is None),
            *(k for k in removed if earlier[k].description is None),
        }
    )
    described = _describe([earlier[k].source for k in to_describe] + list(added_sources), storage_options, client)
    fresh = dict(zip(to_describe, described[: len(to_describe)], strict=True))

    current: list[InputRecord] = []
    for k, rec in enumerate(earlier):
        if k in fresh and k not in removed:
            rec = InputRecord.from_ref(fresh[k], stale_prints[k], now[k])
        elif k in fresh:
            rec = InputRecord.from_ref(fresh[k], rec.fingerprint, rec.signature)
        elif k in stale_prints:
            rec = InputRecord(rec.source, rec.filename, rec.fingerprint, now[k], rec.description)
        current.append(rec)
    current_refs = [rec.exposure_ref(k, storage_options) for k, rec in enumerate(current)]
    # the previous version's inputs as it was made: their kept descriptions (or, for a version that kept
    # none, what the file holds now)
    before = [
        rec.exposure_ref(k, storage_options) if rec.description is not None else current_refs[k]
        for k, rec in enumerate(earlier)
    ]
    added_refs = [ref.with_index(n_old + j) for j, ref in enumerate(described[len(to_describe) :])]
    added = [
        InputRecord.from_ref(ref, fp, sig)
        for ref, fp, sig in zip(added_refs, added_prints, added_signatures, strict=True)
    ]
    for k in changed:
        log.warning(
            "%s: %s changed since it was added (fingerprint %s, was %s); the tiles it reaches are recomputed",
            location,
            earlier[k].filename,
            stale_prints[k][:12],
            earlier[k].fingerprint[:12],
        )
    return CheckedInputs(
        before=before,
        current=current,
        current_refs=current_refs,
        added=added,
        added_refs=added_refs,
        changed=changed,
        n_described=len(described),
    )
