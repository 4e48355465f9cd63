"""Figures: a preview PNG of a mosaic and a coverage map of a mosaic plan.

Both use astropy's WCSAxes for RA/Dec axes and matplotlib's Agg canvas
directly (no pyplot), so they work on headless machines and leave the caller's
matplotlib backend alone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry import fits_wcs_from_cards, sky_polygons, sregion_polygons, wcs_to_fits_header
from ..inputs.io import load_wcs
from ..store import Location, as_location, is_mosaic, open_mosaic, read_metadata

__all__ = ["coverage_png", "preview_png"]

#: Longest side (pixels) of the image drawn by :func:`preview_png`.
PREVIEW_MAX_SIZE = 2000


def _figure(width_in: float, height_in: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _figsize(ny: int, nx: int, base: float = 8.0) -> tuple[float, float]:
    aspect = ny / max(nx, 1)
    aspect = min(max(aspect, 0.35), 2.5)
    return (base + 1.5, base * aspect + 1.0)


def _label_axes(ax: Any) -> None:
    ra, dec = ax.coords[0], ax.coords[1]
    ra.set_axislabel("Right Ascension (ICRS)")
    dec.set_axislabel("Declination (ICRS)")
    ra.set_major_formatter("hh:mm:ss.s")
    dec.set_major_formatter("dd:mm:ss")
    ax.coords.grid(True, color="white", linestyle="dotted", alpha=0.6, linewidth=0.6)


def preview_png(
    path: str | os.PathLike | Location,
    out_png: str | os.PathLike,
    group: str | None = None,
    *,
    variable: str = "data",
    max_size: int = PREVIEW_MAX_SIZE,
    percentile: float = 99.5,
    cmap: str = "magma",
    dpi: int = 110,
    storage_options: Mapping[str, Any] | None = None,
) -> Path:
    """Draw an asinh-stretched image of a mosaic with RA/Dec axes.

    Big mosaics are decimated (every ``s``-th pixel, ``s`` chosen so that the
    longest side is at most ``max_size``) while reading, so only the drawn
    pixels are kept in memory; the WCS is sliced the same way.

    Parameters
    ----------
    path : path-like, URL or Location
        The Zarr mosaic (a local path or any fsspec URL; see ``storage_options``).
    out_png : path-like
        PNG file to write.
    group : str, optional
        Exposure group of a many-to-many mosaic.
    variable : str
        Array to draw (``"data"``, ``"wht"``, ``"err"``, ...).
    max_size : int
        Longest side of the drawn image, in pixels.
    percentile : float
        Central percentile of finite values mapped to the colour range.
    cmap : str
        Matplotlib colour map.
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    Path
        ``out_png``.
    """
    from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval

    path = as_location(path, storage_options)
    out_png = Path(out_png)
    if not is_mosaic(path):
        raise ValueError(f"{path}: not a dask-resample mosaic")
    root = read_metadata(path)
    if root.get("mode") == "many_to_many" and not group:
        raise ValueError(f"{path}: many-to-many mosaic; choose a group (--group) among {root.get('groups')}")
    ds = open_mosaic(path, group=group)
    if variable not in ds.data_vars:
        raise ValueError(f"variable: {variable!r} is not in {path}; expected one of {sorted(ds.data_vars)}")
    da = ds[variable]
    if da.ndim == 3:
        da = da.isel(plane=0)
    ny, nx = (int(n) for n in da.shape)
    step = max(1, math.ceil(max(ny, nx) / max(int(max_size), 1)))
    image = np.asarray(da.data[::step, ::step].compute(), dtype=np.float64)
    meta = ds.attrs["dask_resample"]
    wcs = fits_wcs_from_cards(meta["wcs_fits"])
    if step > 1:
        wcs = wcs[::step, ::step]

    finite = np.isfinite(image)
    norm = None
    if finite.any():
        norm = ImageNormalize(image[finite], interval=PercentileInterval(percentile), stretch=AsinhStretch(0.05))
    fig = _figure(*_figsize(*image.shape))
    ax = fig.add_subplot(projection=wcs)
    im = ax.imshow(np.where(finite, image, np.nan), origin="lower", cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_facecolor("0.25")
    _label_axes(ax)
    units = "MJy/sr" if variable in ("data", "err") else ""
    fig.colorbar(im, ax=ax, label=f"{variable} {units}".strip(), shrink=0.85)
    title = f"{path.name}" + (f" [{group}]" if group else "") + f": {variable}, {ny} x {nx} px"
    if step > 1:
        title += f" (every {step}th pixel)"
    ax.set_title(title, fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    return out_png


def _input_polygons(ref: Any) -> list[Any]:
    """Sky polygons of an input: its S_REGION, else the footprint of its WCS (read from the input)."""
    if ref.s_region and (polys := sregion_polygons(ref.s_region)):
        return polys
    wcs, shape, _ = load_wcs(ref)
    return sky_polygons(None, wcs, shape)


def coverage_png(plan: Any, out_png: str | os.PathLike, *, dpi: int = 110, label_inputs: bool | None = None) -> Path:
    """Draw a plan: the tile grid coloured by inputs per tile, with the input footprints.

    Tiles are coloured by the number of inputs that feed them (empty tiles are
    left blank); input footprints (S_REGION polygons, else the WCS footprint)
    are drawn in red, inputs that miss the grid as grey dashed outlines, on
    RA/Dec axes of the output WCS.

    Parameters
    ----------
    plan : MosaicPlan
        From :func:`dask_resample.api.plan_mosaic`.
    out_png : path-like
        PNG file to write.
    dpi : int
        Resolution of the PNG.
    label_inputs : bool, optional
        Write each input's index at its footprint centre (default: with at
        most 40 inputs).

    Returns
    -------
    Path
        ``out_png``.
    """
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm

    out_png = Path(out_png)
    ny, nx = plan.grid.shape_yx
    sy, sx = plan.tiles.tile_shape_yx
    nty, ntx = plan.tiles.n_tiles_yx
    wcs = fits_wcs_from_cards(wcs_to_fits_header(plan.grid.wcs))
    counts = plan.tile_input_counts()

    fig = _figure(*_figsize(ny, nx))
    ax = fig.add_subplot(projection=wcs)
    ax.set_facecolor("white")
    y_edges = np.minimum(np.arange(nty + 1) * sy, ny) - 0.5
    x_edges = np.minimum(np.arange(ntx + 1) * sx, nx) - 0.5
    top = max(int(counts.max()), 1)
    cmap = colormaps["viridis"].resampled(top)
    norm = BoundaryNorm(np.arange(0.5, top + 1.5), cmap.N)
    mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_equal(counts, 0), cmap=cmap, norm=norm, alpha=0.8)
    for x in x_edges:
        ax.plot([x, x], [y_edges[0], y_edges[-1]], color="0.15", linewidth=0.9, zorder=3)
    for y in y_edges:
        ax.plot([x_edges[0], x_edges[-1]], [y, y], color="0.15", linewidth=0.9, zorder=3)
    ax.plot(
        [-0.5, nx - 0.5, nx - 0.5, -0.5, -0.5], [-0.5, -0.5, ny - 0.5, ny - 0.5, -0.5], color="black", linewidth=1.2
    )

    skipped = set(plan.skipped)
    if label_inputs is None:
        label_inputs = len(plan.refs) <= 40
    xs_all, ys_all = [-0.5, nx - 0.5], [-0.5, ny - 0.5]
    for ref in plan.refs:
        for poly in _input_polygons(ref):
            px, py = wcs.world_to_pixel_values(poly[:, 0], poly[:, 1])
            px = np.append(px, px[0])
            py = np.append(py, py[0])
            is_skipped = ref.index in skipped
            if is_skipped:
                ax.plot(px, py, color="0.35", linestyle="--", linewidth=1.2, zorder=4)
            else:
                ax.plot(px, py, color="red", linewidth=1.2, zorder=4)
            xs_all.extend(px.tolist())
            ys_all.extend(py.tolist())
            if label_inputs:
                ax.text(
                    float(np.mean(px[:-1])),
                    float(np.mean(py[:-1])),
                    str(ref.index),
                    fontsize=7,
                    ha="center",
                    va="center",
                    color="0.35" if is_skipped else "red",
                    zorder=5,
                )
    pad_x = 0.03 * (max(xs_all) - min(xs_all))
    pad_y = 0.03 * (max(ys_all) - min(ys_all))
    ax.set_xlim(min(xs_all) - pad_x, max(xs_all) + pad_x)
    ax.set_ylim(min(ys_all) - pad_y, max(ys_all) + pad_y)
    ax.coords.grid(True, color="0.5", linestyle="dotted", alpha=0.7, linewidth=0.6)
    ax.coords[0].set_axislabel("Right Ascension (ICRS)")
    ax.coords[1].set_axislabel("Declination (ICRS)")
    ticks = _colorbar_ticks(top)
    fig.colorbar(mesh, ax=ax, label="inputs per tile", ticks=ticks, shrink=0.85)
    n_used = int(np.count_nonzero(counts))
    title = (
        f"{len(plan.refs)} inputs ({len(skipped)} skipped), grid {ny} x {nx} px, "
        f"{n_used}/{nty * ntx} tiles of {sy} x {sx} px"
    )
    ax.set_title(title, fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    return out_png


def _colorbar_ticks(top: int) -> Sequence[int]:
    if top <= 12:
        return list(range(1, top + 1))
    step = math.ceil(top / 10)
    return list(range(1, top + 1, step))
