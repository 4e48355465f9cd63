"""Packaged defaults under the ``resample`` namespace of :mod:`dask.config`.

The one place the package's run-time defaults live (``resample.yaml``); the
constants below are read from it.

Importing this module registers the defaults of ``resample.yaml`` (shipped
with the package) with :func:`dask.config.update_defaults`, the way
dask-jobqueue registers ``jobqueue.yaml``. Values from the user's Dask
configuration files, ``DASK_RESAMPLE__*`` environment variables and
:func:`dask.config.set` take precedence over them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.config
import yaml

__all__ = ["DEFAULTS_PATH", "DEFAULT_MAX_OUTPUT_PIXELS", "DEFAULT_TILE_SHAPE", "get", "packaged", "reconfigure"]

#: The packaged defaults file.
DEFAULTS_PATH = Path(__file__).with_name("resample.yaml")


def reconfigure() -> dict[str, Any]:
    """(Re)load the packaged defaults into :mod:`dask.config`.

    Returns
    -------
    dict
        The defaults as read from ``resample.yaml``.
    """
    with open(DEFAULTS_PATH) as fh:
        defaults = yaml.safe_load(fh)
    dask.config.update_defaults(defaults)
    return defaults


#: Marks an argument that was not given.
_UNSET: Any = object()


def get(key: str, default: Any = _UNSET) -> Any:
    """Read ``resample.<key>`` from :mod:`dask.config`.

    Parameters
    ----------
    key : str
        Key below the ``resample`` namespace, e.g. ``"local.n-workers"``.
    default : Any, optional
        Returned when the key is not set at all. Without it, the packaged
        default of ``resample.yaml`` is returned (``None`` for a key it does
        not hold): a configuration that replaces the whole namespace (for
        instance ``dask.config.set({"resample": {...}})``) keeps the packaged
        defaults of the keys it leaves out.
    """
    if default is _UNSET:
        default = packaged(key)
    return dask.config.get(f"resample.{key}", default=default)


def packaged(key: str) -> Any:
    """The packaged default of ``resample.<key>`` (``resample.yaml``), ``None`` if it holds no such key.

    Parameters
    ----------
    key : str
        Dotted key below the ``resample`` namespace.
    """
    node: Any = _PACKAGED
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


_PACKAGED = reconfigure()["resample"]

#: Default tile (and Zarr chunk) shape (ny, nx): ``resample.tile-shape`` of ``resample.yaml``.
_ny, _nx = (int(n) for n in _PACKAGED["tile-shape"])
DEFAULT_TILE_SHAPE: tuple[int, int] = (_ny, _nx)

#: Refuse outputs with more pixels unless told otherwise: ``resample.max-output-pixels`` of ``resample.yaml``.
DEFAULT_MAX_OUTPUT_PIXELS: int = int(_PACKAGED["max-output-pixels"])
