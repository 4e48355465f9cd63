"""The command line's options: one table drives argparse, the option files and the records.

This module holds the tables: the options of the drizzle and outlier-detection
records (:data:`DRIZZLE`, :data:`OUTLIER`, :func:`drizzle_for`), of the output
grid, the cluster and the run. An :class:`Option` and the generic path from a
record's field metadata (:class:`RecordOptions`) are in
:mod:`~dask_resample.cli.record_options`; option files and :func:`resolve`
(defaults < option file < command line) in :mod:`~dask_resample.cli.option_files`.
This module re-exports their names.

Defaults shown in help texts that are run-time settings are read from
:mod:`dask.config` (``resample.yaml``, see :mod:`dask_resample.config`).
"""

from __future__ import annotations

from typing import Any

from .. import config
from ..outliers.params import OUTLIER_RULES, OutlierParams
from ..param_fields import parse_positive_int
from ..params import (
    MISSIONS,
    STEP_DEFAULTS,
    WCS_PARAMETERS,
    ResampleParams,
    flag_name_map_for,
    step_defaults,
)
from .option_files import load_options_file, resolve
from .record_options import (
    PROG,
    CLIError,
    Option,
    RecordOptions,
    _default_text,
    _memory,
    _pixel_count,
    _text,
    argparse_type,
)

__all__ = [
    "DRIZZLE",
    "DRIZZLE_OPTIONS",
    "MISSION",
    "OUTLIER",
    "OUTLIER_MISSION",
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
    "outlier_for",
    "outlier_run_options",
    "resolve",
    "run_defaults",
]


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


def outlier_for(mission: str) -> RecordOptions:
    """The outlier-detection parameters under a mission's ``OutlierDetectionStep`` (its defaults and rules).

    ``"jwst"`` has the record's own defaults (those the help texts state) with jwst's rules;
    ``"roman"`` romancal's (:data:`~dask_resample.outliers.params.ROMAN_OUTLIER_DEFAULTS`), as
    :func:`dask_resample.outliers.params.outlier_step_params` has them.
    """
    return RecordOptions(OutlierParams, OUTLIER_RULES[mission].defaults, fixed={"mission": mission})


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
    "--mission",
    "whose ResampleStep gives the drizzle parameters their defaults and good_bits its DQ flag "
    "names: jwst (the defaults shown here) or roman (romancal's: " + _step_text("roman") + ") (default jwst; "
    "roman with --skycells)",
    _text,
    metavar="{" + ",".join(MISSIONS) + "}",
    choices=tuple(MISSIONS),
)

#: The mission whose ``OutlierDetectionStep`` gives ``outliers`` its defaults and rules.
OUTLIER_MISSION = Option(
    "--mission",
    "whose OutlierDetectionStep gives the parameters their defaults and the run its rules: jwst "
    "(the defaults shown here; *_crf.fits) or roman (romancal's: "
    + ", ".join(f"{name} {_default_text(value)}" for name, value in OUTLIER_RULES["roman"].defaults.items())
    + "; ivm weights, DQ-only flags, *_outlier_detection.asdf) (default: roman for Roman WFI inputs, "
    "else jwst)",
    _text,
    metavar="{" + ",".join(MISSIONS) + "}",
    choices=tuple(MISSIONS),
)


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
        *(
            Option(p.flag, p.help, p.parse, nargs=p.n_values if p.n_values > 1 else None, metavar=p.metavar)
            for p in WCS_PARAMETERS
        ),
        Option(
            "--output-wcs",
            "ASDF file holding the output gwcs under 'wcs' (overrides the options above, except --output-shape)",
            _text,
            metavar="FILE.asdf",
        ),
        Option(
            "--tile-shape",
            f"tile (Zarr chunk) shape (default {tile})",
            parse_positive_int,
            nargs=2,
            metavar=("NY", "NX"),
        ),
        Option(
            "--mode",
            f"one mosaic, or one per exposure group (default {RUN_DEFAULTS['mode']})",
            _text,
            choices=("many_to_one", "many_to_many"),
        ),
        Option(
            "--max-output-pixels",
            f"refuse outputs with more pixels than this (default {_pixels_text(config.get('max-output-pixels'))})",
            _pixel_count,
            metavar="N",
        ),
    )


