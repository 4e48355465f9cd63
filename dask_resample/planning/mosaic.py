"""The planning step as a whole: inputs in, a :class:`~dask_resample.planning.plan.MosaicPlan` out, and its empty store.

:func:`plan_mosaic` resolves and describes the inputs, chooses the output grid and plans the
tiles (no pixel is read); :func:`create_plan_store` creates a plan's empty store, layout and
metadata complete (:func:`plan_root_attrs`: the root metadata, also a living mosaic's).
"""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import config
from .._version import __version__
from ..geometry import OutputGrid, load_asdf_extensions, wcs_to_fits_header
from ..geometry.grid import make_output_grid
from ..inputs.io import (
    ExposureRef,
    InputError,
    check_group_ids,
    describe_resolved,
    resolve_inputs,
)
from ..params import ResampleParams
from ..store import FORMAT_VERSION, Location, create_store
from .plan import MODES, MosaicPlan, compute_footprints, make_plan

__all__ = ["create_plan_store", "exposure_totals", "grid_record", "plan_mosaic", "plan_root_attrs"]

log = logging.getLogger(__name__)


def exposure_totals(refs: Sequence[ExposureRef]) -> dict[str, Any]:
    """Exposure-time totals as ``stcal.resample.Resample`` computes them.

    Times are counted once per exposure group (first member of each group).
    """
    seen: set[str] = set()
    total_exp = 0.0
    total_meas = 0.0
    duration = 0.0
    starts, ends, success = [], [], []
    for ref in refs:
        if ref.group_id in seen:
            continue
        seen.add(ref.group_id)
        starts.append(ref.start_time)
        ends.append(ref.end_time)
        if ref.exposure_time is not None:
            total_exp += ref.exposure_time
        if ref.measurement_time is not None:
            total_meas += ref.measurement_time
            success.append(True)
        else:
            total_meas += ref.exposure_time or 0.0
            success.append(False)
        if ref.duration is not None:
            duration += ref.duration
    known_starts = [s for s in starts if s is not None]
    known_ends = [e for e in ends if e is not None]
    return {
        "exposure_time": total_exp,
        "measurement_time": total_meas if success and all(success) else None,
        "start_time": min(known_starts) if known_starts else None,
        "end_time": max(known_ends) if known_ends else None,
        "duration": duration,
        "elapsed_exposure_time": duration,
        "pointings": len(seen),
    }


def grid_record(grid: OutputGrid, tile_shape: tuple[int, int], halo: int | None = None) -> dict[str, Any]:
    """The ``grid`` record of a mosaic's metadata (shapes, pixel scale and area, halo)."""
    rec = {
        "shape_yx": list(grid.shape_yx),
        "tile_shape_yx": list(tile_shape),
        "pixel_scale": grid.pixel_scale,
        "pixel_scale_ratio": grid.pixel_scale_ratio,
        "pixelarea_steradians": grid.pixelarea_steradians,
        "pixelarea_arcsecsq": grid.pixelarea_arcsecsq,
    }
    if halo is not None:
        rec["halo"] = halo
    return rec


def plan_mosaic(
    inputs: Any,
    *,
    mode: str = "many_to_one",
    params: ResampleParams | None = None,
    output_wcs: Mapping[str, Any] | None = None,
    wcs_pars: Mapping[str, Any] | None = None,
    tile_shape: Sequence[int] | None = None,
    client: Any = None,
    max_output_pixels: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **param_kwargs: Any,
) -> MosaicPlan:
    """Plan a mosaic without reading any pixel: grid, tiles and overlap index.

    Parameters are those of :func:`resample`. ``client`` reads the input
    metadata on its workers (``None``: in this process); ``storage_options``
    open input URLs.

    Returns
    -------
    MosaicPlan
        ``print(plan.summary())`` describes it, ``plan.coverage_png(path)``
        draws it and ``resample(plan, output)`` runs it.
    """
    params = ResampleParams.from_kwargs(params, **param_kwargs)
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    tile_shape = tuple(int(v) for v in (tile_shape or config.get("tile-shape") or config.DEFAULT_TILE_SHAPE))
    if len(tile_shape) != 2 or min(tile_shape) < 1:
        raise ValueError(f"tile_shape: expected two positive integers (ny, nx), got {tile_shape}")
    resolved = resolve_inputs(inputs, storage_options=storage_options)
    asdf_loaded = None
    if client is not None and all(r.kind != "memory" for r in resolved):
        # the grid's ASDF text needs ASDF's extensions, about a second to load in a fresh worker: one
        # worker loads them while the others describe the inputs, and the grid task, which takes the
        # result, then runs where they are loaded (a worker that has loaded them returns at once)
        asdf_loaded = client.submit(load_asdf_extensions, key=f"load-asdf-extensions-{uuid.uuid4()}")
    try:
        refs = describe_resolved(resolved, client=client)
        if mode == "many_to_many":
            check_group_ids(refs)
        if asdf_loaded is not None:
            # the grid needs the reference exposure's WCS: read it on a worker, not here
            grid = client.submit(
                _output_grid_task,
                refs,
                asdf_loaded,
                output_wcs=output_wcs,
                wcs_pars=wcs_pars,
                key=f"make_output_grid-{uuid.uuid4()}",
            ).result()
        else:
            grid = make_output_grid(refs, output_wcs=output_wcs, wcs_pars=wcs_pars)
    finally:
        if asdf_loaded is not None:
            asdf_loaded.release()  # also when planning fails (a bad input): nothing is left on the cluster
    if max_output_pixels is None:
        max_output_pixels = config.get("max-output-pixels") or config.DEFAULT_MAX_OUTPUT_PIXELS
    limit = int(max_output_pixels)
    npix = grid.shape_yx[0] * grid.shape_yx[1]
    if npix > limit:
        raise ValueError(
            f"output shape {grid.shape_yx} ({npix:.3g} pixels) exceeds max_output_pixels={limit:.3g}; "
            "check wcs_pars/output_wcs or raise the limit"
        )
    footprints = compute_footprints(refs, grid.wcs)
    plan = make_plan(
        refs, grid, params, tile_shape=tile_shape, many_to_many=(mode == "many_to_many"), footprints=footprints
    )
    for i in plan.skipped:
        warnings.warn(f"{refs[i].filename}: does not overlap the output grid; skipped", stacklevel=2)
        log.warning("%s: does not overlap the output grid; skipped", refs[i].filename)
    if len(plan.skipped) == len(refs):
        raise InputError("inputs: no input overlaps the output grid")
    return plan


