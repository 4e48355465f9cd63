"""An existing output: refused, removed, or replaced by a finished mosaic; the fingerprint resume compares.

A run that replaces a mosaic builds the new one in a hidden sibling
(:func:`replacement`) and puts it in place only once it is complete
(:func:`swap_in`), so that a complete mosaic exists at every moment.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .location import Location, as_location
from .mosaic import MosaicExistsError, _is_half_created, is_complete, is_mosaic

__all__ = [
    "check_output",
    "finish_interrupted_swap",
    "input_fingerprint",
    "prepare_output",
    "replacement",
    "swap_in",
]


def check_output(location: Location, *, overwrite: bool, resume: bool) -> None:
    """Refuse an output that may not be (re)written, before any work.

    Raises
    ------
    MosaicExistsError
        If something exists there that is not a mosaic, or a mosaic exists and
        neither ``overwrite`` nor ``resume`` is set.
    """
    if not location.exists() or _is_half_created(location):
        return
    if not is_mosaic(location):
        raise MosaicExistsError(f"{location}: exists and is not a dask-resample mosaic; refusing to touch it")
    if not (overwrite or resume):
        raise MosaicExistsError(f"{location}: mosaic exists; pass overwrite=True (--overwrite) to replace it")


def prepare_output(path: str | os.PathLike | Location, overwrite: bool, resume: bool = False) -> Location:
    """Check that ``path`` may be (re)written; remove an old mosaic if allowed.

    Used for intermediate stores (the outlier median), which nobody reads
    while they are replaced; a mosaic itself is replaced by :func:`swap_in`.

    Raises
    ------
    MosaicExistsError
        If ``path`` exists and is not a mosaic, or is one and ``overwrite`` is false.
    """
    location = as_location(path)
    check_output(location, overwrite=overwrite, resume=resume)
    if location.exists() and not resume:
        location.remove()
    return location


def replacement(location: Location, fingerprint: str) -> Location:
    """Where a run that replaces the mosaic at ``location`` builds the new one (a hidden sibling).

    The name depends on the run's inputs, parameters and grid, so a killed
    replacement is found again by a rerun (resume) of the same command.
    """
    return location.sibling(f".{location.name}.replacing-{fingerprint[:16]}")


def swap_in(new: Location, target: Location) -> None:
    """Put the finished mosaic ``new`` in the place of ``target``; remove the old one.

    At every moment a complete mosaic exists: the old one at ``target`` until
    the new one replaces it, and the new one at ``new`` until it is at
    ``target``. Locally the swap is two renames. On an object store, which has
    no rename, the old objects are removed and the new ones copied (server
    side) with the root metadata last, then ``new`` is removed; a run killed
    during the copy leaves ``new`` complete, and the same command run again
    finishes the swap (:func:`finish_interrupted_swap`).
    """
    if target.is_local:
        trash = target.sibling(f".{target.name}.trash-{uuid.uuid4().hex[:12]}")
        if target.exists():
            target.rename(trash)
        new.rename(target)
        trash.remove()
        return
    target.remove()
    root_meta = new.join("zarr.json").url
    objects = [obj for obj in new.walk_files() if obj.url != root_meta]
    # the root metadata last: until it is there, ``target`` is not a mosaic to any reader
    for obj in [*objects, new.join("zarr.json")]:
        obj.fs.copy(obj.path, target.join(obj.url[len(new.url) + 1 :]).path)
    target.fs.invalidate_cache()
    new.remove()


def finish_interrupted_swap(target: Location, fingerprint: str) -> bool:
    """Finish a replacement of ``target`` that was killed after its new mosaic was complete.

    Returns
    -------
    bool
        True if a swap was finished (``target`` now holds that mosaic).
    """
    new = replacement(target, fingerprint)
    if new.exists() and is_complete(new) and is_mosaic(new):
        swap_in(new, target)
        return True
    return False


def input_fingerprint(
    records: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    grid: Mapping[str, Any],
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """A digest of inputs (names, sizes, mtimes or ETags), parameters and grid, used by resume.

    Parameters
    ----------
    records : sequence of mapping
        ``ExposureRef.to_record()`` rows (``filename``, ``source``, ``group_id``).
    params, grid : mapping
        The run's parameters and grid record.
    storage_options : mapping, optional
        Options of the file system of URL sources (credentials, ``endpoint_url``).
        A local file counts by its size and mtime; an object at a URL by its size
        and ETag (else its modification time), from one ``fs.info`` request; a
        source that cannot be asked counts by its name only.
    """
    # fs.info keys that change when an object is rewritten, in order of preference
    version_keys = ("ETag", "etag", "md5Hash", "LastModified", "last_modified", "updated", "mtime", "created")

    def stat_of(source: str) -> list[Any] | None:
        location = Location(source, storage_options or {})
        if location.is_local:
            if not os.path.exists(location.url):
                return None
            st = os.stat(location.url)
            return [st.st_size, st.st_mtime_ns]
        try:
            info = location.fs.info(location.path)
        except Exception:  # unreachable now: the run reading it will say why
            return None
        return [info.get("size"), next((info[k] for k in version_keys if info.get(k) is not None), None)]

    h = hashlib.sha256()
    for rec in records:
        src = rec.get("source")
        stat = stat_of(str(src)) if src and src != "<memory>" else None
        h.update(json.dumps([rec.get("filename"), src, rec.get("group_id"), stat], default=str).encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    h.update(json.dumps(grid, sort_keys=True, default=str).encode())
    return h.hexdigest()
