"""``detect_outliers()``: jwst's (or romancal's) imaging outlier detection, distributed, writing flagged files."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..drizzle.scratch import ScratchSpec, runs_on_one_node, scratch_root
from ..execution.progress import run_with_progress
from ..execution.workers import connect_for_run
from ..geometry import wcs_to_fits_header
from ..geometry.skycells import skycell_from_association, skycell_output_wcs
from ..inputs._files import load_arrays
from ..inputs.io import InputError, describe_resolved, resolve_inputs
from ..store.location import Location, as_location, check_output_location
from .graph import OutlierWork
from .params import OUTLIER_RULES, OutlierParams, outlier_step_params
from .products import _atomic, output_name, planned_outputs, real_path, write_crf
from .stage import OutlierStage, is_roman_input, prepare_stage

__all__ = [
    "INTERMEDIATE_NAMES",
    "OutlierDetectionError",
    "detect_outliers",
    "mission_params",
    "run_stage",
    "skycell_median_wcs",
]

log = logging.getLogger(__name__)

#: Names of the intermediate products kept with ``save_intermediate_results`` (in the output directory).
INTERMEDIATE_NAMES: Mapping[str, str] = {
    "groups": "outlier_i2d.zarr",
    "median": "outlier_median.zarr",
    "median_fits": "outlier_median.fits",
}

#: ``cal_step.outlier_detection`` of inputs when there are fewer than two (what jwst 3.0 records then;
#: romancal's is :attr:`OutlierRules.skipped_status`).
SKIPPED_STATUS = OUTLIER_RULES["jwst"].skipped_status

#: Largest median (pixels) also written as FITS with ``save_intermediate_results`` (bigger ones stay in Zarr).
MEDIAN_FITS_MAX_PIXELS = 64 * 2**20


class OutlierDetectionError(RuntimeError):
    """Some inputs could not be flagged; the message names them."""


def run_stage(stage: OutlierStage, *, client: Any, progress: bool | None) -> dict[int, dict[str, Any]]:
    """Run an outlier stage's graph on its own; return the per-input records.

    Raises
    ------
    OutlierDetectionError
        Naming every input that failed (the others are written).
    """
    graph = stage.graph.as_mosaic_graph(ScratchSpec(root=stage.work.scratch))
    outcome = run_with_progress(graph, client=client, progress=progress, desc="inputs", unit="input")
    if outcome.failures:
        for failure in outcome.failures.values():
            failure.log_traceback()
        messages = sorted({f.message for f in outcome.failures.values()})
        raise OutlierDetectionError(f"{len(outcome.failures)} input(s) not flagged: " + "; ".join(messages[:5]))
    return {rec["index"]: rec for rec in outcome.records.values()}


def mission_params(
    resolved: Sequence[Any],
    params: OutlierParams | Mapping[str, Any] | None,
    mission: str | None = None,
    **param_kwargs: Any,
) -> OutlierParams:
    """The parameters of a run under its mission's rules, the mission decided from the inputs if not given.

    The mission is ``mission``, else the record's (``params.mission``), else
    ``"roman"`` when every input is a Roman WFI image and ``"jwst"`` otherwise.
    Given as a record, ``params`` keeps its values; given as a mapping or
    keywords, they go over the mission step's defaults
    (:func:`~dask_resample.outliers.params.outlier_step_params`).

    Raises
    ------
    InputError
        Roman inputs with other inputs, with jwst's rules, or held in memory
        under romancal's rules (the flagged files are written as Roman files).
    """
    roman = [r for r in resolved if is_roman_input(r)]
    given = mission
    if given is None and isinstance(params, OutlierParams):
        given = params.mission
    elif given is None and isinstance(params, Mapping):
        given = params.get("mission")
    chosen = given or ("roman" if roman and len(roman) == len(resolved) else "jwst")
    if chosen == "roman":
        others = [r for r in resolved if not is_roman_input(r)]
        if others:
            raise InputError(
                f"{others[0].filename}: not a Roman WFI image; romancal's outlier detection "
                "(mission 'roman') takes Roman Level-2 images only"
            )
        held = [r for r in roman if r.kind != "roman"]
        if held:
            raise InputError(
                f"{held[0].filename}: a Roman datamodel held in memory; outlier detection writes "
                "Roman files from files: save the models (or give the ModelLibrary on_disk) first"
            )
    elif roman:
        raise InputError(
            f"{roman[0].filename}: a Roman WFI image; outlier detection of Roman inputs follows "
            "romancal's OutlierDetectionStep (mission 'roman'), not jwst's"
        )
    if isinstance(params, OutlierParams):
        return OutlierParams.from_kwargs(params, **param_kwargs).with_mission(chosen)
    values = dict(params or {})
    values.pop("mission", None)
    return outlier_step_params(chosen, values, **param_kwargs)


def _association(inputs: Any, storage_options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The association document of ``inputs`` (a ``*.json`` path or URL, or a ModelLibrary), else ``None``."""
    asn = getattr(inputs, "asn", None)
    if isinstance(asn, Mapping):
        return dict(asn)
    if isinstance(inputs, (str, os.PathLike)) and str(inputs).lower().endswith(".json"):
        return dict(json.loads(as_location(inputs, storage_options).read_bytes()))
    return None


