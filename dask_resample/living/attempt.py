"""One attempt at an update of a living mosaic: plan before and after, sort the tiles, write, commit.

:func:`update_once` is what :func:`dask_resample.living.update` runs, and runs again on the
newest version when another update committed first (:class:`BaseMoved`).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .. import config
from .._version import __version__
from ..drizzle.reduce import empty_pixel_values, output_arrays
from ..drizzle.scratch import ScratchSpec, remove_all, runs_on_one_node
from ..drizzle.scratch import scratch_root as scratch_root_for
from ..execution.graph import accumulator_spec, build_graph, run_graph
from ..geometry.grid import make_output_grid
from ..params import ResampleParams
from ..planning.mosaic import plan_root_attrs
from ..planning.plan import SINGLE_GROUP, compute_footprints, make_plan
from ..store import FORMAT_KEY, Location, scratch_sibling
from ..store.living import (
    BRANCH,
    VERSION_KEY,
    Version,
    commit_lock,
    create_repository,
    dumps,
    has_version,
    is_living,
    open_repository,
)
from ..store.mosaic import create_layout
from .inputs import check_inputs
from .records import (
    LIVING_KEY,
    GridSpec,
    InputRecord,
    LivingState,
    LivingUpdate,
)
from .sums import create_sums, extendable_tiles, has_sums
from .tiles import check_on_grid, living_tile_task, sort_tiles, write_relabelled_and_cleared

__all__ = ["LAYOUT_KEY", "BaseMoved", "before_commit", "update_once"]

log = logging.getLogger(__name__)

#: Commit metadata of the layout written before the first version's tiles (not a version).
LAYOUT_KEY = "dask_resample_layout"


class BaseMoved(Exception):
    """The branch moved between the start of an update and its commit."""


def _check_params(location: Location, state: LivingState, given: ResampleParams | None) -> None:
    """Refuse parameters other than the mosaic's (the first that differs is named)."""
    if given is None:
        return
    old, new = dumps(state.params.to_dict()), dumps(given.to_dict())
    for name in old:
        if old[name] != new.get(name):
            raise ValueError(
                f"{name}: the living mosaic {location} was made with {name}={old[name]!r}, got "
                f"{new.get(name)!r}; its parameters are fixed (make a new mosaic for others)"
            )


def _match_removed(location: Location, inputs: Sequence[InputRecord], remove: Sequence[str]) -> set[int]:
    """Positions in ``inputs`` of the inputs named by ``remove`` (file name, source or fingerprint prefix)."""
    out: set[int] = set()
    for name in remove:
        hits = [
            k
            for k, inp in enumerate(inputs)
            if name in (inp.filename, inp.source) or (len(name) >= 8 and inp.fingerprint.startswith(name))
        ]
        if not hits:
            raise ValueError(f"remove: {name!r} is not an input of the living mosaic {location}")
        if len(hits) > 1:
            raise ValueError(f"remove: {name!r} names {len(hits)} inputs of {location}; give their fingerprints")
        out.add(hits[0])
    return out


