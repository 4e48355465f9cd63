"""Living mosaics: add or remove exposures, recompute only the tiles they touch, one version per update.

A living mosaic is created on a fixed sky grid (:class:`GridSpec`, or a given
``output_wcs``) that never moves; tiles exist only where data land. Each
:func:`update` adds inputs at the end of the input order and/or removes
inputs, and is one transaction of the mosaic's icechunk repository
(:mod:`dask_resample.store.living`).

Why the result equals a run from scratch: a tile's value is a deterministic
reduction of its contributors' partials in input order, and an exposure's
partial of a tile does not depend on which other tiles are drizzled. The
update plans the mosaic before and after the change and sorts every tile:

* **recomputed**: its contributors (in order) changed; it is reduced again
  from all its contributors, every earlier input being drizzled only for
  the recomputed tiles it reaches;
* **relabelled**: the same contributors, but their context bits moved (a
  removal renumbers the inputs after it): only ``con`` is rewritten, each
  old bit moved to its new place;
* **cleared**: no input reaches it any more: every chunk is removed (fill values);
* untouched: nothing is read or written.

The number of context planes follows the inputs (``con`` is resized in the
same transaction). The grid, the tile shape and the drizzle parameters are
those of the first version; a different value is refused before any work.

**Inputs partly off the grid** (the documented rule): an input that lands
partly on the grid contributes the part that lands on it, as a run from
scratch on the same grid does (a warning names it); an input that does not
land on the grid at all is refused with an :class:`~dask_resample.inputs.io.InputError`
before any work.

**Outlier detection** is refused (``outliers=True``): its flags depend on the
median of every exposure group, so an added exposure changes the flags, hence
the partials, of earlier inputs far from the tiles it touches.

Concurrent updates: the commit of an update whose base is no longer the
newest version fails; the update is then planned again on the newest version
(it is rebased: its inputs go after those committed meanwhile) and recomputed,
up to ``retries`` times, after which :class:`LivingConflictError` is raised.
No update is lost silently.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import config
from ._version import __version__
from .drizzle.reduce import empty_pixel_values, output_arrays
from .drizzle.scratch import ScratchSpec, remove_all, remove_tile, runs_on_one_node
from .drizzle.scratch import scratch_root as scratch_root_for
from .execution.graph import TileTask, build_graph, reduce_tile, run_graph
from .execution.workers import connect_for_run
from .geometry import OutputGrid, gwcs_from_text
from .geometry.grid import make_output_grid
from .inputs.failures import TaskFailure, worker_task
from .inputs.io import ExposureRef, InputError, describe_resolved, resolve_inputs
from .params import ResampleParams
from .planning.mosaic import plan_root_attrs
from .planning.plan import SINGLE_GROUP, Footprint, MosaicPlan, compute_footprints, make_plan
from .store import FORMAT_KEY, Location, as_location, scratch_sibling
from .store.living import (
    BRANCH,
    VERSION_KEY,
    LivingStoreError,
    Version,
    commit_lock,
    create_repository,
    dumps,
    has_version,
    is_living,
    open_repository,
    read_living_metadata,
    versions,
    write_tile_arrays,
)
from .store.mosaic import create_layout

__all__ = [
    "GridSpec",
    "LivingConflictError",
    "LivingStoreError",
    "LivingUpdate",
    "content_fingerprint",
    "has_version",
    "history",
    "is_living",
    "living_output_wcs",
    "living_params",
    "living_tile_task",
    "update",
]

log = logging.getLogger(__name__)

#: Attribute (under the mosaic's ``dask_resample`` metadata) holding the living state.
LIVING_KEY = "living"
#: Commit metadata of the layout written before the first version's tiles (not a version).
LAYOUT_KEY = "dask_resample_layout"


class LivingConflictError(RuntimeError):
    """An update could not be committed: other updates kept landing first (the message says how often)."""


@dataclass(frozen=True)
class GridSpec:
    """A fixed sky grid: tangent-plane projection centre, pixel scale, rotation and extent.

    Attributes
    ----------
    crval : (float, float)
        Right ascension and declination of the projection centre (degrees).
    pixel_scale : float
        Output pixel scale (arcsec).
    shape_yx : (int, int)
        Extent in pixels (ny, nx); it may be much larger than the data:
        only tiles where data land are stored.
    rotation : float
        Angle of the grid's y axis east of north (degrees), as ``wcs_pars["rotation"]``.
    crpix : (float, float), optional
        Pixel (x, y) of ``crval``; default the grid's centre.
    """

    crval: tuple[float, float]
    pixel_scale: float
    shape_yx: tuple[int, int]
    rotation: float = 0.0
    crpix: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if len(self.shape_yx) != 2 or min(int(v) for v in self.shape_yx) < 1:
            raise ValueError(f"grid.shape_yx: expected two positive integers (ny, nx), got {self.shape_yx}")
        if not float(self.pixel_scale) > 0:
            raise ValueError(f"grid.pixel_scale: expected a positive number of arcsec, got {self.pixel_scale}")

    def wcs_pars(self) -> dict[str, Any]:
        """The grid as ``wcs_pars`` of :func:`dask_resample.resample`."""
        ny, nx = (int(v) for v in self.shape_yx)
        crpix = self.crpix if self.crpix is not None else ((nx - 1) / 2.0, (ny - 1) / 2.0)
        return {"crval": [float(v) for v in self.crval], "pixel_scale": float(self.pixel_scale),
                "rotation": float(self.rotation), "output_shape": [ny, nx], "crpix": [float(v) for v in crpix]}


@dataclass(frozen=True)
class LivingUpdate:
    """What one update did.

    Attributes
    ----------
    version : Version
        The version it committed.
    n_recomputed, n_relabelled, n_cleared : int
        Tiles reduced again, tiles whose context bits only were rewritten, tiles emptied.
    n_drizzled : int
        Exposures drizzled (the added ones and the earlier ones that reach a recomputed tile).
    attempts : int
        1, or more when other updates were committed first (then it was planned again).
    seconds : float
    """

    version: Version
    n_recomputed: int
    n_relabelled: int
    n_cleared: int
    n_drizzled: int
    attempts: int
    seconds: float


@dataclass(frozen=True)
class _Input:
    """One input of a living mosaic: where it is, its name and its content fingerprint."""

    source: str
    filename: str
    fingerprint: str

    def record(self) -> dict[str, str]:
        return {"filename": self.filename, "source": self.source, "fingerprint": self.fingerprint}


def content_fingerprint(ref: ExposureRef) -> str:
    """SHA-256 of an input file's bytes (a worker task for inputs on object stores)."""
    h = hashlib.sha256()
    with ref.location.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def living_output_wcs(mosaic: str | Location, storage_options: Mapping[str, Any] | None = None,
                      version: int | str | None = None) -> dict[str, Any]:
    """The ``output_wcs`` of a living mosaic: ``resample(inputs, out, output_wcs=...)`` makes the same grid.

    Includes the ``pixel_scale_ratio`` fixed when the mosaic was created (from
    its first input), which a run from scratch would otherwise take from its own first input.
    """
    meta = read_living_metadata(as_location(mosaic, storage_options), version)
    wcs = gwcs_from_text(meta["wcs_asdf"])
    wcs.array_shape = tuple(meta["grid"]["shape_yx"])
    return {"wcs": wcs, "pixel_scale": meta["grid"]["pixel_scale"],
            "pixel_scale_ratio": meta["grid"]["pixel_scale_ratio"]}


