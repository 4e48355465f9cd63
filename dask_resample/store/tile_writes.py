"""A tile task's writes into the mosaic's chunks, and the progress markers that say what is written.

A marker (one per tile, or one per shard of a sharded mosaic) is written whole,
after the data, so a tile with a marker is complete (:func:`tiles_done`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .location import Location, as_location
from .mosaic import PROGRESS_DIR, StoreSpec, _group_path

__all__ = [
    "shard_marker",
    "tile_marker",
    "tiles_done",
    "write_tile",
]


def _open_array(spec: StoreSpec, name: str, mode: str = "r+") -> Any:
    import zarr

    gpath = _group_path(spec.group)
    return zarr.open_array(
        spec.location.zarr_store(read_only=mode == "r"), path=f"{gpath}/{name}" if gpath else name, mode=mode
    )


def _write_marker(spec: StoreSpec, name: str, record: Mapping[str, Any]) -> None:
    spec.progress().join(f"{name}.json").write_json(dict(record))


def write_tile(
    spec: StoreSpec,
    y0: int,
    x0: int,
    ty: int,
    tx: int,
    arrays: Mapping[str, np.ndarray],
    record: dict[str, Any],
    ctx_planes: Sequence[int] = (0,),
) -> dict[str, Any]:
    """Write one tile's arrays into its chunks and mark the tile complete.

    The marker is written (whole, in one request) only after every array is
    written, so a tile with a marker is complete.

    Parameters
    ----------
    spec : StoreSpec
    y0, x0 : int
        Position of the tile in the mosaic.
    ty, tx : int
        Tile index.
    arrays : mapping
        Finalised arrays; ``con`` holds only the planes ``ctx_planes`` of the
        mosaic's context (the others stay unwritten: zero).
    record : dict
        Small record stored in the marker.
    ctx_planes : sequence of int
        Planes of ``con`` held by ``arrays["con"]``.

    Returns
    -------
    dict
        The small record stored in the marker.
    """
    for name in spec.arrays:
        block = arrays[name]
        arr = _open_array(spec, name)
        if name == "con":
            for local, plane in enumerate(ctx_planes):
                arr[plane, y0 : y0 + block.shape[1], x0 : x0 + block.shape[2]] = block[local]
        else:
            arr[y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = block
    _write_marker(spec, f"{ty}_{tx}", record)
    return record


def tile_marker(spec: StoreSpec, ty: int, tx: int) -> dict[str, Any] | None:
    """The completion record of a tile, or ``None`` if it is not complete."""
    try:
        return spec.progress().join(f"{ty}_{tx}.json").read_json()
    except (OSError, ValueError):
        return None


def shard_marker(spec: StoreSpec, sy: int, sx: int) -> dict[str, Any] | None:
    """The completion record of a shard, or ``None`` if it is not complete."""
    try:
        return spec.progress().join(f"shard_{sy}_{sx}.json").read_json()
    except (OSError, ValueError):
        return None


def tiles_done(path: str | os.PathLike | Location, group: str = "") -> dict[tuple[int, int], dict[str, Any]]:
    """Tiles of ``group`` marked complete (by their own marker or their shard's), with their records."""
    progress = as_location(path)
    progress = (progress.join(group) if group else progress).join(PROGRESS_DIR)
    done: dict[tuple[int, int], dict[str, Any]] = {}
    for name in progress.listdir():
        if not name.endswith(".json") or name == "zarr.json":
            continue
        try:
            rec = progress.join(name).read_json()
            if name.startswith("shard_"):
                for t in rec["tiles"]:
                    done[(int(t["tile"][0]), int(t["tile"][1]))] = t
            else:
                ty, tx = (int(v) for v in name[: -len(".json")].split("_"))
                done[(ty, tx)] = rec
        except (ValueError, OSError, KeyError, TypeError):
            continue
    return done
