"""The command line's options: one table drives argparse, the option files and the records.

An :class:`Option` is one long option, usable on the command line and as a key
of an option file (``--config``). The options of a parameter record
(:class:`~dask_resample.params.ResampleParams`,
:class:`~dask_resample.outliers.OutlierParams`) come from the metadata of its
fields through one generic path, :class:`RecordOptions`: their options, their
defaults, and the record built back from resolved values. :func:`resolve`
merges defaults < option file < command line for any set of options.

Defaults shown in help texts that are run-time settings are read from
:mod:`dask.config` (``resample.yaml``, see :mod:`dask_resample.config`).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config
from ..outliers.params import OutlierParams
from ..param_fields import (
    CommandLineForm,
    field_default,
    parse_positive_int,
    record_fields,
)
from ..params import (
    MISSIONS,
    STEP_DEFAULTS,
    WCS_PARAMETERS,
    ResampleParams,
    check_wcs_pars,
    flag_name_map_for,
    step_defaults,
)

__all__ = [
    "DRIZZLE",
    "DRIZZLE_OPTIONS",
    "MISSION",
    "OUTLIER",
    "OUTLIER_OPTIONS",
    "PROG",
    "RUN_DEFAULTS",
    "RUN_OPTIONS",
    "SKYCELL_OPTIONS",
    "CLIError",
    "Option",
    "RecordOptions",
    "argparse_type",
    "cluster_options",
    "drizzle_for",
    "grid_options",
    "load_options_file",
    "outlier_run_options",
    "resolve",
    "run_defaults",
]

PROG = "dask-resample"


class CLIError(Exception):
    """A command-line failure; the message names the culprit."""


# ----------------------------------------------------------------------------
# value types
# ----------------------------------------------------------------------------
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


def argparse_type(convert: Callable[[Any], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` from a converter that raises ``ValueError``."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = convert.__name__.lstrip("_").removeprefix("parse_").removesuffix("_text")
    return parse


# ----------------------------------------------------------------------------
# one option
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
        """Add the option to an argparse parser or group (absent from the namespace when not given).

        A value that reads as ``None`` (``--good-bits none``) is thus told apart from no value.
        """
        if self.convert is None:
            parser.add_argument(self.flag, dest=self.dest, action="store_true", default=argparse.SUPPRESS,
                                help=self.help)
            return
        kwargs: dict[str, Any] = {"dest": self.dest, "default": argparse.SUPPRESS, "help": self.help}
        kwargs["type"] = argparse_type(self.convert)
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
        if self.convert is None:
            if not isinstance(value, bool):
                raise CLIError(f"{source}: {key}: expected true or false, got {value!r}")
            return value
        convert = self.convert
        try:
            if self.nargs:
                if not isinstance(value, (list, tuple)) or len(value) != self.nargs:
                    raise ValueError(f"expected a list of {self.nargs} values, got {value!r}")
                out = [convert(v) for v in value]
            else:
                out = convert(value)
        except ValueError as exc:
            raise CLIError(f"{source}: {key}: {exc}") from None
        if self.choices is not None and out not in self.choices:
            raise CLIError(f"{source}: {key}: expected one of {', '.join(map(str, self.choices))}, got {value!r}")
        return out


def _default_text(value: Any) -> str:
    return "none" if value is None else str(value)


# ----------------------------------------------------------------------------
# the options of a parameter record, from its field metadata
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordOptions:
    """The command-line face of a parameter record, read from the metadata of its fields.

    Attributes
    ----------
    record : type
        :class:`~dask_resample.params.ResampleParams` or
        :class:`~dask_resample.outliers.OutlierParams`.
    defaults : mapping
        Parameter name -> default of the command line (the record's own
        defaults where absent).
    origin : mapping
        Parameter name -> note appended to the default in the help text.
    fixed : mapping
        Arguments of the record that are not options, given to every record
        built (the mission's ``flag_name_map``).
    """

    record: type
    defaults: Mapping[str, Any] = field(default_factory=dict)
    origin: Mapping[str, str] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def _forms(self) -> list[tuple[str, CommandLineForm, Any]]:
        return [(f.name, f.metadata["cli"], self.defaults.get(f.name, field_default(f)))
                for f in record_fields(self.record)]

    @property
    def options(self) -> tuple[Option, ...]:
        """One option per field, in field order; help texts state the defaults of values."""
        out = []
        for f in record_fields(self.record):
            form: CommandLineForm = f.metadata["cli"]
            help_text = f.metadata["help"]
            if form.parse is not None:
                default = self.defaults.get(f.name, field_default(f))
                help_text = f"{help_text} (default {_default_text(default)}{self.origin.get(f.name, '')})"
            out.append(Option(form.flag, help_text, form.parse, metavar=form.metavar,
                              choices=f.metadata["choices"] if form.parse is not None else None))
        return tuple(out)

    @property
    def option_defaults(self) -> dict[str, Any]:
        """Option name -> default, with ``--no-*`` switches as booleans."""
        return {form.dest: (not default) if form.negate else default for _, form, default in self._forms()}

    @property
    def aliases(self) -> dict[str, str]:
        """Option-file keys that are parameter names of negated switches (``enable_ctx`` for ``--no-ctx``)."""
        return {name: form.dest for name, form, _ in self._forms() if form.negate}

    def build(self, values: Mapping[str, Any]) -> Any:
        """The record of resolved option values (validated: a bad value names its parameter).

        Options absent from ``values`` take the record's defaults.
        """
        kwargs = {}
        for name, form, _ in self._forms():
            if form.dest in values:
                value = values[form.dest]
                kwargs[name] = (not value) if form.negate else (bool(value) if form.parse is None else value)
        return self.record(**kwargs, **self.fixed)


#: The drizzle parameters, with the defaults of jwst's ``ResampleStep`` (:data:`~dask_resample.params.STEP_DEFAULTS`).
DRIZZLE = RecordOptions(ResampleParams, step_defaults(), {name: ", as jwst's ResampleStep" for name in STEP_DEFAULTS})


def drizzle_for(mission: str) -> RecordOptions:
    """The drizzle parameters with the defaults and DQ flag names of a mission's ``ResampleStep``.

    ``"jwst"`` is :data:`DRIZZLE` (the defaults the help texts state); ``"roman"`` has
    romancal's (:data:`~dask_resample.params.ROMAN_STEP_DEFAULTS`), as
    :func:`dask_resample.roman.roman_params` has them.
    """
    if mission == "jwst":
        return DRIZZLE
    return RecordOptions(ResampleParams, step_defaults(mission), fixed={"flag_name_map": flag_name_map_for(mission)})

#: The outlier-detection parameters, with the defaults of jwst's ``OutlierDetectionStep`` (the record's).
OUTLIER = RecordOptions(OutlierParams)

DRIZZLE_OPTIONS: tuple[Option, ...] = DRIZZLE.options
OUTLIER_OPTIONS: tuple[Option, ...] = OUTLIER.options

#: Defaults of ``run``/``plan``: jwst's ``ResampleStep`` for the drizzle parameters.
RUN_DEFAULTS: dict[str, Any] = {**DRIZZLE.option_defaults, "mode": "many_to_one"}


def run_defaults(mission: str) -> dict[str, Any]:
    """Defaults of ``run``/``plan`` with ``--mission``: the mission's ``ResampleStep`` for the drizzle parameters."""
    return {**RUN_DEFAULTS, **drizzle_for(mission).option_defaults}


def _step_text(mission: str) -> str:
    """A mission's step defaults as option values (``good_bits ~DO_NOT_USE, pixmap_stepsize 10, ...``)."""
    return ", ".join(f"{name} {_default_text(value)}" for name, value in MISSIONS[mission].items())


#: The mission whose ``ResampleStep`` gives the drizzle parameters their defaults (``run``, ``plan``).
MISSION = Option(
    "--mission", "whose ResampleStep gives the drizzle parameters their defaults and good_bits its DQ flag "
    "names: jwst (the defaults shown here) or roman (romancal's: " + _step_text("roman") + ") (default jwst; "
    "roman with --skycells)", _text, metavar="{" + ",".join(MISSIONS) + "}", choices=tuple(MISSIONS))


# ----------------------------------------------------------------------------
# the other options (help texts read run-time defaults from dask.config)
# ----------------------------------------------------------------------------
def _pixels_text(n: Any) -> str:
    """``10000000000`` as ``1e10`` (exactly, else as is)."""
    n = int(n)
    exponent = len(str(n)) - len(str(n).rstrip("0"))
    mantissa = n // 10**exponent
    return f"{mantissa}e{exponent}" if exponent >= 3 else str(n)


def grid_options() -> tuple[Option, ...]:
    """Options of the output grid: the ``wcs_pars`` keys, an output WCS, tiles and mode."""
    tile = " ".join(str(int(n)) for n in config.get("tile-shape"))
    return (
        *(Option(p.flag, p.help, p.parse, nargs=p.n_values if p.n_values > 1 else None, metavar=p.metavar)
          for p in WCS_PARAMETERS),
        Option("--output-wcs", "ASDF file holding the output gwcs under 'wcs' (overrides the options above, "
               "except --output-shape)", _text, metavar="FILE.asdf"),
        Option("--tile-shape", f"tile (Zarr chunk) shape (default {tile})", parse_positive_int, nargs=2,
               metavar=("NY", "NX")),
        Option("--mode", f"one mosaic, or one per exposure group (default {RUN_DEFAULTS['mode']})", _text,
               choices=("many_to_one", "many_to_many")),
        Option("--max-output-pixels", "refuse outputs with more pixels than this "
               f"(default {_pixels_text(config.get('max-output-pixels'))})", _pixel_count, metavar="N"),
    )


def cluster_options() -> tuple[Option, ...]:
    """Options of where work runs (defaults: ``resample.local.*`` and ``resample.cluster``)."""
    workers = config.get("local.n-workers")
    memory = config.get("local.memory-limit")
    memory_text = "the machine's memory shared" if memory == "auto" else str(memory)
    cluster = str(config.get("cluster") or "")
    return (
        Option("--workers", f"number of workers (default: {'one per core' if workers is None else workers})",
               parse_positive_int, metavar="N"),
        Option("--threads-per-worker", f"threads per worker (default {config.get('local.threads-per-worker')})",
               parse_positive_int, metavar="N"),
        Option("--memory-limit", f"memory limit per worker, e.g. 4GiB (default: {memory_text})", _memory,
               metavar="BYTES"),
        Option("--scheduler", "address (tcp://host:8786) or scheduler file of a running Dask scheduler", _text,
               metavar="ADDRESS"),
        Option("--cluster", "cluster to start: local" + (" (default)" if cluster == "local" else "")
               + ", or a job queue (slurm, pbs, sge, lsf, ...)" + ("" if cluster == "local" else
                                                                   f" (default {cluster})"),
               _text, metavar="NAME"),
        Option("--jobs", "number of batch jobs to submit (job-queue clusters)", parse_positive_int, metavar="N"),
        Option("--dashboard-address", "where a started LocalCluster serves its dashboard (default "
               f"{config.get('local.dashboard-address')}: this machine only, a free port; ':8787' or "
               "'0.0.0.0:8787' to let other machines reach it)", _text, metavar="HOST:PORT"),
        Option("--serial", "run in this process, without Dask (debugging, tiny inputs)"),
    )


#: ``resample.fused-kernel`` off for one command (``dask-resample run`` and ``outliers``).
NO_FUSED_KERNEL = Option(
    "--no-fused-kernel", "drizzle with drizzle's C kernel, one pass per plane as stcal does (default: "
    "square and turbo drizzle every plane in one pass, with the same numbers; needs numba)")

RUN_OPTIONS: tuple[Option, ...] = (
    Option("--overwrite", "replace an existing mosaic at the output path"),
    Option("--resume", "finish an interrupted mosaic (inputs and parameters must be unchanged)"),
    Option("--pyramid", "also write a multiscale pyramid after the mosaic"),
    Option("--no-fast-pixmap", "evaluate every input pixel through both WCSs, as stcal's calc_pixmap (default: "
           "one composed sky rotation where the WCSs allow it)"),
    NO_FUSED_KERNEL,
    Option("--outliers", "flag outliers first, as jwst's imaging OutlierDetectionStep (its defaults, or "
           "--outlier-config), and mosaic with the flags applied, in one run"),
    Option("--outlier-config", "YAML or TOML file of outlier-detection parameters (names of "
           "'dask-resample outliers')", _text, metavar="FILE"),
)


#: Roman skycell mosaics of ``run`` (``dask_resample.roman.resample_skycells``).
SKYCELL_OPTIONS: tuple[Option, ...] = (
    Option("--skycells", "write one mosaic per Roman skycell the inputs touch, OUTDIR/<skycell>.zarr, each on "
           "the skycell's own grid from the inputs overlapping it (Roman inputs only; instead of -o; "
           "implies --mission roman unless given); OUTDIR is a local directory or a URL such as "
           "s3://bucket/prefix (with --storage-option)", _text, metavar="OUTDIR"),
    Option("--skymap", "the skymap file (the skycells reference file) of --skycells (default: the "
           "SKYMAP_PATH environment variable)", _text, metavar="FILE.asdf"),
)


def outlier_run_options() -> tuple[Option, ...]:
    """Output options of ``outliers``."""
    tile = " ".join(str(int(n)) for n in config.get("tile-shape"))
    return (
        Option("--tile-shape", f"tile shape of the group images and the median (default {tile})",
               parse_positive_int, nargs=2, metavar=("NY", "NX")),
        Option("--overwrite", "replace existing *_crf.fits files (and intermediate products)"),
        NO_FUSED_KERNEL,
    )


# ----------------------------------------------------------------------------
# option files and the merge of defaults, file and command line
# ----------------------------------------------------------------------------
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
    except Exception as exc:  # any parser error: reported in one line naming the file
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


def resolve(
    args: argparse.Namespace,
    options: Sequence[Option],
    *,
    keys_of: str,
    defaults: Mapping[str, Any] | None = None,
    aliases: Mapping[str, str] | None = None,
    config_path: Any = None,
    positional: Sequence[str] = (),
    from_args: bool = True,
) -> dict[str, Any]:
    """Merge defaults < option file < command line into one dictionary (option name -> value).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.
    options : sequence of Option
        The options to resolve; each gets a value (``None`` when it has no default).
    keys_of : str
        What the keys of the option file are, for the message naming an unknown key.
    defaults : mapping, optional
        Option name -> default.
    aliases : mapping, optional
        Option-file keys that set a negated switch (``enable_ctx`` -> ``no_ctx``, inverted).
    config_path : path-like, optional
        The option file.
    positional : sequence of str
        Further keys taken as they are, from the file or from ``args`` (``inputs``, ``output``, ...).
    from_args : bool
        Whether values given on the command line (in ``args``) win.

    Raises
    ------
    CLIError
        For an unknown key or a bad value in the option file.
    """
    defaults = defaults or {}
    aliases = aliases or {}
    values: dict[str, Any] = {opt.dest: defaults.get(opt.dest) for opt in options}
    if config_path:
        source = str(config_path)
        by_dest = {opt.dest: opt for opt in options}
        for key, raw in load_options_file(config_path).items():
            if key in aliases:
                if not isinstance(raw, bool):
                    raise CLIError(f"{source}: {key}: expected true or false, got {raw!r}")
                values[aliases[key]] = not raw
            elif key in positional:
                values[key] = raw
            elif key in by_dest:
                values[key] = by_dest[key].from_config(raw, source)
            else:
                raise CLIError(f"{source}: unknown key {key!r}; keys are the {keys_of}")
    if from_args:
        for opt in options:
            if hasattr(args, opt.dest):
                values[opt.dest] = getattr(args, opt.dest)
        for name in positional:
            given = getattr(args, name, None)
            if given not in (None, []):
                values[name] = given
    return values
