"""The Zarr v3 mosaic: its layout, format keys and metadata (the layout shared with living mosaics).

Layout of a many-to-one mosaic at ``path``::

    path/                 zarr group; attrs["dask_resample"] = metadata
      data  (y, x)        float32
      wht   (y, x)        float32
      con   (plane, y, x) int32
      err, var_rnoise, var_flat, var_poisson  (y, x) float32
      exptime (y, x)      float32 (the effective exposure-time map, ``compute_exptime``)
      dq    (y, x)        uint32
      _progress/          one marker file per finished tile (written atomically)

A many-to-many mosaic holds one such group per exposure group (named by the
group id) under the root group, whose attributes list the groups.

One tile is exactly one chunk. With sharding (the default on object stores,
``resample.shard-tiles``) several tiles share one shard object per array, and one
task writes each whole shard (:func:`~dask_resample.store.shard_tasks.write_shard`): no two tasks ever write into
the same object, so tiles are written concurrently without locks. Chunks that
hold only the fill value are not written at all.

Everything goes through :class:`~dask_resample.store.location.Location`, so
``path`` may be a local path or any fsspec URL (``s3://``, ``gs://``, ...). Each array's fill
value is the reference's value at a pixel no input reaches
(:func:`dask_resample.drizzle.reduce.empty_pixel_values`: ``fillval`` for ``data``,
``fillval / pixel_scale_ratio`` for a drizzled ``err``, NaN for variances, 0 for
``wht``, ``con`` and ``dq``), so tiles no input touches read as in the reference.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry import gwcs_from_text
from .location import Location, as_location

__all__ = [
    "COMPLETE_KEY",
    "CREATING_KEY",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "PROGRESS_DIR",
    "MosaicExistsError",
    "StoreSpec",
    "array_compressors",
    "create_layout",
    "create_store",
    "finalize_store",
    "gwcs_from_attrs",
    "is_complete",
    "is_mosaic",
    "layout_problems",
    "mark_complete",
    "read_metadata",
    "remove_partial_writes",
    "remove_stale_siblings",
    "scratch_sibling",
]

FORMAT_KEY = "dask_resample"
FORMAT_VERSION = 1
PROGRESS_DIR = "_progress"


class MosaicExistsError(FileExistsError):
    """The output path exists and may not be replaced."""


@dataclass(frozen=True)
class StoreSpec:
    """Where and how a tile task writes (small, picklable).

    Attributes
    ----------
    location : Location
        The mosaic's root.
    group : str
        Exposure group (``""`` for the root of a many-to-one mosaic).
    arrays : tuple of str
        Array names to write.
    """

    location: Location
    group: str
    arrays: tuple[str, ...]

    @property
    def path(self) -> str:
        """The mosaic's path or URL."""
        return self.location.url

    def progress(self) -> Location:
        """The group's progress markers."""
        return self.location.join(*([self.group] if self.group else []), PROGRESS_DIR)


def _group_path(group: str) -> str:
    return group or ""


def _root_doc(location: Location) -> dict[str, Any] | None:
    try:
        return location.join("zarr.json").read_json()
    except (OSError, ValueError):
        return None


