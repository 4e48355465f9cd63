"""The Zarr v3 mosaic: layout, attributes, tile writes, progress markers, opening.

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
task writes each whole shard (:func:`write_shard`): no two tasks ever write into
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

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry import gwcs_from_text
from .location import Location, as_location

__all__ = [
    "MosaicExistsError",
    "StoreSpec",
    "create_store",
    "encode_tile_chunks",
    "gwcs_from_attrs",
    "index_shards",
    "is_mosaic",
    "layout_problems",
    "open_mosaic",
    "read_metadata",
    "remove_partial_writes",
    "read_encoded_tile",
    "remove_stale_siblings",
    "scratch_sibling",
    "shard_codecs",
    "tile_marker",
    "tiles_done",
    "write_encoded_tile",
    "write_shard",
    "write_tile",
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


def check_output(location: Location, *, overwrite: bool, resume: bool) -> None:
    """Refuse an output that may not be (re)written, before any work.

    Raises
    ------
    MosaicExistsError
        If something exists there that is not a mosaic, or a mosaic exists and
        neither ``overwrite`` nor ``resume`` is set.
    """
    if not location.exists() or _is_half_created(location):
        return
    if not is_mosaic(location):
        raise MosaicExistsError(f"{location}: exists and is not a dask-resample mosaic; refusing to touch it")
    if not (overwrite or resume):
        raise MosaicExistsError(f"{location}: mosaic exists; pass overwrite=True (--overwrite) to replace it")


def prepare_output(path: str | os.PathLike | Location, overwrite: bool, resume: bool = False) -> Location:
    """Check that ``path`` may be (re)written; remove an old mosaic if allowed.

    Used for intermediate stores (the outlier median), which nobody reads
    while they are replaced; a mosaic itself is replaced by :func:`swap_in`.

    Raises
    ------
    MosaicExistsError
        If ``path`` exists and is not a mosaic, or is one and ``overwrite`` is false.
    """
    location = as_location(path)
    check_output(location, overwrite=overwrite, resume=resume)
    if location.exists() and not resume:
        location.remove()
    return location


def replacement(location: Location, fingerprint: str) -> Location:
    """Where a run that replaces the mosaic at ``location`` builds the new one (a hidden sibling).

    The name depends on the run's inputs, parameters and grid, so a killed
    replacement is found again by a rerun (resume) of the same command.
    """
    return location.sibling(f".{location.name}.replacing-{fingerprint[:16]}")


def mark_complete(location: Location, record: Mapping[str, Any]) -> None:
    """Record, in the root's attributes, that every tile of the store at ``location`` is written."""
    import zarr

    zarr.open_group(location.zarr_store(), mode="r+").attrs[COMPLETE_KEY] = json.loads(json.dumps(dict(record)))


def index_shards(location: Location, groups: Sequence[str], arrays: Sequence[str]) -> dict[str, str]:
    """Write the shard index object of every group of a finished, sharded mosaic.

    Every shard of every array is written (or, holding only fill values, never
    will be), so the indexes read now (one small ranged request per shard,
    concurrently) are final. The object lets a reader fetch one tile in one
    ranged request (:mod:`dask_resample.store.shard_index`).

    Returns
    -------
    dict
        ``group -> digest`` of each object (``""`` names the root of a
        many-to-one mosaic), for the completion record; empty when the mosaic
        is not sharded.
    """
    import zarr

    from .shard_index import read_shard_indexes, shard_layout, write_index_object

    root = zarr.open_group(location.zarr_store(read_only=True), mode="r")
    digests: dict[str, str] = {}
    for group in groups:
        node: Any = root[group] if group else root  # a group, whose members zarr types as Array | Group
        members = [node[name] for name in arrays]
        if not members or members[0].shards is None:
            return {}
        layouts = {name: shard_layout(arr) for name, arr in zip(arrays, members, strict=True)}
        indexes = {name: read_shard_indexes(arr) for name, arr in zip(arrays, members, strict=True)}
        digests[group] = write_index_object(location.join(group) if group else location, indexes, layouts)
    return digests


def is_complete(location: Location) -> bool:
    """True if :func:`mark_complete` ran for the store at ``location``."""
    doc = _root_doc(location)
    return doc is not None and COMPLETE_KEY in doc.get("attributes", {})


