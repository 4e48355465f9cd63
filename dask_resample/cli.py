"""The ``dask-resample`` command line.

Subcommands: ``run`` (make a mosaic), ``plan`` (grid, tiles and coverage
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
import json
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

__all__ = ["CLIError", "STEP_DEFAULTS", "build_parser", "load_config", "main"]

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


def _float(text: Any) -> float:
    if isinstance(text, bool):
        raise ValueError(f"expected a number, got {text!r}")
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {text!r}") from None


def _good_bits(text: Any) -> Any:
    """``good_bits`` as given: integers stay integers, ``none`` turns DQ off."""
    if text is None or isinstance(text, int) and not isinstance(text, bool):
        return text
    value = str(text).strip()
    if value.lower() == "none":
        return None
    return value


def _fillval(text: Any) -> Any:
    return text if isinstance(text, (int, float)) and not isinstance(text, bool) else str(text)


def _compute_err(text: Any) -> str | None:
    if text is None:
        return None
    value = str(text).strip()
    if value.lower() in ("none", "null", ""):
        return None
    if value not in ("from_var", "driz_err"):
        raise ValueError(f"expected 'from_var', 'driz_err' or 'none', got {text!r}")
    return value


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

    parse.__name__ = convert.__name__.lstrip("_")
    return parse


#: Defaults of ``run``/``plan``: those of jwst's ``ResampleStep``.
STEP_DEFAULTS: dict[str, Any] = {
    "pixfrac": 1.0,
    "kernel": "square",
    "fillval": "NAN",
    "weight_type": "ivm",
    "good_bits": "~DO_NOT_USE+NON_SCIENCE",
    "no_ctx": False,
    "no_var": False,
    "no_report_var": False,
    "compute_err": "from_var",
    "propagate_dq": False,
    "pixmap_stepsize": 1.0,
    "pixmap_order": 1,
    "tile_shape": None,
    "mode": "many_to_one",
}

_KERNELS = ("square", "gaussian", "point", "turbo", "lanczos2", "lanczos3")

DRIZZLE_OPTIONS: tuple[Option, ...] = (
    Option("--pixfrac", "pixel shrink factor, in (0, 1] (default 1.0)", _float, metavar="F"),
    Option("--kernel", "drizzle kernel (default square)", _text, choices=_KERNELS),
    Option("--fillval", "value of pixels without input: a number, NAN or INDEF (default NAN)", _fillval,
           metavar="VALUE"),
    Option("--weight-type", "input weighting (default ivm)", _text, choices=("ivm", "exptime")),
    Option("--good-bits", "DQ flags treated as good: integer, mnemonics such as '~DO_NOT_USE+NON_SCIENCE' or "
           "'none' to ignore DQ (default ~DO_NOT_USE+NON_SCIENCE, as jwst's ResampleStep)", _good_bits,
           metavar="BITS"),
    Option("--no-ctx", "do not compute the context (CON) array"),
    Option("--no-var", "do not resample the variance arrays (with --compute-err from_var they are still "
           "resampled to make the error array)"),
    Option("--no-report-var", "compute but do not store the variance arrays"),
    Option("--compute-err", "error array: from the resampled variances, drizzled from the input ERR, or "
           "none (default from_var, as jwst's ResampleStep)", _compute_err,
           choices=("from_var", "driz_err", None), metavar="{from_var,driz_err,none}"),
    Option("--propagate-dq", "also resample the DQ array (bitwise OR)"),
    Option("--pixmap-stepsize", "pixel-map sampling step, interpolated in between (default 1: every pixel)",
           _float, metavar="N"),
    Option("--pixmap-order", "pixel-map interpolation order, 1 or 3 (default 1)", int, choices=(1, 3)),
)

GRID_OPTIONS: tuple[Option, ...] = (
    Option("--pixel-scale-ratio", "output/input pixel scale ratio (default 1.0)", _float, metavar="R"),
    Option("--pixel-scale", "output pixel scale in arcsec (overrides --pixel-scale-ratio)", _float,
           metavar="ARCSEC"),
    Option("--output-shape", "output array shape (ny, nx)", _positive_int, nargs=2, metavar=("NY", "NX")),
    Option("--rotation", "position angle of the output y axis, deg East of North (default: that of the "
           "first input)", _float, metavar="DEG"),
    Option("--crpix", "reference pixel (x, y), 0-based array coordinates as jwst's crpix (default: the "
           "centre of the bounding box)", _float, nargs=2, metavar=("X", "Y")),
    Option("--crval", "sky position of the reference pixel, deg", _float, nargs=2, metavar=("RA", "DEC")),
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
)

#: Config-file keys that are not options (``enable_*`` aliases, the positional arguments).
_ALIASES = {"enable_ctx": "no_ctx", "enable_var": "no_var", "report_var": "no_report_var"}


def _norm_key(key: Any) -> str:
    return str(key).strip().lstrip("-").replace("-", "_")


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML or TOML config file into a flat dictionary.

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
        raise CLIError(f"{path}: config file not found")
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
            from .config import check_wcs_pars

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
    values: dict[str, Any] = {opt.dest: STEP_DEFAULTS.get(opt.dest) for opt in options}
    if getattr(args, "config", None):
        source = str(args.config)
        config = load_config(args.config)
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


# ----------------------------------------------------------------------------
# turning options into API arguments
# ----------------------------------------------------------------------------
def _params_kwargs(v: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "pixfrac": v["pixfrac"],
        "kernel": v["kernel"],
        "fillval": v["fillval"],
        "weight_type": v["weight_type"],
        "good_bits": v["good_bits"],
        "enable_ctx": not v["no_ctx"],
        "enable_var": not v["no_var"],
        "report_var": not v["no_report_var"],
        "compute_err": v["compute_err"],
        "propagate_dq": bool(v["propagate_dq"]),
        "pixmap_stepsize": v["pixmap_stepsize"],
        "pixmap_order": v["pixmap_order"],
    }


def _wcs_pars(v: Mapping[str, Any]) -> dict[str, Any] | None:
    pars: dict[str, Any] = {}
    for key in ("pixel_scale_ratio", "pixel_scale", "rotation"):
        if v.get(key) is not None:
            pars[key] = float(v[key])
    for key in ("output_shape", "crpix", "crval"):
        if v.get(key) is not None:
            pars[key] = tuple(v[key])
    return pars or None


def load_output_wcs(path: str | os.PathLike, output_shape: Sequence[int] | None = None) -> dict[str, Any]:
    """Read an output WCS from an ASDF file (``{"wcs": gwcs, ...}``).

    Parameters
    ----------
    path : path-like
        ASDF file with the gwcs under ``"wcs"`` (optionally ``pixel_scale`` in
        arcsec, ``pixel_area``, ``array_shape``), as jwst's ``output_wcs``.
    output_shape : (int, int), optional
        Output shape (ny, nx), overriding the one of the WCS.

    Returns
    -------
    dict
        ``{"wcs": gwcs, "pixel_scale": float or None}``.
    """
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"{path}: output WCS file not found")
    shape_xy = None if output_shape is None else (int(output_shape[1]), int(output_shape[0]))
    try:
        try:
            from jwst.resample.resample_utils import load_custom_wcs
        except ImportError:
            load_custom_wcs = None
        if load_custom_wcs is not None:
            out = dict(load_custom_wcs(str(path), shape_xy))
        else:
            import asdf

            with asdf.open(str(path), lazy_load=False, memmap=False) as af:
                wcs = af.tree["wcs"]
                scale = af.tree.get("pixel_scale")
            if output_shape is not None:
                wcs.array_shape = tuple(int(n) for n in output_shape)
            out = {"wcs": wcs, "pixel_scale": scale}
    except Exception as exc:
        raise CLIError(f"{path}: cannot read an output WCS ({_one_line(exc)})") from None
    wcs = out.get("wcs")
    if wcs is None or not hasattr(wcs, "forward_transform"):
        raise CLIError(f"{path}: the 'wcs' entry is not a gwcs")
    if getattr(wcs, "array_shape", None) is None:
        raise CLIError(f"{path}: the output WCS has no array shape; pass --output-shape NY NX")
    return {"wcs": wcs, "pixel_scale": out.get("pixel_scale")}


def _check_inputs(inputs: Sequence[str]) -> list[str]:
    """Cheap existence checks of input paths (full checks follow in the API)."""
    if not inputs:
        raise CLIError("inputs: give an association (*_asn.json) or input files")
    out = []
    for item in inputs:
        p = Path(item)
        if not p.exists():
            raise CLIError(f"{p}: input file not found")
        if p.is_dir():
            raise CLIError(f"{p}: input is a directory; give an association or files")
        out.append(str(p))
    return out


def _inputs_arg(inputs: Sequence[str]) -> Any:
    return inputs[0] if len(inputs) == 1 and inputs[0].lower().endswith(".json") else list(inputs)


def _check_output(output: Path, overwrite: bool, resume: bool) -> None:
    from .store import is_mosaic

    if output.exists() and not is_mosaic(output):
        raise CLIError(f"{output}: exists and is not a dask-resample mosaic; refusing to touch it")
    if output.exists() and not (overwrite or resume):
        raise CLIError(f"{output}: mosaic exists; pass --overwrite to replace it (or --resume to finish it)")


def _validate_params(v: Mapping[str, Any]) -> None:
    from .config import ResampleParams

    ResampleParams(**_params_kwargs(v))


# ----------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------
def _cmd_run(args: argparse.Namespace) -> int:
    from . import api
    from .cluster import connect

    options = (*DRIZZLE_OPTIONS, *GRID_OPTIONS, *CLUSTER_OPTIONS, *RUN_OPTIONS)
    v = _resolve(args, options, positional=("inputs", "output"))
    inputs = _check_inputs(v.get("inputs") or [])
    if not v.get("output"):
        raise CLIError("output: give the mosaic path with -o OUT.zarr")
    output = Path(v["output"])
    if v["overwrite"] and v["resume"]:
        raise CLIError("--overwrite and --resume exclude each other")
    _validate_params(v)
    from .config import check_wcs_pars

    wcs_pars = check_wcs_pars(_wcs_pars(v)) or None
    output_wcs = load_output_wcs(v["output_wcs"], v.get("output_shape")) if v.get("output_wcs") else None
    _check_output(output, bool(v["overwrite"]), bool(v["resume"]))
    if v["serial"] and (v["scheduler"] or v["cluster"] or v["workers"] or v["jobs"]):
        raise CLIError("--serial runs without Dask; drop --scheduler/--cluster/--workers/--jobs")
    if v["jobs"] is not None and str(v["cluster"]).lower() == "local":
        raise CLIError("--jobs: only with a job-queue --cluster (slurm, pbs, ...), not with --cluster local")

    progress = False if args.quiet else None
    common = dict(
        mode=v["mode"], output_wcs=output_wcs, wcs_pars=wcs_pars, tile_shape=v["tile_shape"],
        overwrite=bool(v["overwrite"]), resume=bool(v["resume"]), progress=progress,
        max_output_pixels=v["max_output_pixels"], **_params_kwargs(v),
    )
    from .io import resolve_inputs

    resolved = resolve_inputs(_inputs_arg(inputs))  # cheap input checks, before any cluster starts
    handle = None
    if not v["serial"]:
        extra = {"dashboard_address": v["dashboard_address"]} if v["dashboard_address"] else {}
        handle = connect(
            cluster=v["cluster"], scheduler=v["scheduler"], n_workers=v["workers"],
            threads_per_worker=v["threads_per_worker"], memory_limit=v["memory_limit"], jobs=v["jobs"], **extra,
        )
    try:
        if handle is not None and (link := handle.dashboard_link):
            log.info("Dask dashboard: %s", link)
        api.resample(
            resolved, output, client=None if handle is None else handle.client,
            scheduler="serial" if handle is None else "distributed",
            fast_pixmap=False if v["no_fast_pixmap"] else None, **common,
        )
        if v["pyramid"]:
            try:
                from .pyramid import write_pyramid
            except ImportError as exc:
                raise CLIError(f"--pyramid: pyramids are not available ({_one_line(exc)})") from None
            write_pyramid(output, client=None if handle is None else handle.client)
    finally:
        if handle is not None:
            handle.close()
    print(output)
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    import numpy as np

    from . import api
    from .config import ResampleParams, check_wcs_pars
    from .figures import coverage_png, tile_input_counts

    options = (*DRIZZLE_OPTIONS, *GRID_OPTIONS)
    v = _resolve(args, options, positional=("inputs",))
    inputs = _check_inputs(v.get("inputs") or [])
    params = ResampleParams(**_params_kwargs(v))
    wcs_pars = check_wcs_pars(_wcs_pars(v)) or None
    output_wcs = load_output_wcs(v["output_wcs"], v.get("output_shape")) if v.get("output_wcs") else None
    plan = api.plan_mosaic(
        _inputs_arg(inputs), mode=v["mode"], params=params, output_wcs=output_wcs, wcs_pars=wcs_pars,
        tile_shape=v["tile_shape"], max_output_pixels=v["max_output_pixels"],
    )
    counts = tile_input_counts(plan)
    used = counts[counts > 0]
    ny, nx = plan.grid.shape_yx
    sy, sx = plan.tiles.tile_shape_yx
    nty, ntx = plan.tiles.n_tiles_yx
    lines = [
        f"grid:            {ny} x {nx} pixels ({ny * nx / 1e6:.3g} Mpix), pixel scale "
        f"{plan.grid.pixel_scale:.6g} arcsec (ratio {plan.grid.pixel_scale_ratio:.6g})",
        f"tiles:           {nty} x {ntx} tiles of {sy} x {sx} pixels; {used.size} receive inputs",
        f"halo:            {plan.halo} pixels",
        f"inputs:          {len(plan.refs)} ({len(plan.skipped)} skipped)",
        f"groups:          {len(plan.groups)}" + ("" if plan.groups != ("",) else " (one mosaic)"),
    ]
    if used.size:
        lines.append(f"inputs per tile: min {int(used.min())}, median {float(np.median(used)):g}, "
                     f"max {int(used.max())}")
        per_input = [len(plan.exposure_tiles.get(r.index, ())) for r in plan.refs if r.index not in plan.skipped]
        lines.append(f"tiles per input: min {min(per_input)}, max {max(per_input)}")
    for i in plan.skipped:
        lines.append(f"skipped:         {plan.refs[i].filename} (does not overlap the grid)")
    print("\n".join(lines))
    if args.png:
        out = coverage_png(plan, args.png)
        print(f"coverage figure: {out}")
    return 0


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _cmd_info(args: argparse.Namespace) -> int:
    from .store import is_mosaic, read_metadata, tiles_done

    path = Path(args.mosaic)
    if not path.exists():
        raise CLIError(f"{path}: not found")
    if not is_mosaic(path):
        raise CLIError(f"{path}: not a dask-resample mosaic")
    meta = read_metadata(path)
    if args.json:
        doc = dict(meta)
        doc.pop("wcs_asdf", None)
        doc["tiles_done"] = {g: len(tiles_done(path, g)) for g in (meta.get("groups") or [""])}
        print(json.dumps(doc, indent=2, default=str))
        return 0
    grid = meta.get("grid", {})
    ny, nx = grid.get("shape_yx", (0, 0))
    sy, sx = grid.get("tile_shape_yx", (0, 0))
    nty, ntx = (-(-ny // sy) if sy else 0), (-(-nx // sx) if sx else 0)
    out = [
        f"mosaic:       {path}",
        f"software:     {meta.get('software', '?')} (format {meta.get('format_version', '?')})",
        f"mode:         {meta.get('mode')}",
        f"grid:         {ny} x {nx} pixels ({ny * nx / 1e6:.3g} Mpix)",
        f"pixel scale:  {_format_value(grid.get('pixel_scale'))} arcsec "
        f"(ratio {_format_value(grid.get('pixel_scale_ratio'))})",
        f"tiles:        {sy} x {sx} pixels; {nty} x {ntx} tiles; halo {grid.get('halo', '?')} px",
        f"arrays:       {', '.join(meta.get('arrays', []))}",
        "tiles written:",
    ]
    planned = meta.get("n_tiles_planned") or {}
    groups = meta.get("groups") or [""]
    for g in groups:
        done = len(tiles_done(path, g))
        want = planned.get(g)
        state = "" if want is None else (" (complete)" if done >= want else " (incomplete: --resume to finish)")
        name = g or "(mosaic)"
        out.append(f"  {name}: {done} / {want if want is not None else '?'}{state}")
    out.append("WCS:")
    for key, value in meta.get("wcs_fits", {}).items():
        out.append(f"  {key:<8} = {_format_value(value)}")
    out.append("parameters:")
    for key, value in meta.get("params", {}).items():
        out.append(f"  {key:<16} {_format_value(value)}")
    totals = meta.get("totals", {})
    out.append("totals:")
    for key, value in totals.items():
        out.append(f"  {key:<22} {_format_value(value)}")
    rows = meta.get("inputs", [])
    out.append(f"inputs ({len(rows)}):")
    if rows:
        width = max(len(str(r.get("filename"))) for r in rows)
        gwidth = max(len(str(r.get("group_id"))) for r in rows)
        out.append(f"  {'#':>4}  {'filename':<{width}}  {'group':<{gwidth}}  {'exptime':>9}  {'ctx':>4}  skipped")
        for r in rows:
            exptime = r.get("exposure_time")
            out.append(
                f"  {r.get('index', '?'):>4}  {str(r.get('filename')):<{width}}  {str(r.get('group_id')):<{gwidth}}  "
                f"{'' if exptime is None else f'{exptime:9.1f}':>9}  {str(r.get('context_bit', '')):>4}  "
                f"{'yes' if r.get('skipped') else 'no'}"
            )
    print("\n".join(out))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_fits

    _require_mosaic(args.mosaic)
    out = export_fits(args.mosaic, args.out, group=args.group, fmt=args.format, overwrite=bool(args.overwrite))
    print(out)
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from .figures import preview_png

    _require_mosaic(args.mosaic)
    out = preview_png(args.mosaic, args.out, group=args.group, variable=args.variable, max_size=args.max_size)
    print(out)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    demo_main(output_dir=args.output_dir, workers=args.workers, quiet=bool(args.quiet))
    return 0


def _require_mosaic(path: str) -> None:
    from .store import is_mosaic

    p = Path(path)
    if not p.exists():
        raise CLIError(f"{p}: not found")
    if not is_mosaic(p):
        raise CLIError(f"{p}: not a dask-resample mosaic")


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
    from . import __version__

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
    run.add_argument("-o", "--output", metavar="OUT.zarr", help="mosaic to write (a Zarr directory)")
    run.add_argument("--config", metavar="FILE", help="YAML or TOML file with option values")
    _add_group(run, "drizzle parameters", DRIZZLE_OPTIONS)
    _add_group(run, "output grid", GRID_OPTIONS)
    _add_group(run, "where to run", CLUSTER_OPTIONS)
    _add_group(run, "output handling", RUN_OPTIONS)
    _add_common(run)
    run.set_defaults(func=_cmd_run)

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
def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        text = exc.args[0]
    else:
        text = str(exc)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


_PLAIN_ERRORS = (CLIError, ValueError, KeyError, OSError, TypeError)


def _message(exc: BaseException) -> str:
    text = _one_line(exc)
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