def living_params(mosaic: str | Location, storage_options: Mapping[str, Any] | None = None) -> ResampleParams:
    """The (fixed) drizzle parameters of a living mosaic."""
    return _params_of(read_living_metadata(as_location(mosaic, storage_options))["params"])


def history(mosaic: str | Location, storage_options: Mapping[str, Any] | None = None) -> list[Version]:
    """The versions of a living mosaic, newest first."""
    return versions(as_location(mosaic, storage_options))


def update(
    mosaic: str | Location,
    add: Any = None,
    remove: Sequence[str] | None = None,
    *,
    grid: GridSpec | None = None,
    output_wcs: Mapping[str, Any] | None = None,
    tile_shape: Sequence[int] | None = None,
    params: ResampleParams | None = None,
    storage_options: Mapping[str, Any] | None = None,
    client: Any = None,
    scheduler: str = "distributed",
    outliers: Any = False,
    retries: int = 3,
    message: str | None = None,
    **param_kwargs: Any,
) -> LivingUpdate:
    """Add inputs to and/or remove inputs from a living mosaic, in one new version.

    The first call creates the mosaic (``grid`` or ``output_wcs`` required).
    Every array equals, bit for bit, that of :func:`dask_resample.resample`
    over the mosaic's inputs in their order (earlier inputs first, added ones
    last) on the same grid (``output_wcs=living_output_wcs(mosaic)``).

    Parameters
    ----------
    mosaic : str or Location
        Local path or ``s3://`` URL of the living mosaic (an icechunk repository).
    add : inputs, optional
        As for :func:`dask_resample.resample` (an association, paths, URLs),
        appended to the input order. Files only (no in-memory exposures): an
        update reads earlier inputs again.
    remove : sequence of str, optional
        Inputs to remove, by file name, source path or content fingerprint (or
        a unique prefix of at least 8 characters of it).
    grid : GridSpec, optional
        The fixed grid of a new mosaic.
    output_wcs : dict, optional
        Or its WCS, as for :func:`~dask_resample.resample`.
    tile_shape : (int, int), optional
        Tile shape of a new mosaic.
    params : ResampleParams, optional
        Drizzle parameters (or as keywords): fixed at creation; later updates
        may repeat them, and a different value is refused.
    storage_options : mapping, optional
        Options of the file system of ``mosaic`` and of input URLs.
    client : distributed.Client, optional
        As for :func:`~dask_resample.resample`.
    scheduler : {"distributed", "serial"}
    outliers : bool
        Must be false (see the module documentation).
    retries : int
        Plannings again when other updates commit first.
    message : str, optional
        The version's message.

    Returns
    -------
    LivingUpdate

    Raises
    ------
    ValueError
        ``outliers``, a parameter or grid different from the mosaic's, an input
        to remove that it does not hold, an input added twice.
    InputError
        An added input that does not land on the grid.
    LivingConflictError
        When other updates kept committing first.
    """
    t0 = time.perf_counter()
    if outliers:
        raise ValueError("outliers: updates of a living mosaic do not run outlier detection (its flags depend on "
                         "every exposure of a group); flag the inputs first (detect_outliers) and add the *_crf files")
    if scheduler not in ("distributed", "serial"):
        raise ValueError(f"scheduler: expected 'distributed' or 'serial', got {scheduler!r}")
    location = as_location(mosaic, storage_options)
    remove = [remove] if isinstance(remove, str) else [str(r) for r in (remove or [])]
    exists = has_version(location)
    if not exists:
        if not is_living(location) and location.exists() and location.is_local and location.listdir():
            raise ValueError(f"{location}: exists and is not a living mosaic; refusing to touch it")
        if remove:
            raise ValueError(f"{location}: no living mosaic there to remove inputs from")
        if add is None:
            raise ValueError(f"{location}: a new living mosaic needs inputs (add=...)")
        if grid is None and output_wcs is None:
            raise ValueError(f"{location}: a new living mosaic needs its fixed grid "
                             "(grid=GridSpec(...) or output_wcs=...)")
    else:
        fixed = (("grid", grid), ("output_wcs", output_wcs), ("tile_shape", tile_shape))
        given = [n for n, v in fixed if v is not None]
        if given:
            raise ValueError(f"{location}: {', '.join(given)}: the grid of a living mosaic is fixed when it is created")
    if add is None and not remove:
        raise ValueError("update: nothing to do (give add=... or remove=...)")
    given_params = ResampleParams.from_kwargs(params, **param_kwargs) if (params is not None or param_kwargs) else None
    added_sources = _sources(add, storage_options) if add is not None else []

    handle, client = connect_for_run(client, scheduler)
    try:
        for attempt in range(1, retries + 2):
            try:
                result = _update_once(location, added_sources, remove, grid=grid, output_wcs=output_wcs,
                                      tile_shape=tile_shape, params=given_params, storage_options=storage_options,
                                      client=client, message=message)
            except _BaseMoved as moved:
                log.info("%s: %s; planning the update again on the newest version", location, moved)
                continue
            return replace(result, attempts=attempt, seconds=time.perf_counter() - t0)
    finally:
        if handle is not None:
            handle.close()
    raise LivingConflictError(f"{location}: {retries + 1} attempts, and each time another update was committed "
                              "first; nothing of this update was committed")


