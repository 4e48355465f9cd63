"""The task graph: the only module that builds and runs Dask graphs (its tasks: :mod:`~dask_resample.execution.tasks`).

Two kinds of task, in the style of odc-loader's graph builder (plan the
overlaps, then a sparse graph whose shared state is stored once):

* ``drizzle-<token>, i``: exposure ``i`` is read, mapped and drizzled once, and
  its part of each tile it overlaps is written to a scratch file
  (:mod:`dask_resample.drizzle.scratch`); the task returns small records;
* ``tile-<token>, group, ty, tx``: when every contributor is done, the tile's
  partials are read back one at a time in input order, summed, finalised and
  written to the mosaic; the task returns a small record;
* with Zarr sharding (several tiles per shard, the default on object stores),
  ``shard-<token>, group, sy, sx`` takes the place of its tiles' tasks: it
  reduces its tiles one after the other, keeps each finished tile in a
  temporary file on its own node, and writes each array's whole shard once (no
  two tasks write into one object; no finished tile travels through the store).

The output WCS and parameters (:class:`~dask_resample.drizzle.kernel.DrizzleSpec`) and
the store and scratch locations sit once in the graph under their own keys, so
they travel once per worker, not inside every task. The graph has one task per
exposure and one per tile, and its edges are the overlaps.

Failures are values (:class:`~dask_resample.inputs.failures.TaskFailure`): a tile fed
by an unreadable input returns the failure, every other tile is written, and
the client reports each failure once. The same graph runs on any
``distributed`` client or, without a cluster, on Dask's synchronous scheduler
(:func:`dask.get`): the debugging path, also the fastest for tiny inputs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import config
from ..drizzle.kernel import DrizzleSpec
from ..drizzle.reduce import AccumulatorSpec
from ..drizzle.scratch import ScratchSpec
from ..inputs.failures import TaskFailure, TileTaskError
from ..planning.plan import MosaicPlan, compute_footprints
from ..store import Location, StoreSpec, as_location, shard_codecs
from .tasks import (
    ShardTask,
    TileTask,
    drizzle_task,
    encode_tile_task,
    reduce_tile,
    shard_task,
    tile_task,
)

__all__ = [
    "GraphKeys",
    "MosaicGraph",
    "TileTask",
    "TileTaskError",
    "accumulator_spec",
    "build_graph",
    "reduce_tile",
    "run_graph",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GraphKeys:
    """The keys of one graph (prefixed by a token unique to the run), and their readable names."""

    token: str

    @property
    def drizzle_spec(self) -> str:
        """Key of the shared :class:`DrizzleSpec`."""
        return f"drizzle-spec-{self.token}"

    @property
    def scratch(self) -> str:
        """Key of the shared :class:`~dask_resample.drizzle.scratch.ScratchSpec`."""
        return f"scratch-{self.token}"

    def codecs(self, group: str) -> str:
        """Key of the shared metadata of ``group``'s sharded arrays (:func:`~dask_resample.store.shard_codecs`)."""
        return f"shard-codecs-{self.token}-{group}"

    def exposure(self, i: int) -> tuple:
        """Key of exposure ``i``'s drizzle task."""
        return (f"drizzle-{self.token}", i)

    def tile(self, group: str, key: tuple[int, int]) -> tuple:
        """Key of the reduction task of ``(group, (ty, tx))``."""
        return (f"tile-{self.token}", group, *key)

    def shard(self, group: str, key: tuple[int, int]) -> tuple:
        """Key of the task writing shard ``(sy, sx)`` of ``group``."""
        return (f"shard-{self.token}", group, *key)

    def tile_of(self, key: Any) -> tuple[str, tuple[int, int]] | None:
        """``(group, (ty, tx))`` of a tile key, else ``None``."""
        key = _as_tuple(key)
        if isinstance(key, tuple) and len(key) == 4 and key[0] == f"tile-{self.token}":
            return key[1], (int(key[2]), int(key[3]))
        return None

    def shard_of(self, key: Any) -> tuple[str, tuple[int, int]] | None:
        """``(group, (sy, sx))`` of a shard key, else ``None``."""
        key = _as_tuple(key)
        if isinstance(key, tuple) and len(key) == 4 and key[0] == f"shard-{self.token}":
            return key[1], (int(key[2]), int(key[3]))
        return None

    def label(self, key: Any, names: Mapping[int, str]) -> str | None:
        """Readable name of a key (``drizzle f.fits``, ``tile 0,1 [group]``), ``None`` if not ours."""
        key = _as_tuple(key)
        if not isinstance(key, tuple) or not key:
            return None
        if key[0] == f"drizzle-{self.token}" and len(key) == 2:
            return f"drizzle {names.get(key[1], key[1])}"
        if (tile := self.tile_of(key)) is not None:
            group, (ty, tx) = tile
            return f"tile {ty},{tx}" + (f" [{group}]" if group else "")
        if (shard := self.shard_of(key)) is not None:
            group, (sy, sx) = shard
            return f"shard {sy},{sx}" + (f" [{group}]" if group else "")
        return None


