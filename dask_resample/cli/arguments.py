"""Resolved option values turned into API arguments, checked before any cluster starts.

Storage options, inputs, the output, the drizzle parameters and the plan, the
cluster to connect to, and the mosaic a subcommand names; the API is called
through its modules' attributes (``api.plan_mosaic``, ``cluster.connect``), which
tests may replace.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import api, cluster, config, store
from ..execution.workers import input_kinds
from ..geometry import grid
from ..params import WCS_PARAMETERS, check_wcs_pars
from .options import (
    DRIZZLE,
    OUTLIER,
    OUTLIER_OPTIONS,
    PROG,
    RUN_DEFAULTS,
    CLIError,
    Option,
    drizzle_for,
    resolve,
    run_defaults,
)

__all__ = ["parse_storage_options"]

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

    The mission (command line > option file > ``roman`` with ``--skycells`` or
    ``--projection-region``, else ``jwst``) is
    resolved first, then every value over that mission's defaults.
    """
    kwargs: dict[str, Any] = {
        "keys_of": _run_keys(args),
        "aliases": DRIZZLE.aliases,
        "config_path": getattr(args, "config", None),
        "positional": positional,
    }
    v = resolve(args, options, defaults=RUN_DEFAULTS, **kwargs)
    mission = v.get("mission") or ("roman" if v.get("skycells") or v.get("projection_region") else "jwst")
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
        inputs,
        mode=v["mode"],
        params=params,
        output_wcs=output_wcs,
        wcs_pars=wcs_pars,
        tile_shape=v["tile_shape"],
        max_output_pixels=v["max_output_pixels"],
        client=client,
    )


def _check_cluster_options(v: Mapping[str, Any]) -> None:
    """Refuse contradictory 'where to run' options (before anything starts)."""
    if v["serial"] and (v["scheduler"] or v["cluster"] or v["workers"] or v["jobs"]):
        raise CLIError("--serial runs without Dask; drop --scheduler/--cluster/--workers/--jobs")
    if v["jobs"] is not None and str(v["cluster"]).lower() == "local":
        raise CLIError("--jobs: only with a job-queue --cluster (slurm, pbs, ...), not with --cluster local")


def _connect(v: Mapping[str, Any], inputs: Sequence[Any] | None = None) -> Any:
    """The cluster handle of the 'where to run' options (``None`` with ``--serial``).

    ``inputs`` (resolved input records) tell a LocalCluster started here which input kinds
    its workers prepare for (:func:`~dask_resample.execution.workers.prepare_worker`);
    ``None``: every kind.
    """
    if v["serial"]:
        return None
    extra = {"dashboard_address": v["dashboard_address"]} if v["dashboard_address"] else {}
    handle = cluster.connect(
        cluster=v["cluster"],
        scheduler=v["scheduler"],
        n_workers=v["workers"],
        threads_per_worker=v["threads_per_worker"],
        memory_limit=v["memory_limit"],
        jobs=v["jobs"],
        worker_setup_kwargs={"kinds": input_kinds(inputs)},
        **extra,
    )
    if link := handle.dashboard_link:
        log.info("Dask dashboard: %s", link)
    return handle


def _run_keys(args: argparse.Namespace) -> str:
    return f"long options of '{PROG} {args.command}' (see --help)"


#: What the keys of an outlier-detection option file are (unknown-key messages).
_OUTLIER_KEYS = f"options of '{PROG} outliers'"


def _outlier_params(args: argparse.Namespace, config_path: Any) -> Any:
    """The :class:`~dask_resample.outliers.OutlierParams` of an option file (``run --outlier-config``)."""
    values = resolve(
        args,
        OUTLIER_OPTIONS,
        keys_of=_OUTLIER_KEYS,
        defaults=OUTLIER.option_defaults,
        aliases=OUTLIER.aliases,
        config_path=config_path,
        from_args=False,
    )
    return OUTLIER.build(values)


def _kernel_choice(values: Mapping[str, Any]) -> Any:
    """``--no-fused-kernel`` as ``resample.fused-kernel: false`` while the graph is built."""
    import contextlib

    import dask.config

    if values.get("no_fused_kernel"):
        return dask.config.set({"resample.fused-kernel": False})
    return contextlib.nullcontext()


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
