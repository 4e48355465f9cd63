"""Planning: footprints of the inputs on the output grid and the overlap index.

Each described exposure carries its outline on the sky (read on the workers
with its metadata); the client maps all outlines onto the output grid in one
vectorised call and builds the sparse overlap index
``{(group, tile): (exposure indices...)}`` before any pixel is read. Each
exposure then only feeds the tiles it touches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..geometry import OutputGrid, Tile, TileGrid, outline_from_wcs, without_bounding_box
from ..inputs.io import ExposureRef, load_wcs
from ..params import ResampleParams

__all__ = ["Footprint", "MosaicPlan", "compute_footprints", "make_plan", "set_plan_views"]

#: Group key used for many-to-one mosaics (one output).
SINGLE_GROUP = ""

#: The two ways of combining inputs: one output, or one output per exposure group.
MODES: tuple[str, ...] = ("many_to_one", "many_to_many")

#: The functions behind :meth:`MosaicPlan.summary` (``"summary"``: ``f(plan) -> str``) and
#: :meth:`MosaicPlan.coverage_png` (``"coverage_png"``: ``f(plan, path, **kwargs) -> Path``). They are
#: ``products.report.plan_summary`` and ``products.figures.coverage_png``, a layer above planning, so
#: the package sets them (:func:`set_plan_views`, from ``dask_resample.api``, imported with the package).
PLAN_VIEWS: dict[str, Callable[..., Any]] = {}


def set_plan_views(*, summary: Callable[..., str], coverage_png: Callable[..., Any]) -> None:
    """Set the functions behind :meth:`MosaicPlan.summary` and :meth:`MosaicPlan.coverage_png`."""
    PLAN_VIEWS.update(summary=summary, coverage_png=coverage_png)


@dataclass(frozen=True)
class Footprint:
    """Where one exposure lands on the output grid.

    Attributes
    ----------
    index : int
        Input index.
    y0, y1, x0, x1 : float
        Bounding box of the exposure's pixel centres in output pixel coordinates
        (``nan`` if the exposure does not map onto the sky of the grid).
    magnification : float
        Largest linear size of one input pixel, in output pixels.
    """

    index: int
    y0: float
    y1: float
    x0: float
    x1: float
    magnification: float

    @property
    def is_empty(self) -> bool:
        """True if the exposure maps nowhere."""
        return not np.isfinite([self.y0, self.y1, self.x0, self.x1]).all()


def compute_footprints(refs: Sequence[ExposureRef], out_wcs: Any) -> list[Footprint]:
    """Where each exposure lands on the output grid, from the outlines on the sky (no file access).

    All outline points go through the output WCS in one call. An outline is the
    ``S_REGION`` vertices (JWST) or points sampled along the edges through the
    input WCS: distortion may bulge the true outline beyond the straight edges
    between vertices, so each box is padded by 2% of its size plus 4 pixels,
    which only risks planning a tile the exposure turns out not to touch (a
    neutral, empty partial).

    Parameters
    ----------
    refs : sequence of ExposureRef
        Described exposures (with ``outline`` and ``pixelarea_steradians``).
    out_wcs : gwcs.wcs.WCS
        Output WCS.

    Returns
    -------
    list of Footprint
        In the order of ``refs``.
    """
    outlines = []
    for ref in refs:
        outline = ref.outline
        if not outline:  # no S_REGION and no outline: sample the WCS (rare)
            wcs, shape, _ = load_wcs(ref)
            outline = outline_from_wcs(wcs, shape)
        outlines.append(np.asarray(outline, dtype=np.float64).reshape(-1, 2))
    counts = [len(o) for o in outlines]
    verts = np.concatenate(outlines) if outlines else np.zeros((0, 2))
    with without_bounding_box(out_wcs):
        ox, oy = (np.asarray(v, float) for v in out_wcs.world_to_pixel_values(verts[:, 0], verts[:, 1]))
        out_area = _pixel_area_sr(out_wcs)
    out = []
    start = 0
    for ref, n in zip(refs, counts, strict=True):
        x, y = ox[start : start + n], oy[start : start + n]
        start += n
        if n == 0 or not (np.isfinite(x).all() and np.isfinite(y).all()):
            out.append(Footprint(ref.index, math.nan, math.nan, math.nan, math.nan, 1.0))
            continue
        area = ref.pixelarea_steradians
        mag = math.sqrt(area / out_area) if area and out_area > 0 else 1.0
        pad = 0.02 * max(x.max() - x.min(), y.max() - y.min()) + 4.0
        out.append(
            Footprint(
                ref.index, float(y.min() - pad), float(y.max() + pad), float(x.min() - pad), float(x.max() + pad), mag
            )
        )
    return out


def _pixel_area_sr(wcs: Any) -> float:
    """Area of the output pixel at the grid's centre, in steradians."""
    ny, nx = wcs.array_shape
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    ra, dec = (
        np.radians(np.asarray(v, float))
        for v in wcs.pixel_to_world_values(np.array([cx, cx + 1.0, cx]), np.array([cy, cy, cy + 1.0]))
    )

    def sep(i: int) -> float:
        return float(
            np.arccos(
                np.clip(
                    np.sin(dec[0]) * np.sin(dec[i]) + np.cos(dec[0]) * np.cos(dec[i]) * np.cos(ra[i] - ra[0]), -1.0, 1.0
                )
            )
        )

    return sep(1) * sep(2)