def skycell_median_wcs(
    inputs: Any,
    params: OutlierParams,
    *,
    skymap: str | os.PathLike | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The median grid romancal's ``resample_on_skycell`` gives, or ``None`` (the inputs' footprints then).

    Under romancal's rules with ``resample_data`` and ``resample_on_skycell``, an association
    naming a skycell (``skycell_wcs_info`` or ``target``) has the median drizzled onto that
    skycell's grid; an association naming none, or a name the skymap does not have, falls back
    to the footprints, as romancal falls back.

    Raises
    ------
    InputError
        When the association names a skycell and there is no skymap file (``skymap``, else
        ``SKYMAP_PATH``).
    """
    if params.mission != "roman" or not (params.resample_on_skycell and params.resample_data):
        return None
    asn = _association(inputs, storage_options)
    if asn is None:
        return None
    try:
        name = skycell_from_association(asn)
    except InputError:
        return None
    try:
        return skycell_output_wcs(name, skymap)
    except InputError as exc:
        if "not in the skymap" not in str(exc):
            raise
        log.warning("%s; the median grid is computed from the inputs' footprints", exc)
        return None


def detect_outliers(
    inputs: Any,
    output_dir: str | Path | Location,
    *,
    mission: str | None = None,
    skymap: str | os.PathLike | None = None,
    storage_options: Mapping[str, Any] | None = None,
    client: Any = None,
    tile_shape: Sequence[int] | None = None,
    params: OutlierParams | Mapping[str, Any] | None = None,
    overwrite: bool = False,
    scheduler: str = "distributed",
    progress: bool | None = None,
    max_output_pixels: int | None = None,
    **param_kwargs: Any,
) -> list[Path] | list[str]:
    """Flag outliers as jwst's (or romancal's) ``OutlierDetectionStep`` does for imaging, tile by tile on Dask.

    Each exposure group is drizzled onto the common grid, the groups' median is
    taken per tile (each group masked below its weight threshold), the median is
    blotted back onto every input from the tiles it overlaps, and outliers get
    ``DO_NOT_USE | OUTLIER`` in DQ with NaN in data, err and variances
    (jwst), or in DQ only (romancal's rules, Roman WFI inputs: their
    ``<root>_outlier_detection.asdf`` files).

    Parameters
    ----------
    inputs : str, Path, sequence or ModelLibrary
        What :func:`dask_resample.resample` takes.
    output_dir : str, Path or Location
        Directory of the ``<root>_crf.fits`` (Roman: ``<root>_outlier_detection.asdf``) files (created if missing): a
        local path or any fsspec URL (``s3://bucket/prefix``). Intermediate
        products go there too while the run lasts (``resample.scratch-dir``
        moves them).
    mission : {"jwst", "roman"}, optional
        Whose step's rules and defaults apply (:data:`~dask_resample.outliers.params.OUTLIER_RULES`);
        default: the record's, else ``"roman"`` for Roman WFI inputs, else ``"jwst"``.
    skymap : path-like, optional
        The skymap file for an association naming a skycell under romancal's rules
        (``resample_on_skycell``; default ``SKYMAP_PATH``).
    storage_options : mapping, optional
        Options of the URL's file system (credentials, ``endpoint_url``), for
        the output and for input URLs.
    client : distributed.Client, optional
        Run on this client; ``None`` uses the current client or starts a LocalCluster.
    tile_shape : (int, int), optional
        Tiles of the group images and the median (default ``resample.tile-shape``).
    params : OutlierParams or mapping, optional
        The parameters as one record; or give them as keywords (below), not both.
    overwrite : bool
        Replace existing output files.
    scheduler : {"distributed", "serial"}
        ``"serial"`` runs the same tasks in this process.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    max_output_pixels : int, optional
        Refuse a larger median grid before any pixel is read (default
        ``resample.max-output-pixels``).
    **param_kwargs
        Fields of :class:`OutlierParams`, with the step's names and defaults (the mission's):
        ``weight_type``, ``pixfrac``, ``kernel``, ``fillval``, ``maskpt``,
        ``snr``, ``scale``, ``backg``, ``resample_data``, ``good_bits``,
        ``pixmap_stepsize``, ``pixmap_order``, ``save_intermediate_results``.

    Returns
    -------
    list of Path or list of str
        The flagged files, in input order (URLs for an object store).

    Raises
    ------
    InputError
        A missing or unreadable input, or an output file that exists (without
        ``overwrite``): raised before any cluster starts where it can be known then.
    OutlierDetectionError
        If some inputs could not be flagged (the others are written).
    """
    t0 = time.perf_counter()
    if mission is not None and mission not in OUTLIER_RULES:
        raise ValueError(f"mission: expected one of {', '.join(map(repr, OUTLIER_RULES))}, got {mission!r}")
    OutlierParams.from_kwargs(params, **param_kwargs)  # bad parameters fail before any input is read
    if scheduler not in ("distributed", "serial"):
        raise ValueError(f"scheduler: expected 'distributed' or 'serial', got {scheduler!r}")
    output_dir = as_location(output_dir, storage_options)
    check_output_location(output_dir.join("_"), distributed=scheduler == "distributed")
    if output_dir.is_file():
        raise InputError(f"{output_dir}: exists and is not a directory")
    resolved = resolve_inputs(inputs, storage_options=storage_options)  # cheap checks, before any cluster starts
    params = mission_params(resolved, params, mission, **param_kwargs)
    median_wcs = skycell_median_wcs(inputs, params, skymap=skymap, storage_options=storage_options)
    rules = params.rules
    crf = planned_outputs(resolved, output_dir, overwrite=overwrite, suffix=rules.suffix)
    blots = None
    keep = params.save_intermediate_results
    if keep:
        # without resampling jwst keeps only the median (its "blot" is the median itself)
        names = INTERMEDIATE_NAMES.values() if params.resample_data else [INTERMEDIATE_NAMES["median_fits"]]
        extra = [output_dir.join(n) for n in names]
        blots = (
            {r.index: output_dir.join(output_name(r.filename, "blot")) for r in resolved}
            if params.resample_data
            else {}
        )
        sources = {real_path(r.path if hasattr(r, "path") else r.source) for r in resolved}
        for p in [*extra, *blots.values()]:
            if real_path(p.url) in sources:
                raise InputError(f"{p}: is an input; choose another output directory")
            if p.exists() and not overwrite:
                raise InputError(f"{p}: exists; pass overwrite=True (--overwrite) to replace it")
    if output_dir.is_local:
        os.makedirs(output_dir.url, exist_ok=True)

    handle, client = connect_for_run(client, scheduler, resolved)
    token = uuid.uuid4().hex[:12]
    # intermediate products: beside the outputs, or on this machine when every process runs on it
    root = scratch_root(
        output_dir.join(f".dask-resample-outliers-{token}"),
        f"outliers-{token}",
        one_node=runs_on_one_node(client),
        owner=output_dir,
    )
    try:
        refs = describe_resolved(resolved, client=client)
        if len(refs) < 2:
            # as jwst 3.0: the step is skipped and records its status as FAILED
            log.warning("outlier detection needs at least 2 inputs, got %d: skipped", len(refs))
            return _as_paths(
                [write_crf(r, None, crf[r.index], status=rules.skipped_status, overwrite=overwrite) for r in refs],
                output_dir,
            )
        work = OutlierWork.under(
            root,
            groups_store=output_dir.join(INTERMEDIATE_NAMES["groups"]) if keep and params.resample_data else None,
            median_store=output_dir.join(INTERMEDIATE_NAMES["median"]) if keep and params.resample_data else None,
        )
        stage = prepare_stage(
            refs,
            params,
            work,
            token=token,
            client=client,
            tile_shape=tile_shape,
            max_output_pixels=max_output_pixels,
            output_wcs=median_wcs,
            crf_paths=dict(enumerate(crf)),
            blot_paths=None if not blots else dict(blots),
            overwrite=overwrite,
        )
        records = run_stage(stage, client=client, progress=progress)
        if keep:
            _save_median_fits(stage, output_dir.join(INTERMEDIATE_NAMES["median_fits"]), overwrite=overwrite)
    finally:
        if handle is not None:
            handle.close()
        root.remove()
    n_flagged = sum(r["n_flagged"] for r in records.values())
    log.info(
        "outlier detection: %d pixels flagged in %d inputs in %.1f s", n_flagged, len(refs), time.perf_counter() - t0
    )
    return _as_paths([records[r.index]["crf"] for r in refs], output_dir)


def _as_paths(written: Sequence[str], output_dir: Location) -> list[Path] | list[str]:
    """Written files as :class:`~pathlib.Path` objects on a local disk, as URLs elsewhere."""
    return [Path(p) for p in written] if output_dir.is_local else list(written)


def _save_median_fits(stage: OutlierStage, path: Location, *, overwrite: bool) -> None:
    """Write the median as FITS too (if it is not too large for one process)."""
    if stage.plan is None:  # resample_data=False: the median is the inputs' size
        median = np.concatenate([load_arrays(stage.work.band(b))[0] for b in range(stage.graph.n_median_tasks)])
        wcs_header = None
    else:
        ny, nx = stage.plan.grid.shape_yx
        if ny * nx > MEDIAN_FITS_MAX_PIXELS:
            log.info("median of %d x %d pixels kept in Zarr only (%s)", ny, nx, stage.work.median_store)
            return
        import zarr

        median_array = zarr.open_array(stage.work.median_store.zarr_store(read_only=True), path="data", mode="r")
        median = np.asarray(median_array[...])
        wcs_header = wcs_to_fits_header(stage.plan.grid.wcs)

    def write(tmp: Path) -> None:
        from astropy.io import fits

        primary = fits.PrimaryHDU()
        primary.header["FILENAME"] = path.name
        sci = fits.ImageHDU(median.astype(np.float32), name="SCI")
        if wcs_header:
            for key, value in dict(wcs_header).items():
                try:
                    sci.header[key] = value
                except (ValueError, KeyError):
                    continue
        fits.HDUList([primary, sci]).writeto(tmp)

    _atomic(path, write, overwrite)
