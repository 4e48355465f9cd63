"""The ``dask-resample`` command line.

Subcommands: ``run`` (make a mosaic), ``outliers`` (jwst's imaging outlier
detection, ``*_crf.fits`` files), ``plan`` (grid, tiles and coverage
without reading pixels), ``info`` (describe a mosaic), ``export`` (FITS
``*_i2d.fits``), ``preview`` (PNG) and ``demo``.

Every failure exits with a non-zero status and one line on stderr,
``dask-resample: error: <message naming the culprit>`` (plus the traceback
with ``--debug``).

Defaults of ``run`` and ``plan`` follow jwst's ``ResampleStep`` (``good_bits =
"~DO_NOT_USE+NON_SCIENCE"``, variances resampled, ``err`` from the
variances); the Python function :func:`dask_resample.resample` keeps the
defaults of ``ResampleImage``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .io import one_line
from .params import STEP_DEFAULTS, ResampleParams, check_wcs_pars, parameter_fields, parse_number, step_defaults

__all__ = ["CLIError", "DRIZZLE_OPTIONS", "build_parser", "load_options_file", "main"]

PROG = "dask-resample"

log = logging.getLogger("dask_resample.cli")


class CLIError(Exception):
    """A command-line failure; the message names the culprit."""


class _ArgumentError(Exception):
    """A usage error reported by argparse."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, raised instead of printed."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sub = self.prog[len(PROG):].strip()
        raise _ArgumentError(f"{sub}: {message}" if sub else message)


