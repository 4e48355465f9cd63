"""Text reports of plans, mosaics and runs, for the terminal and for notebooks.

The command line prints these; in a notebook ``print(plan.summary())``,
``print(mosaic_info("out.zarr"))``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..store import as_location, read_metadata, tiles_done

__all__ = ["format_value", "mosaic_info", "mosaic_info_json", "plan_summary", "run_summary"]


def format_value(value: Any) -> str:
    """A metadata value as text (floats with 10 significant digits)."""
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def plan_summary(plan: Any) -> str:
    """Grid, tiles, halo, inputs and groups of a :class:`~dask_resample.planning.plan.MosaicPlan`.

    Returns
    -------
    str
        A few lines, without a final newline.
    """
    counts = plan.tile_input_counts()
    used = counts[counts > 0]
    ny, nx = plan.grid.shape_yx
    sy, sx = plan.tiles.tile_shape_yx
    nty, ntx = plan.tiles.n_tiles_yx
    lines = [
        f"grid:            {ny} x {nx} pixels ({ny * nx / 1e6:.3g} Mpix), pixel scale "
        f"{plan.grid.pixel_scale:.6g} arcsec (ratio {plan.grid.pixel_scale_ratio:.6g})",
        f"tiles:           {nty} x {ntx} tiles of {sy} x {sx} pixels; {used.size} receive inputs",
        f"halo:            {plan.halo} pixels",
        f"inputs:          {len(plan.refs)} ({len(plan.skipped)} skipped)",
        f"groups:          {len(plan.groups)}" + ("" if plan.groups != ("",) else " (one mosaic)"),
    ]
    if used.size:
        lines.append(
            f"inputs per tile: min {int(used.min())}, median {float(np.median(used)):g}, max {int(used.max())}"
        )
        per_input = [len(plan.exposure_tiles.get(r.index, ())) for r in plan.refs if r.index not in plan.skipped]
        lines.append(f"tiles per input: min {min(per_input)}, max {max(per_input)}")
    for i in plan.skipped:
        lines.append(f"skipped:         {plan.refs[i].filename} (does not overlap the grid)")
    return "\n".join(lines)


def mosaic_info_json(path: str | os.PathLike | Any, storage_options: Mapping[str, Any] | None = None) -> str:
    """The stored metadata of a mosaic as JSON (without the ASDF WCS), with the tiles written per group."""
    path = as_location(path, storage_options)
    meta = read_metadata(path)
    doc = dict(meta)
    doc.pop("wcs_asdf", None)
    doc["tiles_done"] = {g: len(tiles_done(path, g)) for g in (meta.get("groups") or [""])}
    return json.dumps(doc, indent=2, default=str)


def mosaic_info(path: str | os.PathLike | Any, storage_options: Mapping[str, Any] | None = None) -> str:
    """Grid, WCS, tiles written, parameters, totals and inputs of a mosaic.

    Parameters
    ----------
    path : path-like
        The Zarr mosaic.

    Returns
    -------
    str
        Lines of text, without a final newline.
    """
    path = as_location(path, storage_options)
    meta = read_metadata(path)
    grid = meta.get("grid", {})
    ny, nx = grid.get("shape_yx", (0, 0))
    sy, sx = grid.get("tile_shape_yx", (0, 0))
    nty, ntx = (-(-ny // sy) if sy else 0), (-(-nx // sx) if sx else 0)
    out = [
        f"mosaic:       {path}",
        f"software:     {meta.get('software', '?')} (format {meta.get('format_version', '?')})",
        f"mode:         {meta.get('mode')}",
        f"grid:         {ny} x {nx} pixels ({ny * nx / 1e6:.3g} Mpix)",
        f"pixel scale:  {format_value(grid.get('pixel_scale'))} arcsec "
        f"(ratio {format_value(grid.get('pixel_scale_ratio'))})",
        f"tiles:        {sy} x {sx} pixels; {nty} x {ntx} tiles; halo {grid.get('halo', '?')} px",
        f"arrays:       {', '.join(meta.get('arrays', []))}",
        "tiles written:",
    ]
    planned = meta.get("n_tiles_planned") or {}
    for g in meta.get("groups") or [""]:
        done = len(tiles_done(path, g))
        want = planned.get(g)
        state = "" if want is None else (" (complete)" if done >= want else " (incomplete: --resume to finish)")
        out.append(f"  {g or '(mosaic)'}: {done} / {want if want is not None else '?'}{state}")
    out.append("WCS:")
    for key, value in meta.get("wcs_fits", {}).items():
        out.append(f"  {key:<8} = {format_value(value)}")
    out.append("parameters:")
    for key, value in meta.get("params", {}).items():
        out.append(f"  {key:<16} {format_value(value)}")
    out.append("totals:")
    for key, value in meta.get("totals", {}).items():
        out.append(f"  {key:<22} {format_value(value)}")
    rows = meta.get("inputs", [])
    out.append(f"inputs ({len(rows)}):")
    if rows:
        width = max(len(str(r.get("filename"))) for r in rows)
        gwidth = max(len(str(r.get("group_id"))) for r in rows)
        out.append(f"  {'#':>4}  {'filename':<{width}}  {'group':<{gwidth}}  {'exptime':>9}  {'ctx':>4}  skipped")
        for r in rows:
            exptime = r.get("exposure_time")
            out.append(
                f"  {r.get('index', '?'):>4}  {str(r.get('filename')):<{width}}  {str(r.get('group_id')):<{gwidth}}  "
                f"{'' if exptime is None else f'{exptime:9.1f}':>9}  {str(r.get('context_bit', '')):>4}  "
                f"{'yes' if r.get('skipped') else 'no'}"
            )
    return "\n".join(out)


def run_summary(summary: Any) -> str:
    """One line on what a run did (a :class:`~dask_resample.api.RunSummary`)."""
    slowest = ", ".join(f"{name} {s:.2f} s" for name, s in summary.slowest_tasks) or "-"
    return (
        f"Mosaic {'incomplete' if summary.n_tiles_failed else 'done'}: {summary.n_inputs} inputs, "
        f"{summary.n_tiles} tiles written ({summary.n_tiles_skipped} already complete, "
        f"{summary.n_tiles_failed} failed), {summary.seconds:.1f} s; slowest tasks: {slowest}"
    )
