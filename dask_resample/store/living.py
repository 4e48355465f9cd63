"""The store of a living mosaic: an icechunk repository holding the Zarr layout of a mosaic.

A living mosaic (:mod:`dask_resample.living`) is the Zarr layout of
:mod:`~dask_resample.store.mosaic` (same arrays, chunks, fill values and
metadata, without sharding: icechunk keeps one object per chunk and its own
manifests) inside an icechunk repository, on a local disk or an object store.
Every update is one icechunk commit on the branch ``main``:

* readers open a snapshot (the branch's tip when they open, or any earlier
  version) and see that version whole, across tiles and across arrays;
* an update killed before its commit leaves the branch where it was (its
  written chunks are unreferenced objects);
* a commit whose base is no longer the branch's tip fails (icechunk's
  ``ConflictError``); :func:`dask_resample.living.update` then plans the update
  again on the new tip.

On a local disk icechunk's conditional writes are not atomic between
processes, so commits are serialised by an advisory lock file in the
repository (:func:`commit_lock`); object stores use their conditional writes.

Each commit's metadata records the version (:class:`Version`): its number, the
inputs added and removed (name and content fingerprint), the parameters, the
time and the package version.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .location import Location, StorageError, as_location
from .mosaic import FORMAT_KEY

__all__ = [
    "BRANCH",
    "VERSION_KEY",
    "LivingStoreError",
    "Version",
    "commit_lock",
    "create_repository",
    "has_version",
    "is_living",
    "open_living",
    "open_repository",
    "read_living_metadata",
    "repository_storage",
    "snapshot_of",
    "versions",
    "write_tile_arrays",
]

#: The branch every version is committed on.
BRANCH = "main"
#: Key of the commit metadata written by this package.
VERSION_KEY = "dask_resample"
#: Name of the lock file that serialises commits on a local disk.
LOCK_NAME = ".dask-resample-commit.lock"


class LivingStoreError(ValueError):
    """A living mosaic that cannot be opened, or a version it does not have; the message names the path."""


@dataclass(frozen=True)
class Version:
    """One version of a living mosaic (one icechunk commit).

    Attributes
    ----------
    number : int
        1 for the version that created the mosaic, then 2, 3, ...
    snapshot : str
        icechunk snapshot id.
    time : str
        Commit time (ISO 8601, UTC).
    added, removed : tuple of dict
        Inputs added and removed: ``{"filename", "source", "fingerprint"}``.
    params : dict
        The drizzle parameters (the same in every version).
    software : str
        ``dask-resample <version>`` that wrote it.
    message : str
        The commit message.
    n_inputs : int
        Inputs in the mosaic at this version.
    tiles : dict
        Tiles recomputed, relabelled (context bits only) and cleared.
    changed : tuple of dict
        Earlier inputs whose file's content changed since they were added (found by
        the update, which recomputed the tiles they reach): ``{"filename", "source",
        "fingerprint", "was"}`` (the new and the previous content fingerprint).
    """

    number: int
    snapshot: str
    time: str
    added: tuple[dict[str, Any], ...]
    removed: tuple[dict[str, Any], ...]
    params: dict[str, Any]
    software: str
    message: str
    n_inputs: int
    tiles: dict[str, int]
    changed: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_snapshot(cls, info: Any) -> Version | None:
        """The version of an icechunk ``SnapshotInfo`` (``None`` for commits not made by this package)."""
        meta = (info.metadata or {}).get(VERSION_KEY)
        if not meta:
            return None
        written = info.written_at
        if isinstance(written, datetime.datetime):
            written = written.astimezone(datetime.UTC).isoformat(timespec="seconds")
        return cls(
            number=int(meta["version"]),
            snapshot=str(info.id),
            time=str(meta.get("time") or written),
            added=tuple(meta.get("added", ())),
            removed=tuple(meta.get("removed", ())),
            params=dict(meta.get("params", {})),
            software=str(meta.get("software", "")),
            message=str(info.message),
            n_inputs=int(meta.get("n_inputs", 0)),
            tiles=dict(meta.get("tiles", {})),
            changed=tuple(meta.get("changed", ())),
        )

    def line(self) -> str:
        """One line for ``dask-resample log``."""
        parts = [f"v{self.number}", self.snapshot, self.time, f"{self.n_inputs} inputs"]
        if self.added:
            parts.append("+" + ",".join(a["filename"] for a in self.added))
        if self.removed:
            parts.append("-" + ",".join(r["filename"] for r in self.removed))
        if self.changed:
            parts.append("~" + ",".join(c["filename"] for c in self.changed))
        if self.tiles:
            parts.append(
                f"tiles {self.tiles.get('recomputed', 0)} recomputed, {self.tiles.get('relabelled', 0)} "
                f"relabelled, {self.tiles.get('cleared', 0)} cleared"
            )
        parts.append(self.software)
        return "  ".join(parts)


def _icechunk() -> Any:
    """The icechunk module, or an ImportError saying which extra installs it."""
    try:
        import icechunk
    except ImportError:
        raise ImportError("living mosaics need icechunk: pip install 'dask-resample[living]'") from None
    return icechunk


def _quiet() -> None:
    """Keep icechunk's own log lines (warnings about local storage) off stderr."""
    icechunk = _icechunk()
    with contextlib.suppress(Exception):
        icechunk.set_logs_filter(os.environ.get("DASK_RESAMPLE_ICECHUNK_LOG", "error"))


