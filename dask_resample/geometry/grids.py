"""Geometry of a mosaic: pixel grids, tiles, footprints, sub-grids and WCS conversions.

In the manner of odc-geo's ``GeoBox``/``GeoboxTiles``, everything about where
pixels are lives here, free of I/O:

- :class:`OutputGrid` (the output frame: WCS, shape, pixel scale) and its
  partition into tiles (:class:`TileGrid`, :class:`Tile`);
- footprints: image corners and outlines on the sky, ``S_REGION`` strings
  and their polygons;
- sub-grids (cutouts, pyramid levels): their gwcs, FITS cards and metadata;
- WCS conversions: gwcs -> FITS cards, stored FITS cards -> :class:`astropy.wcs.WCS`,
  gwcs <-> ASDF text (in :mod:`.wcs_convert`, importable from here);
- :func:`without_bounding_box`, the one way to evaluate a WCS outside its
  bounding box.

Pixel coordinates are 0-based with pixel centres at integers; array shapes
and boxes are written ``yx``, WCS calls take ``(x, y)``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .wcs_convert import (
    fits_wcs_from_cards,
    gwcs_from_text,
    gwcs_to_text,
    load_asdf_extensions,
    wcs_to_fits_header,
)

__all__ = [
    "OUTLINE_POINTS_PER_EDGE",
    "OutputGrid",
    "Tile",
    "TileGrid",
    "affine_fits_header",
    "affine_gwcs",
    "corner_footprint",
    "cutout_box",
    "fits_wcs_from_cards",
    "gwcs_from_text",
    "gwcs_to_text",
    "image_corners_xy",
    "load_asdf_extensions",
    "outline_from_wcs",
    "pixel_bounds",
    "s_region_from_wcs",
    "sky_polygons",
    "split_sregions",
    "sregion_polygons",
    "subgrid_metadata",
    "wcs_to_fits_header",
    "without_bounding_box",
]


# -- evaluating a WCS ------------------------------------------------------------
@contextmanager
def without_bounding_box(wcs: Any) -> Iterator[Any]:
    """Evaluate ``wcs`` with its bounding box disabled, restoring it afterwards.

    The reference disables the *output* WCS's bounding box for the pixel map
    (``stcal.resample.utils.calc_pixmap``); footprints and grid maths do the same.
    """
    saved = getattr(wcs, "bounding_box", None)
    if saved is not None:
        wcs.bounding_box = None
    try:
        yield wcs
    finally:
        if saved is not None:
            wcs.bounding_box = saved


# -- the output grid and its tiles ------------------------------------------------
@dataclass(frozen=True)
class OutputGrid:
    """The output frame of a mosaic.

    Attributes
    ----------
    wcs : gwcs.wcs.WCS
        Output WCS; ``wcs.array_shape == shape_yx``.
    shape_yx : tuple of int
        Output array shape (ny, nx).
    pixel_scale : float
        Output pixel scale in arcsec.
    pixel_scale_ratio : float
        Output to input pixel scale ratio handed to drizzle.
    wcs_text : str or None
        ``wcs`` as ASDF text (:func:`gwcs_to_text`) when already made, else ``None``
        (see :meth:`wcs_asdf`). Not part of the grid's identity.
    """

    wcs: Any
    shape_yx: tuple[int, int]
    pixel_scale: float
    pixel_scale_ratio: float
    wcs_text: str | None = field(default=None, compare=False, repr=False)

    def wcs_asdf(self) -> str:
        """``wcs`` as ASDF text: :attr:`wcs_text` if made (on the worker that made the grid), else made here.

        Making it needs ASDF's extensions (about a second to load in a fresh process), which a
        worker has loaded already; a client then never loads them to store the grid.
        """
        return self.wcs_text if self.wcs_text is not None else gwcs_to_text(self.wcs)

    def with_wcs_text(self) -> OutputGrid:
        """This grid with :attr:`wcs_text` made (run where the grid is made, on a worker)."""
        return self if self.wcs_text is not None else replace(self, wcs_text=gwcs_to_text(self.wcs))

    @property
    def pixelarea_steradians(self) -> float:
        """Nominal output pixel area in steradians."""
        return self.pixel_scale**2 / np.rad2deg(3600) ** 2

    @property
    def pixelarea_arcsecsq(self) -> float:
        """Nominal output pixel area in square arcsec."""
        return self.pixel_scale**2


@dataclass(frozen=True)
class Tile:
    """One output tile: the inner box ``[y0:y1, x0:x1]`` it owns in the mosaic."""

    ty: int
    tx: int
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def key(self) -> tuple[int, int]:
        """Tile index (ty, tx)."""
        return (self.ty, self.tx)

    @property
    def shape_yx(self) -> tuple[int, int]:
        """Shape of the inner box."""
        return (self.y1 - self.y0, self.x1 - self.x0)


@dataclass(frozen=True)
class TileGrid:
    """A regular partition of the output frame into tiles (= Zarr chunks)."""

    shape_yx: tuple[int, int]
    tile_shape_yx: tuple[int, int]

    def __post_init__(self) -> None:
        ty, tx = self.tile_shape_yx
        if int(ty) < 1 or int(tx) < 1:
            raise ValueError(f"tile_shape: must be positive, got {self.tile_shape_yx}")

    @property
    def n_tiles_yx(self) -> tuple[int, int]:
        """Number of tiles along y and x."""
        return (
            -(-self.shape_yx[0] // self.tile_shape_yx[0]),
            -(-self.shape_yx[1] // self.tile_shape_yx[1]),
        )

    def tile(self, ty: int, tx: int) -> Tile:
        """Return tile (ty, tx)."""
        sy, sx = self.tile_shape_yx
        return Tile(
            ty, tx, ty * sy, min((ty + 1) * sy, self.shape_yx[0]), tx * sx, min((tx + 1) * sx, self.shape_yx[1])
        )

    def __iter__(self) -> Iterator[Tile]:
        ny, nx = self.n_tiles_yx
        for ty in range(ny):
            for tx in range(nx):
                yield self.tile(ty, tx)

    def __len__(self) -> int:
        ny, nx = self.n_tiles_yx
        return ny * nx

    def overlapping(self, y0: float, y1: float, x0: float, x1: float) -> list[Tile]:
        """Tiles whose inner box intersects the pixel box ``[y0, y1) x [x0, x1)``."""
        sy, sx = self.tile_shape_yx
        ny, nx = self.n_tiles_yx
        ty0 = max(0, int(math.floor(y0 / sy)))
        ty1 = min(ny - 1, int(math.floor((y1 - 1) / sy)))
        tx0 = max(0, int(math.floor(x0 / sx)))
        tx1 = min(nx - 1, int(math.floor((x1 - 1) / sx)))
        return [self.tile(ty, tx) for ty in range(ty0, ty1 + 1) for tx in range(tx0, tx1 + 1)]


# -- footprints ----------------------------------------------------------------------
def image_corners_xy(shape_yx: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(x, y)`` of the four outer corners of an image, counter-clockwise from (0, 0)."""
    ny, nx = shape_yx
    x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    return x, y


