"""The output pixel grid (WCS and shape) and its partition into tiles.

The output WCS is computed by the very functions the reference uses
(``stcal.alignment.util.wcs_from_sregions``, ``compute_scale`` and
``compute_mean_pixel_area``, following
``jwst.resample.resample_utils.resampled_wcs_from_models``), so the grid is
identical to the one ``ResampleImage`` builds.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import WCS_PARS_KEYS
from .io import ExposureRef, InputError, load_wcs

__all__ = [
    "DEFAULT_TILE_SHAPE",
    "OutputGrid",
    "Tile",
    "TileGrid",
    "make_output_grid",
    "split_sregions",
]

#: Default tile (and Zarr chunk) shape, (ny, nx). See README "Tiles".
DEFAULT_TILE_SHAPE: tuple[int, int] = (1024, 1024)


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
    """

    wcs: Any
    shape_yx: tuple[int, int]
    pixel_scale: float
    pixel_scale_ratio: float

    @property
    def pixelarea_steradians(self) -> float:
        """Nominal output pixel area in steradians."""
        return self.pixel_scale**2 / np.rad2deg(3600) ** 2

    @property
    def pixelarea_arcsecsq(self) -> float:
        """Nominal output pixel area in square arcsec."""
        return self.pixel_scale**2


def split_sregions(s_region: str) -> list[str]:
    """Split an S_REGION holding several ``POLYGON``s into one string per polygon."""
    if "POLYGON ICRS" in s_region:
        return ["POLYGON ICRS " + s for s in map(str.strip, s_region.split("POLYGON ICRS")) if s]
    return ["POLYGON " + s for s in map(str.strip, s_region.split("POLYGON")) if s]


def _s_regions(refs: Sequence[ExposureRef]) -> list[str]:
    from stcal.alignment.util import compute_s_region_keyword

    regions: list[str] = []
    for ref in refs:
        if ref.s_region:
            regions.extend(split_sregions(ref.s_region))
            continue
        wcs, shape, _ = load_wcs(ref)
        ny, nx = shape
        bbox = wcs.bounding_box
        if bbox is None:
            fp = wcs.footprint() if hasattr(wcs, "footprint") else None
            if fp is None:
                x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
                y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
                fp = np.column_stack(wcs.pixel_to_world_values(x, y))
        else:
            fp = wcs.footprint()
        regions.append(compute_s_region_keyword(np.asarray(fp)))
    return regions


def make_output_grid(
    refs: Sequence[ExposureRef],
    *,
    output_wcs: Mapping[str, Any] | None = None,
    wcs_pars: Mapping[str, Any] | None = None,
) -> OutputGrid:
    """Compute the output grid from the inputs, as ``ResampleImage`` does.

    Parameters
    ----------
    refs : sequence of ExposureRef
        The inputs, in input order; the first one is the reference exposure.
    output_wcs : dict, optional
        ``{"wcs": gwcs, "pixel_scale": arcsec (optional), "pixel_scale_ratio": (optional)}``.
        Takes precedence over ``wcs_pars``.
    wcs_pars : dict, optional
        Keys ``pixel_scale_ratio``, ``pixel_scale`` (arcsec), ``output_shape`` (ny, nx),
        ``rotation``, ``crpix``, ``crval``.

    Returns
    -------
    OutputGrid

    Raises
    ------
    KeyError
        For unknown ``wcs_pars`` keys (the message names them).
    """
    from stcal.alignment.util import compute_scale, wcs_from_sregions
    from stcal.resample.utils import compute_mean_pixel_area

    wcs_pars = dict(wcs_pars or {})
    unknown = sorted(set(wcs_pars).difference(WCS_PARS_KEYS))
    if unknown:
        raise KeyError(f"wcs_pars: unsupported key(s) {', '.join(map(repr, unknown))}; "
                       f"supported: {', '.join(WCS_PARS_KEYS)}")
    if not refs:
        raise InputError("inputs: no exposures given")

    if output_wcs is not None:
        if "wcs" not in output_wcs:
            raise KeyError("output_wcs: expected a dict with key 'wcs' (and optionally 'pixel_scale')")
        wcs = output_wcs["wcs"]
        if getattr(wcs, "array_shape", None) is None:
            raise ValueError("output_wcs: custom WCS objects must have 'array_shape' set")
        pixel_scale = output_wcs.get("pixel_scale")
        if pixel_scale is None:
            pixel_scale = 3600.0 * np.rad2deg(math.sqrt(compute_mean_pixel_area(wcs)))
        psr = output_wcs.get("pixel_scale_ratio")
        if psr is None:
            ref_wcs, shape, info = load_wcs(refs[0])
            area = info.get("pixelarea_steradians")
            if area is None or area <= 0:
                area = compute_mean_pixel_area(ref_wcs, shape=shape)
            psr = float(pixel_scale) / (3600.0 * np.rad2deg(math.sqrt(area)))
        shape_yx = tuple(int(n) for n in wcs.array_shape)
        return OutputGrid(wcs, shape_yx, float(pixel_scale), float(psr))

    ref_wcs, shape, ref_wcsinfo = load_wcs(refs[0])
    ref_wcs = copy.deepcopy(ref_wcs)
    regions = _s_regions(refs)
    pixel_scale_ratio = wcs_pars.get("pixel_scale_ratio", 1.0)
    pscale = wcs_pars.get("pixel_scale")
    if pscale is not None:
        pscale = float(pscale) / 3600.0
    if pscale is None:
        pscale_in0 = compute_scale(ref_wcs, fiducial=np.array([ref_wcsinfo["ra_ref"], ref_wcsinfo["dec_ref"]]))
        pscale = pscale_in0 * pixel_scale_ratio
    else:
        pscale_in0 = np.rad2deg(math.sqrt(compute_mean_pixel_area(ref_wcs, shape=shape)))
        pixel_scale_ratio = pscale / pscale_in0
    output_shape = wcs_pars.get("output_shape")
    wcs = wcs_from_sregions(
        regions,
        ref_wcs=ref_wcs,
        ref_wcsinfo=ref_wcsinfo,
        pscale_ratio=pixel_scale_ratio,
        pscale=pscale,
        rotation=wcs_pars.get("rotation"),
        shape=None if output_shape is None else tuple(output_shape),
        crpix=wcs_pars.get("crpix"),
        crval=wcs_pars.get("crval"),
    )
    shape_yx = tuple(int(n) for n in wcs.array_shape)
    return OutputGrid(wcs, shape_yx, float(3600.0 * pscale), float(pixel_scale_ratio))


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

    def halo_box(self, halo: int, shape_yx: tuple[int, int]) -> tuple[int, int, int, int]:
        """The inner box grown by ``halo`` pixels, clipped to the mosaic: (y0, y1, x0, x1)."""
        return (
            max(0, self.y0 - halo),
            min(shape_yx[0], self.y1 + halo),
            max(0, self.x0 - halo),
            min(shape_yx[1], self.x1 + halo),
        )


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
        return Tile(ty, tx, ty * sy, min((ty + 1) * sy, self.shape_yx[0]),
                    tx * sx, min((tx + 1) * sx, self.shape_yx[1]))

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