@dataclass(frozen=True, repr=False)
class MosaicPlan:
    """Everything the graph needs, decided before any pixel is read.

    Made by :func:`dask_resample.plan_mosaic` (the expensive, pixel-free part:
    input metadata, output grid, footprints, overlap index) and run by
    :func:`dask_resample.resample` (``resample(plan, "out.zarr")``), which does
    not plan again. ``print(plan.summary())`` describes it and
    :meth:`coverage_png` draws it.

    Attributes
    ----------
    grid : OutputGrid
    tiles : TileGrid
    params : ResampleParams
    refs : tuple of ExposureRef
        Inputs in input order.
    groups : tuple of str
        Output groups in the reference's order (``("",)`` for many-to-one).
    members : mapping
        ``group -> (input indices...)`` in input order.
    ctx_bit : mapping
        ``input index -> context bit number`` (its rank within its group).
    halo : int
        Halo in output pixels added around each tile when drizzling.
    contributions : mapping
        ``(group, (ty, tx)) -> (input indices...)``, in input order.
    exposure_tiles : mapping
        ``input index -> ((ty, tx)...)``.
    skipped : tuple of int
        Inputs that do not overlap the grid.
    mode : {"many_to_one", "many_to_many"}
        One output, or one per exposure group.
    """

    grid: OutputGrid
    tiles: TileGrid
    params: ResampleParams
    refs: tuple[ExposureRef, ...]
    groups: tuple[str, ...]
    members: Any
    ctx_bit: Any
    halo: int
    contributions: Any
    exposure_tiles: Any
    skipped: tuple[int, ...] = field(default=())
    mode: str = "many_to_one"

    def __repr__(self) -> str:
        ny, nx = self.grid.shape_yx
        nty, ntx = self.tiles.n_tiles_yx
        return (
            f"<MosaicPlan {self.mode}: {len(self.refs)} inputs ({len(self.skipped)} skipped), "
            f"grid {ny} x {nx} px, {len(self.contributions)} of {nty * ntx} tiles of "
            f"{self.tiles.tile_shape_yx[0]} x {self.tiles.tile_shape_yx[1]} px, {len(self.groups)} group(s)>"
        )

    def summary(self) -> str:
        """A few lines describing the plan (grid, tiles, inputs per tile, skipped inputs)."""
        return PLAN_VIEWS["summary"](self)

    def coverage_png(self, path: str | Any, **kwargs: Any) -> Any:
        """Draw the tile grid coloured by inputs per tile, with the input footprints, to a PNG.

        See :func:`dask_resample.products.figures.coverage_png` for the keyword arguments.

        Returns
        -------
        pathlib.Path
        """
        return PLAN_VIEWS["coverage_png"](self, path, **kwargs)

    def tile_input_counts(self) -> np.ndarray:
        """Number of distinct inputs contributing to each tile, shape ``tiles.n_tiles_yx``."""
        counts: dict[tuple[int, int], set[int]] = {}
        for (_, key), indices in self.contributions.items():
            counts.setdefault(key, set()).update(indices)
        out = np.zeros(self.tiles.n_tiles_yx, dtype=np.int64)
        for (ty, tx), indices in counts.items():
            out[ty, tx] = len(indices)
        return out

    def n_ctx_planes(self, group: str) -> int:
        """Number of int32 context planes of ``group``'s output."""
        n = len(self.members[group])
        return (n - 1) // 32 + 1 if n else 1

    def tiles_of(self, group: str) -> list[Tile]:
        """Tiles of ``group`` that receive at least one input, in row-major order."""
        return [self.tiles.tile(*key) for (g, key) in self.contributions if g == group]


