"""``resample()``: inputs in, a Zarr mosaic out, opened as an xarray Dataset."""

from __future__ import annotations

import logging
import sys
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import config
from ._version import __version__
from .drizzle.reduce import empty_pixel_values, output_arrays
from .drizzle.scratch import ScratchSpec, remove_all, runs_on_one_node
from .drizzle.scratch import scratch_root as scratch_root_for
from .execution.graph import GraphOutcome, MosaicGraph, TileTaskError, build_graph, run_graph
from .geometry import OutputGrid, gwcs_to_text, wcs_to_fits_header
from .geometry.grid import make_output_grid
from .inputs.failures import TaskFailure
from .inputs.io import (
    ExposureRef,
    InputError,
    check_group_ids,
    describe_resolved,
    resolve_inputs,
)
from .params import ResampleParams, check_wcs_pars
from .planning.plan import MODES, MosaicPlan, compute_footprints, make_plan
from .products.report import run_summary
from .store import (
    FORMAT_VERSION,
    Location,
    as_location,
    check_output,
    check_output_location,
    create_store,
    finalize_store,
    finish_interrupted_swap,
    index_shards,
    input_fingerprint,
    is_mosaic,
    layout_problems,
    mark_complete,
    open_mosaic,
    read_metadata,
    remove_partial_writes,
    remove_stale_siblings,
    replacement,
    scratch_sibling,
    swap_in,
    tiles_done,
)

