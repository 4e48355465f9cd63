"""Projection regions of romancal's sky tessellation as output grids, and skycells' places on them.

A projection region's grid (:func:`projection_region_grid`,
:func:`projection_region_output_wcs`) is the region's tangent plane, its pixel (0, 0) on a
skycell's first pixel: romancal gives a skycell the WCS of its region with the reference pixel
moved by whole pixels, so each skycell's pixels are the grid's pixels inside its box
(:class:`SkycellBox`). Tiles whose side divides the skycell pitch (:func:`skycell_tile_shape`)
put every skycell's first pixel on a tile corner. The skymap file is found as
:mod:`dask_resample.geometry.skycells` finds it (:func:`~dask_resample.geometry.skycells.use_skymap`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import config
from ..inputs.io import InputError
from .skycells import use_skymap

__all__ = [
    "RegionGrid",
    "SkycellBox",
    "projection_region_grid",
    "projection_region_index",
    "projection_region_output_wcs",
    "projection_region_skycell_boxes",
    "skycell_regions",
    "skycell_tile_shape",
]


@dataclass(frozen=True)
class SkycellBox:
    """A skycell's pixels in a projection-region grid (:class:`RegionGrid`).

    Parameters
    ----------
    name : str
        Skycell name.
    index : int
        Its index in the skymap.
    y0, x0, y1, x1 : int
        Half-open pixel box ``[y0, y1) x [x0, x1)`` in the grid: the skycell's
        pixel (i, j) is the grid's pixel (y0 + i, x0 + j).
    """

    name: str
    index: int
    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def slices_yx(self) -> tuple[slice, slice]:
        """``(slice(y0, y1), slice(x0, x1))``, to cut the skycell out of a region mosaic."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


@dataclass(frozen=True)
class RegionGrid:
    """A tangent-plane grid of one projection region (or of the box of some of its skycells).

    Parameters
    ----------
    region : int
        Projection region index in the skymap.
    name : str
        romancal's name of the region (``"proj<index>"``).
    origin_yx : (int, int)
        The grid's pixel (0, 0) in the pixel frame of romancal's region WCS
        (``ProjectionRegion.wcs``); always the first pixel of a skycell.
    shape_yx : (int, int)
        Grid shape.
    crpix_yx : (float, float)
        The tangent point's pixel in the grid (``x_tangent``/``y_tangent`` of the
        region minus ``origin_yx``).
    crval : (float, float)
        Tangent point (ra, dec) in degrees.
    orientat : float
        Orientation of the region (degrees).
    pixel_scale : float
        Arcseconds per pixel (the skymap's nominal scale, that of the tangent point).
    pitch : int
        Distance between neighbouring skycells' first pixels (skycell side minus
        twice its border).
    skycells : tuple of SkycellBox
        The skycells inside the grid, in skymap order.
    """

    region: int
    name: str
    origin_yx: tuple[int, int]
    shape_yx: tuple[int, int]
    crpix_yx: tuple[float, float]
    crval: tuple[float, float]
    orientat: float
    pixel_scale: float
    pitch: int
    skycells: tuple[SkycellBox, ...]

    def box(self, name: str) -> SkycellBox:
        """The pixel box of skycell ``name`` in this grid.

        Raises
        ------
        KeyError
            For a skycell not in the grid.
        """
        for box in self.skycells:
            if box.name == name:
                return box
        raise KeyError(f"skycell {name!r}: not in the grid of {self.name}")

    def wcs(self) -> Any:
        """The grid's gwcs: romancal's WCS of the region with the reference pixel moved to ``crpix_yx``.

        For a grid of one skycell it is that skycell's WCS (``SkyCells.wcs``).
        """
        from romancal.skycell.skymap import _wcsinfo_to_wcs

        ny, nx = self.shape_yx
        wcs = _wcsinfo_to_wcs(
            {
                "name": self.name,
                "pixel_scale": self.pixel_scale / 3600.0,
                "ra_projection_center": self.crval[0],
                "dec_projection_center": self.crval[1],
                "x0_projection": self.crpix_yx[1],
                "y0_projection": self.crpix_yx[0],
                "orientat_projection_center": self.orientat,
            },
            bounding_box=((-0.5, nx - 0.5), (-0.5, ny - 0.5)),
        )
        wcs.array_shape = (ny, nx)
        return wcs


