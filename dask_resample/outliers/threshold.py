"""The weight threshold of each group image, computed exactly from its tiles.

The reference masks a group image's pixels whose weight is below
``compute_weight_threshold(wht, maskpt)``: ``maskpt`` times the mean of the
weights left after a 3-sigma, 5-iteration clip of the image's finite, non-zero
weights. The clip's median and float32 standard deviation depend on every value
and on the order numpy sums them, so no tile-wise statistic gives the same bits.
Instead :func:`group_weight_values` gathers the group's non-zero weights tile
row by tile row, which is exactly the one-dimensional array
``wht[np.isfinite(wht) & (wht != 0)]`` of the whole image (row-major order),
and stcal's own function is applied to it: the threshold is the reference's,
bit for bit.

Memory is that of the group's non-zero weights (4 bytes per output pixel the
group covers, a few times over inside the clip), bounded by the group's own
footprint, never by the mosaic's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..geometry import TileGrid
from ..inputs.failures import TaskFailure, worker_task
from ..store import Location, _group_path

__all__ = ["ThresholdTask", "group_weight_values", "threshold_task"]


@dataclass(frozen=True)
class ThresholdTask:
    """One group's threshold: where its weights are and ``maskpt``."""

    store: Location
    group: str
    tile_keys: tuple[tuple[int, int], ...]
    tile_shape_yx: tuple[int, int]
    shape_yx: tuple[int, int]
    maskpt: float


def group_weight_values(
    store: Location, group: str, tile_keys: Sequence[tuple[int, int]], tiles: TileGrid
) -> np.ndarray:
    """The group image's finite, non-zero weights in row-major order of the whole image.

    Reads one band of tile rows at a time (only the group's tiles hold weight;
    chunks never written read as 0 and drop out).
    """
    import zarr

    gpath = _group_path(group)
    wht = zarr.open_array(store.zarr_store(read_only=True), path=f"{gpath}/wht" if gpath else "wht", mode="r")
    by_row: dict[int, list[int]] = {}
    for ty, tx in tile_keys:
        by_row.setdefault(ty, []).append(tx)
    parts = []
    for ty in sorted(by_row):
        first, last = tiles.tile(ty, min(by_row[ty])), tiles.tile(ty, max(by_row[ty]))
        band = np.asarray(wht[first.y0 : first.y1, first.x0 : last.x1])
        parts.append(band[np.isfinite(band) & (band != 0)])
        del band
    if not parts:
        return np.zeros(0, np.float32)
    values = np.concatenate(parts)
    del parts
    return values


@worker_task(lambda tile_records, task: f"group {task.group}: weight threshold failed")
def threshold_task(tile_records: Sequence[Any], task: ThresholdTask) -> np.float64 | TaskFailure:
    """Weight threshold of one group (a worker task), after the group's tiles are written."""
    from stcal.outlier_detection.utils import compute_weight_threshold

    values = group_weight_values(task.store, task.group, task.tile_keys, TileGrid(task.shape_yx, task.tile_shape_yx))
    return np.float64(compute_weight_threshold(values, task.maskpt))
