"""The tiles of an update: which to recompute, relabel or clear; the worker task writing a recomputed one.

Tiles are sorted by comparing their contributors (inputs by content
fingerprint, in input order) in the plans of the previous and the new version
(:func:`sort_tiles`). A recomputed tile is reduced again from its contributors'
partials and written into an icechunk fork session by :func:`living_tile_task`;
relabelled and cleared tiles are rewritten on the client (:func:`write_relabelled_and_cleared`).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..drizzle.reduce import AccumulatorSpec, finalize_tile
from ..drizzle.scratch import ScratchSpec, remove_tile
from ..execution.graph import TileTask, accumulator_spec
from ..execution.tasks import accumulate_tile, tile_record
from ..geometry import OutputGrid
from ..inputs.failures import TaskFailure, worker_task
from ..inputs.io import ExposureRef, InputError
from ..planning.plan import Footprint, MosaicPlan
from ..store import Location
from ..store.living import write_tile_arrays
from .sums import clear_sums, read_sums, write_sums

__all__ = ["check_on_grid", "living_tile_task", "move_bits", "sort_tiles", "write_relabelled_and_cleared"]

log = logging.getLogger(__name__)


def check_on_grid(
    location: Location, grid: OutputGrid, refs: Sequence[ExposureRef], footprints: Sequence[Footprint]
) -> None:
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


def sort_tiles(
    plan_old: MosaicPlan | None, plan_new: MosaicPlan, old_ids: Sequence[str], new_ids: Sequence[str]
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


def move_bits(con: np.ndarray, moves: Mapping[int, int], n_planes: int) -> np.ndarray:
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


def write_relabelled_and_cleared(
    store: Any,
    plan: MosaicPlan,
    arrays: Sequence[str],
    fills: Mapping[str, Any],
    *,
    relabel: Mapping[tuple[int, int], Mapping[int, int]],
    cleared: set[tuple[int, int]],
    n_old_planes: int,
    n_write: int,
    keep_sums: bool = False,
) -> None:
    """Rewrite the cleared tiles (fill values) and the relabelled tiles' ``con`` (bits moved) in ``store``.

    ``con`` must already hold ``n_write`` planes; every plane up to ``n_write`` is written.
    With ``keep_sums`` a cleared tile's sums are reset too.
    """
    import zarr

    root = zarr.open_group(store, mode="r+")
    for key in sorted(cleared):
        tile = plan.tiles.tile(*key)
        blank = {
            n: np.full(
                (n_write, *tile.shape_yx) if n == "con" else tile.shape_yx, fills[n], dtype=np.asarray(fills[n]).dtype
            )
            for n in arrays
        }
        write_tile_arrays(
            store,
            y0=tile.y0,
            x0=tile.x0,
            arrays=blank,
            names=tuple(arrays),
            ctx_planes=tuple(range(n_write)),
            n_planes=n_write,
        )
        if keep_sums:
            clear_sums(store, accumulator_spec(plan, key, ()))
    if "con" not in arrays:
        return
    con = root["con"]
    assert isinstance(con, zarr.Array)  # the layout's context array
    for key, moves in sorted(relabel.items()):
        tile = plan.tiles.tile(*key)
        old = np.asarray(con[:n_old_planes, tile.y0 : tile.y1, tile.x0 : tile.x1])
        new = move_bits(old, moves, n_write)
        write_tile_arrays(
            store,
            y0=tile.y0,
            x0=tile.x0,
            arrays={"con": new},
            names=("con",),
            ctx_planes=tuple(range(n_write)),
            n_planes=n_write,
        )


@worker_task(lambda contributions, task, *args: f"tile {task.ty},{task.tx}")
def living_tile_task(
    contributions: Sequence[Any],
    task: TileTask,
    scratch: ScratchSpec,
    fork: Any,
    n_planes: int,
    keep_sums: bool = False,
    extends: AccumulatorSpec | None = None,
) -> dict[str, Any] | TaskFailure:
    """Reduce one tile and write it into an icechunk fork session (a worker task); returns its record and the fork.

    Every plane of ``con`` up to ``n_planes`` is written (zero planes remove
    what an earlier version held there). With ``keep_sums`` the tile's running
    sums are written too (:mod:`~dask_resample.living.sums`). ``extends`` (the
    tile's accumulator over all its contributors): ``contributions`` are those
    of the added inputs only, added to the kept sums.
    """
    t0 = time.perf_counter()
    start = None if extends is None else read_sums(fork.store, extends)
    acc = accumulate_tile(task, contributions, scratch, start)
    arrays = finalize_tile(acc)
    record = tile_record(task, acc.spec)
    write_tile_arrays(
        fork.store,
        y0=acc.spec.y0,
        x0=acc.spec.x0,
        arrays=arrays,
        names=task.store.arrays,
        ctx_planes=acc.spec.ctx_planes,
        n_planes=n_planes,
    )
    del arrays
    if keep_sums:
        write_sums(fork.store, acc)
    del acc
    remove_tile(scratch, task.group, task.ty, task.tx)
    record["extended"] = extends is not None
    record["seconds"] = time.perf_counter() - t0
    record["fork"] = fork
    return record