def corner_footprint(wcs: Any, shape_yx: tuple[int, int]) -> np.ndarray:
    """(RA, Dec) of the image corners, shape (4, 2): ``wcs.footprint()`` if it has one, else the array corners."""
    fp = wcs.footprint() if hasattr(wcs, "footprint") else None
    if fp is None:
        fp = np.column_stack(wcs.pixel_to_world_values(*image_corners_xy(shape_yx)))
    return np.asarray(fp)


#: Points per edge of the outline sampled through a WCS (distortion bulges between corners).
OUTLINE_POINTS_PER_EDGE = 16


def pixel_bounds(wcs: Any, shape_yx: tuple[int, int]) -> tuple[float, float, float, float]:
    """Pixel-edge bounds ``(x0, x1, y0, y1)`` of the valid region: the bounding box, else the array."""
    bbox = getattr(wcs, "bounding_box", None)
    if bbox is not None:
        try:
            (x0, x1), (y0, y1) = bbox.bounding_box(order="F")
        except AttributeError:
            (x0, x1), (y0, y1) = tuple(bbox)
        return float(x0), float(x1), float(y0), float(y1)
    ny, nx = shape_yx
    return -0.5, nx - 0.5, -0.5, ny - 0.5


def outline_from_wcs(wcs: Any, shape_yx: tuple[int, int]) -> tuple[tuple[float, float], ...]:
    """(RA, Dec) of points along the edges of the valid region, in degrees."""
    x0, x1, y0, y1 = pixel_bounds(wcs, shape_yx)
    t = np.linspace(0.0, 1.0, OUTLINE_POINTS_PER_EDGE, endpoint=False)
    x = np.concatenate([x0 + (x1 - x0) * t, np.full_like(t, x1), x1 - (x1 - x0) * t, np.full_like(t, x0)])
    y = np.concatenate([np.full_like(t, y0), y0 + (y1 - y0) * t, np.full_like(t, y1), y1 - (y1 - y0) * t])
    ra, dec = (np.asarray(v, float) for v in _without_bbox(wcs, x, y))
    good = np.isfinite(ra) & np.isfinite(dec)
    return tuple(zip(ra[good].tolist(), dec[good].tolist(), strict=True))


