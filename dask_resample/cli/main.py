"""The ``dask-resample`` command line.

Subcommands: ``run`` (make a mosaic), ``outliers`` (jwst's imaging outlier
detection, ``*_crf.fits`` files), ``plan`` (grid, tiles and coverage
without reading pixels), ``info`` (describe a mosaic), ``export`` (FITS
``*_i2d.fits``), ``preview`` (PNG), ``demo``, and for living mosaics
``add``, ``remove`` and ``log``.

Every failure exits with a non-zero status and one line on stderr,
``dask-resample: error: <message naming the culprit>`` (plus the traceback
with ``--debug``).

The options and their values live in :mod:`dask_resample.cli.options`, the
subcommands in :mod:`dask_resample.cli.commands`; this module builds the
parser and runs it.

Defaults of ``run`` and ``plan`` follow jwst's ``ResampleStep`` (``good_bits =
"~DO_NOT_USE+NON_SCIENCE"``, variances resampled, ``err`` from the
variances); the Python function :func:`dask_resample.resample` keeps the
defaults of ``ResampleImage``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .._version import __version__
from ..inputs.io import one_line
from ..param_fields import parse_positive_int
from ..products.figures import PREVIEW_MAX_SIZE
from .commands import (
    cmd_add,
    cmd_demo,
    cmd_export,
    cmd_info,
    cmd_log,
    cmd_outliers,
    cmd_plan,
    cmd_preview,
    cmd_remove,
    cmd_run,
    parse_storage_options,
)
from .options import (
    DRIZZLE_OPTIONS,
    MISSION,
    OUTLIER_MISSION,
    OUTLIER_OPTIONS,
    PROG,
    RUN_OPTIONS,
    SKYCELL_OPTIONS,
    CLIError,
    Option,
    argparse_type,
    cluster_options,
    grid_options,
    load_options_file,
    outlier_run_options,
)

__all__ = [
    "DRIZZLE_OPTIONS",
    "CLIError",
    "Option",
    "build_parser",
    "load_options_file",
    "main",
    "parse_storage_options",
]


class _ArgumentError(Exception):
    """A usage error reported by argparse."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, raised instead of printed."""

    def error(self, message: str) -> None:  # type: ignore[override]  # raises instead of exiting
        sub = self.prog[len(PROG) :].strip()
        raise _ArgumentError(f"{sub}: {message}" if sub else message)


# ----------------------------------------------------------------------------
# parser
# ----------------------------------------------------------------------------
_RUN_EPILOG = """\
Defaults follow jwst's ResampleStep: good_bits "~DO_NOT_USE+NON_SCIENCE",
variances resampled and reported, err computed from the variances
(--compute-err from_var). The Python function dask_resample.resample() keeps
the defaults of jwst's ResampleImage instead.

--mission roman takes romancal's ResampleStep defaults instead (Roman WFI
inputs); --skycells OUTDIR writes one mosaic per Roman skycell the inputs
touch, OUTDIR/<skycell>.zarr, on the skycell's own grid (run only);
--projection-region REGION -o OUT.zarr writes one mosaic on a projection
region's grid over the skycells the inputs touch (run only).

--config FILE (YAML, or TOML for *.toml) holds the same keys as the long
options, with dashes or underscores (pixel_scale: 0.03, kernel: square,
tile-shape: [512, 512], inputs: [...], output: out.zarr), and optionally a
wcs_pars table; options given on the command line win.
"""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors; no progress bar")


def _add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="option of the URLs' file system (fsspec storage_options), repeatable: "
        "key=..., secret=..., endpoint_url=http://..., client_kwargs.region_name=...; "
        "also 'storage_options' in --config and resample.storage-options in the Dask config",
    )
    parser.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")


def _add_group(parser: argparse.ArgumentParser, title: str, options: Sequence[Option]) -> None:
    group = parser.add_argument_group(title)
    for opt in options:
        opt.add_to(group)