def cluster_options() -> tuple[Option, ...]:
    """Options of where work runs (defaults: ``resample.local.*`` and ``resample.cluster``)."""
    workers = config.get("local.n-workers")
    memory = config.get("local.memory-limit")
    memory_text = "the machine's memory shared" if memory == "auto" else str(memory)
    cluster = str(config.get("cluster") or "")
    return (
        Option(
            "--workers",
            f"number of workers (default: {'one per core' if workers is None else workers})",
            parse_positive_int,
            metavar="N",
        ),
        Option(
            "--threads-per-worker",
            f"threads per worker (default {config.get('local.threads-per-worker')})",
            parse_positive_int,
            metavar="N",
        ),
        Option(
            "--memory-limit", f"memory limit per worker, e.g. 4GiB (default: {memory_text})", _memory, metavar="BYTES"
        ),
        Option(
            "--scheduler",
            "address (tcp://host:8786) or scheduler file of a running Dask scheduler",
            _text,
            metavar="ADDRESS",
        ),
        Option(
            "--cluster",
            "cluster to start: local"
            + (" (default)" if cluster == "local" else "")
            + ", or a job queue (slurm, pbs, sge, lsf, ...)"
            + ("" if cluster == "local" else f" (default {cluster})"),
            _text,
            metavar="NAME",
        ),
        Option("--jobs", "number of batch jobs to submit (job-queue clusters)", parse_positive_int, metavar="N"),
        Option(
            "--dashboard-address",
            "where a started LocalCluster serves its dashboard (default "
            f"{config.get('local.dashboard-address')}: this machine only, a free port; ':8787' or "
            "'0.0.0.0:8787' to let other machines reach it)",
            _text,
            metavar="HOST:PORT",
        ),
        Option("--serial", "run in this process, without Dask (debugging, tiny inputs)"),
    )


#: ``resample.fused-kernel`` off for one command (``dask-resample run`` and ``outliers``).
NO_FUSED_KERNEL = Option(
    "--no-fused-kernel",
    "drizzle with drizzle's C kernel, one pass per plane as stcal does (default: "
    "square, turbo and lanczos drizzle every plane in one pass, with the same numbers; needs numba)",
)

RUN_OPTIONS: tuple[Option, ...] = (
    Option("--overwrite", "replace an existing mosaic at the output path"),
    Option("--resume", "finish an interrupted mosaic (inputs and parameters must be unchanged)"),
    Option("--pyramid", "also write a multiscale pyramid after the mosaic"),
    Option(
        "--no-fast-pixmap",
        "evaluate every input pixel through both WCSs, as stcal's calc_pixmap (default: "
        "one composed sky rotation where the WCSs allow it)",
    ),
    NO_FUSED_KERNEL,
    Option(
        "--outliers",
        "flag outliers first, as jwst's imaging OutlierDetectionStep (its defaults, or "
        "--outlier-config), and mosaic with the flags applied, in one run",
    ),
    Option(
        "--outlier-config",
        "YAML or TOML file of outlier-detection parameters (names of 'dask-resample outliers')",
        _text,
        metavar="FILE",
    ),
)


#: Roman skycell mosaics of ``run`` (``dask_resample.roman.resample_skycells``).
SKYCELL_OPTIONS: tuple[Option, ...] = (
    Option(
        "--skycells",
        "write one mosaic per Roman skycell the inputs touch, OUTDIR/<skycell>.zarr, each on "
        "the skycell's own grid from the inputs overlapping it (Roman inputs only; instead of -o; "
        "implies --mission roman unless given); OUTDIR is a local directory or a URL such as "
        "s3://bucket/prefix (with --storage-option)",
        _text,
        metavar="OUTDIR",
    ),
    Option(
        "--projection-region",
        "with -o OUT.zarr: one mosaic on the tangent-plane grid of a Roman "
        "projection region (an index, proj<index> or a skycell name's region part such as 135p90), "
        "spanning the skycells of it the inputs touch, whose pixels are the skycells' pixels and whose "
        "tiles start on skycell boundaries (default --tile-shape: the largest side dividing the 4800-pixel "
        "skycell pitch, 960; Roman inputs only; implies --mission roman unless given)",
        _text,
        metavar="REGION",
    ),
    Option(
        "--skymap",
        "the skymap file (the skycells reference file) of --skycells or --projection-region "
        "(default: the SKYMAP_PATH environment variable)",
        _text,
        metavar="FILE.asdf",
    ),
)


def outlier_run_options() -> tuple[Option, ...]:
    """Output options of ``outliers``."""
    tile = " ".join(str(int(n)) for n in config.get("tile-shape"))
    return (
        Option(
            "--tile-shape",
            f"tile shape of the group images and the median (default {tile})",
            parse_positive_int,
            nargs=2,
            metavar=("NY", "NX"),
        ),
        Option("--overwrite", "replace existing *_crf.fits files (and intermediate products)"),
        NO_FUSED_KERNEL,
    )