def is_mosaic(path: str | os.PathLike | Location, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True if ``path`` is a Zarr group written by this package (creation finished)."""
    doc = _root_doc(as_location(path, storage_options))
    return doc is not None and FORMAT_KEY in doc.get("attributes", {})


def _is_half_created(location: Location) -> bool:
    """True if ``location`` is a store whose creation by this package was interrupted."""
    doc = _root_doc(location)
    return doc is not None and CREATING_KEY in doc.get("attributes", {}) and FORMAT_KEY not in doc["attributes"]


#: Root attribute present only while :func:`create_store` builds a store in place (object stores).
CREATING_KEY = "dask_resample_creating"
#: Root attribute written once a run has written every tile.
COMPLETE_KEY = "dask_resample_complete"


def mark_complete(location: Location, record: Mapping[str, Any]) -> None:
    """Record, in the root's attributes, that every tile of the store at ``location`` is written."""
    import zarr

    zarr.open_group(location.zarr_store(), mode="r+").attrs[COMPLETE_KEY] = json.loads(json.dumps(dict(record)))


def is_complete(location: Location) -> bool:
    """True if :func:`mark_complete` ran for the store at ``location``."""
    doc = _root_doc(location)
    return doc is not None and COMPLETE_KEY in doc.get("attributes", {})


def gwcs_from_attrs(attrs: Mapping[str, Any]) -> Any:
    """The output gwcs stored in a mosaic's metadata."""
    meta = attrs.get(FORMAT_KEY, attrs)
    return gwcs_from_text(meta["wcs_asdf"])


def create_store(
    path: str | os.PathLike | Location,
    *,
    groups: Mapping[str, Mapping[str, Any]],
    root_attrs: Mapping[str, Any],
    shape_yx: tuple[int, int],
    tile_shape_yx: tuple[int, int],
    arrays: Sequence[str],
    fill_values: Mapping[str, Any],
    many_to_many: bool,
    shard_tiles_yx: tuple[int, int] = (1, 1),
) -> None:
    """Create the (empty) Zarr layout.

    Parameters
    ----------
    path : path-like, URL or Location
    groups : mapping
        ``group -> {"attrs": {...}, "n_ctx_planes": int}``; for many-to-one the
        single group ``""`` is the root.
    root_attrs : mapping
        Metadata stored under ``attrs["dask_resample"]`` of the root.
    shape_yx, tile_shape_yx : tuple of int
        Mosaic shape; tile shape, which is the Zarr chunk shape.
    arrays : sequence of str
        Array names to create.
    fill_values : mapping
        Array name -> value of a pixel no input reaches
        (:func:`dask_resample.drizzle.reduce.empty_pixel_values`); it is the array's
        Zarr fill value, so chunks no input touches are never written.
    many_to_many : bool
    shard_tiles_yx : tuple of int
        Tiles per Zarr shard along y and x; ``(1, 1)`` writes one object per
        tile and array, without the sharding codec.
    """
    target = as_location(path)
    if target.exists() and not _is_half_created(target):
        raise MosaicExistsError(f"{target}: exists; remove it first (prepare_output)")
    if target.is_local:
        # Build the layout beside the target and move it into place in one rename,
        # so that ``path`` is either absent or a complete, empty mosaic: a run
        # killed while creating it leaves nothing that resume could mistake for one.
        remove_stale_siblings(target, kinds=("staging",))
        location = target.sibling(f".{target.name}.staging-{uuid.uuid4().hex[:12]}")
    else:
        # No rename on object stores: the root metadata is written first with a
        # "creating" flag and rewritten with the mosaic's metadata last.
        target.remove()
        location = target
    create_layout(
        location.zarr_store(),
        groups=groups,
        root_attrs=root_attrs,
        shape_yx=shape_yx,
        tile_shape_yx=tile_shape_yx,
        arrays=arrays,
        fill_values=fill_values,
        many_to_many=many_to_many,
        shard_tiles_yx=shard_tiles_yx,
        creating_flag=True,
    )
    if location != target:
        location.rename(target)


def create_layout(
    store: Any,
    *,
    groups: Mapping[str, Mapping[str, Any]],
    root_attrs: Mapping[str, Any],
    shape_yx: tuple[int, int],
    tile_shape_yx: tuple[int, int],
    arrays: Sequence[str],
    fill_values: Mapping[str, Any],
    many_to_many: bool,
    shard_tiles_yx: tuple[int, int] = (1, 1),
    creating_flag: bool = False,
) -> None:
    """Write the (empty) Zarr layout of a mosaic into any Zarr ``store`` (the body of :func:`create_store`).

    Parameters are those of :func:`create_store`; ``creating_flag`` first
    writes the root with the "creating" flag (object stores, see there). A
    living mosaic's transaction uses it directly (:mod:`dask_resample.store.living`).
    """
    import zarr

    root = zarr.open_group(store, mode="w", zarr_format=3, attributes={CREATING_KEY: True} if creating_flag else {})
    compressors = array_compressors()
    sy, sx = (int(v) for v in shard_tiles_yx)
    for group, info in groups.items():
        g = root.create_group(group) if many_to_many else root
        if many_to_many:
            g.attrs[FORMAT_KEY] = json.loads(json.dumps(dict(info["attrs"]), default=_json_default))
        for name in arrays:
            if name == "con":
                # one chunk per plane and tile: planes no contributor of a tile sets are never written
                shape: tuple[int, ...] = (int(info["n_ctx_planes"]), *shape_yx)
                chunks: tuple[int, ...] = (1, *tile_shape_yx)
                # every plane in one shard object (built a tile at a time: store.shard_writer)
                shards: tuple[int, ...] = (shape[0], tile_shape_yx[0] * sy, tile_shape_yx[1] * sx)
                dims: tuple[str, ...] = ("plane", "y", "x")
            else:
                shape, chunks, dims = shape_yx, tile_shape_yx, ("y", "x")
                shards = (tile_shape_yx[0] * sy, tile_shape_yx[1] * sx)
            g.create_array(
                name,
                shape=shape,
                chunks=chunks,
                shards=None if (sy, sx) == (1, 1) else shards,
                dtype=np.asarray(fill_values[name]).dtype,
                fill_value=np.asarray(fill_values[name]).item(),
                dimension_names=dims,
                compressors=compressors,
                config={"write_empty_chunks": False},
            )
        g.create_group(PROGRESS_DIR, attributes={"description": "one marker per completed tile or shard"})
    root.attrs.put({FORMAT_KEY: json.loads(json.dumps(dict(root_attrs), default=_json_default))})


def array_compressors() -> list[Any]:
    """The compressors of every array of a mosaic (Blosc lz4, byte shuffle: fast on float planes)."""
    from zarr.codecs import BloscCodec

    return [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]


def scratch_sibling(path: str | os.PathLike | Location, token: str) -> Location:
    """The hidden sibling of ``path`` holding a run's tile partials."""
    location = as_location(path)
    return location.sibling(f".{location.name}.scratch-{token}")


def remove_stale_siblings(
    path: str | os.PathLike | Location,
    kinds: Sequence[str] = ("staging", "trash", "scratch", "replacing"),
) -> list[Location]:
    """Remove half-created or half-removed copies of ``path``, and partials, left by killed runs.

    A complete replacement (``replacing``) is kept: it is a finished mosaic
    waiting to be swapped in (:func:`finish_interrupted_swap`).

    Returns
    -------
    list of Location
        What was removed.
    """
    location = as_location(path)
    removed = []
    prefix = f".{location.name}."
    for name in location.parent.listdir():
        if not name.startswith(prefix):
            continue
        kind = name[len(prefix) :].split("-", 1)[0]
        if kind not in kinds:
            continue
        stale = location.sibling(name)
        if kind == "replacing" and is_complete(stale):
            continue
        stale.remove()
        removed.append(stale)
    return removed


def layout_problems(path: str | os.PathLike | Location, groups: Sequence[str], arrays: Sequence[str]) -> list[str]:
    """What is missing from the Zarr layout of a mosaic (empty if it is whole).

    Parameters
    ----------
    path : path-like, URL or Location
    groups : sequence of str
        Group ids (``[""]`` for many-to-one).
    arrays : sequence of str
        Array names every group must hold.
    """
    location = as_location(path)
    problems = []
    for group in groups:
        base = location.join(group) if group else location
        for name in arrays:
            if not base.join(name, "zarr.json").is_file():
                problems.append(f"array {group + '/' if group else ''}{name} missing")
        if not base.join(PROGRESS_DIR, "zarr.json").is_file():
            problems.append(f"{group + '/' if group else ''}{PROGRESS_DIR} missing")
    return problems


def remove_partial_writes(path: str | os.PathLike | Location) -> int:
    """Delete temporary files of chunk or marker writes interrupted by a kill (local disks only).

    Object stores have none: an object is written whole or not at all.

    Returns
    -------
    int
        Number of files removed.
    """
    location = as_location(path)
    if not location.is_local:
        return 0
    n = 0
    for dirpath, _dirnames, filenames in os.walk(location.url):
        for fn in filenames:
            if fn.endswith(".partial") or (
                fn.startswith(".") and ".tmp-" in fn and os.path.basename(dirpath) == PROGRESS_DIR
            ):
                try:
                    os.unlink(os.path.join(dirpath, fn))
                    n += 1
                except OSError:
                    pass
    return n


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def finalize_store(path: str | os.PathLike | Location) -> None:
    """Consolidate metadata so that plain ``xarray.open_zarr(path)`` is fast."""
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(as_location(path).zarr_store())


def read_metadata(path: str | os.PathLike | Location, group: str | None = None) -> dict[str, Any]:
    """The ``dask_resample`` attributes of a mosaic (or of one of its groups)."""
    location = as_location(path)
    doc = location.join("zarr.json").read_json()
    meta = doc.get("attributes", {}).get(FORMAT_KEY)
    if meta is None:
        raise ValueError(f"{location}: not a dask-resample mosaic")
    if group:
        groups = meta.get("groups") or []
        if group not in groups:
            raise ValueError(f"{location}: no exposure group {group!r} in this mosaic; its groups are {groups}")
        gdoc = location.join(group, "zarr.json").read_json()
        meta = {**meta, **gdoc.get("attributes", {}).get(FORMAT_KEY, {})}
    return meta