class _BaseMoved(Exception):
    """The branch moved between the start of an update and its commit."""


def _sources(inputs: Any, storage_options: Mapping[str, Any] | None) -> list[str]:
    """Paths or URLs of ``inputs`` (cheap checks only); in-memory exposures are refused."""
    resolved = resolve_inputs(inputs, storage_options=storage_options)
    out = []
    for r in resolved:
        path = getattr(r, "path", None) or getattr(r, "source", None)
        if path is None or isinstance(r, ExposureRef) and r.kind == "memory":
            raise InputError("add: a living mosaic takes files (paths or URLs), not in-memory exposures")
        out.append(str(path))
    return out


@dataclass(frozen=True)
class _State:
    """A living mosaic's inputs, grid and parameters at one version (``None`` fields: a new mosaic)."""

    inputs: tuple[_Input, ...]
    params: ResampleParams
    grid: OutputGrid
    tile_shape: tuple[int, int]
    number: int
    n_planes: int

    @classmethod
    def read(cls, root: Any) -> _State:
        meta = dict(root.attrs[FORMAT_KEY])
        living = meta[LIVING_KEY]
        g = meta["grid"]
        wcs = gwcs_from_text(meta["wcs_asdf"])
        wcs.array_shape = tuple(g["shape_yx"])
        grid = OutputGrid(wcs, tuple(g["shape_yx"]), float(g["pixel_scale"]), float(g["pixel_scale_ratio"]))
        n_planes = root["con"].shape[0] if "con" in root else 1
        return cls(inputs=tuple(_Input(**d) for d in living["inputs"]), params=_params_of(meta["params"]),
                   grid=grid, tile_shape=tuple(g["tile_shape_yx"]), number=int(living["version"]), n_planes=n_planes)


