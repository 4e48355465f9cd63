"""The outlier-detection graph: group drizzle, thresholds, median tiles, per-input flagging.

Built on :func:`dask_resample.execution.graph.build_graph` (the many-to-many drizzle of
the exposure groups onto the median grid, written tile by tile to a Zarr store),
it adds, with ``resample_data=True``:

* ``threshold-<token>, group``: the group's weight threshold, after its tiles
  (:mod:`~dask_resample.outliers.threshold`);
* ``median-<token>, ty, tx``: the tile's median across the groups that reach it,
  after their tiles and thresholds (:mod:`~dask_resample.outliers.median`);
* ``flag-<token>, i``: input ``i``'s blot, mask and ``*_crf.fits`` file, after
  the median tiles around its footprint (:mod:`~dask_resample.outliers.flag`).

With ``resample_data=False``: ``outlier-mask-<token>, i`` (an input's
weight-masked data), ``median-<token>, band`` (the median of a band of rows
across the inputs) and the same flag tasks.

The edges between drizzle, median and flag tasks are overlaps known from the plan
(with a numeric ``fillval`` the median tiles also share one gathered list of all
thresholds); no task holds a mosaic-sized array.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import config
from ..drizzle.kernel import pixmap_path
from ..execution.graph import GraphKeys, MosaicGraph, build_graph
from ..inputs.io import ExposureRef
from ..planning.plan import MosaicPlan
from ..store import Location, StoreSpec
from .flag import FlagSpec, FlagTask, MaskInputTask, flag_task, mask_input_task
from .median import MedianTile, median_band_task, median_tile_task
from .params import OutlierParams
from .threshold import ThresholdTask, threshold_task

__all__ = ["BAND_BYTES", "OutlierGraph", "OutlierWork", "build_outlier_graph", "build_direct_graph"]

#: Bytes of one median band (inputs x rows x columns, float32) without resampling.
BAND_BYTES = 64 * 2**20


@dataclass(frozen=True)
class OutlierWork:
    """Where a run keeps its intermediate products (removed after the run), on any store."""

    root: Location
    groups_store: Location
    median_store: Location

    @classmethod
    def under(
        cls, root: Location, *, groups_store: Location | None = None, median_store: Location | None = None
    ) -> OutlierWork:
        """The layout under ``root``; the two stores may live elsewhere (``save_intermediate_results``)."""
        return cls(
            root=root,
            groups_store=groups_store or root.join("groups.zarr"),
            median_store=median_store or root.join("median.zarr"),
        )

    @property
    def scratch(self) -> Location:
        """Drizzle partials of the group images."""
        return self.root.join("partials")

    @property
    def pixmaps(self) -> Location:
        """Pixel maps kept by the group drizzle for the blot."""
        return self.root.join("pixmaps")

    def mask(self, i: int) -> Location:
        """Outlier mask of input ``i``."""
        return self.root.join("masks", f"{i:06d}.npy")

    def masked(self, i: int) -> Location:
        """Weight-masked data of input ``i`` (``resample_data=False``)."""
        return self.root.join("masked", f"{i:06d}.npy")

    def band(self, b: int) -> Location:
        """Median band ``b`` (``resample_data=False``)."""
        return self.root.join("median-bands", f"{b:06d}.npy")


@dataclass(frozen=True)
class OutlierGraph:
    """An outlier-detection graph ready to run (or to extend with the final mosaic)."""

    dsk: dict
    flag_keys: dict[int, Any]
    token: str
    names: Mapping[int, str] = field(default_factory=dict)
    n_median_tasks: int = 0

    def as_mosaic_graph(self, scratch: Any) -> MosaicGraph:
        """The graph whose outputs are the flag tasks (for :func:`dask_resample.execution.graph.run_graph`)."""
        return MosaicGraph(
            dsk=self.dsk,
            tile_keys=[self.flag_keys[i] for i in sorted(self.flag_keys)],
            keys=GraphKeys(self.token),
            scratch=scratch,
            names=self.names,
        )


def _ring(keys: Sequence[tuple[int, int]], n_tiles_yx: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """Tiles ``keys`` plus their neighbours (the blot window may reach one pixel past the footprint)."""
    out = set()
    ny, nx = n_tiles_yx
    for ty, tx in keys:
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if 0 <= ty + dy < ny and 0 <= tx + dx < nx:
                    out.add((ty + dy, tx + dx))
    return tuple(sorted(out))


def build_outlier_graph(
    plan: MosaicPlan,
    params: OutlierParams,
    work: OutlierWork,
    *,
    token: str,
    crf_paths: Mapping[int, str | Location] | None = None,
    blot_paths: Mapping[int, str | Location] | None = None,
) -> OutlierGraph:
    """The graph of imaging outlier detection with ``resample_data=True``.

    Parameters
    ----------
    plan : MosaicPlan
        Many-to-many plan of the inputs on the median grid, with
        :meth:`OutlierParams.resample_params`.
    params : OutlierParams
    work : OutlierWork
        The group and median stores (created empty beforehand) and scratch.
    token : str
        Unique key prefix.
    crf_paths, blot_paths : mapping, optional
        ``input index -> path`` of the files to write (checked beforehand by the caller).
    """
    reuse = bool(config.get("outliers.reuse-pixmap"))
    groups = build_graph(
        plan,
        store_path=work.groups_store,
        arrays=("data", "wht"),
        token=token,
        scratch_root=work.scratch,
        # the group drizzle's map is the blot's too when it is kept: the fast map where it applies
        # (``resample.fast-pixmap``); otherwise the blot evaluates calc_pixmap's, so both do
        fast_pixmap=None if reuse else False,
        pixmap_dir=work.pixmaps if reuse else None,
    )
    k = groups.keys
    dsk = dict(groups.dsk)
    tiles_of: dict[str, list[tuple[int, int]]] = {}
    for g, key in plan.contributions:
        tiles_of.setdefault(g, []).append(key)
    shape = plan.grid.shape_yx
    tile_shape = plan.tiles.tile_shape_yx
    threshold_key = {g: (f"threshold-{token}", g) for g in plan.groups}
    for g in plan.groups:
        keys = tuple(tiles_of.get(g, ()))
        dsk[threshold_key[g]] = (
            threshold_task,
            [k.tile(g, key) for key in keys],
            ThresholdTask(
                store=work.groups_store,
                group=g,
                tile_keys=keys,
                tile_shape_yx=tile_shape,
                shape_yx=shape,
                maskpt=params.maskpt,
            ),
        )
    fill = float(plan.params.fill_value)
    every_tile = not math.isnan(fill)  # groups may then give non-NaN values where they have no input
    reached: dict[tuple[int, int], list[str]] = {}
    for g, key in plan.contributions:
        reached.setdefault(key, []).append(g)
    tile_list = [t.key for t in plan.tiles.overlapping(0, shape[0], 0, shape[1])] if every_tile else sorted(reached)
    median_key = {}
    median_store = StoreSpec(location=work.median_store, group="", arrays=("data",))
    all_thresholds = (f"thresholds-{token}",)
    if every_tile:  # every median tile needs every group's threshold: gather them once (O(groups + tiles) edges)
        dsk[all_thresholds] = (list, [threshold_key[g] for g in plan.groups])
    reached_sets = {key: set(gs) for key, gs in reached.items()}
    for key in tile_list:
        tile = plan.tiles.tile(*key)
        gs = tuple(g for g in plan.groups if g in reached_sets.get(key, ()))
        needed = plan.groups if every_tile else gs
        mk = (f"median-{token}", *key)
        median_key[key] = mk
        dsk[mk] = (
            median_tile_task,
            [k.tile(g, key) for g in gs],
            all_thresholds if every_tile else [threshold_key[g] for g in needed],
            MedianTile(
                groups_store=work.groups_store,
                groups=gs,
                all_groups=tuple(plan.groups) if every_tile else gs,
                threshold_groups=tuple(needed),
                fill=fill,
                ty=key[0],
                tx=key[1],
                y0=tile.y0,
                x0=tile.x0,
                shape_yx=tile.shape_yx,
                store=median_store,
            ),
        )
    flag_keys = {}
    spec_key = f"flag-spec-{token}"
    dsk[spec_key] = FlagSpec(
        params=params,
        median_store=work.median_store,
        median_wcs=plan.grid.wcs,
        median_shape_yx=shape,
        tile_shape_yx=tile_shape,
    )
    for ref in plan.refs:
        allowed = _ring(plan.exposure_tiles.get(ref.index, ()), plan.tiles.n_tiles_yx)
        fk = (f"flag-{token}", ref.index)
        flag_keys[ref.index] = fk
        dsk[fk] = (
            flag_task,
            ref,
            [median_key[t] for t in allowed if t in median_key],
            FlagTask(
                mask_path=work.mask(ref.index),
                allowed_tiles=allowed,
                pixmap_path=pixmap_path(work.pixmaps, ref.index) if reuse else None,
                crf_path=None if crf_paths is None else crf_paths[ref.index],
                blot_path=None if blot_paths is None else blot_paths.get(ref.index),
            ),
            spec_key,
        )
    return OutlierGraph(
        dsk=dsk,
        flag_keys=flag_keys,
        token=token,
        names={r.index: r.filename for r in plan.refs},
        n_median_tasks=len(median_key),
    )


def build_direct_graph(
    refs: Sequence[ExposureRef],
    params: OutlierParams,
    work: OutlierWork,
    *,
    token: str,
    shape_yx: tuple[int, int],
    crf_paths: Mapping[int, str | Location] | None = None,
    blot_paths: Mapping[int, str | Location] | None = None,
) -> OutlierGraph:
    """The graph of imaging outlier detection with ``resample_data=False`` (median on the inputs' own grid).

    ``shape_yx`` is the inputs' common shape (checked again on the workers).
    """
    dsk: dict = {}
    mask_keys = []
    for ref in refs:
        mk = (f"outlier-mask-{token}", ref.index)
        mask_keys.append(mk)
        dsk[mk] = (mask_input_task, ref, MaskInputTask(params=params, path=work.masked(ref.index)))
    ny, nx = shape_yx
    rows = max(1, min(ny, BAND_BYTES // max(1, len(refs) * nx * 4)))
    band_keys = []
    band_paths = []
    for b, r0 in enumerate(range(0, ny, rows)):
        bk = (f"median-{token}", b)
        band_keys.append(bk)
        band_paths.append(work.band(b))
        dsk[bk] = (median_band_task, mask_keys, (r0, min(ny, r0 + rows)), work.band(b))
    flag_keys = {}
    spec_key = f"flag-spec-{token}"
    dsk[spec_key] = FlagSpec(params=params, band_paths=tuple(band_paths))
    for ref in refs:
        fk = (f"flag-{token}", ref.index)
        flag_keys[ref.index] = fk
        dsk[fk] = (
            flag_task,
            ref,
            band_keys,
            FlagTask(
                mask_path=work.mask(ref.index),
                crf_path=None if crf_paths is None else crf_paths[ref.index],
                blot_path=None if blot_paths is None else blot_paths.get(ref.index),
            ),
            spec_key,
        )
    return OutlierGraph(
        dsk=dsk,
        flag_keys=flag_keys,
        token=token,
        names={r.index: r.filename for r in refs},
        n_median_tasks=len(band_keys),
    )