# ----------------------------------------------------------------------------
# value types
# ----------------------------------------------------------------------------
def _positive_int(text: Any) -> int:
    if isinstance(text, bool):
        raise ValueError(f"expected a positive integer, got {text!r}")
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def _pixel_count(text: Any) -> int:
    """An integer that may be written ``1e9``."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of pixels, got {text!r}") from None
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"expected a positive number of pixels, got {text!r}")
    return int(value)


def _text(text: Any) -> str:
    return str(text)


def _memory(text: Any) -> Any:
    return text if isinstance(text, int) and not isinstance(text, bool) else str(text)


# ----------------------------------------------------------------------------
# options: one table drives argparse and the config file
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One long option, usable on the command line and as a config-file key.

    Attributes
    ----------
    flag : str
        Long flag (``--pixel-scale``); its config key is the flag without the
        dashes, with dashes or underscores (``pixel-scale``, ``pixel_scale``).
    help : str
        Help text.
    convert : callable, optional
        Converts one value (``None`` for on/off switches).
    nargs : int, optional
        Number of values (2 for pairs such as ``--crpix X Y``).
    metavar : tuple of str or str, optional
    choices : tuple, optional
    """

    flag: str
    help: str
    convert: Callable[[Any], Any] | None = None
    nargs: int | None = None
    metavar: Any = None
    choices: tuple[Any, ...] | None = None

    @property
    def dest(self) -> str:
        """Attribute name (``pixel_scale``)."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def is_switch(self) -> bool:
        """True for on/off flags."""
        return self.convert is None

    def add_to(self, parser: argparse.ArgumentParser | Any) -> None:
        """Add the option to an argparse parser or group (default ``None``: not given)."""
        if self.is_switch:
            parser.add_argument(self.flag, dest=self.dest, action="store_true", default=None, help=self.help)
            return
        kwargs: dict[str, Any] = {"dest": self.dest, "default": None, "help": self.help}
        kwargs["type"] = _argparse_type(self.convert)
        if self.nargs:
            kwargs["nargs"] = self.nargs
        if self.metavar is not None:
            kwargs["metavar"] = self.metavar
        if self.choices is not None:
            kwargs["choices"] = self.choices
        parser.add_argument(self.flag, **kwargs)

    def from_config(self, value: Any, source: str) -> Any:
        """Convert a config-file value, naming the key and file on failure."""
        key = self.dest
        if self.is_switch:
            if not isinstance(value, bool):
                raise CLIError(f"{source}: {key}: expected true or false, got {value!r}")
            return value
        try:
            if self.nargs:
                if not isinstance(value, (list, tuple)) or len(value) != self.nargs:
                    raise ValueError(f"expected a list of {self.nargs} values, got {value!r}")
                out = [self.convert(v) for v in value]
            else:
                out = self.convert(value)
        except ValueError as exc:
            raise CLIError(f"{source}: {key}: {exc}") from None
        if self.choices is not None and out not in self.choices:
            raise CLIError(f"{source}: {key}: expected one of {', '.join(map(str, self.choices))}, got {value!r}")
        return out


def _argparse_type(convert: Callable[[Any], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = convert.__name__.lstrip("_").removeprefix("parse_").removesuffix("_text")
    return parse


def _default_text(value: Any) -> str:
    return "none" if value is None else str(value)


def _drizzle_options() -> tuple[Option, ...]:
    """One option per field of :class:`~dask_resample.params.ResampleParams`, from the field's metadata.

    Defaults shown are those of jwst's ``ResampleStep`` (:data:`~dask_resample.params.STEP_DEFAULTS`).
    """
    step = step_defaults()
    options = []
    for f in parameter_fields():
        form = f.metadata["cli"]
        help_text = f.metadata["help"]
        if form.parse is not None:
            origin = ", as jwst's ResampleStep" if f.name in STEP_DEFAULTS else ""
            help_text = f"{help_text} (default {_default_text(step[f.name])}{origin})"
        options.append(Option(form.flag, help_text, form.parse, metavar=form.metavar,
                              choices=f.metadata["choices"] if form.parse is not None else None))
    return tuple(options)


def _drizzle_defaults() -> dict[str, Any]:
    """Option name -> default (jwst's ``ResampleStep``), with ``--no-*`` switches as booleans."""
    step = step_defaults()
    out = {}
    for f in parameter_fields():
        form = f.metadata["cli"]
        out[form.dest] = (not step[f.name]) if form.negate else step[f.name]
    return out


#: Option-file keys that are parameter names of negated switches (``enable_ctx`` for ``--no-ctx``).
_ALIASES = {f.name: f.metadata["cli"].dest for f in parameter_fields() if f.metadata["cli"].negate}

#: Defaults of ``run``/``plan``: jwst's ``ResampleStep`` for the drizzle parameters.
_DEFAULTS: dict[str, Any] = {**_drizzle_defaults(), "mode": "many_to_one"}

DRIZZLE_OPTIONS: tuple[Option, ...] = _drizzle_options()

GRID_OPTIONS: tuple[Option, ...] = (
    Option("--pixel-scale-ratio", "output/input pixel scale ratio (default 1.0)", parse_number, metavar="R"),
    Option("--pixel-scale", "output pixel scale in arcsec (overrides --pixel-scale-ratio)", parse_number,
           metavar="ARCSEC"),
    Option("--output-shape", "output array shape (ny, nx)", _positive_int, nargs=2, metavar=("NY", "NX")),
    Option("--rotation", "position angle of the output y axis, deg East of North (default: that of the "
           "first input)", parse_number, metavar="DEG"),
    Option("--crpix", "reference pixel (x, y), 0-based array coordinates as jwst's crpix (default: the "
           "centre of the bounding box)", parse_number, nargs=2, metavar=("X", "Y")),
    Option("--crval", "sky position of the reference pixel, deg", parse_number, nargs=2, metavar=("RA", "DEC")),
    Option("--output-wcs", "ASDF file holding the output gwcs under 'wcs' (overrides the options above, "
           "except --output-shape)", _text, metavar="FILE.asdf"),
    Option("--tile-shape", "tile (Zarr chunk) shape (default 1024 1024)", _positive_int, nargs=2,
           metavar=("NY", "NX")),
    Option("--mode", "one mosaic, or one per exposure group (default many_to_one)", _text,
           choices=("many_to_one", "many_to_many")),
    Option("--max-output-pixels", "refuse outputs with more pixels than this (default 1e10)", _pixel_count,
           metavar="N"),
)

CLUSTER_OPTIONS: tuple[Option, ...] = (
    Option("--workers", "number of workers (default: one per core)", _positive_int, metavar="N"),
    Option("--threads-per-worker", "threads per worker (default 1)", _positive_int, metavar="N"),
    Option("--memory-limit", "memory limit per worker, e.g. 4GiB (default: the machine's memory shared)",
           _memory, metavar="BYTES"),
    Option("--scheduler", "address (tcp://host:8786) or scheduler file of a running Dask scheduler", _text,
           metavar="ADDRESS"),
    Option("--cluster", "cluster to start: local (default), or a job queue (slurm, pbs, sge, lsf, ...)", _text,
           metavar="NAME"),
    Option("--jobs", "number of batch jobs to submit (job-queue clusters)", _positive_int, metavar="N"),
    Option("--dashboard-address", "where a started LocalCluster serves its dashboard (default 127.0.0.1:0: "
           "this machine only, a free port; ':8787' or '0.0.0.0:8787' to let other machines reach it)", _text,
           metavar="HOST:PORT"),
    Option("--serial", "run in this process, without Dask (debugging, tiny inputs)"),
)

RUN_OPTIONS: tuple[Option, ...] = (
    Option("--overwrite", "replace an existing mosaic at the output path"),
    Option("--resume", "finish an interrupted mosaic (inputs and parameters must be unchanged)"),
    Option("--pyramid", "also write a multiscale pyramid after the mosaic"),
    Option("--no-fast-pixmap", "evaluate every input pixel through both WCSs, as stcal's calc_pixmap (default: "
           "one composed sky rotation where the WCSs allow it)"),
    Option("--outliers", "flag outliers first, as jwst's imaging OutlierDetectionStep (its defaults, or "
           "--outlier-config), and mosaic with the flags applied, in one run"),
    Option("--outlier-config", "YAML or TOML file of outlier-detection parameters (names of "
           "'dask-resample outliers')", _text, metavar="FILE"),
)

def _outlier_options() -> tuple[Option, ...]:
    """One option per field of :class:`~dask_resample.outliers.OutlierParams` (the step's defaults)."""
    from .outliers.params import outlier_default, outlier_fields

    options = []
    for f in outlier_fields():
        form = f.metadata["cli"]
        help_text = f.metadata["help"]
        if form.parse is not None:
            help_text = f"{help_text} (default {_default_text(outlier_default(f))})"
        options.append(Option(form.flag, help_text, form.parse, metavar=form.metavar,
                              choices=f.metadata["choices"] if form.parse is not None else None))
    return tuple(options)


OUTLIER_OPTIONS: tuple[Option, ...] = _outlier_options()

OUTLIER_RUN_OPTIONS: tuple[Option, ...] = (
    Option("--tile-shape", "tile shape of the group images and the median (default 1024 1024)", _positive_int,
           nargs=2, metavar=("NY", "NX")),
    Option("--overwrite", "replace existing *_crf.fits files (and intermediate products)"),
)


def _norm_key(key: Any) -> str:
    return str(key).strip().lstrip("-").replace("-", "_")


def load_options_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML or TOML options file (``--config``) into a flat dictionary.

    Keys are the long option names, with dashes or underscores. A ``wcs_pars``
    table may hold the output-grid keys (``pixel_scale``, ``rotation``, ...).

    Parameters
    ----------
    path : path-like
        ``*.toml`` is read as TOML, anything else as YAML.

    Returns
    -------
    dict
        Normalised key -> raw value.

    Raises
    ------
    CLIError
        If the file is missing or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"{path}: options file (--config) not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            doc = tomllib.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "TOML" if path.suffix.lower() == ".toml" else "YAML"
        raise CLIError(f"{path}: not a valid {kind} file ({first})") from None
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise CLIError(f"{path}: expected a mapping of option names to values")
    out: dict[str, Any] = {}
    for key, value in doc.items():
        k = _norm_key(key)
        if k == "wcs_pars":
            if not isinstance(value, Mapping):
                raise CLIError(f"{path}: wcs_pars: expected a mapping")
            try:
                pars = check_wcs_pars({_norm_key(kk): vv for kk, vv in value.items()})
            except KeyError as exc:
                raise CLIError(f"{path}: {exc.args[0]}") from None
            for kk, vv in pars.items():
                out[kk] = vv
            continue
        out[k] = value
    return out


def _resolve(args: argparse.Namespace, options: Sequence[Option], positional: Sequence[str] = ()) -> dict[str, Any]:
    """Merge defaults < config file < command line into one dictionary."""
    values: dict[str, Any] = {opt.dest: _DEFAULTS.get(opt.dest) for opt in options}
    if getattr(args, "config", None):
        source = str(args.config)
        config = load_options_file(args.config)
        by_dest = {opt.dest: opt for opt in options}
        for key, raw in config.items():
            if key in _ALIASES:
                if not isinstance(raw, bool):
                    raise CLIError(f"{source}: {key}: expected true or false, got {raw!r}")
                values[_ALIASES[key]] = not raw
            elif key in positional:
                values[key] = raw
            elif key in by_dest:
                values[key] = by_dest[key].from_config(raw, source)
            else:
                raise CLIError(f"{source}: unknown key {key!r}; keys are the long options of "
                               f"'{PROG} {args.command}' (see --help)")
    for opt in options:
        given = getattr(args, opt.dest, None)
        if given is not None:
            values[opt.dest] = given
    for name in positional:
        given = getattr(args, name, None)
        if given not in (None, []):
            values[name] = given
    return values


def _outlier_values(args: argparse.Namespace, options: Sequence[Option], config_path: Any,
                    from_args: bool = True) -> dict[str, Any]:
    """Outlier-detection option values given in ``config_path`` or (``from_args``) on the command line.

    Options not given are absent (the record's defaults apply).
    """
    from .outliers.params import outlier_fields

    by_dest = {opt.dest: opt for opt in options}
    negated = {f.name: f.metadata["cli"].dest for f in outlier_fields() if f.metadata["cli"].negate}
    values: dict[str, Any] = {}
    if config_path:
        source = str(config_path)
        for key, raw in load_options_file(config_path).items():
            if key in negated:
                if not isinstance(raw, bool):
                    raise CLIError(f"{source}: {key}: expected true or false, got {raw!r}")
                values[negated[key]] = not raw
            elif key in by_dest:
                values[key] = by_dest[key].from_config(raw, source)
            elif args.command == "outliers" and key in ("inputs", "output_dir", "storage_options"):
                values[key] = raw
            else:
                raise CLIError(f"{source}: unknown key {key!r}; keys are the options of '{PROG} outliers'")
    for opt in options if from_args else ():
        given = getattr(args, opt.dest, None)
        if given is not None:
            values[opt.dest] = given
    return values


def _outlier_params(values: Mapping[str, Any]) -> Any:
    """The :class:`~dask_resample.outliers.OutlierParams` record of resolved option values."""
    from .outliers import OutlierParams
    from .outliers.params import outlier_fields

    kwargs = {}
    for f in outlier_fields():
        form = f.metadata["cli"]
        if form.dest in values:
            value = values[form.dest]
            kwargs[f.name] = (not value) if form.negate else value
    return OutlierParams(**kwargs)


# ----------------------------------------------------------------------------
# turning options into API arguments
# ----------------------------------------------------------------------------
def _params(v: Mapping[str, Any]) -> ResampleParams:
    """The parameter record from resolved option values (validated: a bad value names its parameter)."""
    kwargs = {}
    for f in parameter_fields():
        form = f.metadata["cli"]
        value = v[form.dest]
        kwargs[f.name] = (not value) if form.negate else (bool(value) if form.parse is None else value)
    return ResampleParams(**kwargs)


def _wcs_pars(v: Mapping[str, Any]) -> dict[str, Any] | None:
    pars: dict[str, Any] = {}
    for key in ("pixel_scale_ratio", "pixel_scale", "rotation"):
        if v.get(key) is not None:
            pars[key] = float(v[key])
    for key in ("output_shape", "crpix", "crval"):
        if v.get(key) is not None:
            pars[key] = tuple(v[key])
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
    from . import config

    base = dict(config.get("storage-options", None) or {})
    if from_config is not None:
        if not isinstance(from_config, Mapping):
            raise CLIError(f"storage_options: expected a table of fsspec options, got {from_config!r}")
        base.update(from_config)
    merged = parse_storage_options(getattr(args, "storage_option", None), base)
    return merged or None


def _check_inputs(inputs: Sequence[str]) -> list[str]:
    """Cheap existence checks of input paths (full checks of URLs and files follow in the API)."""
    from .store import is_url

    if not inputs:
        raise CLIError("inputs: give an association (*_asn.json) or input files")
    out = []
    for item in inputs:
        if is_url(item):
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
    from .store import is_mosaic

    if output.exists() and not is_mosaic(output):
        raise CLIError(f"{output}: exists and is not a dask-resample mosaic; refusing to touch it")
    if output.exists() and not (overwrite or resume):
        raise CLIError(f"{output}: mosaic exists; pass --overwrite to replace it (or --resume to finish it)")


# ----------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------
def _plan(v: Mapping[str, Any], inputs: Any, client: Any = None) -> Any:
    """The mosaic plan of resolved option values (shared by ``plan`` and ``run``)."""
    from .api import plan_mosaic
    from .grid import load_output_wcs

    params = _params(v)
    wcs_pars = check_wcs_pars(_wcs_pars(v)) or None
    output_wcs = load_output_wcs(v["output_wcs"], v.get("output_shape")) if v.get("output_wcs") else None
    return plan_mosaic(
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
    from .cluster import connect

    if v["serial"]:
        return None
    extra = {"dashboard_address": v["dashboard_address"]} if v["dashboard_address"] else {}
    handle = connect(
        cluster=v["cluster"], scheduler=v["scheduler"], n_workers=v["workers"],
        threads_per_worker=v["threads_per_worker"], memory_limit=v["memory_limit"], jobs=v["jobs"], **extra,
    )
    if (link := handle.dashboard_link):
        log.info("Dask dashboard: %s", link)
    return handle


def _cmd_run(args: argparse.Namespace) -> int:
    from .api import resample
    from .grid import load_output_wcs
    from .io import resolve_inputs

    options = (*DRIZZLE_OPTIONS, *GRID_OPTIONS, *CLUSTER_OPTIONS, *RUN_OPTIONS)
    from .store import as_location, check_output_location

    v = _resolve(args, options, positional=("inputs", "output", "storage_options"))
    inputs = _check_inputs(v.get("inputs") or [])
    if not v.get("output"):
        raise CLIError("output: give the mosaic path or URL with -o OUT.zarr")
    storage_options = _storage_options(args, v.get("storage_options"))
    output = as_location(str(v["output"]), storage_options)
    if v["overwrite"] and v["resume"]:
        raise CLIError("--overwrite and --resume exclude each other")
    _params(v)  # bad parameters fail before anything else
    outliers = None
    if v["outliers"] or v["outlier_config"]:
        outliers = _outlier_params(_outlier_values(args, OUTLIER_OPTIONS, v["outlier_config"], from_args=False))
    check_wcs_pars(_wcs_pars(v))
    if v.get("output_wcs"):
        load_output_wcs(v["output_wcs"], v.get("output_shape"))
    _check_cluster_options(v)
    check_output_location(output, distributed=not v["serial"])
    _check_output(output, bool(v["overwrite"]), bool(v["resume"]))

    # cheap input checks, before any cluster starts
    resolved = resolve_inputs(_inputs_arg(inputs), storage_options=storage_options)
    handle = _connect(v)
    client = None if handle is None else handle.client
    try:
        plan = _plan(v, resolved, client=client)
        resample(
            plan, output, client=client, scheduler="serial" if handle is None else "distributed",
            overwrite=bool(v["overwrite"]), resume=bool(v["resume"]), progress=False if args.quiet else None,
            fast_pixmap=False if v["no_fast_pixmap"] else None, outliers=outliers or False,
        )
        if v["pyramid"]:
            try:
                from .pyramid import write_pyramid
            except ImportError as exc:
                raise CLIError(f"--pyramid: pyramids are not available ({one_line(exc)})") from None
            write_pyramid(output, client=client)
    finally:
        if handle is not None:
            handle.close()
    print(output)
    return 0


def _cmd_outliers(args: argparse.Namespace) -> int:
    from .io import resolve_inputs
    from .outliers import detect_outliers

    values = _outlier_values(args, (*OUTLIER_OPTIONS, *OUTLIER_RUN_OPTIONS, *CLUSTER_OPTIONS), args.config)
    cluster = {opt.dest: values.get(opt.dest) for opt in CLUSTER_OPTIONS}
    given = values.get("inputs") or []
    inputs = _check_inputs(args.inputs or ([given] if isinstance(given, str) else list(given)))
    output_dir = args.output_dir or values.get("output_dir")
    if not output_dir:
        raise CLIError("output: give the directory of the *_crf.fits files with -o DIR")
    params = _outlier_params(values)  # bad parameters fail before anything else
    _check_cluster_options(cluster)
    storage_options = _storage_options(args, values.get("storage_options"))
    # cheap input checks, before any cluster starts
    resolved = resolve_inputs(_inputs_arg(inputs), storage_options=storage_options)
    handle = _connect(cluster)
    try:
        paths = detect_outliers(
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


def _cmd_plan(args: argparse.Namespace) -> int:
    v = _resolve(args, (*DRIZZLE_OPTIONS, *GRID_OPTIONS), positional=("inputs",))
    plan = _plan(v, _inputs_arg(_check_inputs(v.get("inputs") or [])))
    print(plan.summary())
    if args.png:
        print(f"coverage figure: {plan.coverage_png(args.png)}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .report import mosaic_info, mosaic_info_json

    mosaic = _require_mosaic(args)
    print(mosaic_info_json(mosaic) if args.json else mosaic_info(mosaic))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_fits

    mosaic = _require_mosaic(args)
    out = export_fits(mosaic, args.out, group=args.group, fmt=args.format, overwrite=bool(args.overwrite),
                      storage_options=mosaic.storage_options)
    print(out)
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from .figures import preview_png

    mosaic = _require_mosaic(args)
    out = preview_png(mosaic, args.out, group=args.group, variable=args.variable, max_size=args.max_size)
    print(out)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    demo_main(output_dir=args.output_dir, workers=args.workers, quiet=bool(args.quiet))
    return 0


def _require_mosaic(args: argparse.Namespace) -> Any:
    """The mosaic named by ``args.mosaic`` (with ``--storage-option``), checked to be one."""
    from .store import StorageError, as_location, is_mosaic

    p = as_location(args.mosaic, _storage_options(args))
    try:
        if not p.exists():
            raise CLIError(f"{p}: not found")
    except StorageError as exc:
        raise CLIError(str(exc)) from None
    if not is_mosaic(p):
        raise CLIError(f"{p}: not a dask-resample mosaic")
    return p


# ----------------------------------------------------------------------------
# parser
# ----------------------------------------------------------------------------
_RUN_EPILOG = """\
Defaults follow jwst's ResampleStep: good_bits "~DO_NOT_USE+NON_SCIENCE",
variances resampled and reported, err computed from the variances
(--compute-err from_var). The Python function dask_resample.resample() keeps
the defaults of jwst's ResampleImage instead.

--config FILE (YAML, or TOML for *.toml) holds the same keys as the long
options, with dashes or underscores (pixel_scale: 0.03, kernel: square,
tile-shape: [512, 512], inputs: [...], output: out.zarr), and optionally a
wcs_pars table; options given on the command line win.
"""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors; no progress bar")


def _add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                        help="option of the URLs' file system (fsspec storage_options), repeatable: "
                        "key=..., secret=..., endpoint_url=http://..., client_kwargs.region_name=...; "
                        "also 'storage_options' in --config and resample.storage-options in the Dask config")
    parser.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")


def _add_group(parser: argparse.ArgumentParser, title: str, options: Sequence[Option]) -> None:
    group = parser.add_argument_group(title)
    for opt in options:
        opt.add_to(group)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``dask-resample`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
    """
    from ._version import __version__

    parser = _Parser(
        prog=PROG,
        description="Drizzle many exposures into one tiled Zarr mosaic on a Dask cluster "
        "(same numbers as jwst's ResampleImage).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser(
        "run", help="make a mosaic", description="Drizzle INPUTS into a tiled Zarr mosaic.",
        epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("inputs", nargs="*", metavar="INPUTS",
                     help="an association (*_asn.json) or input files (*_cal.fits or plain FITS)")
    run.add_argument("-o", "--output", metavar="OUT.zarr",
                     help="mosaic to write: a Zarr directory or an object-store URL (s3://bucket/m.zarr, ...)")
    _add_storage(run)
    run.add_argument("--config", metavar="FILE", help="YAML or TOML file with option values")
    _add_group(run, "drizzle parameters", DRIZZLE_OPTIONS)
    _add_group(run, "output grid", GRID_OPTIONS)
    _add_group(run, "where to run", CLUSTER_OPTIONS)
    _add_group(run, "output handling", RUN_OPTIONS)
    _add_common(run)
    run.set_defaults(func=_cmd_run)

    outliers = sub.add_parser(
        "outliers", help="flag outliers as jwst's imaging OutlierDetectionStep (writes *_crf.fits)",
        description="Drizzle each exposure group onto a common grid, take the median across groups tile by "
        "tile, blot it back onto every input and flag outliers (DQ DO_NOT_USE|OUTLIER, NaN in data, err "
        "and variances); write one <root>_crf.fits per input. Parameters and defaults are those of jwst's "
        "OutlierDetectionStep for imaging.",
    )
    outliers.add_argument("inputs", nargs="*", metavar="INPUTS",
                          help="an association (*_asn.json) or input files (*_cal.fits or plain FITS)")
    outliers.add_argument("-o", "--output-dir", metavar="DIR",
                          help="directory (or URL prefix) of the *_crf.fits files")
    _add_storage(outliers)
    outliers.add_argument("--config", metavar="FILE", help="YAML or TOML file with option values")
    _add_group(outliers, "outlier-detection parameters", OUTLIER_OPTIONS)
    _add_group(outliers, "output", OUTLIER_RUN_OPTIONS)
    _add_group(outliers, "where to run", CLUSTER_OPTIONS)
    _add_common(outliers)
    outliers.set_defaults(func=_cmd_outliers)

    plan = sub.add_parser(
        "plan", help="plan a mosaic (grid, tiles, coverage) without reading pixels",
        description="Compute the output grid, the tiles and which inputs feed each tile, without reading "
        "any pixel; print a summary and optionally draw the coverage.",
        epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument("inputs", nargs="*", metavar="INPUTS", help="an association or input files")
    plan.add_argument("--png", metavar="PLAN.png", help="draw the coverage figure to this PNG")
    plan.add_argument("--config", metavar="FILE", help="YAML or TOML file with option values")
    _add_group(plan, "drizzle parameters", DRIZZLE_OPTIONS)
    _add_group(plan, "output grid", GRID_OPTIONS)
    _add_common(plan)
    plan.set_defaults(func=_cmd_plan)

    info = sub.add_parser("info", help="describe a mosaic",
                          description="Grid, WCS, tiles written, parameters, totals and inputs of a mosaic.")
    info.add_argument("mosaic", metavar="OUT.zarr", help="the mosaic")
    info.add_argument("--json", action="store_true", help="print the stored metadata as JSON")
    _add_storage(info)
    _add_common(info)
    info.set_defaults(func=_cmd_info)

    export = sub.add_parser(
        "export", help="export a mosaic to a FITS i2d file",
        description="Write a FITS file that jwst's datamodels.open reads as an ImageModel (SCI, WHT, CON, "
        "ERR, VAR_* and the WCS); plain FITS with the same extensions when jwst is not installed.",
    )
    export.add_argument("mosaic", metavar="OUT.zarr", help="the mosaic")
    export.add_argument("out", metavar="OUT_i2d.fits", help="FITS file to write")
    export.add_argument("--group", metavar="G", help="exposure group of a many-to-many mosaic")
    export.add_argument("--format", choices=("auto", "jwst", "fits"), default="auto",
                        help="jwst ImageModel or plain FITS (default auto: jwst when installed)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing FITS file")
    _add_storage(export)
    _add_common(export)
    export.set_defaults(func=_cmd_export)

    preview = sub.add_parser(
        "preview", help="draw a PNG preview of a mosaic",
        description="Draw an asinh-stretched image of the mosaic with RA/Dec axes; big mosaics are decimated "
        "while reading.",
    )
    preview.add_argument("mosaic", metavar="OUT.zarr", help="the mosaic")
    preview.add_argument("out", metavar="OUT.png", help="PNG file to write")
    preview.add_argument("--group", metavar="G", help="exposure group of a many-to-many mosaic")
    preview.add_argument("--variable", default="data", help="array to draw (default data)")
    preview.add_argument("--max-size", type=_argparse_type(_positive_int), default=2000, metavar="PX",
                         help="longest side of the drawn image (default 2000)")
    _add_storage(preview)
    _add_common(preview)
    preview.set_defaults(func=_cmd_preview)

    demo = sub.add_parser(
        "demo", help="write a synthetic dataset and mosaic it (what 'make demo' runs)",
        description="Write a synthetic NIRCam-like dataset, drizzle it on a LocalCluster into a Zarr mosaic "
        "and draw a PNG preview.",
    )
    demo.add_argument("--output-dir", default="demo_output", metavar="DIR",
                      help="where to write the data, the mosaic and the preview (default demo_output)")
    demo.add_argument("--workers", type=_argparse_type(_positive_int), default=None, metavar="N",
                      help="LocalCluster workers (default 2)")
    _add_common(demo)
    demo.set_defaults(func=_cmd_demo)
    return parser


# ----------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------
_PLAIN_ERRORS = (CLIError, ValueError, KeyError, OSError, TypeError)


def _message(exc: BaseException) -> str:
    text = one_line(exc)
    if isinstance(exc, _PLAIN_ERRORS) and text != type(exc).__name__:
        return text
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


class _DropRepeats(logging.Filter):
    """Drop a log message already shown (e.g. the dashboard address logged at several levels)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self._seen:
            return False
        if len(self._seen) < 10_000:
            self._seen.add(text)
        return True


def _setup_logging(quiet: bool, debug: bool) -> Callable[[], None]:
    logger = logging.getLogger("dask_resample")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_DropRepeats())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    old = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    quieted = []
    if not debug:
        for name in ("stpipe", "jwst", "stcal", "asdf"):
            other = logging.getLogger(name)
            quieted.append((other, other.level))
            other.setLevel(logging.ERROR)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(old[0])
        logger.propagate = old[1]
        for other, level in quieted:
            other.setLevel(level)

    return restore


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 1 on failure, 2 on a usage error.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
    except _ArgumentError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    quiet_logs = bool(getattr(args, "quiet", False)) or args.command == "demo"  # the demo prints its steps
    restore = _setup_logging(quiet_logs, debug)
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore")  # what matters is logged by the package itself
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure: one line (and the traceback with --debug)
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
        return 1
    finally:
        restore()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
