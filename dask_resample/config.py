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

__all__ = ["DEFAULTS_PATH", "DEFAULT_MAX_OUTPUT_PIXELS", "DEFAULT_TILE_SHAPE", "get", "reconfigure"]

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


def get(key: str, default: Any = None) -> Any:
    """Read ``resample.<key>`` from :mod:`dask.config`.

    Parameters
    ----------
    key : str
        Key below the ``resample`` namespace, e.g. ``"local.n-workers"``.
    default : Any
        Returned when the key is not set at all.
    """
    return dask.config.get(f"resample.{key}", default=default)


_PACKAGED = reconfigure()["resample"]

#: Default tile (and Zarr chunk) shape (ny, nx): ``resample.tile-shape`` of ``resample.yaml``.
DEFAULT_TILE_SHAPE: tuple[int, int] = tuple(int(n) for n in _PACKAGED["tile-shape"])  # type: ignore[assignment]

#: Refuse outputs with more pixels unless told otherwise: ``resample.max-output-pixels`` of ``resample.yaml``.
DEFAULT_MAX_OUTPUT_PIXELS: int = int(_PACKAGED["max-output-pixels"])
