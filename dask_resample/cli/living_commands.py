"""The living-mosaic subcommands: ``add``, ``remove`` and ``log`` (through :mod:`dask_resample.living`)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from .. import living, store
from ..geometry import grid
from .arguments import (
    _check_cluster_options,
    _check_inputs,
    _connect,
    _inputs_arg,
    _storage_options,
)
from .options import (
    DRIZZLE,
    DRIZZLE_OPTIONS,
    PROG,
    RUN_DEFAULTS,
    CLIError,
    cluster_options,
    grid_options,
    resolve,
)

__all__ = ["cmd_add", "cmd_log", "cmd_remove"]


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
    return {
        "grid": living.GridSpec(
            crval=tuple(v["crval"]),
            pixel_scale=float(v["pixel_scale"]),
            shape_yx=tuple(v["output_shape"]),
            rotation=float(v.get("rotation") or 0.0),
            crpix=None if v.get("crpix") is None else tuple(v["crpix"]),
        )
    }


def _run_update(args: argparse.Namespace, **kwargs: Any) -> int:
    """Run :func:`dask_resample.living.update` with the 'where to run' options; print the new version."""
    options = (*DRIZZLE_OPTIONS, *grid_options(), *cluster_options())
    v = resolve(
        args,
        options,
        keys_of=_living_keys(args),
        defaults=RUN_DEFAULTS,
        aliases=DRIZZLE.aliases,
        positional=("mosaic", "storage_options"),
    )
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
        result = living.update(
            mosaic,
            client=None if handle is None else handle.client,
            scheduler="serial" if handle is None else "distributed",
            storage_options=storage_options,
            **kwargs,
        )
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
