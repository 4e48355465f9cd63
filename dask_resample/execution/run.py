"""Running a plan: the client's side of a run, from the plan to the finished mosaic.

:func:`execute_plan` (create or reopen the store, resume or replace, the outlier stage, build
and run the graph, mark the mosaic complete), :class:`RunSummary` and
:class:`IncompleteMosaicError`. The cluster is :mod:`~dask_resample.execution.workers`'s, the
graph run with its progress :mod:`~dask_resample.execution.progress`'s.
"""

from __future__ import annotations

import logging
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .. import config
from .._version import __version__
from ..drizzle.reduce import empty_pixel_values, output_arrays
from ..drizzle.scratch import ScratchSpec, remove_all
from ..drizzle.scratch import scratch_root as scratch_root_for
from ..geometry import wcs_to_fits_header
from ..inputs.failures import TaskFailure
from ..outliers.graph import OutlierWork
from ..outliers.params import OutlierParams
from ..outliers.stage import plan_stage, prepare_stage
from ..planning.mosaic import create_plan_store, grid_record
from ..planning.plan import MosaicPlan
from ..products.report import run_summary
from ..store import (
    Location,
    as_location,
    finalize_store,
    finish_interrupted_swap,
    index_shards,
    input_fingerprint,
    is_mosaic,
    layout_problems,
    mark_complete,
    read_metadata,
    remove_partial_writes,
    remove_stale_siblings,
    replacement,
    scratch_sibling,
    swap_in,
    tiles_done,
)
from .graph import GraphOutcome, MosaicGraph, TileTaskError, build_graph
from .progress import run_with_progress

__all__ = [
    "IncompleteMosaicError",
    "RunSummary",
    "as_outlier_params",
    "execute_plan",
    "log_summary",
    "shard_tiles_for",
]

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


def as_outlier_params(outliers: Any) -> Any:
    """``resample(outliers=...)`` as an ``OutlierParams`` record, or ``None`` for no outlier detection."""
    if outliers is None or outliers is False:
        return None
    if outliers is True:
        return OutlierParams()
    if isinstance(outliers, (OutlierParams, Mapping)):
        params = OutlierParams.from_kwargs(outliers)
        if params.save_intermediate_results:
            warnings.warn(
                "outliers: save_intermediate_results is for detect_outliers(); resample(outliers=...) "
                "keeps no intermediate product",
                stacklevel=3,
            )
        return params
    raise TypeError(f"outliers: expected a bool, OutlierParams or a mapping of its parameters, got {outliers!r}")


