"""The command line's subcommands: resolved option values turned into calls of the API.

Each ``cmd_*`` function takes the parsed arguments of one subcommand, resolves
its option values (defaults < ``--config`` file < command line, see
:func:`~dask_resample.cli.options.resolve`), checks what can be checked cheaply
before any cluster starts, and calls the API through its modules' attributes
(``api.resample``), which tests may replace.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import api, cluster, config, living, outliers, roman, store
from ..geometry import grid, skycells
from ..inputs import io
from ..inputs.drivers import roman_model
from ..params import WCS_PARAMETERS, check_wcs_pars
from ..products import export, figures, pyramid, report
from ..store.location import SCHEME_EXTRAS
from ..testing import demo
from .options import (
    DRIZZLE,
    DRIZZLE_OPTIONS,
    MISSION,
    OUTLIER,
    OUTLIER_OPTIONS,
    PROG,
    RUN_DEFAULTS,
    RUN_OPTIONS,
    SKYCELL_OPTIONS,
    CLIError,
    Option,
    cluster_options,
    drizzle_for,
    grid_options,
    outlier_run_options,
    resolve,
    run_defaults,
)

__all__ = ["cmd_add", "cmd_demo", "cmd_export", "cmd_info", "cmd_log", "cmd_outliers", "cmd_plan", "cmd_preview",
           "cmd_remove", "cmd_run", "parse_storage_options"]

log = logging.getLogger("dask_resample.cli")


# ----------------------------------------------------------------------------
# turning options into API arguments
# ----------------------------------------------------------------------------
def _wcs_pars(v: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``wcs_pars`` of resolved option values (``None`` when none is given)."""
    pars = {p.name: p.value(v[p.name]) for p in WCS_PARAMETERS if v.get(p.name) is not None}
    return pars or None


