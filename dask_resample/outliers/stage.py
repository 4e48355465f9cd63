"""Set up one outlier-detection run: plan, empty stores, graph (shared by ``detect_outliers`` and ``resample``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..drizzle.reduce import empty_pixel_values
from ..inputs.io import ExposureRef, InputError, load_wcs
from ..planning.mosaic import create_plan_store, plan_mosaic
from ..planning.plan import MosaicPlan
from ..store import Location, prepare_output
from .graph import OutlierGraph, OutlierWork, build_direct_graph, build_outlier_graph
from .params import OutlierParams

__all__ = ["OutlierStage", "check_mission", "is_roman_input", "prepare_stage"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutlierStage:
    """A prepared outlier-detection run."""

    graph: OutlierGraph
    work: OutlierWork
    plan: MosaicPlan | None


def is_roman_input(ref: Any) -> bool:
    """True for a Roman WFI input (a file, or a datamodel held in memory)."""
    payload = getattr(ref, "payload", None)
    return ref.kind == "roman" or (isinstance(payload, Mapping) and payload.get("mission") == "roman")


def check_mission(refs: Sequence[Any], params: OutlierParams, *, writes_files: bool) -> None:
    """Refuse Roman inputs unless flagged files are written under romancal's rules.

    ``detect_outliers`` writes the flagged files under the mission's rules;
    ``resample(..., outliers=...)`` applies the masks while drizzling the way jwst's
    flagged files are made (NaN and jwst's DQ bits), so it takes no Roman input.

    Raises
    ------
    InputError
        Naming the first Roman input.
    """
    roman = [r for r in refs if is_roman_input(r)]
    if not roman:
        return
    if not writes_files:
        raise InputError(
            f"{roman[0].filename}: resample(..., outliers=...) takes JWST inputs only; flag Roman "
            "inputs with detect_outliers() (romancal's rules) or 'dask-resample outliers', then "
            "resample the *_outlier_detection.asdf files"
        )
    if params.mission != "roman":
        raise InputError(
            f"{roman[0].filename}: outlier detection of Roman inputs follows romancal's rules (mission 'roman')"
        )


def plan_stage(
    refs: Sequence[ExposureRef],
    params: OutlierParams,
    *,
    client: Any = None,
    tile_shape: Sequence[int] | None = None,
    max_output_pixels: int | None = None,
    output_wcs: Mapping[str, Any] | None = None,
    writes_files: bool = False,
) -> MosaicPlan | None:
    """The median grid's many-to-many plan (``None`` with ``resample_data=False``); reads no pixel.

    Raises
    ------
    InputError, ValueError
        What :func:`dask_resample.plan_mosaic` raises (group ids, grid size, ...);
        Roman inputs without romancal's rules, or without flagged files written
        (``writes_files``: :func:`check_mission`).
    """
    check_mission(refs, params, writes_files=writes_files)
    if not params.resample_data:
        return None
    return plan_mosaic(
        list(refs),
        mode="many_to_many",
        params=params.resample_params(),
        tile_shape=tile_shape,
        client=client,
        max_output_pixels=max_output_pixels,
        output_wcs=output_wcs,
    )


def prepare_stage(
    refs: Sequence[ExposureRef],
    params: OutlierParams,
    work: OutlierWork,
    *,
    token: str,
    client: Any = None,
    tile_shape: Sequence[int] | None = None,
    crf_paths: Mapping[int, str | Location] | None = None,
    blot_paths: Mapping[int, str | Location] | None = None,
    overwrite: bool = False,
    plan: MosaicPlan | None = None,
    max_output_pixels: int | None = None,
    output_wcs: Mapping[str, Any] | None = None,
) -> OutlierStage:
    """Plan the median grid, create the empty group and median stores and build the graph.

    Parameters
    ----------
    refs : sequence of ExposureRef
        The inputs (described), in input order.
    params : OutlierParams
    work : OutlierWork
        Where the intermediate products go.
    token : str
        Unique key prefix.
    client : distributed.Client, optional
        Reads metadata on its workers.
    tile_shape : (int, int), optional
        Tiles of the group images and of the median.
    crf_paths, blot_paths : mapping, optional
        ``input index -> path`` of files to write.
    overwrite : bool
        Replace existing intermediate stores (output files are checked by the caller).
    plan : MosaicPlan, optional
        The plan from :func:`plan_stage`, if already made.
    max_output_pixels : int, optional
        Limit of the median grid (default ``resample.max-output-pixels``).
    output_wcs : mapping, optional
        The median grid (``{"wcs": ...}``, e.g. a skycell's); default: from the inputs' footprints.
    """
    check_mission(refs, params, writes_files=crf_paths is not None)
    if not params.resample_data:
        if client is not None and all(r.kind != "memory" for r in refs):
            shape = client.submit(load_wcs, refs[0], pure=False).result()[1]
        else:
            shape = load_wcs(refs[0])[1]
        graph = build_direct_graph(
            refs, params, work, token=token, shape_yx=tuple(shape), crf_paths=crf_paths, blot_paths=blot_paths
        )
        return OutlierStage(graph=graph, work=work, plan=None)
    rp = params.resample_params()
    if plan is None:
        plan = plan_stage(
            refs,
            params,
            client=client,
            tile_shape=tile_shape,
            max_output_pixels=max_output_pixels,
            output_wcs=output_wcs,
            writes_files=crf_paths is not None,
        )
    assert plan is not None  # resample_data: plan_stage gives a plan
    fills = empty_pixel_values(rp, plan.grid.pixel_scale_ratio)
    for store in (work.groups_store, work.median_store):
        prepare_output(store, overwrite=overwrite)
    create_plan_store(
        plan,
        work.groups_store,
        mode="many_to_many",
        arrays=("data", "wht"),
        fill_values={"data": fills["data"], "wht": fills["wht"]},
        extra_attrs={"product": "outlier detection: group images", "outliers": params.to_dict()},
    )
    create_plan_store(
        plan,
        work.median_store,
        mode="many_to_one",
        arrays=("data",),
        fill_values={"data": fills["data"].dtype.type(math.nan)},
        extra_attrs={"product": "outlier detection: median", "outliers": params.to_dict()},
    )
    graph = build_outlier_graph(plan, params, work, token=token, crf_paths=crf_paths, blot_paths=blot_paths)
    log.info(
        "outlier detection: %d groups on a %d x %d grid, %d median tiles, %d inputs",
        len(plan.groups),
        *plan.grid.shape_yx,
        graph.n_median_tasks,
        len(refs),
    )
    return OutlierStage(graph=graph, work=work, plan=plan)
