"""The public entry points of a run: ``resample()`` (inputs in, a Zarr mosaic out, opened as an
xarray Dataset) and ``plan_mosaic()``.

The planning step is :mod:`dask_resample.planning.mosaic`, the run (cluster, store, resume,
graph, summary) :mod:`dask_resample.execution.run`; this module checks the arguments and
delegates.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .drizzle.scratch import runs_on_one_node
from .execution.run import IncompleteMosaicError, RunSummary, as_outlier_params, execute_plan, log_summary
from .execution.workers import connect_for_run
from .inputs.io import resolve_inputs
from .params import ResampleParams, check_wcs_pars
from .planning.mosaic import exposure_totals, plan_mosaic
from .planning.plan import MODES, MosaicPlan, set_plan_views
from .products.figures import coverage_png
from .products.report import plan_summary
from .store import Location, as_location, check_output, check_output_location, open_mosaic

__all__ = ["IncompleteMosaicError", "RunSummary", "exposure_totals", "plan_mosaic", "resample"]

# MosaicPlan.summary() and MosaicPlan.coverage_png(): the products layer's report and figure of a plan
set_plan_views(summary=plan_summary, coverage_png=coverage_png)


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
        planning = {
            "mode": mode,
            "params": params,
            "output_wcs": output_wcs,
            "wcs_pars": wcs_pars,
            "tile_shape": tile_shape,
            "max_output_pixels": max_output_pixels,
            **param_kwargs,
        }
        extra = sorted(k for k, v in planning.items() if v is not None)
        if extra:
            raise TypeError(f"resample(plan, ...): {', '.join(extra)} belong to plan_mosaic(), not to running a plan")
        mode = given_plan.mode
    else:
        mode = mode or "many_to_one"
        params = ResampleParams.from_kwargs(params, **param_kwargs)
    outlier_params = as_outlier_params(outliers)
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

    handle, client = connect_for_run(client, scheduler, given_plan.refs if given_plan is not None else resolved)
    try:
        plan = given_plan or plan_mosaic(
            resolved,
            mode=mode,
            params=params,
            output_wcs=output_wcs,
            wcs_pars=wcs_pars,
            tile_shape=tile_shape,
            client=client,
            max_output_pixels=max_output_pixels,
        )
        summary = execute_plan(
            plan,
            output,
            mode=mode,
            overwrite=overwrite,
            resume=resume,
            client=client,
            progress=progress,
            fast_pixmap=fast_pixmap,
            outliers=outlier_params,
            max_output_pixels=max_output_pixels,
            one_node=runs_on_one_node(client),
        )
    finally:
        if handle is not None:
            handle.close()
    summary.seconds = time.perf_counter() - t_start
    log_summary(summary)
    if mode == "many_to_many":
        return {g: open_mosaic(output, group=g) for g in plan.groups}
    return open_mosaic(output)