def make_plan(
    refs: Sequence[ExposureRef],
    grid: OutputGrid,
    params: ResampleParams,
    *,
    tile_shape: tuple[int, int],
    many_to_many: bool,
    footprints: Sequence[Footprint],
) -> MosaicPlan:
    """Build the overlap index from footprints.

    Parameters
    ----------
    refs : sequence of ExposureRef
    grid : OutputGrid
    params : ResampleParams
    tile_shape : tuple of int
        Tile shape (ny, nx).
    many_to_many : bool
        One output per exposure group (else one output for all).
    footprints : sequence of Footprint
        One per input, from :func:`compute_footprints`.

    Returns
    -------
    MosaicPlan
    """
    tiles = TileGrid(grid.shape_yx, (int(tile_shape[0]), int(tile_shape[1])))
    fps = {fp.index: fp for fp in footprints}
    psr = grid.pixel_scale_ratio or 1.0
    mag = max([fp.magnification for fp in footprints if not fp.is_empty] + [1.0])
    reach = params.kernel_reach * max(mag, 1.0 / psr)
    halo = int(math.ceil(reach)) + 2

    if many_to_many:
        order: dict[str, list[int]] = {}
        for ref in refs:
            order.setdefault(ref.group_id, []).append(ref.index)
    else:
        order = {SINGLE_GROUP: [ref.index for ref in refs]}
    ctx_bit = {}
    for indices in order.values():
        for rank, i in enumerate(indices):
            ctx_bit[i] = rank
    group_of = {i: g for g, indices in order.items() for i in indices}

    contributions: dict[tuple[str, tuple[int, int]], list[int]] = {}
    exposure_tiles: dict[int, list[tuple[int, int]]] = {}
    skipped = []
    ny, nx = grid.shape_yx
    for ref in refs:
        fp = fps[ref.index]
        if fp.is_empty:
            skipped.append(ref.index)
            continue
        y0, y1 = fp.y0 - reach - 1, fp.y1 + reach + 2
        x0, x1 = fp.x0 - reach - 1, fp.x1 + reach + 2
        if y1 <= 0 or x1 <= 0 or y0 >= ny or x0 >= nx:
            skipped.append(ref.index)
            continue
        keys = [t.key for t in tiles.overlapping(y0, y1, x0, x1)]
        if not keys:
            skipped.append(ref.index)
            continue
        exposure_tiles[ref.index] = keys
        for key in keys:
            contributions.setdefault((group_of[ref.index], key), []).append(ref.index)

    # deterministic order: groups in reference order, tiles row-major, inputs in input order
    groups = tuple(order)
    ordered = {}
    for g in groups:
        for key in sorted(k for (gg, k) in contributions if gg == g):
            ordered[(g, key)] = tuple(contributions[(g, key)])
    return MosaicPlan(
        grid=grid,
        tiles=tiles,
        params=params,
        refs=tuple(refs),
        groups=groups,
        members=dict({g: tuple(v) for g, v in order.items()}),
        ctx_bit=dict(ctx_bit),
        halo=halo,
        contributions=dict(ordered),
        exposure_tiles=dict({k: tuple(v) for k, v in exposure_tiles.items()}),
        skipped=tuple(skipped),
        mode="many_to_many" if many_to_many else "many_to_one",
    )
