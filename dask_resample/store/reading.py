"""Opening a mosaic for reading: :func:`open_mosaic` (plain Zarr, sharded with its index object, or living)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .living import is_living, open_living
from .location import Location, as_location
from .mosaic import COMPLETE_KEY, FORMAT_KEY, _root_doc, is_mosaic, read_metadata

__all__ = [
    "open_mosaic",
]


def open_mosaic(
    path: str | os.PathLike | Location,
    group: str | None = None,
    level: int | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    version: int | str | None = None,
) -> Any:
    """Open a mosaic as a lazy :class:`xarray.Dataset`.

    Parameters
    ----------
    path : path-like, URL or Location
        The Zarr mosaic: a local path or any fsspec URL (``s3://...``).
    group : str, optional
        For many-to-many mosaics, the exposure group to open.
    level : int, optional
        Pyramid level (0 is full resolution), where a pyramid was written.
    storage_options : mapping, optional
        Options of the URL's file system (credentials, ``endpoint_url``).
    version : int or str, optional
        A living mosaic's version (its number, or its snapshot id); default
        the newest (see :mod:`dask_resample.living`).

    Returns
    -------
    xarray.Dataset
        Variables ``data``, ``wht``, ``con``, ``err``, ``var_*``, ``dq`` as written;
        ``attrs`` carries the metadata (WCS, parameters, inputs, totals).
    """
    import xarray as xr

    location = as_location(path, storage_options)
    if version is not None or is_living(location):
        if group or level:
            raise ValueError(f"{location}: a living mosaic has one group and no pyramid levels")
        return open_living(location, version=version)
    if not is_mosaic(location):
        raise ValueError(f"{location}: not a dask-resample mosaic")
    meta = read_metadata(location, group)
    if meta.get("mode") == "many_to_many" and not group:
        raise ValueError(f"{location}: many-to-many mosaic; pass group= one of {meta.get('groups')}")
    zgroup = group or None
    if level:
        zgroup = f"{group}/levels/{level}" if group else f"levels/{level}"
        try:
            level_doc = location.join(zgroup, "zarr.json").read_json()
        except (OSError, ValueError):
            raise ValueError(
                f"{location}: no pyramid level {level}; write it with dask_resample.write_pyramid"
            ) from None
        # the level's own WCS and grid replace those of level 0
        meta = {**meta, **level_doc.get("attributes", {}).get(FORMAT_KEY, {})}
    store = location.zarr_store(read_only=True)
    complete = (_root_doc(location) or {}).get("attributes", {}).get(COMPLETE_KEY) or {}
    digest = (complete.get("shard_index") or {}).get(group or "")
    if digest and not level:  # one ranged request per tile (see store.shard_index)
        from .shard_index import open_indexed  # deferred: shard_index imports zarr at import

        store = open_indexed(
            store, location.join(group) if group else location, prefix=group or "", expected_digest=digest
        )
    ds = xr.open_zarr(store, group=zgroup, consolidated=False, chunks={})
    ds.attrs = {FORMAT_KEY: meta}
    return ds