def projection_region_index(region: int | str, skymap: str | os.PathLike | None = None) -> int:
    """The index of a projection region given by index or name.

    Parameters
    ----------
    region : int or str
        Index (``12`` or ``"12"``), romancal's name of the region (``"proj12"``),
        or the region part of its skycells' names (``"135p90"``).
    skymap : path-like, optional
        Skymap file (default ``SKYMAP_PATH``).

    Raises
    ------
    InputError
        For a region not in the skymap (one line naming the parameter).
    """
    sm = use_skymap(skymap)
    regions = sm.model.projection_regions
    n = len(regions)
    text = str(region).strip()
    index: int | None = None
    if isinstance(region, (int, np.integer)) and not isinstance(region, bool):
        index = int(region)
    elif text.isdigit() or (text.startswith("proj") and text[4:].isdigit()):
        index = int(text.removeprefix("proj"))
    elif text:
        starts = np.asarray(regions["skycell_start"])
        ends = np.asarray(regions["skycell_end"])
        names = sm.model.skycells["name"]
        for k in range(n):
            if starts[k] < ends[k] and str(names[starts[k]]).startswith(text + "x"):
                index = k
                break
    if index is None or not 0 <= index < n or int(regions["index"][index]) != index:
        raise InputError(
            f"region: {region!r} is not a projection region of the skymap {sm.path} "
            f"(an index 0..{n - 1}, 'proj<index>' or a skycell name's region part such as "
            f"{str(sm.model.skycells['name'][0])[:6]!r})"
        )
    return index


def _pitch(sm: Any) -> int:
    """Pixels between neighbouring skycells' first pixels: the skycell side minus twice its border."""
    meta = sm.model.meta
    return int(meta["nxy_skycell"]) - 2 * int(meta["skycell_border_pixels"])


def projection_region_grid(
    region: int | str, skymap: str | os.PathLike | None = None, *, skycells: Sequence[str] | None = None
) -> RegionGrid:
    """The grid of a projection region, its pixel (0, 0) on a skycell's first pixel.

    The grid is romancal's tangent plane of the region (``ProjectionRegion.wcs``)
    shifted by whole pixels so that it spans exactly the skycells asked for: a
    skycell's pixels coincide with the grid's pixels inside its
    :class:`SkycellBox`, and every skycell's first pixel lies a multiple of
    the skycell pitch (4800 in the skymap) from the grid's origin.

    Parameters
    ----------
    region : int or str
        See :func:`projection_region_index`.
    skymap : path-like, optional
        Skymap file (default ``SKYMAP_PATH``).
    skycells : sequence of str, optional
        Only the bounding box of these skycells (all in ``region``), e.g. those
        the inputs touch (:func:`skycells_touched`); default all the region's
        skycells (about 245,000 pixels square, more than ``max_output_pixels``
        allows by default).

    Returns
    -------
    RegionGrid

    Raises
    ------
    InputError
        For an unknown region, or a skycell not in it (one line naming the parameter).
    ValueError
        If the skymap's skycells are not whole pixels apart on one lattice.
    """
    index = projection_region_index(region, skymap)
    sm = use_skymap(skymap)
    data = sm.model.projection_regions[index]
    start, end = int(data["skycell_start"]), int(data["skycell_end"])
    cells = sm.model.skycells[start:end]
    names = [str(n) for n in cells["name"]]
    if skycells is not None:
        wanted = [str(n) for n in skycells]
        missing = sorted(set(wanted) - set(names))
        if missing or not wanted:
            raise InputError(f"skycells: {missing or 'none given'} not in projection region {index} (proj{index})")
        keep = np.isin(np.asarray(names), wanted)
    else:
        keep = np.ones(len(names), dtype=bool)
    side = int(sm.model.meta["nxy_skycell"])
    pitch = _pitch(sm)
    # skycell (i, j) is region pixel (i + y0, j + x0), y0 = y_tangent(region) - y_tangent(cell)
    x0 = float(data["x_tangent"]) - np.asarray(cells["x_tangent"], dtype=np.float64)
    y0 = float(data["y_tangent"]) - np.asarray(cells["y_tangent"], dtype=np.float64)
    ix, iy = np.rint(x0).astype(np.int64), np.rint(y0).astype(np.int64)
    if len(ix) and (
        np.any(ix != x0) or np.any(iy != y0) or np.any((ix - ix[0]) % pitch) or np.any((iy - iy[0]) % pitch)
    ):
        raise ValueError(f"projection region {index}: skycells are not on one lattice of {pitch} pixels in {sm.path}")
    oy, ox = int(iy[keep].min()), int(ix[keep].min())
    ny, nx = int(iy[keep].max()) + side - oy, int(ix[keep].max()) + side - ox
    boxes = tuple(
        SkycellBox(
            names[k], start + int(k), int(iy[k]) - oy, int(ix[k]) - ox, int(iy[k]) - oy + side, int(ix[k]) - ox + side
        )
        for k in np.flatnonzero(keep)
    )
    return RegionGrid(
        region=index,
        name=f"proj{index}",
        origin_yx=(oy, ox),
        shape_yx=(ny, nx),
        crpix_yx=(float(data["y_tangent"]) - oy, float(data["x_tangent"]) - ox),
        crval=(float(data["ra_tangent"]), float(data["dec_tangent"])),
        orientat=float(data["orientat"]),
        pixel_scale=float(sm.model.meta["pixel_scale"]),
        pitch=pitch,
        skycells=boxes,
    )


