"""Sharded mosaics: a finished tile encoded for its shard, a shard written whole by one task, and
the shard indexes of a finished mosaic.

Several tiles share one shard object per array (``resample.shard-tiles``); one
task writes each whole shard (:func:`write_shard`) from its tiles' encoded chunks
(:func:`encode_tile_chunks`, :func:`write_encoded_tile`), so no two tasks ever write
into the same object.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .location import Location
from .mosaic import StoreSpec, _group_path, _json_default
from .shard_writer import ChunkCodec, ShardEncoder
from .tile_writes import _open_array, _write_marker

__all__ = [
    "SHARD_MEMORY_BYTES",
    "encode_tile_chunks",
    "index_shards",
    "read_encoded_tile",
    "shard_codecs",
    "write_encoded_tile",
    "write_shard",
]


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

    from .shard_index import (  # deferred: shard_index imports zarr, which `import dask_resample` does not load
        read_shard_indexes,
        shard_layout,
        write_index_object,
    )

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


#: Encoded bytes a shard task keeps in memory, over all arrays, before spilling them to a temporary file.
SHARD_MEMORY_BYTES = 128 * 2**20


def shard_codecs(spec: StoreSpec) -> dict[str, dict[str, Any]]:
    """The metadata of every sharded array of ``spec`` (``to_dict()`` form: small, picklable).

    Read once, by the client, and carried by the graph to the tasks that encode
    tiles (:func:`encode_tile_chunks`), which then need no request for it.
    """
    return {name: _open_array(spec, name, mode="r").metadata.to_dict() for name in spec.arrays}


def encode_tile_chunks(
    codecs: Mapping[str, Any], ty: int, tx: int, arrays: Mapping[str, np.ndarray], ctx_planes: Sequence[int]
) -> tuple[bytes, list[list[Any]]]:
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


def write_shard(
    spec: StoreSpec,
    sy: int,
    sx: int,
    tiles: Iterable[Mapping[str, Any]],
    codecs: Mapping[str, Any],
    *,
    spill_dir: str | None = None,
) -> dict[str, Any]:
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
            target = spec.location.join(
                *[p for p in (_group_path(spec.group), name) if p], *encoder.codec.shard_key(coords).split("/")
            )
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