def _without_bbox(wcs: Any, x: np.ndarray, y: np.ndarray) -> tuple:
    # the points sit on the box's edges; evaluate them even where a bounding box would say "outside"
    try:
        return wcs(x, y, with_bounding_box=False)
    except TypeError:
        return wcs.pixel_to_world_values(x, y)


def s_region_from_wcs(wcs: Any, shape_yx: tuple[int, int]) -> str:
    """``S_REGION`` of the four corners of the valid region, as the pipeline computes it."""
    from stcal.alignment.util import compute_s_region_keyword

    return compute_s_region_keyword(corner_footprint(wcs, shape_yx))


def split_sregions(s_region: str) -> list[str]:
    """Split an S_REGION holding several ``POLYGON``s into one string per polygon."""
    if "POLYGON ICRS" in s_region:
        return ["POLYGON ICRS " + s for s in map(str.strip, s_region.split("POLYGON ICRS")) if s]
    return ["POLYGON " + s for s in map(str.strip, s_region.split("POLYGON")) if s]


def sregion_polygons(s_region: str) -> list[np.ndarray]:
    """(RA, Dec) vertex arrays, shape (n, 2), of every polygon of an ``S_REGION`` string."""
    polys = []
    for text in split_sregions(s_region):
        numbers = []
        for token in text.split():
            try:
                numbers.append(float(token))
            except ValueError:
                continue
        if len(numbers) >= 6 and len(numbers) % 2 == 0:
            polys.append(np.asarray(numbers, dtype=float).reshape(-1, 2))
    return polys