def projection_region_output_wcs(
    region: int | str,
    skymap: str | os.PathLike | None = None,
    *,
    skycells: Sequence[str] | None = None,
    pixel_scale: float | None = None,
) -> dict[str, Any]:
    """The ``output_wcs`` of a projection region's grid, for :func:`dask_resample.resample`.

    The grid is :func:`projection_region_grid`'s: romancal's tangent plane of the
    region, with pixel (0, 0) on a skycell's first pixel; use tiles of
    :func:`skycell_tile_shape` so that every skycell starts on a tile corner::

        resample(inputs, "region.zarr",
                 output_wcs=projection_region_output_wcs(0, skycells=names),
                 tile_shape=skycell_tile_shape())

    (:func:`dask_resample.roman.resample_region` does this for the skycells
    the inputs touch.)

    Parameters
    ----------
    region : int or str
        See :func:`projection_region_index`.
    skymap : path-like, optional
        Skymap file (default ``SKYMAP_PATH``).
    skycells : sequence of str, optional
        Only the bounding box of these skycells; without it the grid is the whole
        region, which exceeds the default ``max_output_pixels`` (1e10): give
        the skycells or raise the limit.
    pixel_scale : float, optional
        The grid's pixel scale (arcsec) as the drizzle takes it (its
        ``pixel_scale_ratio`` scales the variances). Default: measured over the
        grid, as for a skycell's grid (stcal's mean pixel area; about 10 s for a
        whole region); the skymap's nominal scale is ``RegionGrid.pixel_scale``.

    Returns
    -------
    dict
        ``{"wcs": gwcs (with array_shape)}``, and ``"pixel_scale"`` when given.
    """
    grid = projection_region_grid(region, skymap, skycells=skycells)
    out: dict[str, Any] = {"wcs": grid.wcs()}
    if pixel_scale is not None:
        out["pixel_scale"] = float(pixel_scale)
    return out


def projection_region_skycell_boxes(
    region: int | str, skymap: str | os.PathLike | None = None, *, skycells: Sequence[str] | None = None
) -> dict[str, tuple[int, int, int, int]]:
    """Each skycell's pixel box ``(y0, x0, y1, x1)`` (half-open) in :func:`projection_region_output_wcs`'s grid.

    Parameters are those of :func:`projection_region_grid`.

    Returns
    -------
    dict
        Skycell name -> ``(y0, x0, y1, x1)``, in skymap order.
    """
    grid = projection_region_grid(region, skymap, skycells=skycells)
    return {b.name: (b.y0, b.x0, b.y1, b.x1) for b in grid.skycells}


def skycell_tile_shape(side: int | None = None, skymap: str | os.PathLike | None = None) -> tuple[int, int]:
    """A square tile shape (ny, nx) whose side divides the skycell pitch.

    With it, every skycell's first row and column of a :func:`projection_region_grid`
    lie on tile boundaries (a skycell then covers whole tiles up to one pitch from
    its start, plus the strip it shares with the next skycell: twice the border,
    200 pixels, into the next tile).

    Parameters
    ----------
    side : int, optional
        Wanted side; the largest divisor of the pitch not above it is taken (default
        the ``resample.tile-shape`` of :mod:`dask.config`, 1024: 960).
    skymap : path-like, optional
        Skymap file (default ``SKYMAP_PATH``), for the pitch.

    Raises
    ------
    ValueError
        For a side below 1.
    """
    if side is None:
        side = min(int(n) for n in (config.get("tile-shape") or config.DEFAULT_TILE_SHAPE))
    if int(side) < 1:
        raise ValueError(f"side: expected a positive number of pixels, got {side}")
    pitch = _pitch(use_skymap(skymap))
    best = max(d for d in range(1, min(int(side), pitch) + 1) if pitch % d == 0)
    return best, best


def skycell_regions(names: Sequence[str], skymap: str | os.PathLike | None = None) -> dict[int, list[str]]:
    """The projection region of each skycell.

    Returns
    -------
    dict
        Region index -> the given skycell names in it (in the given order), regions ascending.
    """
    sm = use_skymap(skymap)
    regions = sm.model.projection_regions
    all_names = sm.model.skycells["name"]
    starts, ends = np.asarray(regions["skycell_start"]), np.asarray(regions["skycell_end"])
    out: dict[int, list[str]] = {}
    for name in names:
        hits = np.flatnonzero(all_names == name)
        if not len(hits):
            raise InputError(f"skycell {name!r}: not in the skymap {sm.path}")
        region = int(np.flatnonzero((starts <= hits[0]) & (hits[0] < ends))[0])
        out.setdefault(region, []).append(str(name))
    return dict(sorted(out.items()))
