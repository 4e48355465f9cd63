"""The command line's subcommands: resolved option values turned into calls of the API.

Each ``cmd_*`` function takes the parsed arguments of one subcommand, resolves
its option values (defaults < ``--config`` file < command line, see
:func:`~dask_resample.cli.options.resolve`), checks what can be checked cheaply
before any cluster starts, and calls the API through its modules' attributes
(``api.resample``), which tests may replace.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import (
    api,
    cluster,  # noqa: F401 - commands.cluster: the module the subcommands connect through
    outliers,
    roman,
    store,
)
from ..geometry import grid, projection_regions, skycells
from ..inputs import io
from ..inputs.drivers import roman_model
from ..outliers.api import mission_params
from ..params import check_wcs_pars
from ..products import export, figures, pyramid, report
from ..store.location import SCHEME_EXTRAS
from ..testing import demo
from .arguments import (
    _OUTLIER_KEYS,
    _check_cluster_options,
    _check_output,
    _connect,
    _inputs_arg,
    _inputs_of,
    _kernel_choice,
    _outlier_params,
    _params,
    _plan,
    _require_mosaic,
    _resolve_drizzle,
    _storage_options,
    _wcs_pars,
    parse_storage_options,
)
from .living_commands import cmd_add, cmd_log, cmd_remove
from .options import (
    DRIZZLE_OPTIONS,
    MISSION,
    OUTLIER,
    OUTLIER_MISSION,
    OUTLIER_OPTIONS,
    RUN_OPTIONS,
    SKYCELL_OPTIONS,
    CLIError,
    cluster_options,
    grid_options,
    outlier_for,
    outlier_run_options,
    resolve,
)

__all__ = [
    "cmd_add",
    "cmd_demo",
    "cmd_export",
    "cmd_info",
    "cmd_log",
    "cmd_outliers",
    "cmd_plan",
    "cmd_preview",
    "cmd_remove",
    "cmd_run",
    "parse_storage_options",
]


# ----------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    """``dask-resample run``: make a mosaic (or, with ``--skycells``, one per Roman skycell)."""
    options = (MISSION, *DRIZZLE_OPTIONS, *grid_options(), *SKYCELL_OPTIONS, *cluster_options(), *RUN_OPTIONS)
    v = _resolve_drizzle(args, options, ("inputs", "output", "storage_options"))
    inputs = _inputs_of(v)
    if v.get("skymap") and not (v.get("skycells") or v.get("projection_region")):
        raise CLIError("--skymap: only with --skycells OUTDIR or --projection-region REGION")
    if v.get("projection_region") is not None:
        return _run_region(args, v, inputs)
    if v.get("skycells"):
        return _run_skycells(args, v, inputs)
    if not v.get("output"):
        raise CLIError("output: give the mosaic path or URL with -o OUT.zarr")
    storage_options = _storage_options(args, v.get("storage_options"))
    output = store.as_location(str(v["output"]), storage_options)
    if v["overwrite"] and v["resume"]:
        raise CLIError("--overwrite and --resume exclude each other")
    _params(v)  # bad parameters fail before anything else
    outliers = None
    if v["outliers"] or v["outlier_config"]:
        outliers = _outlier_params(args, v["outlier_config"])
    check_wcs_pars(_wcs_pars(v))
    if v.get("output_wcs"):
        grid.load_output_wcs(v["output_wcs"], v.get("output_shape"))
    _check_cluster_options(v)
    store.check_output_location(output, distributed=not v["serial"])
    _check_output(output, bool(v["overwrite"]), bool(v["resume"]))

    # cheap input checks, before any cluster starts
    resolved = io.resolve_inputs(_inputs_arg(inputs), storage_options=storage_options)
    handle = _connect(v, resolved)
    client = None if handle is None else handle.client
    try:
        with _kernel_choice(v):
            plan = _plan(v, resolved, client=client)
            api.resample(
                plan,
                output,
                client=client,
                scheduler="serial" if handle is None else "distributed",
                overwrite=bool(v["overwrite"]),
                resume=bool(v["resume"]),
                progress=False if args.quiet else None,
                fast_pixmap=False if v["no_fast_pixmap"] else None,
                outliers=outliers or False,
            )
        if v["pyramid"]:
            pyramid.write_pyramid(output, client=client)
    finally:
        if handle is not None:
            handle.close()
    print(output)
    return 0


def _skymap_of(v: Mapping[str, Any]) -> Path:
    """The skymap file of ``--skycells``: ``--skymap``, else ``SKYMAP_PATH``, else romancal's (checked to exist)."""
    for name, given in (("--skymap", v.get("skymap")), ("SKYMAP_PATH", os.environ.get("SKYMAP_PATH"))):
        if given:
            path = Path(given)
            if not path.is_file():
                raise CLIError(f"{name}: {path}: skymap file not found")
            return path
    try:
        found = skycells.use_skymap(None)
    except io.InputError as exc:
        if str(exc) != skycells.NO_SKYMAP_MESSAGE:
            raise
        raise CLIError(
            "--skymap: no skymap file; give --skymap FILE.asdf or set SKYMAP_PATH to the skycells reference file"
        ) from None
    return Path(found.path)