def _params_of(stored: Mapping[str, Any]) -> ResampleParams:
    """The parameters stored in a mosaic's metadata, as a record."""
    return ResampleParams.from_kwargs(**{n: stored[n] for n in ResampleParams.names() if n in stored})


def _check_params(location: Location, state: _State, given: ResampleParams | None) -> None:
    """Refuse parameters other than the mosaic's (the first that differs is named)."""
    if given is None:
        return
    old, new = dumps(state.params.to_dict()), dumps(given.to_dict())
    for name in old:
        if old[name] != new.get(name):
            raise ValueError(f"{name}: the living mosaic {location} was made with {name}={old[name]!r}, got "
                             f"{new.get(name)!r}; its parameters are fixed (make a new mosaic for others)")


def _match_removed(location: Location, inputs: Sequence[_Input], remove: Sequence[str]) -> set[int]:
    """Positions in ``inputs`` of the inputs named by ``remove`` (file name, source or fingerprint prefix)."""
    out: set[int] = set()
    for name in remove:
        hits = [k for k, inp in enumerate(inputs)
                if name in (inp.filename, inp.source) or (len(name) >= 8 and inp.fingerprint.startswith(name))]
        if not hits:
            raise ValueError(f"remove: {name!r} is not an input of the living mosaic {location}")
        if len(hits) > 1:
            raise ValueError(f"remove: {name!r} names {len(hits)} inputs of {location}; give their fingerprints")
        out.add(hits[0])
    return out


