"""``resample()``: inputs in, a Zarr mosaic out, opened as an xarray Dataset."""

from __future__ import annotations

import logging
import math
import sys
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import ResampleParams
from .graph import build_graph, run_serial
from .grid import DEFAULT_TILE_SHAPE, OutputGrid, make_output_grid
from .io import ExposureRef, InputError, collect_exposures
from .plan import SINGLE_GROUP, MosaicPlan, compute_footprint, make_plan
from .reduce import output_arrays
from .store import (
    FORMAT_VERSION,
    MosaicExistsError,
    create_store,
    finalize_store,
    gwcs_to_text,
    input_fingerprint,
    is_mosaic,
    open_mosaic,
    prepare_output,
    read_metadata,
    tiles_done,
    wcs_to_fits_header,
)

__all__ = ["RunSummary", "exposure_totals", "plan_mosaic", "resample"]

log = logging.getLogger(__name__)

#: Refuse outputs larger than this many pixels unless told otherwise (1e10 px ~ 200 GB of arrays).
DEFAULT_MAX_OUTPUT_PIXELS = 10_000_000_000

MODES = ("many_to_one", "many_to_many")


@dataclass
class RunSummary:
    """What a run did (also logged at the end)."""

    n_inputs: int
    n_tiles: int
    n_tiles_skipped: int
    seconds: float
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped_inputs: list[str] = field(default_factory=list)


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
    starts = [s for s in starts if s is not None]
    ends = [e for e in ends if e is not None]
    return {
        "exposure_time": total_exp,
        "measurement_time": total_meas if success and all(success) else None,
        "start_time": min(starts) if starts else None,
        "end_time": max(ends) if ends else None,
        "duration": duration,
        "elapsed_exposure_time": duration,
        "pointings": len(seen),
    }


def _grid_record(grid: OutputGrid, tile_shape: tuple[int, int], halo: int | None = None) -> dict[str, Any]:
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
) -> MosaicPlan:
    """Plan a mosaic without reading any pixel: grid, tiles and overlap index.

    Parameters are those of :func:`resample`. ``client`` maps the footprint tasks
    (``None``: computed in this process).

    Returns
    -------
    MosaicPlan
    """
    params = params or ResampleParams()
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    tile_shape = tuple(int(v) for v in (tile_shape or DEFAULT_TILE_SHAPE))
    if len(tile_shape) != 2 or min(tile_shape) < 1:
        raise ValueError(f"tile_shape: expected two positive integers (ny, nx), got {tile_shape}")
    refs = collect_exposures(inputs)
    grid = make_output_grid(refs, output_wcs=output_wcs, wcs_pars=wcs_pars)
    limit = DEFAULT_MAX_OUTPUT_PIXELS if max_output_pixels is None else int(max_output_pixels)
    npix = grid.shape_yx[0] * grid.shape_yx[1]
    if npix > limit:
        raise ValueError(
            f"output shape {grid.shape_yx} ({npix:.3g} pixels) exceeds max_output_pixels={limit:.3g}; "
            "check wcs_pars/output_wcs or raise the limit"
        )
    if client is not None:
        futures = client.map(compute_footprint, refs, out_wcs=grid.wcs, pure=False)
        footprints = client.gather(futures)
    else:
        footprints = [compute_footprint(r, grid.wcs) for r in refs]
    plan = make_plan(
        refs, grid, params, tile_shape=tile_shape, many_to_many=(mode == "many_to_many"), footprints=footprints
    )
    for i in plan.skipped:
        warnings.warn(f"{refs[i].filename}: does not overlap the output grid; skipped", stacklevel=2)
        log.warning("%s: does not overlap the output grid; skipped", refs[i].filename)
    if len(plan.skipped) == len(refs):
        raise InputError("inputs: no input overlaps the output grid")
    return plan


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


