"""Planning: footprints of the inputs on the output grid and the overlap index.

Footprints are computed on the workers (one small task per exposure that only
reads the WCS); the client receives a few numbers per exposure and builds the
sparse overlap index ``{(group, tile): (exposure indices...)}`` before any pixel
is read. Each exposure then only feeds the tiles it touches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import ResampleParams
from .grid import OutputGrid, Tile, TileGrid
from .io import ExposureRef, load_wcs

__all__ = ["Footprint", "MosaicPlan", "compute_footprint", "make_plan"]

#: Group key used for many-to-one mosaics (one output).
SINGLE_GROUP = ""


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


def compute_footprint(ref: ExposureRef, out_wcs: Any, n_samples: int = 33) -> Footprint:
    """Map a grid of an exposure's pixels onto the output frame (worker task).

    Parameters
    ----------
    ref : ExposureRef
    out_wcs : gwcs.wcs.WCS
        Output WCS.
    n_samples : int
        Samples per axis (edges included); distortion between samples is
        absorbed by the halo margin.

    Returns
    -------
    Footprint
    """
    from stcal.resample.utils import resample_range

    if ref.s_region and ref.pixelarea_steradians and ref.kind == "jwst":
        fp = _footprint_from_sregion(ref, out_wcs)
        if fp is not None:
            return fp
    wcs, shape, _ = load_wcs(ref)
    bbox = getattr(wcs, "bounding_box", None)
    if bbox is not None:
        try:
            bbox = bbox.bounding_box(order="F")
        except AttributeError:
            bbox = tuple(bbox)
    xmin, xmax, ymin, ymax = resample_range(shape, bbox)
    xs = np.unique(np.linspace(xmin, xmax, min(n_samples, xmax - xmin + 1)).round())
    ys = np.unique(np.linspace(ymin, ymax, min(n_samples, ymax - ymin + 1)).round())
    gx, gy = np.meshgrid(xs, ys)
    out_bbox = out_wcs.bounding_box
    try:
        out_wcs.bounding_box = None
        world = wcs.pixel_to_world_values(gx, gy)
        ox, oy = out_wcs.world_to_pixel_values(*world)
    finally:
        if out_bbox is not None:
            out_wcs.bounding_box = out_bbox
    ox = np.asarray(ox, dtype=float)
    oy = np.asarray(oy, dtype=float)
    good = np.isfinite(ox) & np.isfinite(oy)
    if not good.any():
        return Footprint(ref.index, math.nan, math.nan, math.nan, math.nan, 1.0)
    mag = 1.0
    if gx.shape[0] > 1 and gx.shape[1] > 1:
        dxin = np.diff(gx, axis=1)
        dyin = np.diff(gy, axis=0)
        sx = np.hypot(np.diff(ox, axis=1), np.diff(oy, axis=1)) / dxin
        sy = np.hypot(np.diff(ox, axis=0), np.diff(oy, axis=0)) / dyin
        vals = np.concatenate([sx[np.isfinite(sx)], sy[np.isfinite(sy)]])
        if vals.size:
            mag = float(np.max(vals))
    # pad by the distance between samples so that bulges between samples are covered
    step = max(float(np.max(np.diff(xs))) if xs.size > 1 else 1.0,
               float(np.max(np.diff(ys))) if ys.size > 1 else 1.0)
    pad = 0.02 * step * mag + 1.0
    return Footprint(
        ref.index,
        float(oy[good].min() - pad),
        float(oy[good].max() + pad),
        float(ox[good].min() - pad),
        float(ox[good].max() + pad),
        mag,
    )


def _footprint_from_sregion(ref: ExposureRef, out_wcs: Any) -> Footprint | None:
    """Footprint from the exposure's ``S_REGION`` (no file access).

    ``S_REGION`` is the outline of the detector through its WCS, as the pipeline
    keeps it (and as the reference uses it to build the output grid). Distortion
    may bulge the true outline beyond the straight edges between vertices: the
    box is padded by 2% of its size plus 4 pixels, which only risks planning a
    tile the exposure turns out not to touch (a neutral, empty partial).
    """
    from stcal.alignment.util import sregion_to_footprint

    from .grid import split_sregions

    try:
        verts = np.vstack([sregion_to_footprint(s) for s in split_sregions(ref.s_region)])
    except Exception:
        return None
    out_bbox = out_wcs.bounding_box
    try:
        out_wcs.bounding_box = None
        ox, oy = out_wcs.world_to_pixel_values(verts[:, 0], verts[:, 1])
        ox, oy = np.asarray(ox, float), np.asarray(oy, float)
        cx, cy = float(np.mean(ox)), float(np.mean(oy))
        ra, dec = out_wcs.pixel_to_world_values(np.array([cx, cx + 1.0, cx]), np.array([cy, cy, cy + 1.0]))
    finally:
        if out_bbox is not None:
            out_wcs.bounding_box = out_bbox
    if not (np.isfinite(ox).all() and np.isfinite(oy).all() and np.isfinite(ra).all()):
        return None
    ra, dec = np.radians(ra), np.radians(dec)

    def sep(i: int) -> float:
        return float(np.arccos(np.clip(np.sin(dec[0]) * np.sin(dec[i])
                                       + np.cos(dec[0]) * np.cos(dec[i]) * np.cos(ra[i] - ra[0]), -1.0, 1.0)))

    out_area = sep(1) * sep(2)
    if not out_area > 0:
        return None
    mag = math.sqrt(float(ref.pixelarea_steradians) / out_area)
    pad = 0.02 * max(ox.max() - ox.min(), oy.max() - oy.min()) + 4.0
    return Footprint(ref.index, float(oy.min() - pad), float(oy.max() + pad), float(ox.min() - pad),
                     float(ox.max() + pad), mag)


@dataclass(frozen=True)
class MosaicPlan:
    """Everything the graph needs, decided before any pixel is read.

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
        One per input, from :func:`compute_footprint`.

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
    )


def map_footprints(refs: Sequence[ExposureRef], out_wcs: Any, mapper: Callable | None = None) -> list[Footprint]:
    """Compute footprints of all inputs, with ``mapper`` (e.g. a Dask client's) or serially."""
    if mapper is None:
        return [compute_footprint(ref, out_wcs) for ref in refs]
    return list(mapper(compute_footprint, refs, out_wcs))