def _output_grid_task(refs: Sequence[Any], asdf_loaded: int, **kwargs: Any) -> OutputGrid:
    """:func:`make_output_grid` on a worker, with the grid's ASDF text made there (see :meth:`OutputGrid.wcs_asdf`).

    ``asdf_loaded`` is the result of :func:`~dask_resample.geometry.load_asdf_extensions`: the task
    runs after it, on the worker that holds it.
    """
    return make_output_grid(refs, **kwargs).with_wcs_text()


def _metadata(plan: MosaicPlan, mode: str, group: str | None) -> dict[str, Any]:
    """Attributes of the root (group=None) or of one group's output."""
    if group is None:
        refs = list(plan.refs)
    else:
        refs = [plan.refs[i] for i in plan.members[group]]
    inputs = []
    for r in refs:
        rec = r.to_record()
        rec["context_bit"] = plan.ctx_bit.get(r.index)
        rec["skipped"] = r.index in plan.skipped
        inputs.append(rec)
    return {
        "inputs": inputs,
        "totals": exposure_totals([r for r in refs if r.index not in plan.skipped]),
    }


def plan_root_attrs(
    plan: MosaicPlan,
    *,
    mode: str,
    arrays: Sequence[str],
    fingerprint: str = "",
    extra_attrs: Mapping[str, Any] | None = None,
    shard_tiles_yx: tuple[int, int] = (1, 1),
) -> dict[str, Any]:
    """The root metadata of a plan's store (see :func:`create_plan_store`; also a living mosaic's)."""
    grid_rec = grid_record(plan.grid, plan.tiles.tile_shape_yx, plan.halo) | {"shard_tiles": list(shard_tiles_yx)}
    return {
        "format_version": FORMAT_VERSION,
        "software": f"dask-resample {__version__}",
        "mode": mode,
        "params": plan.params.to_dict(),
        "grid": grid_rec,
        "wcs_fits": wcs_to_fits_header(plan.grid.wcs),
        "wcs_asdf": plan.grid.wcs_asdf(),
        "groups": [g for g in plan.groups] if mode == "many_to_many" else [],
        "arrays": list(arrays),
        "fingerprint": fingerprint,
        "n_tiles_planned": {g: len(plan.tiles_of(g)) for g in plan.groups},
        **_metadata(plan, mode, None),
        **dict(extra_attrs or {}),
    }


def create_plan_store(
    plan: MosaicPlan,
    output: str | Path | Location,
    *,
    mode: str,
    arrays: Sequence[str],
    fill_values: Mapping[str, Any],
    fingerprint: str = "",
    extra_attrs: Mapping[str, Any] | None = None,
    shard_tiles_yx: tuple[int, int] = (1, 1),
) -> None:
    """Create the empty store of a plan (layout and metadata complete before any tile is computed).

    Parameters
    ----------
    plan : MosaicPlan
    output : path, URL or Location
        Store to create (must not exist).
    mode : {"many_to_one", "many_to_many"}
    arrays : sequence of str
        Array names.
    fill_values : mapping
        Array name -> value of a pixel no input reaches.
    fingerprint : str
        Inputs/parameters/grid digest, checked on resume.
    extra_attrs : mapping, optional
        More root metadata.
    shard_tiles_yx : tuple of int
        Tiles per Zarr shard (``(1, 1)``: no sharding).
    """
    root = plan_root_attrs(
        plan, mode=mode, arrays=arrays, fingerprint=fingerprint, extra_attrs=extra_attrs, shard_tiles_yx=shard_tiles_yx
    )
    if mode == "many_to_many" or plan.mode == "many_to_one":
        groups = {
            g: {"attrs": _metadata(plan, mode, g) | {"group_id": g}, "n_ctx_planes": plan.n_ctx_planes(g)}
            for g in plan.groups
        }
    else:  # one output on the grid of a many-to-many plan (the outlier median)
        groups = {"": {"attrs": {}, "n_ctx_planes": 1}}
    create_store(
        output,
        groups=groups,
        root_attrs=root,
        shape_yx=plan.grid.shape_yx,
        tile_shape_yx=plan.tiles.tile_shape_yx,
        arrays=tuple(arrays),
        fill_values=fill_values,
        many_to_many=(mode == "many_to_many"),
        shard_tiles_yx=shard_tiles_yx,
    )