def swap_in(new: Location, target: Location) -> None:
    """Put the finished mosaic ``new`` in the place of ``target``; remove the old one.

    At every moment a complete mosaic exists: the old one at ``target`` until
    the new one replaces it, and the new one at ``new`` until it is at
    ``target``. Locally the swap is two renames. On an object store, which has
    no rename, the old objects are removed and the new ones copied (server
    side) with the root metadata last, then ``new`` is removed; a run killed
    during the copy leaves ``new`` complete, and the same command run again
    finishes the swap (:func:`finish_interrupted_swap`).
    """
    if target.is_local:
        trash = target.sibling(f".{target.name}.trash-{uuid.uuid4().hex[:12]}")
        if target.exists():
            target.rename(trash)
        new.rename(target)
        trash.remove()
        return
    target.remove()
    root_meta = new.join("zarr.json").url
    objects = [obj for obj in new.walk_files() if obj.url != root_meta]
    # the root metadata last: until it is there, ``target`` is not a mosaic to any reader
    for obj in [*objects, new.join("zarr.json")]:
        obj.fs.copy(obj.path, target.join(obj.url[len(new.url) + 1:]).path)
    target.fs.invalidate_cache()
    new.remove()


def finish_interrupted_swap(target: Location, fingerprint: str) -> bool:
    """Finish a replacement of ``target`` that was killed after its new mosaic was complete.

    Returns
    -------
    bool
        True if a swap was finished (``target`` now holds that mosaic).
    """
    new = replacement(target, fingerprint)
    if new.exists() and is_complete(new) and is_mosaic(new):
        swap_in(new, target)
        return True
    return False


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
    create_layout(location.zarr_store(), groups=groups, root_attrs=root_attrs, shape_yx=shape_yx,
                  tile_shape_yx=tile_shape_yx, arrays=arrays, fill_values=fill_values, many_to_many=many_to_many,
                  shard_tiles_yx=shard_tiles_yx, creating_flag=True)
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
    from zarr.codecs import BloscCodec

    root = zarr.open_group(store, mode="w", zarr_format=3,
                           attributes={CREATING_KEY: True} if creating_flag else {})
    compressors = [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]
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
        kind = name[len(prefix):].split("-", 1)[0]
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
            if fn.endswith(".partial") or (fn.startswith(".") and ".tmp-" in fn
                                           and os.path.basename(dirpath) == PROGRESS_DIR):
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


def _open_array(spec: StoreSpec, name: str, mode: str = "r+") -> Any:
    import zarr

    gpath = _group_path(spec.group)
    return zarr.open_array(spec.location.zarr_store(read_only=mode == "r"),
                           path=f"{gpath}/{name}" if gpath else name, mode=mode)


def _write_marker(spec: StoreSpec, name: str, record: Mapping[str, Any]) -> None:
    spec.progress().join(f"{name}.json").write_json(dict(record))


