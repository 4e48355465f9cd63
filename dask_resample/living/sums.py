"""The kept sums of a living mosaic: each tile's running float64 sums, so that added inputs extend it.

Why
---
A tile's arrays are finalised from float64 running sums of its contributors'
partials, taken in input order (:mod:`dask_resample.drizzle.reduce`): data x
weight, weight, and per variance its weighted sum and weight (context bits and DQ
by OR). The float32 arrays the mosaic holds do not give those sums back. A
living mosaic created with ``resample.living.keep-sums`` (the default) keeps them
too, in the group :data:`SUMS_GROUP` (one float64 array per sum, chunked as the
tiles, written in the same transaction as the tile's arrays; context and DQ are
the mosaic's own ``con`` and ``dq``, which are those of the accumulator).

An update adds its inputs at the end of the input order. A recomputed tile whose
contributors before the update are, in order and with the same context bits,
the first of its contributors after it is *extended*
(:func:`extendable_tiles`): its kept sums are read
(:func:`read_sums`) and only the added inputs' partials are added to them. The
operations are those of a reduction from scratch, in the same order, on the same
values, so the tile is bit-identical to it; the earlier contributors are not
drizzled again. A tile that lost or changed a contributor, or whose
contributors' bits moved, is reduced again from all of them.

The cost: the sums take three to four times the room of the mosaic's arrays (float64 sums of
noisy values compress less than the float32 arrays).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..drizzle.reduce import AccumulatorSpec, TileAccumulator, sum_names
from ..params import ResampleParams
from ..planning.plan import MosaicPlan
from ..store.mosaic import array_compressors

__all__ = ["SUMS_GROUP", "clear_sums", "create_sums", "extendable_tiles", "has_sums", "read_sums", "write_sums"]

#: The group of a living mosaic that holds its tiles' running sums.
SUMS_GROUP = "sums"


def create_sums(store: Any, params: ResampleParams, shape_yx: tuple[int, int], tile_shape_yx: tuple[int, int]) -> None:
    """Create the (empty: all zero) sums of a mosaic of ``shape_yx`` in ``store``."""
    import zarr

    root = zarr.open_group(store, mode="r+")
    group = root.create_group(
        SUMS_GROUP, attributes={"description": "each tile's running float64 sums (dask_resample.living.sums)"}
    )
    for name in sum_names(params):
        group.create_array(
            name,
            shape=shape_yx,
            chunks=tile_shape_yx,
            dtype=np.float64,
            fill_value=0.0,
            dimension_names=("y", "x"),
            compressors=array_compressors(),
            config={"write_empty_chunks": False},
        )


def has_sums(root: Any) -> bool:
    """Whether the opened mosaic group ``root`` keeps its tiles' sums."""
    return SUMS_GROUP in root


def _array(group: Any, name: str) -> Any:
    """The array ``name`` of an opened group (never a group: the layout's arrays)."""
    import zarr

    arr = group[name]
    assert isinstance(arr, zarr.Array)
    return arr


def write_sums(store: Any, acc: TileAccumulator) -> None:
    """Write a tile's sums (its accumulator's box) into ``store``."""
    import zarr

    group = zarr.open_group(store, mode="r+", path=SUMS_GROUP)
    spec = acc.spec
    box = (slice(spec.y0, spec.y0 + spec.shape_yx[0]), slice(spec.x0, spec.x0 + spec.shape_yx[1]))
    for name, values in acc.sums().items():
        _array(group, name)[box] = values


def clear_sums(store: Any, spec: AccumulatorSpec) -> None:
    """Reset a tile's sums to zero (its chunks are removed: zero is the fill value)."""
    write_sums(store, TileAccumulator.empty(spec))


def read_sums(store: Any, spec: AccumulatorSpec) -> TileAccumulator:
    """The accumulator of a tile as ``store`` keeps it: its sums, ``con`` planes and ``dq``.

    Parameters
    ----------
    store : zarr store
    spec : AccumulatorSpec
        The tile's accumulator after the update (its context planes include the
        earlier contributors'; a plane beyond those the store holds reads as zeros).
    """
    import zarr

    root = zarr.open_group(store, mode="r")
    box = (slice(spec.y0, spec.y0 + spec.shape_yx[0]), slice(spec.x0, spec.x0 + spec.shape_yx[1]))
    sums = {
        name: np.asarray(_array(root, f"{SUMS_GROUP}/{name}")[box], dtype=np.float64) for name in sum_names(spec.params)
    }
    ctx = None
    if spec.params.enable_ctx:
        con = _array(root, "con")
        ctx = np.zeros((len(spec.ctx_planes), *spec.shape_yx), np.int32)
        for local, plane in enumerate(spec.ctx_planes):
            if plane < con.shape[0]:
                ctx[local] = con[(plane, *box)]
    dq = np.asarray(_array(root, "dq")[box], dtype=np.uint32) if spec.params.propagate_dq else None
    return TileAccumulator.from_sums(spec, sums, ctx, dq)


def extendable_tiles(
    plan_old: MosaicPlan,
    plan_new: MosaicPlan,
    old_ids: Sequence[str],
    new_ids: Sequence[str],
    recompute: set[tuple[int, int]],
) -> dict[tuple[int, int], int]:
    """Recomputed tiles that their kept sums extend: ``tile -> number of contributors the sums hold``.

    A tile qualifies when it had contributors before, and they are, in order and
    with the same context bits, the first of its contributors now.
    """
    old = dict(plan_old.contributions)
    out: dict[tuple[int, int], int] = {}
    for gk, after in plan_new.contributions.items():
        key = gk[1]
        before = old.get(gk)
        if key not in recompute or not before or len(after) <= len(before):
            continue
        head = after[: len(before)]
        if [old_ids[i] for i in before] != [new_ids[j] for j in head]:
            continue
        if any(plan_old.ctx_bit[i] != plan_new.ctx_bit[j] for i, j in zip(before, head, strict=True)):
            continue
        out[key] = len(before)
    return out