def resample(
    inputs: Any,
    output: str | Path,
    *,
    mode: str = "many_to_one",
    pixfrac: float = 1.0,
    kernel: str = "square",
    fillval: Any = "NAN",
    weight_type: str = "ivm",
    good_bits: Any = 0,
    output_wcs: Mapping[str, Any] | None = None,
    wcs_pars: Mapping[str, Any] | None = None,
    enable_ctx: bool = True,
    enable_var: bool = True,
    report_var: bool = True,
    compute_err: str | None = None,
    propagate_dq: bool = False,
    pixmap_stepsize: float = 1,
    pixmap_order: int = 1,
    tile_shape: Sequence[int] | None = None,
    client: Any = None,
    overwrite: bool = False,
    resume: bool = False,
    scheduler: str = "distributed",
    progress: bool | None = None,
    max_output_pixels: int | None = None,
) -> Any:
    """Drizzle ``inputs`` into a tiled Zarr mosaic at ``output``.

    Parameter names and defaults follow :class:`jwst.resample.resample.ResampleImage`.

    Parameters
    ----------
    inputs : str, Path, sequence, ModelLibrary
        An association JSON, paths to ``*_cal.fits`` or plain FITS files, a
        ``ModelLibrary`` or in-memory :class:`~dask_resample.io.Exposure` records.
    output : str or Path
        Zarr store to create.
    mode : {"many_to_one", "many_to_many"}
        One output, or one output per exposure group (Zarr subgroups).
    pixfrac, kernel, fillval, weight_type, good_bits
        Drizzle parameters, as in the reference.
    output_wcs : dict, optional
        ``{"wcs": gwcs, "pixel_scale": arcsec}``; else the grid comes from the
        inputs and ``wcs_pars``.
    wcs_pars : dict, optional
        ``pixel_scale_ratio``, ``pixel_scale``, ``output_shape`` (ny, nx),
        ``rotation``, ``crpix``, ``crval``.
    enable_ctx, enable_var, report_var, compute_err, propagate_dq
        Outputs to compute, as in the reference. ``compute_err="from_var"``
        implies variance resampling.
    pixmap_stepsize, pixmap_order
        Sparse pixel-map evaluation, as in the reference.
    tile_shape : (int, int), optional
        Tile (= Zarr chunk) shape (ny, nx); default (1024, 1024).
    client : distributed.Client, optional
        Run on this client; ``None`` uses the current client if there is one,
        else starts a LocalCluster for the duration of the call.
    overwrite : bool
        Replace an existing mosaic at ``output``. A path that is not a mosaic is
        never touched.
    resume : bool
        Finish an interrupted mosaic: only tiles not yet complete are computed,
        after checking that inputs and parameters are unchanged.
    scheduler : {"distributed", "serial"}
        ``"serial"`` runs the same tasks in this process, without Dask.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    max_output_pixels : int, optional
        Refuse larger outputs before allocating anything.

    Returns
    -------
    xarray.Dataset or dict
        ``open_mosaic(output)``; for many-to-many a dict ``{group_id: Dataset}``
        in the reference's group order.
    """
    t_start = time.perf_counter()
    params = ResampleParams(
        pixfrac=pixfrac, kernel=kernel, fillval=fillval, weight_type=weight_type, good_bits=good_bits,
        enable_ctx=enable_ctx, enable_var=enable_var, report_var=report_var, compute_err=compute_err,
        propagate_dq=propagate_dq, pixmap_stepsize=pixmap_stepsize, pixmap_order=pixmap_order,
    )
    if scheduler not in ("distributed", "serial"):
        raise ValueError(f"scheduler: expected 'distributed' or 'serial', got {scheduler!r}")
    output = Path(output)
    if output.exists() and not is_mosaic(output):
        raise MosaicExistsError(f"{output}: exists and is not a dask-resample mosaic; refusing to touch it")
    if output.exists() and not (overwrite or resume):
        raise MosaicExistsError(f"{output}: mosaic exists; pass overwrite=True (--overwrite) to replace it")

    handle = None
    if scheduler == "distributed":
        from .cluster import connect

        handle = connect(client)
        client = handle.client
        if (link := handle.dashboard_link):
            log.info("Dask dashboard: %s", link)
    else:
        client = None
    try:
        plan = plan_mosaic(
            inputs, mode=mode, params=params, output_wcs=output_wcs, wcs_pars=wcs_pars,
            tile_shape=tile_shape, client=client, max_output_pixels=max_output_pixels,
        )
        summary = _execute(plan, output, mode=mode, overwrite=overwrite, resume=resume, client=client,
                           progress=progress)
    finally:
        if handle is not None:
            handle.close()
    summary.seconds = time.perf_counter() - t_start
    _log_summary(summary)
    if mode == "many_to_many":
        return {g: open_mosaic(output, group=g) for g in plan.groups}
    return open_mosaic(output)