def _product_parser(sub: Any, name: str, help: str, description: str, out: tuple[str, str]) -> Any:
    """A subcommand that makes a product of a mosaic: ``MOSAIC OUT [--group G]``."""
    parser = sub.add_parser(name, help=help, description=description)
    parser.add_argument("mosaic", metavar="OUT.zarr", help="the mosaic")
    parser.add_argument("out", metavar=out[0], help=out[1])
    parser.add_argument("--group", metavar="G", help="exposure group of a many-to-many mosaic")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """Build the ``dask-resample`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = _Parser(
        prog=PROG,
        description="Drizzle many exposures into one tiled Zarr mosaic on a Dask cluster "
        "(same numbers as jwst's ResampleImage).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    cluster = cluster_options()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser(
        "run",
        help="make a mosaic",
        description="Drizzle INPUTS into a tiled Zarr mosaic.",
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUTS",
        help="an association (*_asn.json) or input files (*_cal.fits or plain FITS)",
    )
    run.add_argument(
        "-o",
        "--output",
        metavar="OUT.zarr",
        help="mosaic to write: a Zarr directory or an object-store URL (s3://bucket/m.zarr, ...)",
    )
    _add_storage(run)
    run.add_argument("--config", metavar="FILE", help="YAML or TOML file with option values")
    _add_group(run, "drizzle parameters", (MISSION, *DRIZZLE_OPTIONS))
    _add_group(run, "output grid", grid_options())
    _add_group(run, "Roman skycells (--skycells instead of -o) and projection regions", SKYCELL_OPTIONS)
    _add_group(run, "where to run", cluster)
    _add_group(run, "output handling", RUN_OPTIONS)
    _add_common(run)
    run.set_defaults(func=cmd_run)

    outliers = sub.add_parser(
        "outliers",
        help="flag outliers as jwst's (or romancal's) imaging OutlierDetectionStep",
        description="Drizzle each exposure group onto a common grid, take the median across groups tile by "
        "tile, blot it back onto every input and flag outliers (DQ DO_NOT_USE|OUTLIER, NaN in data, err "
        "and variances); write one <root>_crf.fits per input. Parameters and defaults are those of jwst's "
        "OutlierDetectionStep for imaging; with Roman WFI inputs (--mission roman) romancal's: DQ flags only, "
        "one <root>_outlier_detection.asdf per input.",
    )
    outliers.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUTS",
        help="an association (*_asn.json) or input files (*_cal.fits or plain FITS)",
    )
    outliers.add_argument("-o", "--output-dir", metavar="DIR", help="directory (or URL prefix) of the *_crf.fits files")
    _add_storage(outliers)
    outliers.add_argument("--config", metavar="FILE", help="YAML or TOML file with option values")
    _add_group(outliers, "outlier-detection parameters", (OUTLIER_MISSION, *OUTLIER_OPTIONS))
    _add_group(outliers, "output", outlier_run_options())
    _add_group(outliers, "where to run", cluster)
    _add_common(outliers)
    outliers.set_defaults(func=cmd_outliers)

    plan = sub.add_parser(
        "plan",
        help="plan a mosaic (grid, tiles, coverage) without reading pixels",
        description="Compute the output grid, the tiles and which inputs feed each tile, without reading "
        "any pixel; print a summary and optionally draw the coverage.",
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument("inputs", nargs="*", metavar="INPUTS", help="an association or input files")
    plan.add_argument("--png", metavar="PLAN.png", help="draw the coverage figure to this PNG")
    plan.add_argument("--config", metavar="FILE", help="YAML or TOML file with option values")
    _add_group(plan, "drizzle parameters", (MISSION, *DRIZZLE_OPTIONS))
    _add_group(plan, "output grid", grid_options())
    _add_common(plan)
    plan.set_defaults(func=cmd_plan)

    info = sub.add_parser(
        "info",
        help="describe a mosaic",
        description="Grid, WCS, tiles written, parameters, totals and inputs of a mosaic.",
    )
    info.add_argument("mosaic", metavar="OUT.zarr", help="the mosaic")
    info.add_argument("--json", action="store_true", help="print the stored metadata as JSON")
    _add_storage(info)
    _add_common(info)
    info.set_defaults(func=cmd_info)

    export = _product_parser(
        sub,
        "export",
        "export a mosaic to a FITS i2d file",
        "Write a FITS file that jwst's datamodels.open reads as an ImageModel (SCI, WHT, CON, "
        "ERR, VAR_* and the WCS); plain FITS with the same extensions when jwst is not installed.",
        ("OUT_i2d.fits", "FITS file to write"),
    )
    export.add_argument(
        "--format",
        choices=("auto", "jwst", "fits"),
        default="auto",
        help="jwst ImageModel or plain FITS (default auto: jwst when installed)",
    )
    export.add_argument("--overwrite", action="store_true", help="replace an existing FITS file")
    _add_storage(export)
    _add_common(export)
    export.set_defaults(func=cmd_export)

    preview = _product_parser(
        sub,
        "preview",
        "draw a PNG preview of a mosaic",
        "Draw an asinh-stretched image of the mosaic with RA/Dec axes; big mosaics are decimated while reading.",
        ("OUT.png", "PNG file to write"),
    )
    preview.add_argument("--variable", default="data", help="array to draw (default data)")
    preview.add_argument(
        "--max-size",
        type=argparse_type(parse_positive_int),
        default=PREVIEW_MAX_SIZE,
        metavar="PX",
        help=f"longest side of the drawn image (default {PREVIEW_MAX_SIZE})",
    )
    _add_storage(preview)
    _add_common(preview)
    preview.set_defaults(func=cmd_preview)

    add = sub.add_parser(
        "add",
        help="add inputs to a living mosaic (one new version; created on its fixed grid)",
        description="Add INPUTS at the end of a living mosaic's input order and recompute only the tiles they "
        "touch, in one new version; the result equals a run from scratch over all inputs. A new mosaic needs "
        "its fixed grid: --output-wcs FILE, or --crval, --pixel-scale and --output-shape (may be much larger "
        "than the data). Drizzle parameters are fixed at creation (defaults of 'run').",
    )
    add.add_argument("mosaic", metavar="MOSAIC", help="the living mosaic: a directory or an s3:// URL")
    add.add_argument("inputs", nargs="+", metavar="INPUTS", help="an association or input files")
    _add_storage(add)
    _add_group(add, "drizzle parameters (fixed at creation)", DRIZZLE_OPTIONS)
    _add_group(add, "fixed grid (at creation)", grid_options())
    _add_group(add, "where to run", cluster)
    _add_common(add)
    add.set_defaults(func=cmd_add)

    remove = sub.add_parser(
        "remove",
        help="remove inputs from a living mosaic (one new version)",
        description="Remove inputs (file name, source path or content fingerprint) from a living mosaic and "
        "recompute only the tiles they touched; the result equals a run from scratch without them.",
    )
    remove.add_argument("mosaic", metavar="MOSAIC", help="the living mosaic")
    remove.add_argument("inputs", nargs="+", metavar="NAME", help="file names, paths or fingerprints")
    _add_storage(remove)
    _add_group(remove, "where to run", cluster)
    _add_common(remove)
    remove.set_defaults(func=cmd_remove)

    log = sub.add_parser(
        "log",
        help="list the versions of a living mosaic",
        description="One line per version, newest first: number, snapshot id, time, inputs "
        "added (+) and removed (-), tiles recomputed, package version.",
    )
    log.add_argument("mosaic", metavar="MOSAIC", help="the living mosaic")
    _add_storage(log)
    _add_common(log)
    log.set_defaults(func=cmd_log)

    demo = sub.add_parser(
        "demo",
        help="write a synthetic dataset and mosaic it (what 'make demo' runs)",
        description="Write a synthetic NIRCam-like dataset, drizzle it on a LocalCluster into a Zarr mosaic "
        "and draw a PNG preview.",
    )
    demo.add_argument(
        "--output-dir",
        default="demo_output",
        metavar="DIR",
        help="where to write the data, the mosaic and the preview (default demo_output)",
    )
    demo.add_argument(
        "--workers",
        type=argparse_type(parse_positive_int),
        default=None,
        metavar="N",
        help="LocalCluster workers (default 2)",
    )
    _add_common(demo)
    demo.set_defaults(func=cmd_demo)
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
