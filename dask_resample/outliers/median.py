"""The median across groups, one tile at a time (and one band of rows without resampling).

Each pixel's median depends only on that pixel's values in the group images
(``stcal.outlier_detection.median.nanmedian3D``, a NaN-ignoring median along the
group axis), so the median of a tile is the reference's median there, bit for
bit. A group is masked where its weight is below its threshold
(:mod:`dask_resample.outliers.threshold`), as in
``jwst.outlier_detection.utils.median_with_resampling``.

Groups that do not reach a tile hold ``fillval`` and weight 0 there. Below a
positive threshold (the usual case) or with ``fillval`` NaN such a group is NaN
everywhere in the tile and does not change the median, so it is left out of the
tile's stack; otherwise (``maskpt`` 0, a group without weight) its constant value
is stacked, as the reference stacks it. A tile reached by very many groups is done
a band of rows at a time (:data:`MEDIAN_STACK_BYTES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..inputs._files import load_arrays, save_arrays
from ..inputs.failures import TaskFailure, worker_task
from ..store import Location, StoreSpec, _group_path, tile_marker, write_tile

__all__ = ["MEDIAN_STACK_BYTES", "MedianTile", "empty_group_value", "median_band_task", "median_tile_task"]

#: Largest stack of group values (bytes) held by one median task: a tile reached by many groups
#: is done a band of rows at a time (each pixel's median is independent of the others).
MEDIAN_STACK_BYTES = 128 * 2**20


def empty_group_value(fill: float, threshold: float) -> float:
    """Value a group contributes to the median where no input of it lands (weight 0)."""
    return float("nan") if 0.0 < threshold else float(np.float32(fill))


@dataclass(frozen=True)
class MedianTile:
    """One tile of the median: which group images reach it and where the results go."""

    groups_store: Location
    groups: tuple[str, ...]
    all_groups: tuple[str, ...]
    threshold_groups: tuple[str, ...]
    fill: float
    ty: int
    tx: int
    y0: int
    x0: int
    shape_yx: tuple[int, int]
    store: StoreSpec


@worker_task(lambda tile_records, threshold_values, task: f"median tile {task.ty},{task.tx}")
def median_tile_task(
    tile_records: Sequence[Any], threshold_values: Sequence[Any], task: MedianTile
) -> dict | TaskFailure:
    """Median of one tile across groups, written to the median store (a worker task).

    ``threshold_values`` are the thresholds of ``task.threshold_groups``, in that order.
    """
    import zarr
    from stcal.outlier_detection.median import nanmedian3D

    thresholds = dict(zip(task.threshold_groups, threshold_values, strict=True))
    if (done := tile_marker(task.store, task.ty, task.tx)) is not None:
        return done
    ny, nx = task.shape_yx
    sl = (slice(task.y0, task.y0 + ny), slice(task.x0, task.x0 + nx))
    reaching = set(task.groups)
    constants = []
    for g in task.all_groups:
        if g not in reaching:
            value = empty_group_value(task.fill, thresholds[g])
            if not np.isnan(value):
                constants.append(value)
    n = len(task.groups) + len(constants)
    median = np.full((ny, nx), np.nan, np.float32)
    arrays = {}
    for g in task.groups:
        gpath = _group_path(g)
        arrays[g] = tuple(
            zarr.open_array(
                task.groups_store.zarr_store(read_only=True), path=f"{gpath}/{name}" if gpath else name, mode="r"
            )
            for name in ("data", "wht")
        )
    # rows at a time, so that the stack stays within MEDIAN_STACK_BYTES however many groups overlap
    rows = max(1, min(ny, MEDIAN_STACK_BYTES // max(1, n * nx * 4)))
    for r0 in range(0, ny if n else 0, rows):
        r1 = min(ny, r0 + rows)
        part = (slice(task.y0 + r0, task.y0 + r1), sl[1])
        cube = np.empty((n, r1 - r0, nx), np.float32)
        for k, g in enumerate(task.groups):
            data, wht = (np.asarray(a[part]) for a in arrays[g])
            data[wht < np.float64(thresholds[g])] = np.nan  # a float64 comparison, as the reference
            cube[k] = data
            del data, wht
        for k, value in enumerate(constants, start=len(task.groups)):
            cube[k] = value
        median[r0:r1] = nanmedian3D(cube)
        del cube
    record = {"tile": [task.ty, task.tx], "n_groups": len(task.groups) + len(constants)}
    write_tile(task.store, task.y0, task.x0, task.ty, task.tx, {"data": median}, record)
    return record


@worker_task(lambda masked, rows, out_path: f"median rows {rows[0]}:{rows[1]}")
def median_band_task(masked: Sequence[Any], rows: tuple[int, int], out_path: Location) -> str | TaskFailure:
    """Median of rows ``rows`` across the inputs' masked images (``resample_data=False``; a worker task).

    ``masked`` are the records of the inputs' masking tasks (``{"path", "shape"}``), in input order.
    """
    from stcal.outlier_detection.median import nanmedian3D

    shapes = {tuple(r["shape"]) for r in masked}
    if len(shapes) != 1:
        names = ", ".join(f"{r['filename']} {tuple(r['shape'])}" for r in masked[:4])
        return TaskFailure(f"resample_data=False needs inputs of one shape; got {names}")
    r0, r1 = rows
    cube = np.empty((len(masked), r1 - r0, masked[0]["shape"][1]), np.float32)
    for k, r in enumerate(masked):
        cube[k] = load_arrays(r["path"], mmap=True)[0][r0:r1]
    return save_arrays(out_path, nanmedian3D(cube))