def write_tile(
    spec: StoreSpec,
    y0: int,
    x0: int,
    ty: int,
    tx: int,
    arrays: Mapping[str, np.ndarray],
    record: dict[str, Any],
    ctx_planes: Sequence[int] = (0,),
) -> dict[str, Any]:
    """Write one tile's arrays into its chunks and mark the tile complete.

    The marker is written (whole, in one request) only after every array is
    written, so a tile with a marker is complete.

    Parameters
    ----------
    spec : StoreSpec
    y0, x0 : int
        Position of the tile in the mosaic.
    ty, tx : int
        Tile index.
    arrays : mapping
        Finalised arrays; ``con`` holds only the planes ``ctx_planes`` of the
        mosaic's context (the others stay unwritten: zero).
    record : dict
        Small record stored in the marker.
    ctx_planes : sequence of int
        Planes of ``con`` held by ``arrays["con"]``.

    Returns
    -------
    dict
        The small record stored in the marker.
    """
    for name in spec.arrays:
        block = arrays[name]
        arr = _open_array(spec, name)
        if name == "con":
            for local, plane in enumerate(ctx_planes):
                arr[plane, y0 : y0 + block.shape[1], x0 : x0 + block.shape[2]] = block[local]
        else:
            arr[y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = block
    _write_marker(spec, f"{ty}_{tx}", record)
    return record


#: Encoded bytes a shard task keeps in memory, over all arrays, before spilling them to a temporary file.
SHARD_MEMORY_BYTES = 128 * 2**20


def shard_codecs(spec: StoreSpec) -> dict[str, dict[str, Any]]:
    """The metadata of every sharded array of ``spec`` (``to_dict()`` form: small, picklable).

    Read once, by the client, and carried by the graph to the tasks that encode
    tiles (:func:`encode_tile_chunks`), which then need no request for it.
    """
    return {name: _open_array(spec, name, mode="r").metadata.to_dict() for name in spec.arrays}


def encode_tile_chunks(codecs: Mapping[str, Any], ty: int, tx: int, arrays: Mapping[str, np.ndarray],
                       ctx_planes: Sequence[int]) -> tuple[bytes, list[list[Any]]]:
    """A finished tile's inner chunks, encoded for its shard, as one blob and its table of contents.

    Parameters
    ----------
    codecs : mapping
        ``name -> ChunkCodec`` (or the array metadata of :func:`shard_codecs`).
    ty, tx : int
        Tile index (one tile is one inner chunk of every array).
    arrays : mapping
        The tile's finished arrays; ``con`` holds the planes ``ctx_planes``.
    ctx_planes : sequence of int

    Returns
    -------
    blob : bytes
        The encoded chunks, one after the other.
    table : list
        ``[name, chunk_coords, offset, length]`` per chunk that holds more than
        the fill value (the others are left out, as zarr leaves them out).
    """
    from .shard_writer import ChunkCodec

    parts: list[bytes] = []
    table: list[list[Any]] = []
    offset = 0
    for name, codec in codecs.items():
        if not isinstance(codec, ChunkCodec):
            codec = ChunkCodec(codec, name)
        chunks: list[tuple[tuple[int, ...], np.ndarray]]
        if name == "con":  # the planes the tile's contributors set, one at a time
            chunks = [((int(plane), ty, tx), arrays[name][k]) for k, plane in enumerate(ctx_planes)]
        else:
            chunks = [((ty, tx), arrays[name])]
        for coords, values in chunks:
            data = codec.encode(values)
            if data is None:
                continue
            table.append([name, list(coords), offset, len(data)])
            parts.append(data)
            offset += len(data)
    return b"".join(parts), table


_ENCODED_HEADER = 8  # bytes of the record's length before a finished tile's record and chunks


def write_encoded_tile(location: Location, record: Mapping[str, Any], blob: bytes) -> None:
    """Write a finished tile (its record, then its encoded chunks) as one object, whole.

    The record (JSON, with the ``chunks`` table of :func:`encode_tile_chunks`)
    makes the object self-describing: a retried task reads it back
    (:func:`read_encoded_tile`) instead of finishing the tile again.
    """
    head = json.dumps(dict(record), default=_json_default, sort_keys=True).encode()
    location.write_bytes(b"".join([len(head).to_bytes(_ENCODED_HEADER, "little"), head, blob]))


def read_encoded_tile(location: Location) -> tuple[dict[str, Any], memoryview]:
    """The record and the encoded chunks of an object of :func:`write_encoded_tile` (one read)."""
    data = memoryview(location.read_bytes())
    n = int.from_bytes(data[:_ENCODED_HEADER], "little")
    return json.loads(bytes(data[_ENCODED_HEADER : _ENCODED_HEADER + n])), data[_ENCODED_HEADER + n :]


def write_shard(spec: StoreSpec, sy: int, sx: int, tiles: Iterable[Mapping[str, Any]],
                codecs: Mapping[str, Any], *, spill_dir: str | None = None) -> dict[str, Any]:
    """Write one whole shard of every array from its tiles' encoded chunks, then its marker.

    One task writes each shard object once, whole (zarr-python rewrites a
    whole shard on any partial write, so two writers of one shard would lose
    updates). The tiles were finished and encoded by their own tasks
    (:func:`encode_tile_chunks`); here each tile's blob is read once and its
    chunks go to every array's :class:`~dask_resample.store.shard_writer.ShardEncoder`,
    which keeps them in memory up to :data:`SHARD_MEMORY_BYTES` in all and the
    rest in a temporary file in ``spill_dir``. So memory holds one tile's
    blob, then one shard's bytes.

    Parameters
    ----------
    spec : StoreSpec
    sy, sx : int
        Shard index (along y and x).
    tiles : iterable of mapping
        The records of the shard's finished tiles: ``tile`` (``[ty, tx]``),
        ``ctx_planes``, ``chunks`` (the table of :func:`encode_tile_chunks`) and
        ``encoded`` (the Location of its :func:`write_encoded_tile` object).
    codecs : mapping
        The arrays' metadata (:func:`shard_codecs`).
    spill_dir : str, optional
        A local directory for encoded bytes beyond the memory budget (default: the system's).

    Returns
    -------
    dict
        The marker's record: the shard and its tiles' records (without the blob's table).
    """
    from .shard_writer import ChunkCodec, ShardEncoder

    per_array = SHARD_MEMORY_BYTES // max(1, len(spec.arrays))
    encoders: dict[str, ShardEncoder] = {}
    records = []
    try:
        for name in spec.arrays:
            codec = ChunkCodec(codecs[name], name)
            coords = (0, sy, sx) if name == "con" else (sy, sx)
            encoders[name] = ShardEncoder(codec, coords, memory_bytes=per_array, spill_dir=spill_dir)
        for record in tiles:
            if record["chunks"]:
                _, blob = read_encoded_tile(record["encoded"])
                for name, chunk_coords, offset, length in record["chunks"]:
                    encoders[name].add_encoded(tuple(chunk_coords), bytes(blob[offset : offset + length]))
                del blob
            records.append({k: v for k, v in record.items() if k not in ("encoded", "chunks")})
        for name, encoder in encoders.items():
            data = encoder.to_bytes()
            encoder.close()
            coords = (0, sy, sx) if name == "con" else (sy, sx)
            target = spec.location.join(*[p for p in (_group_path(spec.group), name) if p],
                                        *encoder.codec.shard_key(coords).split("/"))
            if data is None:
                target.remove()  # every tile holds the fill value: no object, as zarr writes none
            else:
                target.write_bytes(data)
            del data
    finally:
        for encoder in encoders.values():
            encoder.close()
    record = {"shard": [sy, sx], "tiles": records}
    _write_marker(spec, f"shard_{sy}_{sx}", record)
    return record


def tile_marker(spec: StoreSpec, ty: int, tx: int) -> dict[str, Any] | None:
    """The completion record of a tile, or ``None`` if it is not complete."""
    try:
        return spec.progress().join(f"{ty}_{tx}.json").read_json()
    except (OSError, ValueError):
        return None


def shard_marker(spec: StoreSpec, sy: int, sx: int) -> dict[str, Any] | None:
    """The completion record of a shard, or ``None`` if it is not complete."""
    try:
        return spec.progress().join(f"shard_{sy}_{sx}.json").read_json()
    except (OSError, ValueError):
        return None


def tiles_done(path: str | os.PathLike | Location, group: str = "") -> dict[tuple[int, int], dict[str, Any]]:
    """Tiles of ``group`` marked complete (by their own marker or their shard's), with their records."""
    progress = as_location(path)
    progress = (progress.join(group) if group else progress).join(PROGRESS_DIR)
    done: dict[tuple[int, int], dict[str, Any]] = {}
    for name in progress.listdir():
        if not name.endswith(".json") or name == "zarr.json":
            continue
        try:
            rec = progress.join(name).read_json()
            if name.startswith("shard_"):
                for t in rec["tiles"]:
                    done[(int(t["tile"][0]), int(t["tile"][1]))] = t
            else:
                ty, tx = (int(v) for v in name[: -len(".json")].split("_"))
                done[(ty, tx)] = rec
        except (ValueError, OSError, KeyError, TypeError):
            continue
    return done


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


def open_mosaic(path: str | os.PathLike | Location, group: str | None = None, level: int | None = None,
                *, storage_options: Mapping[str, Any] | None = None, version: int | str | None = None) -> Any:
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

    from .living import is_living, open_living

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
                f"{location}: no pyramid level {level}; write it with dask_resample.write_pyramid") from None
        # the level's own WCS and grid replace those of level 0
        meta = {**meta, **level_doc.get("attributes", {}).get(FORMAT_KEY, {})}
    store = location.zarr_store(read_only=True)
    complete = (_root_doc(location) or {}).get("attributes", {}).get(COMPLETE_KEY) or {}
    digest = (complete.get("shard_index") or {}).get(group or "")
    if digest and not level:  # one ranged request per tile (see store.shard_index)
        from .shard_index import open_indexed

        store = open_indexed(store, location.join(group) if group else location, prefix=group or "",
                             expected_digest=digest)
    ds = xr.open_zarr(store, group=zgroup, consolidated=False, chunks={})
    ds.attrs = {FORMAT_KEY: meta}
    return ds