def execute_plan(
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
    grid_rec = grid_record(plan.grid, plan.tiles.tile_shape_yx, plan.halo)
    input_options = next((dict(o) for r in plan.refs if (o := getattr(r, "storage_options", None))), None)
    fingerprint = input_fingerprint(
        [r.to_record() for r in plan.refs],
        params.to_dict() | ({"outliers": outliers.to_dict()} if outliers else {}),
        {**grid_rec, "wcs": wcs_to_fits_header(plan.grid.wcs)},
        storage_options=input_options,
    )
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
        outlier_plan = plan_stage(
            list(plan.refs),
            outliers,
            client=client,
            tile_shape=plan.tiles.tile_shape_yx,
            max_output_pixels=max_output_pixels,
        )
    shard_tiles = shard_tiles_for(output)
    if skip is None:
        if output.exists():
            output.remove()  # a store of this package left half-created, or an old replacement
        create_plan_store(
            plan,
            output,
            mode=mode,
            arrays=arrays,
            fingerprint=fingerprint,
            fill_values=empty_pixel_values(params, plan.grid.pixel_scale_ratio),
            extra_attrs={"outliers": outliers.to_dict()} if outliers is not None else None,
            shard_tiles_yx=shard_tiles,
        )
        skip = set()
    else:
        shard_tiles = tuple(read_metadata(output).get("grid", {}).get("shard_tiles", (1, 1)))
    token = uuid.uuid4().hex[:12]
    remove_stale_siblings(target, kinds=("staging", "trash", "scratch"))  # left by a killed run
    scratch_root = scratch_root_for(
        scratch_sibling(target, token), f"{target.name}-{token}", one_node=one_node, owner=target
    )
    try:
        stage = None
        if with_outliers:
            # flag first, in the same graph: each exposure is drizzled after its flagging, with its mask applied
            work = OutlierWork.under(scratch_root.join("outliers"))
            stage = prepare_stage(
                list(plan.refs),
                outliers,
                work,
                token=f"{token}-od",
                client=client,
                tile_shape=plan.tiles.tile_shape_yx,
                plan=outlier_plan,
            )
            plan = replace(plan, refs=tuple(replace(r, outlier_mask=work.mask(r.index)) for r in plan.refs))
        graph = build_graph(
            plan,
            store_path=output,
            arrays=arrays,
            token=token,
            scratch_root=scratch_root,
            skip_tiles=skip,
            fast_pixmap=fast_pixmap,
            exposure_after=None if stage is None else stage.graph.flag_keys,
            shard_tiles_yx=shard_tiles,
        )
        if stage is not None:
            graph = replace(graph, dsk={**stage.graph.dsk, **graph.dsk})
        log.info(
            "%s: %d %s to compute from %d inputs (%d tasks)",
            target,
            len(graph.tile_keys),
            "shards" if shard_tiles != (1, 1) else "tiles",
            len(plan.refs) - len(plan.skipped),
            len(graph.dsk),
        )
        outcome = run_with_progress(
            graph,
            client=client,
            progress=progress,
            **({"desc": "shards", "unit": "shard"} if shard_tiles != (1, 1) else {}),
        )
    finally:
        remove_all(ScratchSpec(root=scratch_root))
    summary = _summary(plan, outcome, n_skipped=len(skip), graph=graph)
    if outcome.failures:
        summary.seconds = time.perf_counter() - t_start
        log_summary(summary)
        raise IncompleteMosaicError.from_failures(target, outcome.failures, graph, summary)
    complete: dict[str, Any] = {"fingerprint": fingerprint, "software": f"dask-resample {__version__}"}
    if shard_tiles != (1, 1):  # readers then fetch one tile in one ranged request
        complete["shard_index"] = index_shards(output, list(plan.groups) if mode == "many_to_many" else [""], arrays)
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
    return (
        meta.get("fingerprint") == fingerprint
        and meta.get("mode") == mode
        and list(meta.get("arrays", [])) == list(arrays)
    )


def shard_tiles_for(output: Location) -> tuple[int, int]:
    """Tiles per Zarr shard for a store at ``output``: ``resample.shard-tiles`` (``auto``: 4 x 4 on object stores)."""
    value = config.get("shard-tiles")
    if value in (None, "auto"):
        return (1, 1) if output.is_local else (4, 4)
    ny, nx = (int(v) for v in (value if isinstance(value, (list, tuple)) else (value, value)))
    if ny < 1 or nx < 1:
        raise ValueError(f"resample.shard-tiles: expected 'auto' or positive (ny, nx), got {value!r}")
    return ny, nx


def _summary(
    plan: MosaicPlan, outcome: GraphOutcome | None, *, n_skipped: int, graph: MosaicGraph | None
) -> RunSummary:
    """The run's summary; shard records count their tiles."""
    records: list[dict[str, Any]] = []
    for rec in outcome.records.values() if outcome is not None else ():
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
    if (
        meta.get("fingerprint") != fingerprint
        or meta.get("mode") != mode
        or list(meta.get("arrays", [])) != list(arrays)
    ):
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


def log_summary(summary: RunSummary) -> None:
    """Log the one line of :func:`~dask_resample.products.report.run_summary`."""
    log.info("%s", run_summary(summary))