def _update_once(location: Location, added_sources: Sequence[str], remove: Sequence[str], *,
                 grid: GridSpec | None, output_wcs: Mapping[str, Any] | None, tile_shape: Sequence[int] | None,
                 params: ResampleParams | None, storage_options: Mapping[str, Any] | None, client: Any,
                 message: str | None) -> LivingUpdate:
    """Plan, compute and commit one update on the newest version (raises :class:`_BaseMoved` if it moved)."""
    import icechunk
    import zarr

    repo = open_repository(location) if is_living(location) else create_repository(location)
    session = repo.writable_session(BRANCH)
    # no version yet (a new mosaic, or a creation killed after its layout commit): create it (again)
    state = _State.read(zarr.open_group(session.store, mode="r")) if has_version(location) else None
    if state is not None:
        _check_params(location, state, params)
        run_params = state.params
        old_inputs = list(state.inputs)
    else:
        run_params = params or ResampleParams()
        old_inputs = []
    removed_at = _match_removed(location, old_inputs, remove)

    all_sources = [inp.source for inp in old_inputs] + list(added_sources)
    refs_all = describe_resolved(resolve_inputs(all_sources, storage_options=storage_options), client=client)
    n_old = len(old_inputs)
    added_refs = refs_all[n_old:]
    if client is not None and added_refs:
        prints = client.gather(client.map(content_fingerprint, added_refs, pure=False))
    else:
        prints = [content_fingerprint(r) for r in added_refs]
    added = [_Input(r.source, r.filename, fp) for r, fp in zip(added_refs, prints, strict=True)]
    kept_prints = {inp.fingerprint: inp for k, inp in enumerate(old_inputs) if k not in removed_at}
    seen: set[str] = set()
    for inp in added:
        if inp.fingerprint in kept_prints or inp.fingerprint in seen:
            raise ValueError(f"add: {inp.filename} is already an input of the living mosaic {location} "
                             f"(fingerprint {inp.fingerprint[:12]})")
        seen.add(inp.fingerprint)

    if state is not None:
        out_grid, tiles_yx = state.grid, state.tile_shape
    else:
        given_wcs = dict(output_wcs) if output_wcs is not None else None
        out_grid = make_output_grid(added_refs, output_wcs=given_wcs,
                                    wcs_pars=None if grid is None else grid.wcs_pars())
        tile_values = tuple(int(v) for v in (tile_shape or config.get("tile-shape") or config.DEFAULT_TILE_SHAPE))
        if len(tile_values) != 2 or min(tile_values) < 1:
            raise ValueError(f"tile_shape: expected two positive integers (ny, nx), got {tile_values}")
        tiles_yx = (tile_values[0], tile_values[1])

    footprints = compute_footprints(refs_all, out_grid.wcs)
    _check_on_grid(location, out_grid, added_refs, footprints[n_old:])
    old_refs = refs_all[:n_old]
    kept = [k for k in range(n_old) if k not in removed_at] + list(range(n_old, len(refs_all)))
    new_refs = [refs_all[k].with_index(j) for j, k in enumerate(kept)]
    new_fps = [replace(footprints[k], index=j) for j, k in enumerate(kept)]
    new_inputs = [old_inputs[k] if k < n_old else added[k - n_old] for k in kept]
    plan_new = make_plan(new_refs, out_grid, run_params, tile_shape=tiles_yx, many_to_many=False, footprints=new_fps)
    plan_old = (make_plan(old_refs, out_grid, run_params, tile_shape=tiles_yx, many_to_many=False,
                          footprints=footprints[:n_old]) if old_refs else None)
    old_ids = [inp.fingerprint for inp in old_inputs]
    new_ids = [inp.fingerprint for inp in new_inputs]
    recompute, relabel, cleared = _sort_tiles(plan_old, plan_new, old_ids, new_ids)
    arrays = tuple(output_arrays(run_params))
    n_new_planes = plan_new.n_ctx_planes(SINGLE_GROUP)
    n_old_planes = state.n_planes if state is not None else 1
    n_write = max(n_new_planes, n_old_planes)
    log.info("%s: %d tiles to recompute, %d to relabel, %d to clear", location, len(recompute), len(relabel),
             len(cleared))

    living = {"version": (state.number if state else 0) + 1, "inputs": [i.record() for i in new_inputs]}
    root_attrs = dumps(plan_root_attrs(plan_new, mode="many_to_one", arrays=arrays,
                                       fingerprint=hashlib.sha256("".join(new_ids).encode()).hexdigest(),
                                       extra_attrs={LIVING_KEY: living}))
    if state is None:
        # the layout first, in a commit of its own (a session must be clean to fork): not a version
        layout_attrs = {**root_attrs, LIVING_KEY: {"version": 0, "inputs": []}}
        create_layout(session.store, groups={SINGLE_GROUP: {"attrs": {}, "n_ctx_planes": n_new_planes}},
                      root_attrs=layout_attrs, shape_yx=out_grid.shape_yx, tile_shape_yx=tiles_yx, arrays=arrays,
                      fill_values=empty_pixel_values(run_params, out_grid.pixel_scale_ratio), many_to_many=False)
        with commit_lock(location):
            session.commit("layout", metadata={LAYOUT_KEY: True})
        session = repo.writable_session(BRANCH)
        n_old_planes = n_new_planes
        n_write = n_new_planes
    base = session.snapshot_id

    token = uuid.uuid4().hex[:12]
    n_drizzled = 0
    records: list[dict[str, Any]] = []
    if recompute:
        one_node = runs_on_one_node(client)
        scratch_root = scratch_root_for(scratch_sibling(location, token), f"{location.name}-{token}",
                                        one_node=one_node)
        skip = {(SINGLE_GROUP, key) for (_, key) in plan_new.contributions if key not in recompute}
        try:
            graph = build_graph(plan_new, store_path=location, arrays=arrays, token=token, scratch_root=scratch_root,
                                skip_tiles=skip, tile_function=living_tile_task,
                                tile_arguments=lambda group, key: (session.fork(), n_write))
            n_drizzled = sum(1 for key in graph.dsk if isinstance(key, tuple) and key[0] == f"drizzle-{token}")
            outcome = run_graph(graph, client=client)
        finally:
            remove_all(ScratchSpec(root=scratch_root))
        if outcome.failures:
            shown = "; ".join(dict.fromkeys(f.message for f in outcome.failures.values()))
            raise RuntimeError(f"{location}: {len(outcome.failures)} tiles failed, nothing was committed: {shown}")
        records = list(outcome.records.values())
        session.merge(*[rec.pop("fork") for rec in records])

    store = session.store
    zroot = zarr.open_group(store, mode="r+")
    con = zroot["con"] if "con" in arrays else None
    assert con is None or isinstance(con, zarr.Array)  # the layout's context array
    if con is not None and con.shape[0] < n_write:
        con.resize((n_write, *out_grid.shape_yx))
    fills = empty_pixel_values(run_params, out_grid.pixel_scale_ratio)
    for key in sorted(cleared):
        tile = plan_new.tiles.tile(*key)
        blank = {n: np.full((n_write, *tile.shape_yx) if n == "con" else tile.shape_yx, fills[n],
                            dtype=np.asarray(fills[n]).dtype) for n in arrays}
        write_tile_arrays(store, y0=tile.y0, x0=tile.x0, arrays=blank, names=arrays,
                          ctx_planes=tuple(range(n_write)), n_planes=n_write)
    if con is not None:
        for key, moves in sorted(relabel.items()):
            tile = plan_new.tiles.tile(*key)
            old = np.asarray(con[:n_old_planes, tile.y0:tile.y1, tile.x0:tile.x1])
            new = _move_bits(old, moves, n_write)
            write_tile_arrays(store, y0=tile.y0, x0=tile.x0, arrays={"con": new}, names=("con",),
                              ctx_planes=tuple(range(n_write)), n_planes=n_write)
        if con.shape[0] != n_new_planes:
            con.resize((n_new_planes, *out_grid.shape_yx))
    zroot.attrs.put({FORMAT_KEY: root_attrs})

    removed = [old_inputs[k] for k in sorted(removed_at)]
    number = living["version"]
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    tiles = {"recomputed": len(recompute), "relabelled": len(relabel), "cleared": len(cleared)}
    meta = {VERSION_KEY: dumps({
        "version": number, "time": now, "added": [i.record() for i in added],
        "removed": [i.record() for i in removed], "params": run_params.to_dict(),
        "software": f"dask-resample {__version__}", "n_inputs": len(new_inputs), "tiles": tiles,
    })}
    text = message or _message(added, removed)
    _before_commit(location)
    with commit_lock(location):
        if repo.lookup_branch(BRANCH) != base:
            raise _BaseMoved(f"version {number} was committed by another update")
        try:
            snapshot = session.commit(text, metadata=meta)
        except icechunk.ConflictError as exc:
            raise _BaseMoved(str(exc).splitlines()[0]) from None
    info = repo.lookup_snapshot(snapshot)
    version = Version.from_snapshot(info)
    assert version is not None
    log.info("%s: version %d committed (%s)", location, number, snapshot)
    return LivingUpdate(version=version, n_recomputed=len(recompute), n_relabelled=len(relabel),
                        n_cleared=len(cleared), n_drizzled=n_drizzled, attempts=1, seconds=0.0)