def input_fingerprint(records: Sequence[Mapping[str, Any]], params: Mapping[str, Any], grid: Mapping[str, Any],
                      storage_options: Mapping[str, Any] | None = None) -> str:
    """A digest of inputs (names, sizes, mtimes or ETags), parameters and grid, used by resume.

    Parameters
    ----------
    records : sequence of mapping
        ``ExposureRef.to_record()`` rows (``filename``, ``source``, ``group_id``).
    params, grid : mapping
        The run's parameters and grid record.
    storage_options : mapping, optional
        Options of the file system of URL sources (credentials, ``endpoint_url``).
        A local file counts by its size and mtime; an object at a URL by its size
        and ETag (else its modification time), from one ``fs.info`` request; a
        source that cannot be asked counts by its name only.
    """
    # fs.info keys that change when an object is rewritten, in order of preference
    version_keys = ("ETag", "etag", "md5Hash", "LastModified", "last_modified", "updated", "mtime", "created")

    def stat_of(source: str) -> list[Any] | None:
        location = Location(source, storage_options or {})
        if location.is_local:
            if not os.path.exists(location.url):
                return None
            st = os.stat(location.url)
            return [st.st_size, st.st_mtime_ns]
        try:
            info = location.fs.info(location.path)
        except Exception:  # unreachable now: the run reading it will say why
            return None
        return [info.get("size"), next((info[k] for k in version_keys if info.get(k) is not None), None)]

    h = hashlib.sha256()
    for rec in records:
        src = rec.get("source")
        stat = stat_of(str(src)) if src and src != "<memory>" else None
        h.update(json.dumps([rec.get("filename"), src, rec.get("group_id"), stat], default=str).encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    h.update(json.dumps(grid, sort_keys=True, default=str).encode())
    return h.hexdigest()