def sky_polygons(s_region: str | None, wcs: Any = None, shape_yx: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Sky polygons of an image: those of its ``S_REGION``, else the corners of its WCS.

    Parameters
    ----------
    s_region : str or None
    wcs : gwcs-like, optional
        Used when ``s_region`` holds no polygon.
    shape_yx : (int, int), optional
        Image shape, for a WCS without a footprint.

    Returns
    -------
    list of numpy.ndarray
        (RA, Dec) vertices, shape (n, 2) each.
    """
    if s_region:
        polys = sregion_polygons(s_region)
        if polys:
            return polys
    if wcs is None:
        return []
    try:
        return [np.asarray(wcs.footprint(), dtype=float)]
    except (AttributeError, TypeError, ValueError, NotImplementedError):
        # no footprint method, or none without a bounding box or array shape: the image corners
        if shape_yx is None:
            raise ValueError("shape_yx: needed for the corners of a WCS without a footprint") from None
        return [np.column_stack(wcs.pixel_to_world_values(*image_corners_xy(shape_yx)))]


# -- sub-grids: cutouts and pyramid levels -----------------------------------------------
def affine_gwcs(wcs: Any, *, scale: float, offset_yx: tuple[float, float], shape_yx: tuple[int, int]) -> Any:
    """A gwcs whose pixel ``(y, x)`` is pixel ``(scale*y + oy, scale*x + ox)`` of ``wcs``.

    Cutouts use ``scale=1`` and the cutout origin as offset; pyramid levels use
    ``scale=2**k`` and offset ``(2**k - 1) / 2`` (the centre of the block).

    Parameters
    ----------
    wcs : gwcs.WCS
        The parent WCS.
    scale : float
        Size of a new pixel in parent pixels.
    offset_yx : (float, float)
        Parent pixel coordinates of the new pixel (0, 0).
    shape_yx : (int, int)
        Shape of the new grid; sets the bounding box and ``array_shape``.

    Returns
    -------
    gwcs.WCS
    """
    import gwcs
    from astropy.modeling.models import Identity, Scale, Shift

    def axis(offset: float) -> Any:
        model = Identity(1)
        if scale != 1:
            model = Scale(float(scale))
        if offset != 0:
            model = Shift(float(offset)) if scale == 1 else model | Shift(float(offset))
        return model

    oy, ox = (float(v) for v in offset_yx)
    forward = (axis(ox) & axis(oy)) | wcs.forward_transform
    new = gwcs.WCS(forward_transform=forward, input_frame=wcs.input_frame, output_frame=wcs.output_frame)
    ny, nx = (int(v) for v in shape_yx)
    new.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    new.array_shape = (ny, nx)
    return new


def affine_fits_header(
    cards: Mapping[str, Any], *, scale: float, offset_yx: tuple[float, float], shape_yx: tuple[int, int]
) -> dict[str, Any]:
    """FITS WCS cards of the sub-grid described in :func:`affine_gwcs`.

    CRPIX moves to the new grid, CDELT (or CD) grows by ``scale`` and SIP
    coefficients, if any, are rescaled, so the cards describe exactly the same
    sky positions as the parent cards.

    Parameters
    ----------
    cards : mapping
        Parent FITS WCS cards (as in ``attrs["dask_resample"]["wcs_fits"]``).
    scale, offset_yx, shape_yx
        As in :func:`affine_gwcs`.

    Returns
    -------
    dict
    """
    out = dict(cards)
    oy, ox = (float(v) for v in offset_yx)
    for axis_n, off in ((1, ox), (2, oy)):
        key = f"CRPIX{axis_n}"
        if key in out:
            out[key] = (float(out[key]) - 1.0 - off) / scale + 1.0
    if scale != 1:
        if any(k.startswith("CD") and "_" in k for k in out):
            for k in list(out):
                if k.startswith("CD") and "_" in k and k[2:].replace("_", "").isdigit():
                    out[k] = float(out[k]) * scale
        else:
            for k in ("CDELT1", "CDELT2"):
                if k in out:
                    out[k] = float(out[k]) * scale
        for prefix in ("A", "B", "AP", "BP"):
            for k in list(out):
                head, _, tail = k.partition("_")
                if head == prefix and tail and tail.replace("_", "").isdigit() and tail.count("_") == 1:
                    i, j = (int(v) for v in tail.split("_"))
                    out[k] = float(out[k]) * scale ** (i + j - 1)
    ny, nx = (int(v) for v in shape_yx)
    out["NAXIS1"] = nx
    out["NAXIS2"] = ny
    return out


def subgrid_metadata(
    meta: Mapping[str, Any],
    *,
    scale: float,
    offset_yx: tuple[float, float],
    shape_yx: tuple[int, int],
    wcs: Any = None,
) -> dict[str, Any]:
    """Mosaic metadata of a sub-grid (cutout or pyramid level) of ``meta``.

    ``wcs_asdf``, ``wcs_fits`` and ``grid`` (shape, pixel scale) are replaced;
    ``subgrid`` records the placement in level-0 pixels of the original mosaic
    (``scale``, ``origin_yx``), composed with any earlier placement.

    Parameters
    ----------
    meta : mapping
        Parent metadata (``attrs["dask_resample"]``).
    scale, offset_yx, shape_yx
        As in :func:`affine_gwcs`.
    wcs : gwcs.WCS, optional
        The parent gwcs, if already deserialised.

    Returns
    -------
    dict
    """
    parent_wcs = wcs if wcs is not None else gwcs_from_text(meta["wcs_asdf"])
    new = copy.deepcopy(dict(meta))
    new["wcs_asdf"] = gwcs_to_text(affine_gwcs(parent_wcs, scale=scale, offset_yx=offset_yx, shape_yx=shape_yx))
    if "wcs_fits" in meta:
        new["wcs_fits"] = affine_fits_header(meta["wcs_fits"], scale=scale, offset_yx=offset_yx, shape_yx=shape_yx)
    grid = dict(meta.get("grid", {}))
    grid["shape_yx"] = [int(v) for v in shape_yx]
    for key in ("pixel_scale",):
        if grid.get(key) is not None:
            grid[key] = float(grid[key]) * scale
    for key in ("pixelarea_steradians", "pixelarea_arcsecsq"):
        if grid.get(key) is not None:
            grid[key] = float(grid[key]) * scale * scale
    new["grid"] = grid
    prev = meta.get("subgrid", {"scale": 1.0, "origin_yx": [0.0, 0.0]})
    pscale = float(prev["scale"])
    py, px = (float(v) for v in prev["origin_yx"])
    new["subgrid"] = {
        "scale": pscale * scale,
        "origin_yx": [py + pscale * float(offset_yx[0]), px + pscale * float(offset_yx[1])],
    }
    return new


def cutout_box(
    shape_yx: tuple[int, int], size_yx: tuple[int, int], centre_yx: tuple[float, float], *, mode: str = "trim"
) -> tuple[slice, slice]:
    """The ``(y, x)`` slices of a cutout of ``size_yx`` centred on pixel ``centre_yx``.

    Parameters
    ----------
    shape_yx : (int, int)
        Shape of the parent grid.
    size_yx : (int, int)
        Cutout size.
    centre_yx : (float, float)
        Centre in parent pixels (rounded to 1e-6 pixel, so that a pixel centre
        gives a stable origin whatever the last bits of a WCS inversion).
    mode : {"trim", "strict"}
        ``"trim"`` clips to the parent; ``"strict"`` raises if it does not fit.

    Raises
    ------
    astropy.nddata.utils.NoOverlapError, astropy.nddata.utils.PartialOverlapError
    """
    from astropy.nddata.utils import overlap_slices

    centre = (round(float(centre_yx[0]), 6), round(float(centre_yx[1]), 6))
    (sl_y, sl_x), _ = overlap_slices(shape_yx, size_yx, centre, mode=mode)
    return sl_y, sl_x