def _check_roman_grid_run(v: Mapping[str, Any], flag: str, grid_text: str, mosaics_text: str) -> None:
    """Refuse the options a run on romancal's grids (``--skycells``, ``--projection-region``) cannot take."""
    grid_given = [
        opt.flag
        for opt in grid_options()
        if opt.dest not in ("tile_shape", "mode", "max_output_pixels") and v.get(opt.dest) is not None
    ]
    if grid_given:
        raise CLIError(f"{flag}: {grid_text}; drop {', '.join(grid_given)}")
    if v["mode"] != "many_to_one":
        raise CLIError(f"--mode: {flag} makes {mosaics_text} (many_to_one)")
    if v["outliers"] or v["outlier_config"]:
        raise CLIError("--outliers: outlier detection of Roman inputs is not supported yet")
    if v["overwrite"] and v["resume"]:
        raise CLIError("--overwrite and --resume exclude each other")


def _roman_inputs(inputs: Sequence[str], storage_options: Mapping[str, Any] | None, flag: str) -> list[Any]:
    """The inputs resolved, each a Roman WFI file (else one line naming it and ``flag``)."""
    resolved = io.resolve_inputs(_inputs_arg(inputs), storage_options=storage_options)
    for r in resolved:
        if r.kind != roman_model.KIND:
            raise CLIError(
                f"{r.filename}: not a Roman WFI input; {flag} takes Roman Level-2 "
                "files (*_cal.asdf) or their association"
            )
    return list(resolved)


def _check_skycells(v: Mapping[str, Any], storage_options: Mapping[str, Any] | None) -> store.Location:
    """Refuse what ``--skycells`` cannot take (before anything starts); return its directory or URL."""
    if v.get("output"):
        raise CLIError("--skycells: writes one mosaic per skycell into OUTDIR; drop -o/--output")
    directory = store.as_location(str(v["skycells"]), storage_options)
    if directory.is_local and Path(directory).exists() and not Path(directory).is_dir():
        raise CLIError(f"--skycells: {directory}: exists and is not a directory")
    if directory.scheme in SCHEME_EXTRAS and "/" not in directory.path.strip("/"):
        raise CLIError(f"--skycells: {directory}: give a prefix inside the bucket ({directory}/skycells)")
    _check_roman_grid_run(v, "--skycells", "each skycell is its own output grid", "one mosaic per skycell")
    store.check_output_location(directory, distributed=not v["serial"])
    if not directory.is_local and directory.is_file():
        raise CLIError(f"--skycells: {directory}: an object is there; give a prefix for the skycell mosaics")
    return directory


def _run_skycells(args: argparse.Namespace, v: Mapping[str, Any], inputs: Sequence[str]) -> int:
    """``run --skycells OUTDIR``: :func:`dask_resample.roman.resample_skycells`, one mosaic per skycell."""
    storage_options = _storage_options(args, v.get("storage_options"))
    directory = _check_skycells(v, storage_options)
    params = _params(v)  # bad parameters fail before anything else
    _check_cluster_options(v)
    skymap = _skymap_of(v)
    resolved = _roman_inputs(inputs, storage_options, "--skycells")  # cheap, before any cluster starts
    handle = _connect(v, resolved)
    client = None if handle is None else handle.client
    try:
        with _kernel_choice(v):
            mosaics = roman.resample_skycells(
                resolved,
                directory,
                skymap=skymap,
                params=params,
                **_grid_run_arguments(args, v, handle, storage_options),
            )
        if not mosaics:
            raise CLIError(f"--skycells: no skycell of the skymap {skymap} touches the inputs")
        written = [directory.join(f"{name}.zarr") for name in mosaics]
        if v["pyramid"]:
            for path in written:
                pyramid.write_pyramid(path, client=client)
    finally:
        if handle is not None:
            handle.close()
    for path in written:
        print(path)
    return 0