def repository_storage(location: Location) -> Any:
    """The icechunk ``Storage`` of a local path or an ``s3://`` URL (with its ``storage_options``).

    Raises
    ------
    StorageError
        For other URL schemes (the message names the URL).
    """
    import icechunk

    _quiet()
    if location.is_local:
        return icechunk.local_filesystem_storage(os.path.abspath(location.url))
    if location.scheme not in ("s3", "s3a"):
        raise StorageError(f"{location}: living mosaics are stored on a local disk or s3:// (got {location.scheme}://)")
    opts = dict(location.storage_options)
    client = dict(opts.get("client_kwargs") or {})
    endpoint = opts.get("endpoint_url") or client.get("endpoint_url")
    bucket, _, prefix = location.url.split("://", 1)[1].partition("/")
    return icechunk.s3_storage(
        bucket=bucket,
        prefix=prefix or None,
        region=client.get("region_name") or opts.get("region_name") or "us-east-1",
        endpoint_url=endpoint,
        allow_http=bool(endpoint and endpoint.startswith("http://")),
        access_key_id=opts.get("key"),
        secret_access_key=opts.get("secret"),
        session_token=opts.get("token"),
        anonymous=True if opts.get("anon") else None,
        from_env=None if opts.get("key") or opts.get("anon") else True,
        force_path_style=bool(endpoint),
    )