def _before_commit(location: Location) -> None:
    """Called just before an update commits (tests stop or kill an update there)."""


def _message(added: Sequence[_Input], removed: Sequence[_Input]) -> str:
    parts = []
    if added:
        parts.append(f"add {len(added)}: " + ", ".join(i.filename for i in added[:5])
                     + (" ..." if len(added) > 5 else ""))
    if removed:
        parts.append(f"remove {len(removed)}: " + ", ".join(i.filename for i in removed[:5])
                     + (" ..." if len(removed) > 5 else ""))
    return "; ".join(parts)


def _check_on_grid(location: Location, grid: OutputGrid, refs: Sequence[ExposureRef],
                   footprints: Sequence[Footprint]) -> None:
    """Refuse added inputs that land nowhere on the grid; warn about those partly off it (the documented rule)."""
    ny, nx = grid.shape_yx
    for ref, fp in zip(refs, footprints, strict=True):
        if fp.is_empty or fp.y1 <= 0 or fp.x1 <= 0 or fp.y0 >= ny or fp.x0 >= nx:
            raise InputError(f"{ref.filename}: does not land on the grid of the living mosaic {location}")
        # the footprint's box is padded (plan.compute_footprints): beyond the pad, the input leaves the grid
        pad = 0.02 * (max(fp.y1 - fp.y0, fp.x1 - fp.x0) - 8.0) / 1.04 + 4.0
        # beyond the grid's outer pixel edges (at -0.5 and n - 0.5) by more than a pixel: a grid made to
        # fit the inputs (their S_REGION corners) is not reported
        edge = 1.5
        if fp.y0 + pad < -edge or fp.x0 + pad < -edge or fp.y1 - pad > ny - 1 + edge or fp.x1 - pad > nx - 1 + edge:
            msg = f"{ref.filename}: extends beyond the grid of {location}; only its part on the grid is drizzled"
            warnings.warn(msg, stacklevel=4)
            log.warning("%s", msg)


