"""The worker tasks of the drizzle graph and their small records.

* :func:`drizzle_task`: one exposure drizzled, its tile partials written to scratch;
* :func:`tile_task`: one tile's partials summed in input order, finalised and written;
* :func:`encode_tile_task` and :func:`shard_task`: the same for a sharded store, a tile
  encoded for its shard, then one task per shard writing every array's whole shard.

Each returns a small record, or its failure as a value
(:class:`~dask_resample.inputs.failures.TaskFailure`, through
:func:`~dask_resample.inputs.failures.worker_task`). :mod:`dask_resample.execution.graph`
puts them in a graph.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..drizzle.kernel import DrizzleSpec, exposure_partials
from ..drizzle.reduce import AccumulatorSpec, TileAccumulator, finalize_tile, reduce_partials
from ..drizzle.scratch import PartialFile, ScratchSpec, read_partial, remove_tile, write_partial
from ..inputs.failures import TaskFailure, worker_task
from ..store import (
    StoreSpec,
    encode_tile_chunks,
    read_encoded_tile,
    shard_marker,
    tile_marker,
    write_encoded_tile,
    write_shard,
    write_tile,
)

__all__ = [
    "ShardTask",
    "TileTask",
    "accumulate_tile",
    "drizzle_task",
    "encode_tile_task",
    "reduce_tile",
    "shard_task",
    "tile_record",
    "tile_task",
]


@dataclass(frozen=True)
class TileTask:
    """What a tile's reduction needs besides the shared specs (small)."""

    group: str
    ty: int
    tx: int
    order: tuple[int, ...]
    accumulator: AccumulatorSpec
    store: StoreSpec


@dataclass(frozen=True)
class ShardTask:
    """One shard of one group and its tiles (small)."""

    group: str
    sy: int
    sx: int
    store: StoreSpec
    tiles: tuple[TileTask, ...]


@worker_task(lambda ref, *args: f"{ref.filename}: drizzling failed")
def drizzle_task(
    ref: Any, spec: DrizzleSpec, group: str, tiles: tuple[tuple[int, int], ...], scratch: ScratchSpec, *after: Any
) -> dict[tuple[int, int], PartialFile | None] | TaskFailure:
    """Drizzle one exposure and write its tile partials to scratch (a worker task).

    ``after`` are the results of tasks that must finish first (the exposure's
    outlier flagging); a failure among them is passed on.
    """
    # each partial is written as soon as it is made: a large exposure drizzled a block of tiles at
    # a time (drizzle.windows) never holds all of its partials at once
    return {
        key: None if p is None else write_partial(scratch, group, *key, p)
        for key, p in exposure_partials(ref, spec, tiles)
    }


@worker_task(lambda contributions, task, scratch: f"tile {task.ty},{task.tx}")
def tile_task(contributions: Sequence[Any], task: TileTask, scratch: ScratchSpec) -> dict[str, Any] | TaskFailure:
    """Sum a tile's partials in input order, finalise and write it (a worker task).

    ``contributions`` are the records of the contributors' drizzle tasks, in
    ``task.order``. A tile already marked complete (a retried task) is not
    written again.
    """
    if (done := tile_marker(task.store, task.ty, task.tx)) is not None:
        return done
    t0 = time.perf_counter()
    arrays, record = reduce_tile(task, contributions, scratch)
    spec = task.accumulator
    write_tile(task.store, spec.y0, spec.x0, task.ty, task.tx, arrays, record, ctx_planes=spec.ctx_planes)
    del arrays
    remove_tile(scratch, task.group, task.ty, task.tx)
    record["seconds"] = time.perf_counter() - t0
    return record


def reduce_tile(
    task: TileTask, contributions: Sequence[Any], scratch: ScratchSpec
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A tile's finished arrays and its record, from its contributors' records (in ``task.order``)."""
    acc = accumulate_tile(task, contributions, scratch)
    return finalize_tile(acc), tile_record(task, acc.spec)


def accumulate_tile(
    task: TileTask, contributions: Sequence[Any], scratch: ScratchSpec, start: TileAccumulator | None = None
) -> TileAccumulator:
    """The sums of a tile's partials, from its contributors' records (in ``task.order``), added to ``start``."""
    key = (task.ty, task.tx)
    files = [c.get(key) for c in contributions]
    return reduce_partials(
        task.accumulator, (None if f is None else read_partial(scratch.location(f.path)) for f in files), start
    )


def tile_record(task: TileTask, spec: AccumulatorSpec) -> dict[str, Any]:
    """The record of a finished tile (its group, key, box and context planes)."""
    return {
        "group": task.group,
        "tile": [task.ty, task.tx],
        "n_inputs": len(task.order),
        "y0": spec.y0,
        "x0": spec.x0,
        "shape": list(spec.shape_yx),
        "ctx_planes": list(spec.ctx_planes),
    }


@worker_task(lambda contributions, task, scratch, codecs: f"tile {task.ty},{task.tx}")
def encode_tile_task(
    contributions: Sequence[Any], task: TileTask, scratch: ScratchSpec, codecs: Mapping[str, Any]
) -> dict[str, Any] | TaskFailure:
    """Sum a tile's partials in input order, finalise it and encode it for its shard (a worker task).

    The tile of a sharded store: its chunks, encoded with the arrays' own
    codecs (:func:`~dask_resample.store.encode_tile_chunks`), go to one
    scratch object with the tile's record, read by the shard's task; its
    partials are then removed. A retried task finds the object and returns
    its record.
    """
    target = scratch.finished_tile(task.group, task.ty, task.tx)
    if target.exists():
        remove_tile(scratch, task.group, task.ty, task.tx)  # partials its inputs' retries may have rewritten
        return read_encoded_tile(target)[0]
    t0 = time.perf_counter()
    arrays, record = reduce_tile(task, contributions, scratch)
    blob, record["chunks"] = encode_tile_chunks(codecs, task.ty, task.tx, arrays, record["ctx_planes"])
    del arrays
    record["seconds"] = time.perf_counter() - t0
    write_encoded_tile(target, record, blob)
    remove_tile(scratch, task.group, task.ty, task.tx)
    return record


@worker_task(lambda tiles, task, scratch, codecs: f"shard {task.sy},{task.sx}")
def shard_task(
    tiles: Sequence[dict[str, Any]], task: ShardTask, scratch: ScratchSpec, codecs: Mapping[str, Any]
) -> dict[str, Any] | TaskFailure:
    """Write every array's whole shard from its finished tiles, then its marker (a worker task).

    ``tiles`` are the records of the shard's :func:`encode_tile_task` tasks,
    in ``task.tiles`` order; their encoded chunks are laid out into one object
    per array (:func:`~dask_resample.store.write_shard`: encoded bytes beyond a
    budget wait in a temporary file on this worker's node, read back by this
    same task). A shard already marked complete (a retried task) is not
    written again.
    """
    if (done := shard_marker(task.store, task.sy, task.sx)) is not None:
        return done
    t0 = time.perf_counter()
    objects = [scratch.finished_tile(t.group, t.ty, t.tx) for t in task.tiles]
    records = [{**record, "encoded": obj} for record, obj in zip(tiles, objects, strict=True)]
    record = write_shard(task.store, task.sy, task.sx, records, codecs, spill_dir=_local_temporary_directory())
    for obj in objects:
        obj.remove()
    record["seconds"] = time.perf_counter() - t0
    return record


def _local_temporary_directory() -> str | None:
    """This process's node-local temporary directory (Dask's ``temporary-directory``, else the system's)."""
    import dask

    return dask.config.get("temporary-directory", None) or None