def _execute(
    plan: MosaicPlan,
    output: Path,
    *,
    mode: str,
    overwrite: bool,
    resume: bool,
    client: Any,
    progress: bool | None,
) -> RunSummary:
    params = plan.params
    arrays = tuple(output_arrays(params))
    grid_rec = _grid_record(plan.grid, plan.tiles.tile_shape_yx, plan.halo)
    fingerprint = input_fingerprint([r.to_record() for r in plan.refs], params.to_dict(),
                                    {**grid_rec, "wcs": wcs_to_fits_header(plan.grid.wcs)})
    skip: set = set()
    if resume and output.exists():
        meta = read_metadata(output)
        if meta.get("fingerprint") != fingerprint:
            raise ValueError(
                f"{output}: cannot resume: inputs, parameters or grid differ from those of the existing mosaic"
            )
        for g in plan.groups:
            for key in tiles_done(output, g):
                skip.add((g, key))
        log.info("Resuming: %d of %d tiles already complete", len(skip), len(plan.contributions))
    else:
        prepare_output(output, overwrite=overwrite)
        root = {
            "format_version": FORMAT_VERSION,
            "software": f"dask-resample {__version__}",
            "mode": mode,
            "params": params.to_dict(),
            "grid": grid_rec,
            "wcs_fits": wcs_to_fits_header(plan.grid.wcs),
            "wcs_asdf": gwcs_to_text(plan.grid.wcs),
            "groups": [g for g in plan.groups] if mode == "many_to_many" else [],
            "arrays": list(arrays),
            "fingerprint": fingerprint,
            "n_tiles_planned": {g: len(plan.tiles_of(g)) for g in plan.groups},
            **_metadata(plan, mode, None),
        }
        groups = {
            g: {"attrs": _metadata(plan, mode, g) | {"group_id": g}, "n_ctx_planes": plan.n_ctx_planes(g)}
            for g in plan.groups
        }
        create_store(
            output, groups=groups, root_attrs=root, shape_yx=plan.grid.shape_yx,
            tile_shape_yx=plan.tiles.tile_shape_yx, arrays=arrays, fill_value=params.fill_value,
            many_to_many=(mode == "many_to_many"),
        )
    token = uuid.uuid4().hex[:12]
    dsk, keys = build_graph(plan, store_path=str(output), arrays=arrays, token=token, skip_tiles=skip)
    records = _run(dsk, keys, client=client, progress=progress)
    finalize_store(output)
    return RunSummary(
        n_inputs=len(plan.refs) - len(plan.skipped),
        n_tiles=len(records),
        n_tiles_skipped=len(skip),
        seconds=0.0,
        records=records,
        skipped_inputs=[plan.refs[i].filename for i in plan.skipped],
    )


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty()


def _run(dsk: dict, keys: list, *, client: Any, progress: bool | None) -> list[dict[str, Any]]:
    if not keys:
        return []
    show = _progress_enabled(progress)
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(keys), desc="tiles", unit="tile", file=sys.stderr)
    try:
        if client is None:
            def cb(key: Any, result: Any) -> None:
                if bar is not None:
                    bar.update(1)
                else:
                    log.debug("tile %s done", key)

            return run_serial(dsk, keys, callback=cb)
        from distributed import as_completed

        futures = client.get(dsk, keys, sync=False)
        index = {f.key: k for k, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        n_done = 0
        for fut in as_completed(futures):
            results[index[fut.key]] = fut.result()
            n_done += 1
            if bar is not None:
                bar.update(1)
            elif n_done == len(futures) or n_done % max(1, len(futures) // 10) == 0:
                log.info("tiles written: %d/%d", n_done, len(futures))
        return results
    finally:
        if bar is not None:
            bar.close()


def _log_summary(summary: RunSummary) -> None:
    log.info(
        "Mosaic done: %d inputs, %d tiles written (%d already complete), %.1f s",
        summary.n_inputs, summary.n_tiles, summary.n_tiles_skipped, summary.seconds,
    )