def update_once(
    location: Location,
    added_sources: Sequence[str],
    remove: Sequence[str],
    *,
    grid: GridSpec | None,
    output_wcs: Mapping[str, Any] | None,
    tile_shape: Sequence[int] | None,
    params: ResampleParams | None,
    storage_options: Mapping[str, Any] | None,
    client: Any,
    message: str | None,
) -> LivingUpdate:
    """Plan, compute and commit one update on the newest version (raises :class:`BaseMoved` if it moved)."""
    import icechunk
    import zarr

    repo = open_repository(location) if is_living(location) else create_repository(location)
    session = repo.writable_session(BRANCH)
    # no version yet (a new mosaic, or a creation killed after its layout commit): create it (again)
    state = LivingState.read(zarr.open_group(session.store, mode="r")) if has_version(location) else None
    if state is not None:
        _check_params(location, state, params)
        run_params = state.params
        old_inputs = list(state.inputs)
    else:
        run_params = params or ResampleParams()
        old_inputs = []
    removed_at = _match_removed(location, old_inputs, remove)

    # the earlier inputs from the descriptions the mosaic keeps (checked against their files), the added ones read
    checked = check_inputs(
        location, old_inputs, removed_at, added_sources, storage_options=storage_options, client=client
    )
    added, added_refs = checked.added, checked.added_refs
    kept_prints = {inp.fingerprint: inp for k, inp in enumerate(checked.current) if k not in removed_at}
    seen: set[str] = set()
    for inp in added:
        if inp.fingerprint in kept_prints or inp.fingerprint in seen:
            raise ValueError(
                f"add: {inp.filename} is already an input of the living mosaic {location} "
                f"(fingerprint {inp.fingerprint[:12]})"
            )
        seen.add(inp.fingerprint)

    if state is not None:
        out_grid, tiles_yx = state.grid, state.tile_shape
    else:
        given_wcs = dict(output_wcs) if output_wcs is not None else None
        out_grid = make_output_grid(
            added_refs, output_wcs=given_wcs, wcs_pars=None if grid is None else grid.wcs_pars()
        )
        tile_values = tuple(int(v) for v in (tile_shape or config.get("tile-shape") or config.DEFAULT_TILE_SHAPE))
        if len(tile_values) != 2 or min(tile_values) < 1:
            raise ValueError(f"tile_shape: expected two positive integers (ny, nx), got {tile_values}")
        tiles_yx = (tile_values[0], tile_values[1])

    # every footprint in one call: the previous version's inputs, then the changed ones as they are now, the added
    n_old = len(old_inputs)
    changed = checked.changed
    footprints = compute_footprints(
        [*checked.before, *(checked.current_refs[k] for k in changed), *added_refs], out_grid.wcs
    )
    before_fps = footprints[:n_old]
    now_fps = list(before_fps)
    for j, k in enumerate(changed):
        now_fps[k] = footprints[n_old + j]
    added_fps = footprints[n_old + len(changed) :]
    check_on_grid(location, out_grid, added_refs, added_fps)
    kept = [k for k in range(n_old) if k not in removed_at]
    new_refs = [*(checked.current_refs[k] for k in kept), *added_refs]
    new_fps = [*(now_fps[k] for k in kept), *added_fps]
    new_refs = [ref.with_index(j) for j, ref in enumerate(new_refs)]
    new_fps = [replace(fp, index=j) for j, fp in enumerate(new_fps)]
    new_inputs = [*(checked.current[k] for k in kept), *added]
    plan_new = make_plan(new_refs, out_grid, run_params, tile_shape=tiles_yx, many_to_many=False, footprints=new_fps)
    plan_old = (
        make_plan(checked.before, out_grid, run_params, tile_shape=tiles_yx, many_to_many=False, footprints=before_fps)
        if n_old
        else None
    )
    old_ids = [inp.fingerprint for inp in old_inputs]
    new_ids = [inp.fingerprint for inp in new_inputs]
    recompute, relabel, cleared = sort_tiles(plan_old, plan_new, old_ids, new_ids)
    arrays = tuple(output_arrays(run_params))
    n_new_planes = plan_new.n_ctx_planes(SINGLE_GROUP)
    n_old_planes = state.n_planes if state is not None else 1
    n_write = max(n_new_planes, n_old_planes)
    log.info(
        "%s: %d tiles to recompute, %d to relabel, %d to clear", location, len(recompute), len(relabel), len(cleared)
    )

    living = {"version": (state.number if state else 0) + 1, "inputs": [i.state_record() for i in new_inputs]}
    root_attrs = dumps(
        plan_root_attrs(
            plan_new,
            mode="many_to_one",
            arrays=arrays,
            fingerprint=hashlib.sha256("".join(new_ids).encode()).hexdigest(),
            extra_attrs={LIVING_KEY: living},
        )
    )
    if state is None:
        # the layout first, in a commit of its own (a session must be clean to fork): not a version
        layout_attrs = {**root_attrs, LIVING_KEY: {"version": 0, "inputs": []}}
        create_layout(
            session.store,
            groups={SINGLE_GROUP: {"attrs": {}, "n_ctx_planes": n_new_planes}},
            root_attrs=layout_attrs,
            shape_yx=out_grid.shape_yx,
            tile_shape_yx=tiles_yx,
            arrays=arrays,
            fill_values=empty_pixel_values(run_params, out_grid.pixel_scale_ratio),
            many_to_many=False,
        )
        if config.get("living.keep-sums"):
            create_sums(session.store, run_params, out_grid.shape_yx, tiles_yx)
        with commit_lock(location):
            session.commit("layout", metadata={LAYOUT_KEY: True})
        session = repo.writable_session(BRANCH)
        n_old_planes = n_new_planes
        n_write = n_new_planes
    base = session.snapshot_id
    keep_sums = has_sums(zarr.open_group(session.store, mode="r"))
    # tiles whose kept sums the added inputs extend: their earlier contributors are not drizzled again
    extended = (
        extendable_tiles(plan_old, plan_new, old_ids, new_ids, recompute) if keep_sums and plan_old is not None else {}
    )

    token = uuid.uuid4().hex[:12]
    n_drizzled = 0
    if recompute:
        one_node = runs_on_one_node(client)
        scratch_root = scratch_root_for(
            scratch_sibling(location, token), f"{location.name}-{token}", one_node=one_node, owner=location
        )
        skip = {(SINGLE_GROUP, key) for (_, key) in plan_new.contributions if key not in recompute}
        try:
            contributions = {
                gk: indices[extended[gk[1]] :] if gk[1] in extended else indices
                for gk, indices in plan_new.contributions.items()
            }

            def tile_arguments(group: str, key: tuple[int, int]) -> tuple:
                extends = None
                if key in extended:
                    extends = accumulator_spec(plan_new, key, plan_new.contributions[(group, key)])
                return (session.fork(), n_write, keep_sums, extends)

            graph = build_graph(
                replace(plan_new, contributions=contributions),
                store_path=location,
                arrays=arrays,
                token=token,
                scratch_root=scratch_root,
                skip_tiles=skip,
                tile_function=living_tile_task,
                tile_arguments=tile_arguments,
            )
            # earlier inputs are drizzled only where they land on the recomputed tiles (drizzle.passes.input_crop)
            spec_key = graph.keys.drizzle_spec
            graph.dsk[spec_key] = replace(graph.dsk[spec_key], crop_input=True)
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
    write_relabelled_and_cleared(
        store,
        plan_new,
        arrays,
        empty_pixel_values(run_params, out_grid.pixel_scale_ratio),
        relabel=relabel,
        cleared=cleared,
        n_old_planes=n_old_planes,
        n_write=n_write,
        keep_sums=keep_sums,
    )
    if con is not None and con.shape[0] != n_new_planes:
        con.resize((n_new_planes, *out_grid.shape_yx))
    zroot.attrs.put({FORMAT_KEY: root_attrs})

    removed = [old_inputs[k] for k in sorted(removed_at)]
    changed_records = [{**checked.current[k].record(), "was": old_inputs[k].fingerprint} for k in changed]
    number = living["version"]
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    tiles = {"recomputed": len(recompute), "relabelled": len(relabel), "cleared": len(cleared)}
    meta = {
        VERSION_KEY: dumps(
            {
                "version": number,
                "time": now,
                "added": [i.record() for i in added],
                "removed": [i.record() for i in removed],
                "changed": changed_records,
                "params": run_params.to_dict(),
                "software": f"dask-resample {__version__}",
                "n_inputs": len(new_inputs),
                "tiles": tiles,
            }
        )
    }
    text = message or _message(added, removed)
    before_commit(location)
    with commit_lock(location):
        if repo.lookup_branch(BRANCH) != base:
            raise BaseMoved(f"version {number} was committed by another update")
        try:
            snapshot = session.commit(text, metadata=meta)
        except icechunk.ConflictError as exc:
            raise BaseMoved(str(exc).splitlines()[0]) from None
    info = repo.lookup_snapshot(snapshot)
    version = Version.from_snapshot(info)
    assert version is not None
    log.info("%s: version %d committed (%s)", location, number, snapshot)
    return LivingUpdate(
        version=version,
        n_recomputed=len(recompute),
        n_relabelled=len(relabel),
        n_cleared=len(cleared),
        n_drizzled=n_drizzled,
        attempts=1,
        seconds=0.0,
        n_described=checked.n_described,
        n_extended=len(extended),
    )


def before_commit(location: Location) -> None:
    """Called just before an update commits (tests stop or kill an update there)."""


def _message(added: Sequence[InputRecord], removed: Sequence[InputRecord]) -> str:
    parts = []
    if added:
        parts.append(
            f"add {len(added)}: " + ", ".join(i.filename for i in added[:5]) + (" ..." if len(added) > 5 else "")
        )
    if removed:
        parts.append(
            f"remove {len(removed)}: "
            + ", ".join(i.filename for i in removed[:5])
            + (" ..." if len(removed) > 5 else "")
        )
    return "; ".join(parts)