def is_living(location: str | os.PathLike | Location, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True if ``location`` holds an icechunk repository (a living mosaic)."""
    location = as_location(location, storage_options)
    try:
        return location.join("repo").is_file()
    except (OSError, ValueError):
        return False


def create_repository(location: Location) -> Any:
    """Create an empty icechunk repository at ``location``; returns it."""
    icechunk = _icechunk()

    return icechunk.Repository.create(repository_storage(location))


def open_repository(location: Location) -> Any:
    """Open the icechunk repository of a living mosaic.

    Raises
    ------
    LivingStoreError
        If there is none at ``location``.
    """
    icechunk = _icechunk()

    if not is_living(location):
        raise LivingStoreError(f"{location}: not a living mosaic (no icechunk repository there)")
    return icechunk.Repository.open(repository_storage(location))


@contextlib.contextmanager
def commit_lock(location: Location) -> Iterator[None]:
    """Serialise commits to a repository on a local disk (an advisory lock); no-op on object stores."""
    if not location.is_local:
        yield
        return
    import fcntl

    with open(os.path.join(location.url, LOCK_NAME), "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def has_version(location: Location) -> bool:
    """True if ``location`` is a living mosaic with at least one version (its creation finished)."""
    if not is_living(location):
        return False
    repo = open_repository(location)
    tip = repo.lookup_snapshot(repo.lookup_branch(BRANCH))
    return Version.from_snapshot(tip) is not None or any(
        Version.from_snapshot(info) is not None for info in repo.ancestry(branch=BRANCH)
    )


def versions(location: str | os.PathLike | Location, storage_options: Mapping[str, Any] | None = None) -> list[Version]:
    """Every version of a living mosaic, newest first."""
    location = as_location(location, storage_options)
    repo = open_repository(location)
    out = [v for info in repo.ancestry(branch=BRANCH) if (v := Version.from_snapshot(info)) is not None]
    return out


def snapshot_of(location: Location, repo: Any, version: int | str | None) -> str:
    """The snapshot id of ``version`` (a number, a snapshot id, or ``None`` for the newest).

    Raises
    ------
    LivingStoreError
        If the mosaic has no such version (the message lists the ones it has).
    """
    if version is None:
        tip = repo.lookup_snapshot(repo.lookup_branch(BRANCH))
        if Version.from_snapshot(tip) is not None:
            return str(tip.id)
    known = [v for info in repo.ancestry(branch=BRANCH) if (v := Version.from_snapshot(info)) is not None]
    if version is None:
        if not known:
            raise LivingStoreError(f"{location}: no version yet (its creation did not finish; run it again)")
        return known[0].snapshot
    for v in known:
        if (isinstance(version, int) and v.number == version) or str(version) == v.snapshot:
            return v.snapshot
    numbers = ", ".join(str(v.number) for v in reversed(known))
    raise LivingStoreError(f"{location}: no version {version!r}; its versions are {numbers}")


def read_living_metadata(location: Location, version: int | str | None = None) -> dict[str, Any]:
    """The ``dask_resample`` attributes of a living mosaic at ``version`` (default the newest)."""
    import zarr

    repo = open_repository(location)
    session = repo.readonly_session(snapshot_id=snapshot_of(location, repo, version))
    attrs = zarr.open_group(session.store, mode="r").attrs[FORMAT_KEY]
    assert isinstance(attrs, Mapping)  # the layout writes a mapping there
    return dict(attrs)


def open_living(location: Location, version: int | str | None = None) -> Any:
    """Open one version of a living mosaic (default the newest) as a lazy :class:`xarray.Dataset`.

    The dataset reads one snapshot: whatever is committed later, it keeps
    showing the version it opened.
    """
    import xarray as xr

    repo = open_repository(location)
    snapshot = snapshot_of(location, repo, version)
    session = repo.readonly_session(snapshot_id=snapshot)
    ds = xr.open_zarr(session.store, consolidated=False, chunks={})
    meta = dict(ds.attrs.get(FORMAT_KEY, {}))
    meta["living"] = {**dict(meta.get("living", {})), "snapshot": snapshot}
    ds.attrs = {FORMAT_KEY: meta}
    return ds


def write_tile_arrays(
    store: Any,
    *,
    y0: int,
    x0: int,
    arrays: Mapping[str, np.ndarray],
    names: Sequence[str],
    ctx_planes: Sequence[int],
    n_planes: int,
) -> None:
    """Write one tile's finished arrays into a mosaic's Zarr ``store`` (a session's), every plane of ``con``.

    ``arrays["con"]`` holds the planes ``ctx_planes``; every other plane of the
    tile (up to ``n_planes``) is written with zeros, which removes a chunk an
    earlier version held there (chunks equal to the fill value are not stored).
    """
    import zarr

    root = zarr.open_group(store, mode="r+")
    for name in names:
        block = arrays[name]
        arr = root[name]
        assert isinstance(arr, zarr.Array)  # the layout's arrays, never groups
        if name == "con":
            ny, nx = block.shape[1:]
            if arr.shape[0] < n_planes:
                arr.resize((n_planes, *arr.shape[1:]))
            full = np.zeros((n_planes, ny, nx), dtype=block.dtype)
            for local, plane in enumerate(ctx_planes):
                full[plane] = block[local]
            arr[:n_planes, y0 : y0 + ny, x0 : x0 + nx] = full
        else:
            arr[y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = block


def dumps(doc: Any) -> Any:
    """``doc`` as plain JSON values (for attributes and commit metadata)."""
    return json.loads(json.dumps(doc, default=str))
