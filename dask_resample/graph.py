"""The task graph: the only module that builds Dask graphs.

For each exposure ``i`` one task drizzles it into every tile it overlaps; small
``getitem`` tasks hand each tile its partial; per ``(group, tile)`` a chain of
``fold`` tasks adds partials in input order (in batches, so no task holds more
than :data:`FOLD_BATCH` partials); a final task finalises and writes the tile and
returns a small record. Groups of a many-to-many mosaic are independent branches
of the same graph.

The same task dictionary runs on any ``distributed`` client or, without Dask, in
this process with :func:`run_serial` (the debugging path, also the fastest for
tiny inputs).
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import settings
from .kernel import DrizzleSpec, drizzle_exposure
from .plan import MosaicPlan
from .reduce import AccumulatorSpec, finalize_tile, fold
from .store import StoreSpec, write_tile

__all__ = ["FOLD_BATCH", "TileTaskError", "build_graph", "run_serial", "tile_key"]

log = logging.getLogger(__name__)

#: Number of partials folded by one reduction task (``resample.fold-batch`` overrides it).
FOLD_BATCH = 4


class TileTaskError(RuntimeError):
    """A tile could not be computed; the message names the input."""


@dataclass(frozen=True)
class GraphKeys:
    """Key names of one graph (prefixed by a token unique to the mosaic)."""

    token: str

    def exposure(self, i: int) -> tuple:
        return (f"drizzle-{self.token}", i)

    def partial(self, i: int, key: tuple[int, int]) -> tuple:
        return (f"partial-{self.token}", i, *key)

    def fold(self, group: str, key: tuple[int, int], j: int) -> tuple:
        return (f"fold-{self.token}", group, *key, j)

    def tile(self, group: str, key: tuple[int, int]) -> tuple:
        return (f"tile-{self.token}", group, *key)


def tile_key(token: str, group: str, key: tuple[int, int]) -> tuple:
    """Key of the write task of ``(group, tile)``."""
    return GraphKeys(token).tile(group, key)


def _drizzle_named(ref: Any, spec: DrizzleSpec, keys: tuple) -> Any:
    try:
        return drizzle_exposure(ref, spec, keys)
    except Exception as exc:
        from .io import InputError

        if isinstance(exc, InputError):
            raise
        raise TileTaskError(f"{ref.filename}: drizzling failed: {type(exc).__name__}: {exc}") from exc


def _finish_tile(acc: Any, spec: StoreSpec, ty: int, tx: int, n_inputs: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    arrays = finalize_tile(acc)
    record = {
        "group": spec.group,
        "tile": [ty, tx],
        "n_inputs": n_inputs,
        "y0": acc.spec.y0,
        "x0": acc.spec.x0,
        "shape": list(acc.spec.shape_yx),
    }
    write_tile(spec, acc.spec.y0, acc.spec.x0, ty, tx, arrays, record)
    record["seconds_write"] = time.perf_counter() - t0
    return record


def build_graph(
    plan: MosaicPlan,
    *,
    store_path: str,
    arrays: tuple[str, ...],
    token: str,
    skip_tiles: set[tuple[str, tuple[int, int]]] | None = None,
    fast_pixmap: bool | None = None,
) -> tuple[dict, list]:
    """Build the task dictionary of a mosaic.

    Parameters
    ----------
    plan : MosaicPlan
    store_path : str
        Zarr store path.
    arrays : tuple of str
        Output array names.
    token : str
        Unique key prefix.
    skip_tiles : set, optional
        ``(group, (ty, tx))`` already complete (resume); they and any exposure
        that only feeds them are left out.
    fast_pixmap : bool, optional
        Use the fast pixel map where it applies; default ``resample.fast-pixmap``
        of :mod:`dask.config`, read here (on the client) and carried to the
        workers in the :class:`~dask_resample.kernel.DrizzleSpec`.

    Returns
    -------
    dsk : dict
        The graph.
    keys : list
        Write-task keys, one per ``(group, tile)``.
    """
    skip_tiles = skip_tiles or set()
    fold_batch = max(1, int(settings.get("fold-batch", FOLD_BATCH) or FOLD_BATCH))
    k = GraphKeys(token)
    spec = DrizzleSpec(
        out_wcs=plan.grid.wcs,
        shape_yx=plan.grid.shape_yx,
        tile_shape_yx=plan.tiles.tile_shape_yx,
        halo=plan.halo,
        params=plan.params,
        pixel_scale_ratio=plan.grid.pixel_scale_ratio,
        fast_pixmap=bool(settings.get("fast-pixmap", True) if fast_pixmap is None else fast_pixmap),
    )
    group_of = {i: g for g, members in plan.members.items() for i in members}
    todo = {gk: idx for gk, idx in plan.contributions.items() if gk not in skip_tiles}
    needed: dict[int, list[tuple[int, int]]] = {}
    for (group, key), indices in todo.items():
        for i in indices:
            needed.setdefault(i, []).append(key)

    dsk: dict = {}
    refs = {r.index: r for r in plan.refs}
    for i in sorted(needed):
        tile_keys = tuple(sorted(set(needed[i])))
        dsk[k.exposure(i)] = (_drizzle_named, refs[i], spec, tile_keys)
        for key in tile_keys:
            dsk[k.partial(i, key)] = (operator.getitem, k.exposure(i), key)

    out_keys = []
    for (group, key), indices in todo.items():
        tile = plan.tiles.tile(*key)
        acc_spec = AccumulatorSpec(
            y0=tile.y0,
            x0=tile.x0,
            shape_yx=tile.shape_yx,
            n_ctx_planes=plan.n_ctx_planes(group),
            ctx_bit={i: plan.ctx_bit[i] for i in indices},
            params=plan.params,
            pixel_scale_ratio=plan.grid.pixel_scale_ratio,
        )
        prev: Any = acc_spec
        for j in range(0, len(indices), fold_batch):
            batch = indices[j : j + fold_batch]
            fk = k.fold(group, key, j // fold_batch)
            dsk[fk] = (fold, prev, [k.partial(i, key) for i in batch])
            prev = fk
        store = StoreSpec(path=store_path, group=group, arrays=arrays)
        tk = k.tile(group, key)
        dsk[tk] = (_finish_tile, prev, store, key[0], key[1], len(indices))
        out_keys.append(tk)
        assert all(group_of[i] == group for i in indices)
    return dsk, out_keys


def _is_key(x: Any, dsk: dict) -> bool:
    try:
        return isinstance(x, tuple) and x in dsk
    except TypeError:
        return False


def _deps(task: Any, dsk: dict) -> list:
    out = []
    if _is_key(task, dsk):
        return [task]
    if isinstance(task, tuple) and task and callable(task[0]):
        for a in task[1:]:
            out.extend(_deps(a, dsk))
    elif isinstance(task, list):
        for a in task:
            out.extend(_deps(a, dsk))
    return out


def _resolve(arg: Any, dsk: dict, cache: dict) -> Any:
    if _is_key(arg, dsk):
        return cache[arg]
    if isinstance(arg, list):
        return [_resolve(a, dsk, cache) for a in arg]
    return arg


def run_serial(
    dsk: dict,
    keys: Iterable,
    callback: Callable[[Any, Any], None] | None = None,
    *,
    errors: dict | None = None,
    timings: dict | None = None,
) -> list:
    """Run a task dictionary in this process, freeing intermediates as soon as possible.

    Tasks run exposure by exposure in input order, then the tiles they complete,
    so memory stays bounded by one exposure and the tiles in flight.

    Parameters
    ----------
    dsk : dict
        Graph built by :func:`build_graph`.
    keys : iterable
        Keys whose results are returned.
    callback : callable, optional
        Called as ``callback(key, result)`` after each output key completes.
    errors : dict, optional
        If given, a failing task does not stop the run: its exception is stored
        here under every wanted key that depends on it (their result is
        ``None``), and every other key is still computed.
    timings : dict, optional
        If given, filled with ``key -> seconds`` spent in each task.

    Returns
    -------
    list
        Results of ``keys``, in order.
    """
    keys = list(keys)
    deps = {key: _deps(task, dsk) for key, task in dsk.items()}
    dependents: dict = {key: [] for key in dsk}
    for key, ds in deps.items():
        for d in ds:
            dependents[d].append(key)
    remaining = {key: len(dependents[key]) for key in dsk}
    wanted = set(keys)
    cache: dict = {}
    done: set = set()
    failed: dict = {}

    def run(key: Any) -> None:
        if key in done:
            return
        stack = [key]
        while stack:
            cur = stack[-1]
            pending = [d for d in deps[cur] if d not in done]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if cur in done:
                continue
            task = dsk[cur]
            bad = next((failed[d] for d in deps[cur] if d in failed), None)
            if bad is None:
                t0 = time.perf_counter()
                try:
                    cache[cur] = task[0](*[_resolve(a, dsk, cache) for a in task[1:]])
                except Exception as exc:
                    if errors is None:
                        raise
                    bad = exc
                if timings is not None:
                    timings[cur] = time.perf_counter() - t0
            if bad is not None:
                failed[cur] = bad
                cache[cur] = None
                if cur in wanted:
                    errors[cur] = bad  # type: ignore[index]
            done.add(cur)
            for d in deps[cur]:
                remaining[d] -= 1
                if remaining[d] == 0 and d not in wanted:
                    cache.pop(d, None)
            if cur in wanted and callback is not None and cur not in failed:
                callback(cur, cache[cur])

    # order: drive by output keys sorted so that early exposures finish first
    for key in keys:
        run(key)
    return [cache[key] for key in keys]