def _as_tuple(key: Any) -> Any:
    """Task-stream records name tuple keys by their string form; turn those back into tuples."""
    if isinstance(key, str) and key.startswith("("):
        import ast

        try:
            return ast.literal_eval(key)
        except (ValueError, SyntaxError):
            return key
    return key


@dataclass(frozen=True)
class MosaicGraph:
    """A graph ready to run.

    Attributes
    ----------
    dsk : dict
        The task dictionary (Dask's graph specification).
    tile_keys : list
        One key per ``(group, tile)`` to compute, in plan order.
    keys : GraphKeys
    scratch : ScratchSpec
    names : mapping
        ``input index -> file name`` (for labels).
    """

    dsk: dict
    tile_keys: list
    keys: GraphKeys
    scratch: ScratchSpec
    names: Mapping[int, str]

    def label(self, key: Any) -> str | None:
        """Readable name of a key of this graph."""
        return self.keys.label(key, self.names)


def build_graph(
    plan: MosaicPlan,
    *,
    store_path: str | Location,
    arrays: tuple[str, ...],
    token: str,
    scratch_root: str | Location,
    skip_tiles: set[tuple[str, tuple[int, int]]] | None = None,
    fast_pixmap: bool | None = None,
    exposure_after: Mapping[int, Any] | None = None,
    pixmap_dir: Location | None = None,
    shard_tiles_yx: tuple[int, int] = (1, 1),
    tile_function: Callable[..., Any] | None = None,
    tile_arguments: Callable[[str, tuple[int, int]], tuple] | None = None,
) -> MosaicGraph:
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
    scratch_root : str
        Directory for the run's tile partials.
    skip_tiles : set, optional
        ``(group, (ty, tx))`` already complete (resume); they and any exposure
        that only feeds them are left out.
    fast_pixmap : bool, optional
        Use the fast pixel map where it applies; default ``resample.fast-pixmap``
        of :mod:`dask.config`, read here (on the client) and carried to the
        workers in the :class:`~dask_resample.drizzle.kernel.DrizzleSpec`.
    exposure_after : mapping, optional
        ``input index -> key`` of a task that must finish before the exposure
        is drizzled (its outlier flagging, when the graph is extended by
        :mod:`dask_resample.outliers`).
    pixmap_dir : str, optional
        Keep each input's pixel map there (for the outlier blot to reuse).
    shard_tiles_yx : tuple of int
        Tiles per Zarr shard of the store (as created); with more than one,
        one task per shard writes it.
    tile_function : callable, optional
        The task of each tile in place of :func:`tile_task` (unsharded stores
        only): called as ``tile_function(contributions, task, scratch, *args)``
        with ``args = tile_arguments(group, (ty, tx))`` (the living mosaics'
        writes into a transaction, :mod:`dask_resample.living`).
    tile_arguments : callable, optional
        Extra arguments of ``tile_function`` per tile.

    Returns
    -------
    MosaicGraph
    """
    if tile_function is not None and tuple(shard_tiles_yx) != (1, 1):
        raise ValueError("build_graph: tile_function applies to unsharded stores only")
    skip_tiles = skip_tiles or set()
    k = GraphKeys(token)
    window_pixels = int(config.get("window-pixels") or 0)
    spec = DrizzleSpec(
        out_wcs=plan.grid.wcs,
        shape_yx=plan.grid.shape_yx,
        tile_shape_yx=plan.tiles.tile_shape_yx,
        halo=plan.halo,
        params=plan.params,
        pixel_scale_ratio=plan.grid.pixel_scale_ratio,
        fast_pixmap=bool(config.get("fast-pixmap") if fast_pixmap is None else fast_pixmap),
        fused_kernel=bool(config.get("fused-kernel")),
        pixmap_dir=pixmap_dir,
        window_pixels=window_pixels,
        map_first=_large_frames(plan, window_pixels),
    )
    scratch = ScratchSpec(root=as_location(scratch_root))
    store = as_location(store_path)
    sharded = tuple(shard_tiles_yx) != (1, 1)
    group_of = {i: g for g, members in plan.members.items() for i in members}
    todo = {gk: idx for gk, idx in plan.contributions.items() if gk not in skip_tiles}
    needed: dict[int, set[tuple[int, int]]] = {}
    for (_, key), indices in todo.items():
        for i in indices:
            needed.setdefault(i, set()).add(key)

    dsk: dict = {k.drizzle_spec: spec, k.scratch: scratch}
    refs = {r.index: r for r in plan.refs}
    for i in sorted(needed):
        after = () if not exposure_after or i not in exposure_after else (exposure_after[i],)
        dsk[k.exposure(i)] = (
            drizzle_task,
            refs[i],
            k.drizzle_spec,
            group_of[i],
            tuple(sorted(needed[i])),
            k.scratch,
            *after,
        )
    tile_keys: list = []
    tile_tasks: list[TileTask] = []
    for (group, key), indices in todo.items():
        task = TileTask(
            group=group,
            ty=key[0],
            tx=key[1],
            order=tuple(indices),
            accumulator=accumulator_spec(plan, key, indices),
            store=StoreSpec(location=store, group=group, arrays=arrays),
        )
        if sharded:
            tile_tasks.append(task)
            continue
        tk = k.tile(group, key)
        extra = tile_arguments(group, key) if tile_arguments is not None else ()
        dsk[tk] = (tile_function or tile_task, [k.exposure(i) for i in indices], task, k.scratch, *extra)
        tile_keys.append(tk)
    if sharded:
        tile_keys = _shard_tasks(dsk, tile_tasks, k, store, arrays, shard_tiles_yx)
    return MosaicGraph(
        dsk=dsk, tile_keys=tile_keys, keys=k, scratch=scratch, names={r.index: r.filename for r in plan.refs}
    )


def accumulator_spec(plan: MosaicPlan, key: tuple[int, int], indices: Sequence[int]) -> AccumulatorSpec:
    """The accumulator of tile ``key`` of ``plan`` reducing the inputs ``indices``."""
    tile = plan.tiles.tile(*key)
    return AccumulatorSpec(
        y0=tile.y0,
        x0=tile.x0,
        shape_yx=tile.shape_yx,
        ctx_bit={i: plan.ctx_bit[i] for i in indices},
        params=plan.params,
        pixel_scale_ratio=plan.grid.pixel_scale_ratio,
    )


def _large_frames(plan: MosaicPlan, window_pixels: int) -> frozenset[int]:
    """Exposures whose footprint on the grid (the planning's padded box, clipped to it) exceeds ``window_pixels``."""
    if window_pixels <= 0:
        return frozenset()
    ny, nx = plan.grid.shape_yx
    out = set()
    for fp in compute_footprints(plan.refs, plan.grid.wcs):
        if not math.isfinite(fp.y0 + fp.y1 + fp.x0 + fp.x1):
            continue
        height = min(fp.y1, ny) - max(fp.y0, 0.0)
        width = min(fp.x1, nx) - max(fp.x0, 0.0)
        if height > 0 and width > 0 and height * width > window_pixels:
            out.add(fp.index)
    return frozenset(out)


def _shard_tasks(
    dsk: dict,
    tiles: Sequence[TileTask],
    k: GraphKeys,
    store: Location,
    arrays: tuple[str, ...],
    shard_tiles_yx: tuple[int, int],
) -> list:
    """Add a task per tile (reduce and encode) and one per shard (write), fed by its tiles; return the shard keys.

    Each tile is finished as soon as its own exposures are drizzled, as on an
    unsharded store; a shard's task only lays out its tiles' encoded chunks.
    The arrays' metadata is read here once per group and shared by the tasks.
    """
    ssy, ssx = shard_tiles_yx
    members: dict[tuple[str, tuple[int, int]], list[TileTask]] = {}
    for t in tiles:
        members.setdefault((t.group, (t.ty // ssy, t.tx // ssx)), []).append(t)
    for group in sorted({t.group for t in tiles}):
        dsk[k.codecs(group)] = shard_codecs(StoreSpec(location=store, group=group, arrays=arrays))
    shard_keys = []
    for (group, (sy, sx)), shard_tiles in members.items():
        shard_tiles = sorted(shard_tiles, key=lambda t: (t.ty, t.tx))
        for t in shard_tiles:
            dsk[k.tile(group, (t.ty, t.tx))] = (
                encode_tile_task,
                [k.exposure(i) for i in t.order],
                t,
                k.scratch,
                k.codecs(group),
            )
        task = ShardTask(
            group=group,
            sy=sy,
            sx=sx,
            store=StoreSpec(location=store, group=group, arrays=arrays),
            tiles=tuple(shard_tiles),
        )
        sk = k.shard(group, (sy, sx))
        dsk[sk] = (shard_task, [k.tile(group, (t.ty, t.tx)) for t in shard_tiles], task, k.scratch, k.codecs(group))
        shard_keys.append(sk)
    return shard_keys


@dataclass(frozen=True)
class GraphOutcome:
    """Results of a run: tile records, failures and seconds per task."""

    records: dict[Any, dict[str, Any]]
    failures: dict[Any, TaskFailure]
    seconds: dict[Any, float]


def run_graph(
    graph: MosaicGraph, *, client: Any = None, on_tile: Callable[[Any, Any], None] | None = None
) -> GraphOutcome:
    """Run a graph on ``client``, or on Dask's synchronous scheduler when ``client`` is ``None``.

    Parameters
    ----------
    graph : MosaicGraph
    client : distributed.Client, optional
    on_tile : callable, optional
        Called as ``on_tile(key, result)`` as each tile finishes (a record or a
        :class:`TaskFailure`).

    Returns
    -------
    GraphOutcome
    """
    keys = graph.tile_keys
    results: dict[Any, Any] = {}
    seconds: dict[Any, float] = {}
    if not keys:
        return GraphOutcome({}, {}, {})
    if client is None:
        import dask
        from dask.callbacks import Callback

        wanted = set(keys)
        started: dict[Any, float] = {}

        def pretask(key: Any, dsk: Any, state: Any) -> None:
            started[key] = time.perf_counter()

        def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            seconds[key] = time.perf_counter() - started.pop(key, time.perf_counter())
            if key in wanted and on_tile is not None:
                on_tile(key, result)

        with Callback(pretask=pretask, posttask=posttask):
            values = dask.get(graph.dsk, keys)
        results = dict(zip(keys, values, strict=True))
    else:
        from distributed import as_completed, get_task_stream

        with get_task_stream(client) as stream:
            futures = client.get(graph.dsk, keys, sync=False)
            index = {f.key: key for f, key in zip(futures, keys, strict=True)}
            for fut in as_completed(futures):
                key = index[fut.key]
                if fut.status == "finished":
                    value = fut.result()
                else:
                    exc = fut.exception() if fut.status == "error" else RuntimeError(f"task {fut.status}")
                    value = TaskFailure.from_exception(exc)
                results[key] = value
                if on_tile is not None:
                    on_tile(key, value)
            del futures
        seconds = _stream_seconds(stream.data)
    failures = {key: v for key, v in results.items() if isinstance(v, TaskFailure)}
    records = {key: v for key, v in results.items() if not isinstance(v, TaskFailure)}
    return GraphOutcome(records, failures, seconds)


def _stream_seconds(data: Sequence[Mapping[str, Any]]) -> dict[Any, float]:
    """Compute seconds per key from ``distributed`` task-stream records."""
    out: dict[Any, float] = {}
    for rec in data:
        key = _as_tuple(rec.get("key"))
        spent = sum(s["stop"] - s["start"] for s in rec.get("startstops", ()) if s.get("action") == "compute")
        out[key] = out.get(key, 0.0) + spent
    return out