def parse_storage_options(items: Sequence[str] | None, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--storage-option``) as fsspec storage options, over ``base``.

    Values are read as YAML scalars (``true``, ``3``, text); a dotted key
    nests (``client_kwargs.endpoint_url=http://...``).
    """
    import yaml

    out: dict[str, Any] = {**(base or {})}
    for item in items or ():
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--storage-option: expected KEY=VALUE, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            value = raw
        *parents, leaf = key.strip().split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise CLIError(f"--storage-option: {key}: {p} is not a table")
        node[leaf] = value
    return out


def _storage_options(args: argparse.Namespace, from_config: Any = None) -> dict[str, Any] | None:
    """Storage options of a command: ``resample.storage-options`` < ``--config`` < ``--storage-option``."""
    base = dict(config.get("storage-options") or {})
    if from_config is not None:
        if not isinstance(from_config, Mapping):
            raise CLIError(f"storage_options: expected a table of fsspec options, got {from_config!r}")
        base.update(from_config)
    merged = parse_storage_options(getattr(args, "storage_option", None), base)
    return merged or None


def _inputs_of(values: Mapping[str, Any]) -> list[str]:
    """The ``inputs`` of resolved values (one name or a list), checked to exist."""
    given = values.get("inputs") or []
    return _check_inputs([given] if isinstance(given, str) else list(given))


def _check_inputs(inputs: Sequence[str]) -> list[str]:
    """Cheap existence checks of input paths (full checks of URLs and files follow in the API)."""
    if not inputs:
        raise CLIError("inputs: give an association (*_asn.json) or input files")
    out = []
    for item in inputs:
        if store.is_url(item):
            out.append(str(item))
            continue
        p = Path(item)
        if not p.exists():
            raise CLIError(f"{p}: input file not found")
        if p.is_dir():
            raise CLIError(f"{p}: input is a directory; give an association or files")
        out.append(str(p))
    return out


def _inputs_arg(inputs: Sequence[str]) -> Any:
    return inputs[0] if len(inputs) == 1 and inputs[0].lower().endswith(".json") else list(inputs)


def _check_output(output: Any, overwrite: bool, resume: bool) -> None:
    if output.exists() and not store.is_mosaic(output):
        raise CLIError(f"{output}: exists and is not a dask-resample mosaic; refusing to touch it")
    if output.exists() and not (overwrite or resume):
        raise CLIError(f"{output}: mosaic exists; pass --overwrite to replace it (or --resume to finish it)")


def _resolve_drizzle(args: argparse.Namespace, options: Sequence[Option], positional: Sequence[str]) -> dict[str, Any]:
    """Resolved values of ``run``/``plan``, the drizzle defaults those of ``--mission`` (``v["mission"]``).

    The mission (command line > option file > ``roman`` with ``--skycells``, else ``jwst``) is
    resolved first, then every value over that mission's defaults.
    """
    kwargs: dict[str, Any] = {"keys_of": _run_keys(args), "aliases": DRIZZLE.aliases,
                              "config_path": getattr(args, "config", None), "positional": positional}
    v = resolve(args, options, defaults=RUN_DEFAULTS, **kwargs)
    mission = v.get("mission") or ("roman" if v.get("skycells") else "jwst")
    if mission != "jwst":
        v = resolve(args, options, defaults=run_defaults(mission), **kwargs)
    v["mission"] = mission
    return v


def _params(v: Mapping[str, Any]) -> Any:
    """The :class:`~dask_resample.params.ResampleParams` of resolved values (with the mission's DQ names)."""
    return drizzle_for(v.get("mission") or "jwst").build(v)


def _plan(v: Mapping[str, Any], inputs: Any, client: Any = None) -> Any:
    """The mosaic plan of resolved option values (shared by ``plan`` and ``run``)."""
    params = _params(v)
    wcs_pars = check_wcs_pars(_wcs_pars(v)) or None
    output_wcs = grid.load_output_wcs(v["output_wcs"], v.get("output_shape")) if v.get("output_wcs") else None
    return api.plan_mosaic(
        inputs, mode=v["mode"], params=params, output_wcs=output_wcs, wcs_pars=wcs_pars,
        tile_shape=v["tile_shape"], max_output_pixels=v["max_output_pixels"], client=client,
    )


def _check_cluster_options(v: Mapping[str, Any]) -> None:
    """Refuse contradictory 'where to run' options (before anything starts)."""
    if v["serial"] and (v["scheduler"] or v["cluster"] or v["workers"] or v["jobs"]):
        raise CLIError("--serial runs without Dask; drop --scheduler/--cluster/--workers/--jobs")
    if v["jobs"] is not None and str(v["cluster"]).lower() == "local":
        raise CLIError("--jobs: only with a job-queue --cluster (slurm, pbs, ...), not with --cluster local")


def _connect(v: Mapping[str, Any]) -> Any:
    """The cluster handle of the 'where to run' options (``None`` with ``--serial``)."""
    if v["serial"]:
        return None
    extra = {"dashboard_address": v["dashboard_address"]} if v["dashboard_address"] else {}
    handle = cluster.connect(
        cluster=v["cluster"], scheduler=v["scheduler"], n_workers=v["workers"],
        threads_per_worker=v["threads_per_worker"], memory_limit=v["memory_limit"], jobs=v["jobs"], **extra,
    )
    if (link := handle.dashboard_link):
        log.info("Dask dashboard: %s", link)
    return handle


def _run_keys(args: argparse.Namespace) -> str:
    return f"long options of '{PROG} {args.command}' (see --help)"


#: What the keys of an outlier-detection option file are (unknown-key messages).
_OUTLIER_KEYS = f"options of '{PROG} outliers'"


def _outlier_params(args: argparse.Namespace, config_path: Any) -> Any:
    """The :class:`~dask_resample.outliers.OutlierParams` of an option file (``run --outlier-config``)."""
    values = resolve(args, OUTLIER_OPTIONS, keys_of=_OUTLIER_KEYS, defaults=OUTLIER.option_defaults,
                      aliases=OUTLIER.aliases, config_path=config_path, from_args=False)
    return OUTLIER.build(values)


# ----------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    """``dask-resample run``: make a mosaic (or, with ``--skycells``, one per Roman skycell)."""
    options = (MISSION, *DRIZZLE_OPTIONS, *grid_options(), *SKYCELL_OPTIONS, *cluster_options(), *RUN_OPTIONS)
    v = _resolve_drizzle(args, options, ("inputs", "output", "storage_options"))
    inputs = _inputs_of(v)
    if v.get("skymap") and not v.get("skycells"):
        raise CLIError("--skymap: only with --skycells OUTDIR")
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
    handle = _connect(v)
    client = None if handle is None else handle.client
    try:
        with _kernel_choice(v):
            plan = _plan(v, resolved, client=client)
            api.resample(
                plan, output, client=client, scheduler="serial" if handle is None else "distributed",
                overwrite=bool(v["overwrite"]), resume=bool(v["resume"]), progress=False if args.quiet else None,
                fast_pixmap=False if v["no_fast_pixmap"] else None, outliers=outliers or False,
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
        raise CLIError("--skymap: no skymap file; give --skymap FILE.asdf or set SKYMAP_PATH to the skycells "
                       "reference file") from None
    return Path(found.path)


def _check_skycells(v: Mapping[str, Any], storage_options: Mapping[str, Any] | None) -> store.Location:
    """Refuse what ``--skycells`` cannot take (before anything starts); return its directory or URL."""
    if v.get("output"):
        raise CLIError("--skycells: writes one mosaic per skycell into OUTDIR; drop -o/--output")
    directory = store.as_location(str(v["skycells"]), storage_options)
    if directory.is_local and Path(directory).exists() and not Path(directory).is_dir():
        raise CLIError(f"--skycells: {directory}: exists and is not a directory")
    if directory.scheme in SCHEME_EXTRAS and "/" not in directory.path.strip("/"):
        raise CLIError(f"--skycells: {directory}: give a prefix inside the bucket ({directory}/skycells)")
    grid_given = [opt.flag for opt in grid_options()
                  if opt.dest not in ("tile_shape", "mode", "max_output_pixels") and v.get(opt.dest) is not None]
    if grid_given:
        raise CLIError(f"--skycells: each skycell is its own output grid; drop {', '.join(grid_given)}")
    if v["mode"] != "many_to_one":
        raise CLIError("--mode: --skycells makes one mosaic per skycell (many_to_one)")
    if v["outliers"] or v["outlier_config"]:
        raise CLIError("--outliers: outlier detection of Roman inputs is not supported yet")
    if v["overwrite"] and v["resume"]:
        raise CLIError("--overwrite and --resume exclude each other")
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
    # cheap input checks, before any cluster starts
    resolved = io.resolve_inputs(_inputs_arg(inputs), storage_options=storage_options)
    for r in resolved:
        if r.kind != roman_model.KIND:
            raise CLIError(f"{r.filename}: not a Roman WFI input; --skycells takes Roman Level-2 "
                           "files (*_cal.asdf) or their association")
    handle = _connect(v)
    client = None if handle is None else handle.client
    try:
        with _kernel_choice(v):
            mosaics = roman.resample_skycells(
                resolved, directory, skymap=skymap, params=params, client=client, storage_options=storage_options,
                scheduler="serial" if handle is None else "distributed", tile_shape=v["tile_shape"],
                max_output_pixels=v["max_output_pixels"], overwrite=bool(v["overwrite"]),
                resume=bool(v["resume"]), progress=False if args.quiet else None,
                fast_pixmap=False if v["no_fast_pixmap"] else None,
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


def cmd_outliers(args: argparse.Namespace) -> int:
    """``dask-resample outliers``: flag outliers, write ``*_crf.fits``."""
    where_options = cluster_options()
    values = resolve(args, (*OUTLIER_OPTIONS, *outlier_run_options(), *where_options), keys_of=_OUTLIER_KEYS,
                     defaults=OUTLIER.option_defaults, aliases=OUTLIER.aliases, config_path=args.config,
                     positional=("inputs", "output_dir", "storage_options"))
    where = {opt.dest: values.get(opt.dest) for opt in where_options}
    inputs = _inputs_of(values)
    output_dir = values.get("output_dir")
    if not output_dir:
        raise CLIError("output: give the directory of the *_crf.fits files with -o DIR")
    params = OUTLIER.build(values)  # bad parameters fail before anything else
    _check_cluster_options(where)
    storage_options = _storage_options(args, values.get("storage_options"))
    # cheap input checks, before any cluster starts
    resolved = io.resolve_inputs(_inputs_arg(inputs), storage_options=storage_options)
    handle = _connect(where)
    try:
        with _kernel_choice(values):
            paths = outliers.detect_outliers(
                resolved, output_dir, storage_options=storage_options,
                client=None if handle is None else handle.client, params=params,
                tile_shape=values.get("tile_shape"), overwrite=bool(values.get("overwrite")),
                scheduler="serial" if handle is None else "distributed", progress=False if args.quiet else None,
            )
    finally:
        if handle is not None:
            handle.close()
    for p in paths:
        print(p)
    return 0


def _kernel_choice(values: Mapping[str, Any]) -> Any:
    """``--no-fused-kernel`` as ``resample.fused-kernel: false`` while the graph is built."""
    import contextlib

    import dask.config

    if values.get("no_fused_kernel"):
        return dask.config.set({"resample.fused-kernel": False})
    return contextlib.nullcontext()


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
    out = export.export_fits(mosaic, args.out, group=args.group, fmt=args.format, overwrite=bool(args.overwrite),
                      storage_options=mosaic.storage_options)
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


def _living_keys(args: argparse.Namespace) -> str:
    return f"options of '{PROG} {args.command}' (see --help)"


def _given_params(args: argparse.Namespace) -> set[str]:
    """Names of the drizzle parameters given on the command line."""
    inverse = {dest: name for name, dest in DRIZZLE.aliases.items()}
    return {inverse.get(o.dest, o.dest) for o in DRIZZLE_OPTIONS if hasattr(args, o.dest)}


def _living_params(args: argparse.Namespace, v: Mapping[str, Any], mosaic: Any) -> Any:
    """Drizzle parameters of ``add``: all of them for a new mosaic (``run``'s defaults); for an
    existing one, those given on the command line over the mosaic's (a different value is refused)."""
    built = DRIZZLE.build(v)
    if not living.is_living(mosaic):
        return built
    given = _given_params(args)
    if not given:
        return None
    stored = living.living_params(mosaic)
    return type(built).from_kwargs(**{**stored.as_kwargs(), **{n: getattr(built, n) for n in given}})


def _living_grid(v: Mapping[str, Any]) -> dict[str, Any]:
    """``grid=`` or ``output_wcs=`` of a new living mosaic from the grid options."""
    if v.get("output_wcs"):
        return {"output_wcs": grid.load_output_wcs(v["output_wcs"], v.get("output_shape"))}
    missing = [f"--{n.replace('_', '-')}" for n in ("crval", "pixel_scale", "output_shape") if v.get(n) is None]
    if missing:
        raise CLIError(f"a new living mosaic needs its fixed grid: give --output-wcs FILE, or {', '.join(missing)}")
    return {"grid": living.GridSpec(crval=tuple(v["crval"]), pixel_scale=float(v["pixel_scale"]),
                                    shape_yx=tuple(v["output_shape"]), rotation=float(v.get("rotation") or 0.0),
                                    crpix=None if v.get("crpix") is None else tuple(v["crpix"]))}


def _run_update(args: argparse.Namespace, **kwargs: Any) -> int:
    """Run :func:`dask_resample.living.update` with the 'where to run' options; print the new version."""
    options = (*DRIZZLE_OPTIONS, *grid_options(), *cluster_options())
    v = resolve(args, options, keys_of=_living_keys(args), defaults=RUN_DEFAULTS, aliases=DRIZZLE.aliases,
                positional=("mosaic", "storage_options"))
    storage_options = _storage_options(args)
    mosaic = store.as_location(str(args.mosaic), storage_options)
    if kwargs.get("add") is not None:
        params = _living_params(args, v, mosaic)
        if params is not None:
            kwargs["params"] = params
        if not living.is_living(mosaic):
            kwargs.update(_living_grid(v))
            if v.get("tile_shape"):
                kwargs["tile_shape"] = tuple(v["tile_shape"])
    _check_cluster_options(v)
    handle = _connect(v)
    try:
        result = living.update(mosaic, client=None if handle is None else handle.client,
                               scheduler="serial" if handle is None else "distributed",
                               storage_options=storage_options, **kwargs)
    finally:
        if handle is not None:
            handle.close()
    print(result.version.line())
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    """``dask-resample add``: add inputs to a living mosaic (creating it on its fixed grid)."""
    inputs = _check_inputs(args.inputs)
    return _run_update(args, add=_inputs_arg(inputs))


def cmd_remove(args: argparse.Namespace) -> int:
    """``dask-resample remove``: remove inputs (by name or fingerprint) from a living mosaic."""
    if not args.inputs:
        raise CLIError("remove: name the inputs to remove (file names or fingerprints)")
    return _run_update(args, remove=list(args.inputs))


def cmd_log(args: argparse.Namespace) -> int:
    """``dask-resample log``: the versions of a living mosaic, newest first."""
    for version in living.history(store.as_location(str(args.mosaic), _storage_options(args))):
        print(version.line())
    return 0


def _require_mosaic(args: argparse.Namespace) -> Any:
    """The mosaic named by ``args.mosaic`` (with ``--storage-option``), checked to be one."""
    p = store.as_location(args.mosaic, _storage_options(args))
    try:
        if not p.exists():
            raise CLIError(f"{p}: not found")
    except store.StorageError as exc:
        raise CLIError(str(exc)) from None
    if not store.is_mosaic(p):
        raise CLIError(f"{p}: not a dask-resample mosaic")
    return p