def _sort_tiles(plan_old: MosaicPlan | None, plan_new: MosaicPlan, old_ids: Sequence[str], new_ids: Sequence[str]
                ) -> tuple[set[tuple[int, int]], dict[tuple[int, int], dict[int, int]], set[tuple[int, int]]]:
    """Tiles to recompute, to relabel (``tile -> {old bit: new bit}``) and to clear."""
    old = dict(plan_old.contributions) if plan_old is not None else {}
    new = dict(plan_new.contributions)
    recompute: set[tuple[int, int]] = set()
    relabel: dict[tuple[int, int], dict[int, int]] = {}
    cleared: set[tuple[int, int]] = set()
    for gk in set(old) | set(new):
        key = gk[1]
        if gk not in new:
            cleared.add(key)
            continue
        if gk not in old:
            recompute.add(key)
            continue
        before = [old_ids[i] for i in old[gk]]
        after = [new_ids[i] for i in new[gk]]
        if before != after:
            recompute.add(key)
            continue
        assert plan_old is not None
        moves = {plan_old.ctx_bit[i]: plan_new.ctx_bit[j] for i, j in zip(old[gk], new[gk], strict=True)}
        if any(a != b for a, b in moves.items()):
            relabel[key] = moves
    return recompute, relabel, cleared


def _move_bits(con: np.ndarray, moves: Mapping[int, int], n_planes: int) -> np.ndarray:
    """Context planes with each bit ``old`` of ``moves`` moved to ``moves[old]`` (exact: bits, not sums)."""
    out = np.zeros((n_planes, *con.shape[1:]), dtype=np.int32)
    bits = con.view(np.uint32)
    view = out.view(np.uint32)
    for old, new in moves.items():
        plane, bit = divmod(old, 32)
        if plane >= bits.shape[0]:
            continue
        hit = (bits[plane] >> np.uint32(bit)) & np.uint32(1)
        view[new // 32] |= hit.astype(np.uint32) << np.uint32(new % 32)
    return out


@worker_task(lambda contributions, task, *args: f"tile {task.ty},{task.tx}")
def living_tile_task(contributions: Sequence[Any], task: TileTask, scratch: ScratchSpec, fork: Any,
                     n_planes: int) -> dict[str, Any] | TaskFailure:
    """Reduce one tile and write it into an icechunk fork session (a worker task); returns its record and the fork.

    Every plane of ``con`` up to ``n_planes`` is written (zero planes remove
    what an earlier version held there).
    """
    t0 = time.perf_counter()
    arrays, record = reduce_tile(task, contributions, scratch)
    write_tile_arrays(fork.store, y0=task.accumulator.y0, x0=task.accumulator.x0, arrays=arrays,
                      names=task.store.arrays, ctx_planes=task.accumulator.ctx_planes, n_planes=n_planes)
    del arrays
    remove_tile(scratch, task.group, task.ty, task.tx)
    record["seconds"] = time.perf_counter() - t0
    record["fork"] = fork
    return record