def _grid_run_arguments(
    args: argparse.Namespace, v: Mapping[str, Any], handle: Any, storage_options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The keyword arguments ``run --skycells`` and ``--projection-region`` both pass to :mod:`~dask_resample.roman`."""
    return {
        "client": None if handle is None else handle.client,
        "storage_options": storage_options,
        "scheduler": "serial" if handle is None else "distributed",
        "tile_shape": v["tile_shape"],
        "max_output_pixels": v["max_output_pixels"],
        "overwrite": bool(v["overwrite"]),
        "resume": bool(v["resume"]),
        "progress": False if args.quiet else None,
        "fast_pixmap": False if v["no_fast_pixmap"] else None,
    }


def _run_region(args: argparse.Namespace, v: Mapping[str, Any], inputs: Sequence[str]) -> int:
    """``run -o OUT --projection-region REGION``: :func:`dask_resample.roman.resample_region`."""
    if v.get("skycells"):
        raise CLIError("--projection-region: one mosaic in -o OUT.zarr; drop --skycells")
    if not v.get("output"):
        raise CLIError("--projection-region: give the mosaic path or URL with -o OUT.zarr")
    storage_options = _storage_options(args, v.get("storage_options"))
    output = store.as_location(str(v["output"]), storage_options)
    _check_roman_grid_run(v, "--projection-region", "the region is the output grid", "one mosaic")
    params = _params(v)  # bad parameters fail before anything else
    _check_cluster_options(v)
    store.check_output_location(output, distributed=not v["serial"])
    _check_output(output, bool(v["overwrite"]), bool(v["resume"]))
    skymap = _skymap_of(v)
    try:
        region = projection_regions.projection_region_index(str(v["projection_region"]), skymap)
    except io.InputError as exc:
        raise CLIError(f"--projection-{exc}") from None
    resolved = _roman_inputs(inputs, storage_options, "--projection-region")  # cheap, before any cluster starts
    handle = _connect(v, resolved)
    client = None if handle is None else handle.client
    try:
        with _kernel_choice(v):
            try:
                roman.resample_region(
                    resolved,
                    output,
                    region=region,
                    skymap=skymap,
                    params=params,
                    **_grid_run_arguments(args, v, handle, storage_options),
                )
            except io.InputError as exc:
                if not str(exc).startswith("region:"):
                    raise
                raise CLIError(f"--projection-{exc}") from None
        if v["pyramid"]:
            pyramid.write_pyramid(output, client=client)
    finally:
        if handle is not None:
            handle.close()
    print(output)
    return 0


def cmd_outliers(args: argparse.Namespace) -> int:
    """``dask-resample outliers``: flag outliers, write ``*_crf.fits`` (``*_outlier_detection.asdf`` for Roman)."""
    where_options = cluster_options()
    options = (OUTLIER_MISSION, *OUTLIER_OPTIONS, *outlier_run_options(), *where_options)
    kwargs: dict[str, Any] = {
        "keys_of": _OUTLIER_KEYS,
        "aliases": OUTLIER.aliases,
        "config_path": args.config,
        "positional": ("inputs", "output_dir", "storage_options"),
    }
    values = resolve(args, options, defaults=OUTLIER.option_defaults, **kwargs)
    where = {opt.dest: values.get(opt.dest) for opt in where_options}
    inputs = _inputs_of(values)
    output_dir = values.get("output_dir")
    if not output_dir:
        raise CLIError("output: give the directory of the flagged files with -o DIR")
    OUTLIER.build(values)  # bad parameters fail before anything else
    _check_cluster_options(where)
    storage_options = _storage_options(args, values.get("storage_options"))
    # cheap input checks, before any cluster starts; the mission (given, else from the inputs) picks
    # the step's defaults under the values given
    resolved = io.resolve_inputs(_inputs_arg(inputs), storage_options=storage_options)
    mission = mission_params(resolved, None, values.get("mission")).mission or "jwst"
    record_options = outlier_for(mission)
    if mission != "jwst":
        values = resolve(args, options, defaults=record_options.option_defaults, **kwargs)
    params = record_options.build(values)
    handle = _connect(where, resolved)
    try:
        with _kernel_choice(values):
            paths = outliers.detect_outliers(
                resolved,
                output_dir,
                storage_options=storage_options,
                client=None if handle is None else handle.client,
                params=params,
                tile_shape=values.get("tile_shape"),
                overwrite=bool(values.get("overwrite")),
                scheduler="serial" if handle is None else "distributed",
                progress=False if args.quiet else None,
            )
    finally:
        if handle is not None:
            handle.close()
    for p in paths:
        print(p)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """``dask-resample plan``: grid, tiles and coverage, without reading pixels."""
    v = _resolve_drizzle(args, (MISSION, *DRIZZLE_OPTIONS, *grid_options()), ("inputs",))
    plan = _plan(v, _inputs_arg(_inputs_of(v)))
    print(plan.summary())
    if args.png:
        print(f"coverage figure: {plan.coverage_png(args.png)}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """``dask-resample info``: describe a mosaic."""
    mosaic = _require_mosaic(args)
    print(report.mosaic_info_json(mosaic) if args.json else report.mosaic_info(mosaic))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``dask-resample export``: a FITS ``*_i2d.fits`` file."""
    mosaic = _require_mosaic(args)
    out = export.export_fits(
        mosaic,
        args.out,
        group=args.group,
        fmt=args.format,
        overwrite=bool(args.overwrite),
        storage_options=mosaic.storage_options,
    )
    print(out)
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    """``dask-resample preview``: a PNG of a mosaic."""
    mosaic = _require_mosaic(args)
    out = figures.preview_png(mosaic, args.out, group=args.group, variable=args.variable, max_size=args.max_size)
    print(out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``dask-resample demo``: a synthetic dataset and its mosaic."""
    demo.main(output_dir=args.output_dir, workers=args.workers, quiet=bool(args.quiet))
    return 0