__all__ = ["IncompleteMosaicError", "RunSummary", "exposure_totals", "plan_mosaic", "resample"]

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did (also logged at the end)."""

    n_inputs: int
    n_tiles: int
    n_tiles_skipped: int
    seconds: float
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped_inputs: list[str] = field(default_factory=list)
    n_tiles_failed: int = 0
    slowest_tasks: list[tuple[str, float]] = field(default_factory=list)


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
    refs = describe_resolved(resolve_inputs(inputs, storage_options=storage_options), client=client)
    if mode == "many_to_many":
        check_group_ids(refs)
    if client is not None and all(r.kind != "memory" for r in refs):
        # the grid needs the reference exposure's WCS: read it on a worker, not here
        grid = client.submit(make_output_grid, refs, output_wcs=output_wcs, wcs_pars=wcs_pars, pure=False).result()
    else:
        grid = make_output_grid(refs, output_wcs=output_wcs, wcs_pars=wcs_pars)
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
    output: str | Path | Location,
    *,
    storage_options: Mapping[str, Any] | None = None,
    mode: str | None = None,
    params: ResampleParams | None = None,
    output_wcs: Mapping[str, Any] | None = None,
    wcs_pars: Mapping[str, Any] | None = None,
    tile_shape: Sequence[int] | None = None,
    client: Any = None,
    overwrite: bool = False,
    resume: bool = False,
    scheduler: str = "distributed",
    progress: bool | None = None,
    max_output_pixels: int | None = None,
    fast_pixmap: bool | None = None,
    outliers: Any = False,
    **param_kwargs: Any,
) -> Any:
    """Drizzle ``inputs`` into a tiled Zarr mosaic at ``output``.

    Parameter names and defaults follow :class:`jwst.resample.resample.ResampleImage`.

    Parameters
    ----------
    inputs : str, Path, sequence, ModelLibrary or MosaicPlan
        An association JSON, paths to ``*_cal.fits`` or plain FITS files, a
        ``ModelLibrary`` or in-memory :class:`~dask_resample.inputs.io.Exposure`
        records; or a plan from :func:`plan_mosaic`, which is run as it is
        (then the planning arguments ``mode``, ``params``, ``output_wcs``,
        ``wcs_pars``, ``tile_shape``, ``max_output_pixels`` and the drizzle
        parameters must not be given).
    output : str, Path or Location
        Zarr store to create: a local path or any fsspec URL (``s3://``,
        ``gs://``, ``az://``, ``memory://`` with ``scheduler="serial"``, ...).
        Scratch partials go beside it, on the same store
        (``resample.scratch-dir`` moves them). On object stores the arrays are
        sharded (``resample.shard-tiles``).
    storage_options : mapping, optional
        Options of the URL's file system (``key``, ``secret``,
        ``endpoint_url``, ``client_kwargs``, ...), as for fsspec; they also
        apply to input URLs.
    mode : {"many_to_one", "many_to_many"}, optional
        One output (default), or one output per exposure group (Zarr subgroups).
    params : ResampleParams, optional
        The drizzle and output parameters as one record; or give them as
        keywords (below), not both.
    **param_kwargs
        The fields of :class:`~dask_resample.params.ResampleParams`, as in the
        reference: ``pixfrac``, ``kernel``, ``fillval``, ``weight_type``,
        ``good_bits``, ``enable_ctx``, ``enable_var``, ``report_var``,
        ``compute_err`` (``"from_var"`` gives an error array only with
        ``enable_var=True``), ``propagate_dq``, ``pixmap_stepsize``,
        ``pixmap_order``.
    output_wcs : dict, optional
        ``{"wcs": gwcs, "pixel_scale": arcsec}``; else the grid comes from the
        inputs and ``wcs_pars``.
    wcs_pars : dict, optional
        ``pixel_scale_ratio``, ``pixel_scale``, ``output_shape`` (ny, nx),
        ``rotation``, ``crpix``, ``crval``.
    tile_shape : (int, int), optional
        Tile (= Zarr chunk) shape (ny, nx); default ``resample.tile-shape``
        of :mod:`dask.config` (1024, 1024).
    client : distributed.Client, optional
        Run on this client; ``None`` uses the current client if there is one,
        else starts a LocalCluster for the duration of the call.
    overwrite : bool
        Replace an existing mosaic at ``output``. A path that is not a mosaic is
        never touched. The new mosaic is built beside the old one (a hidden
        sibling ``.<name>.replacing-<digest>``) and takes its place only when
        complete, so a failed or killed run leaves the old mosaic as it was;
        running the same command again resumes (``resume=True``) or finishes
        the replacement.
    resume : bool
        Finish an interrupted mosaic: only tiles not yet complete are computed,
        after checking that inputs, parameters and grid are unchanged (else
        ``ValueError``). Starts a new mosaic if ``output`` does not exist.
    scheduler : {"distributed", "serial"}
        ``"serial"`` runs the same tasks in this process, without Dask.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    max_output_pixels : int, optional
        Refuse larger outputs before allocating anything.
    fast_pixmap : bool, optional
        Map inputs onto the output with one composed sky rotation where the WCSs
        allow it (checked against the full WCS evaluation, to 1e-7 pixel);
        ``False`` gives pixel maps bit-identical to ``calc_pixmap``. Default
        ``resample.fast-pixmap`` of :mod:`dask.config` (true).
    outliers : bool, OutlierParams or mapping
        Flag outliers first, as jwst's imaging ``OutlierDetectionStep`` does
        (:func:`dask_resample.detect_outliers`; ``True`` for the step's
        defaults, or its parameters), and drizzle the inputs with the flags
        applied, in the same graph and without intermediate files: the mosaic
        is the one made from the step's ``*_crf.fits`` files.

    Returns
    -------
    xarray.Dataset or dict
        ``open_mosaic(output)``; for many-to-many a dict ``{group_id: Dataset}``
        in the reference's group order.

    Raises
    ------
    IncompleteMosaicError
        If some tiles failed (an input that cannot be read, ...): raised after
        every other tile is written; the message names the inputs.
    """
    t_start = time.perf_counter()
    given_plan = inputs if isinstance(inputs, MosaicPlan) else None
    if given_plan is not None:
        planning = {"mode": mode, "params": params, "output_wcs": output_wcs, "wcs_pars": wcs_pars,
                    "tile_shape": tile_shape, "max_output_pixels": max_output_pixels, **param_kwargs}
        extra = sorted(k for k, v in planning.items() if v is not None)
        if extra:
            raise TypeError(f"resample(plan, ...): {', '.join(extra)} belong to plan_mosaic(), not to running a plan")
        mode = given_plan.mode
    else:
        mode = mode or "many_to_one"
        params = ResampleParams.from_kwargs(params, **param_kwargs)
    outlier_params = _outlier_params(outliers)
    if scheduler not in ("distributed", "serial"):
        raise ValueError(f"scheduler: expected 'distributed' or 'serial', got {scheduler!r}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    check_wcs_pars(wcs_pars)
    output = as_location(output, storage_options)
    # what cannot be served or may not be touched fails here, before any cluster starts
    check_output_location(output, distributed=scheduler == "distributed")
    check_output(output, overwrite=overwrite, resume=resume)
    resolved = None if given_plan is not None else resolve_inputs(inputs, storage_options=storage_options)

    handle, client = connect_for_run(client, scheduler)
    try:
        plan = given_plan or plan_mosaic(
            resolved, mode=mode, params=params, output_wcs=output_wcs, wcs_pars=wcs_pars,
            tile_shape=tile_shape, client=client, max_output_pixels=max_output_pixels,
        )
        summary = _execute(plan, output, mode=mode, overwrite=overwrite, resume=resume, client=client,
                           progress=progress, fast_pixmap=fast_pixmap, outliers=outlier_params,
                           max_output_pixels=max_output_pixels, one_node=runs_on_one_node(client))
    finally:
        if handle is not None:
            handle.close()
    summary.seconds = time.perf_counter() - t_start
    _log_summary(summary)
    if mode == "many_to_many":
        return {g: open_mosaic(output, group=g) for g in plan.groups}
    return open_mosaic(output)


def prepare_worker() -> None:
    """Import what the tasks use, load the JWST datamodel schemas, tune the allocator (a worker task).

    A fresh worker process otherwise pays this (about a second) in its first
    task; run while the client plans, it costs no wall time. The objects made
    so far (modules, schemas) are then frozen out of Python's cycle collector
    (``gc.freeze``), so that the collections of
    :func:`dask_resample.drizzle.kernel.release_free_memory` cost microseconds.
    """
    import gc

    from . import store  # noqa: F401
    from .drizzle import kernel, reduce  # noqa: F401
    from .drizzle.worker_memory import tune_allocator
    from .outliers import flag, median, threshold  # noqa: F401

    if config.get("fused-kernel"):
        kernel.fused_kernel_available()  # imports numba and the kernels (machine code from numba's cache)
    if config.get("fast-pixmap"):
        from .geometry import pixmap

        if pixmap.compiled_available():
            from .geometry import pixmap_compiled

            pixmap_compiled.warm_up()  # the compiled pixel map, loaded from numba's cache
    tune_allocator(config.get("local.malloc-trim-threshold"))  # a cluster the user started

    try:
        from stdatamodels.jwst.datamodels import ImageModel
    except ImportError:  # the jwst extra is absent
        ImageModel = None
    if ImageModel is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ImageModel().close()
    if not gc.get_freeze_count():  # once per process: later objects may belong to running tasks
        gc.collect()
        gc.freeze()


def connect_for_run(client: Any, scheduler: str) -> tuple[Any, Any]:
    """``(handle, client)`` to run on: ``client`` (or the current one, or a new LocalCluster).

    :func:`prepare_worker` is started on every worker without waiting for it.

    ``scheduler="serial"`` gives ``(None, None)``: the tasks run in this process.
    The caller closes the handle (it only closes what it started).
    """
    if scheduler != "distributed":
        return None, None
    from .cluster import connect

    handle = connect(client)
    if (link := handle.dashboard_link):
        log.info("Dask dashboard: %s", link)
    _prepare_workers(handle.client)
    return handle, handle.client


def _prepare_workers(client: Any) -> None:
    """Start :func:`prepare_worker` on every worker without waiting for it."""
    from distributed import fire_and_forget

    try:
        workers = list(client.scheduler_info().get("workers", {}))
    except Exception:  # pragma: no cover - a scheduler that does not answer now fails later, clearly
        return
    for address in workers:
        fire_and_forget(client.submit(prepare_worker, workers=[address], allow_other_workers=True, pure=False,
                                      key=f"prepare-worker-{uuid.uuid4().hex[:12]}"))


def _outlier_params(outliers: Any) -> Any:
    """``resample(outliers=...)`` as an ``OutlierParams`` record, or ``None`` for no outlier detection."""
    if outliers is None or outliers is False:
        return None
    from .outliers import OutlierParams

    if outliers is True:
        return OutlierParams()
    if isinstance(outliers, (OutlierParams, Mapping)):
        params = OutlierParams.from_kwargs(outliers)
        if params.save_intermediate_results:
            warnings.warn("outliers: save_intermediate_results is for detect_outliers(); resample(outliers=...) "
                          "keeps no intermediate product", stacklevel=3)
        return params
    raise TypeError(f"outliers: expected a bool, OutlierParams or a mapping of its parameters, got {outliers!r}")


def _execute(
    plan: MosaicPlan,
    output: Location,
    *,
    mode: str,
    overwrite: bool,
    resume: bool,
    client: Any,
    progress: bool | None,
    fast_pixmap: bool | None = None,
    outliers: Any = None,
    max_output_pixels: int | None = None,
    one_node: bool = False,
) -> RunSummary:
    """Create (or reopen, for resume) the store and compute the missing tiles.

    The store's layout and metadata are complete before the first tile is
    computed, and every tile (or shard) records completion after its data, so
    that a run killed at any point can be resumed. A mosaic that replaces an
    existing one is built beside it and swapped in when complete. ``one_node``:
    every process of the run is on this machine (see :func:`~dask_resample.drizzle.scratch.runs_on_one_node`).
    """
    t_start = time.perf_counter()
    output = as_location(output)
    params = plan.params
    arrays = tuple(output_arrays(params))
    grid_rec = _grid_record(plan.grid, plan.tiles.tile_shape_yx, plan.halo)
    input_options = next((dict(o) for r in plan.refs if (o := getattr(r, "storage_options", None))), None)
    fingerprint = input_fingerprint([r.to_record() for r in plan.refs],
                                    params.to_dict() | ({"outliers": outliers.to_dict()} if outliers else {}),
                                    {**grid_rec, "wcs": wcs_to_fits_header(plan.grid.wcs)},
                                    storage_options=input_options)
    target = output
    if output.exists() and is_mosaic(output) and (overwrite or resume):
        if finish_interrupted_swap(output, fingerprint):
            log.info("%s: finished the replacement left by an interrupted run", output)
            if resume:
                return _summary(plan, None, n_skipped=len(plan.contributions), graph=None)
        same = _same_run(output, fingerprint, mode, arrays)
        if overwrite and not (resume and same):
            # replace: build beside the old mosaic, which stays readable until the new one is complete
            output = replacement(target, fingerprint)
            if not resume:
                output.remove()
    skip = _resume_state(plan, output, mode=mode, arrays=arrays, fingerprint=fingerprint) if resume else None
    outlier_plan = None
    with_outliers = outliers is not None and len(plan.refs) >= 2
    if outliers is not None and not with_outliers:
        log.warning("outlier detection needs at least 2 inputs, got %d: skipped", len(plan.refs))
    if with_outliers:  # plan the median grid before touching the output: what can fail there fails now
        from .outliers.stage import plan_stage

        outlier_plan = plan_stage(list(plan.refs), outliers, client=client, tile_shape=plan.tiles.tile_shape_yx,
                                  max_output_pixels=max_output_pixels)
    shard_tiles = shard_tiles_for(output)
    if skip is None:
        if output.exists():
            output.remove()  # a store of this package left half-created, or an old replacement
        create_plan_store(plan, output, mode=mode, arrays=arrays, fingerprint=fingerprint,
                          fill_values=empty_pixel_values(params, plan.grid.pixel_scale_ratio),
                          extra_attrs={"outliers": outliers.to_dict()} if outliers is not None else None,
                          shard_tiles_yx=shard_tiles)
        skip = set()
    else:
        shard_tiles = tuple(read_metadata(output).get("grid", {}).get("shard_tiles", (1, 1)))
    token = uuid.uuid4().hex[:12]
    remove_stale_siblings(target, kinds=("staging", "trash", "scratch"))  # left by a killed run
    scratch_root = scratch_root_for(scratch_sibling(target, token), f"{target.name}-{token}", one_node=one_node)
    try:
        stage = None
        if with_outliers:
            # flag first, in the same graph: each exposure is drizzled after its flagging, with its mask applied
            from .outliers.graph import OutlierWork
            from .outliers.stage import prepare_stage

            work = OutlierWork.under(scratch_root.join("outliers"))
            stage = prepare_stage(list(plan.refs), outliers, work, token=f"{token}-od", client=client,
                                  tile_shape=plan.tiles.tile_shape_yx, plan=outlier_plan)
            plan = replace(plan, refs=tuple(replace(r, outlier_mask=work.mask(r.index)) for r in plan.refs))
        graph = build_graph(plan, store_path=output, arrays=arrays, token=token, scratch_root=scratch_root,
                            skip_tiles=skip, fast_pixmap=fast_pixmap,
                            exposure_after=None if stage is None else stage.graph.flag_keys,
                            shard_tiles_yx=shard_tiles)
        if stage is not None:
            graph = replace(graph, dsk={**stage.graph.dsk, **graph.dsk})
        log.info("%s: %d %s to compute from %d inputs (%d tasks)", target, len(graph.tile_keys),
                 "shards" if shard_tiles != (1, 1) else "tiles", len(plan.refs) - len(plan.skipped), len(graph.dsk))
        outcome = _run(graph, client=client, progress=progress,
                       **({"desc": "shards", "unit": "shard"} if shard_tiles != (1, 1) else {}))
    finally:
        remove_all(ScratchSpec(root=scratch_root))
    summary = _summary(plan, outcome, n_skipped=len(skip), graph=graph)
    if outcome.failures:
        summary.seconds = time.perf_counter() - t_start
        _log_summary(summary)
        raise IncompleteMosaicError.from_failures(target, outcome.failures, graph, summary)
    complete: dict[str, Any] = {"fingerprint": fingerprint, "software": f"dask-resample {__version__}"}
    if shard_tiles != (1, 1):  # readers then fetch one tile in one ranged request
        complete["shard_index"] = index_shards(output, list(plan.groups) if mode == "many_to_many" else [""],
                                               arrays)
    mark_complete(output, complete)
    finalize_store(output)
    if output != target:
        swap_in(output, target)
    return summary


def _same_run(output: Location, fingerprint: str, mode: str, arrays: tuple[str, ...]) -> bool:
    """True if the mosaic at ``output`` was made from these inputs, parameters and grid."""
    try:
        meta = read_metadata(output)
    except (OSError, ValueError):
        return False
    return (meta.get("fingerprint") == fingerprint and meta.get("mode") == mode
            and list(meta.get("arrays", [])) == list(arrays))


def shard_tiles_for(output: Location) -> tuple[int, int]:
    """Tiles per Zarr shard for a store at ``output``: ``resample.shard-tiles`` (``auto``: 4 x 4 on object stores)."""
    value = config.get("shard-tiles")
    if value in (None, "auto"):
        return (1, 1) if output.is_local else (4, 4)
    ny, nx = (int(v) for v in (value if isinstance(value, (list, tuple)) else (value, value)))
    if ny < 1 or nx < 1:
        raise ValueError(f"resample.shard-tiles: expected 'auto' or positive (ny, nx), got {value!r}")
    return ny, nx


def _summary(plan: MosaicPlan, outcome: GraphOutcome | None, *, n_skipped: int,
             graph: MosaicGraph | None) -> RunSummary:
    """The run's summary; shard records count their tiles."""
    records: list[dict[str, Any]] = []
    for rec in (outcome.records.values() if outcome is not None else ()):
        records.extend(rec["tiles"] if "tiles" in rec else [rec])
    failures = outcome.failures if outcome is not None else {}
    return RunSummary(
        n_inputs=len(plan.refs) - len(plan.skipped),
        n_tiles=len(records),
        n_tiles_skipped=n_skipped,
        seconds=0.0,
        records=records,
        skipped_inputs=[plan.refs[i].filename for i in plan.skipped],
        n_tiles_failed=len(failures),
        slowest_tasks=_slowest(outcome.seconds, graph) if outcome is not None and graph is not None else [],
    )


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
    grid_rec = _grid_record(plan.grid, plan.tiles.tile_shape_yx, plan.halo) | {"shard_tiles": list(shard_tiles_yx)}
    return {
        "format_version": FORMAT_VERSION,
        "software": f"dask-resample {__version__}",
        "mode": mode,
        "params": plan.params.to_dict(),
        "grid": grid_rec,
        "wcs_fits": wcs_to_fits_header(plan.grid.wcs),
        "wcs_asdf": gwcs_to_text(plan.grid.wcs),
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
    root = plan_root_attrs(plan, mode=mode, arrays=arrays, fingerprint=fingerprint, extra_attrs=extra_attrs,
                           shard_tiles_yx=shard_tiles_yx)
    if mode == "many_to_many" or plan.mode == "many_to_one":
        groups = {
            g: {"attrs": _metadata(plan, mode, g) | {"group_id": g}, "n_ctx_planes": plan.n_ctx_planes(g)}
            for g in plan.groups
        }
    else:  # one output on the grid of a many-to-many plan (the outlier median)
        groups = {"": {"attrs": {}, "n_ctx_planes": 1}}
    create_store(
        output, groups=groups, root_attrs=root, shape_yx=plan.grid.shape_yx,
        tile_shape_yx=plan.tiles.tile_shape_yx, arrays=tuple(arrays), fill_values=fill_values,
        many_to_many=(mode == "many_to_many"), shard_tiles_yx=shard_tiles_yx,
    )


def _resume_state(
    plan: MosaicPlan, output: Location, *, mode: str, arrays: tuple[str, ...], fingerprint: str
) -> set[tuple[str, tuple[int, int]]] | None:
    """Tiles already complete in ``output``, or ``None`` to start a new mosaic.

    Raises
    ------
    ValueError
        If the existing mosaic was made from other inputs, parameters or grid,
        or is damaged while holding finished tiles.
    """
    if not output.exists():
        log.info("%s: nothing to resume; starting a new mosaic", output)
        return None
    try:
        meta = read_metadata(output)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{output}: cannot resume: unreadable mosaic metadata ({exc})") from None
    if (meta.get("fingerprint") != fingerprint or meta.get("mode") != mode
            or list(meta.get("arrays", [])) != list(arrays)):
        raise ValueError(
            f"{output}: cannot resume: inputs, parameters or grid differ from those of the existing mosaic "
            "(use overwrite=True to start over)"
        )
    done = {(g, key) for g in plan.groups for key in tiles_done(output, g)} & set(plan.contributions)
    problems = layout_problems(output, list(plan.groups), arrays)
    if problems:
        if done:
            raise ValueError(
                f"{output}: cannot resume: the store is damaged ({problems[0]}); use overwrite=True to start over"
            )
        log.warning("%s: incomplete store (%s) and no finished tile; starting over", output, problems[0])
        return None
    n_partial = remove_partial_writes(output)
    if n_partial:
        log.info("%s: removed %d interrupted writes", output, n_partial)
    log.info("Resuming %s: %d of %d tiles already complete", output, len(done), len(plan.contributions))
    return done


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty()


def _run(graph: MosaicGraph, *, client: Any, progress: bool | None, desc: str = "tiles",
         unit: str = "tile") -> GraphOutcome:
    """Run the graph; a failing tile does not stop the others.

    Each distinct failure is logged once, when it first occurs.
    """
    if not graph.tile_keys:
        return GraphOutcome({}, {}, {})
    bar = None
    if _progress_enabled(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=len(graph.tile_keys), desc=desc, unit=unit, file=sys.stderr)
    n_total = len(graph.tile_keys)
    n_done = 0
    reported: set[str] = set()

    def on_tile(key: Any, result: Any) -> None:
        nonlocal n_done
        n_done += 1
        if isinstance(result, TaskFailure) and result.message not in reported:
            reported.add(result.message)
            log.error("%s failed: %s", graph.label(key) or key, result.message)
            result.log_traceback()
        if bar is not None:
            bar.update(1)
        elif n_done == n_total or n_done % max(1, n_total // 10) == 0:
            log.info("%s done: %d/%d", desc, n_done, n_total)

    try:
        return run_graph(graph, client=client, on_tile=on_tile)
    finally:
        if bar is not None:
            bar.close()


def _slowest(seconds: Mapping[Any, float], graph: MosaicGraph, n: int = 5) -> list[tuple[str, float]]:
    named = [(name, s) for key, s in seconds.items() if (name := graph.label(key)) is not None]
    return sorted(named, key=lambda item: -item[1])[:n]


class IncompleteMosaicError(TileTaskError):
    """Some tiles could not be computed; every other tile was written.

    Attributes
    ----------
    errors : dict
        ``(group, (ty, tx)) -> message`` of each failed tile.
    summary : RunSummary
        What the run did.
    """

    def __init__(self, message: str, errors: dict[tuple[str, tuple[int, int]], str], summary: RunSummary) -> None:
        super().__init__(message)
        self.errors = errors
        self.summary = summary

    @classmethod
    def from_failures(
        cls, output: Location, failures: Mapping[Any, TaskFailure], graph: MosaicGraph, summary: RunSummary
    ) -> IncompleteMosaicError:
        """Summarise per-tile failures in one line naming the failing inputs."""
        per_tile = {}
        for key, failure in failures.items():
            group, tile = graph.keys.tile_of(key) or graph.keys.shard_of(key) or ("", (-1, -1))
            per_tile[(group, tile)] = failure.message
        unique = list(dict.fromkeys(per_tile.values()))
        shown = "; ".join(unique[:5]) + (f"; and {len(unique) - 5} more" if len(unique) > 5 else "")
        n_failed = len(per_tile)
        message = (
            f"{output}: {n_failed} of {n_failed + summary.n_tiles} tiles failed "
            f"(the other {summary.n_tiles} are written): {shown}"
        )
        return cls(message, per_tile, summary)


def _log_summary(summary: RunSummary) -> None:
    log.info("%s", run_summary(summary))
