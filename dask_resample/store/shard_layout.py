"""Where the shard indexes of a sharded Zarr array are, and reading them from written shards.

:class:`ShardLayout` (small, picklable) says where one array's shard indexes are
found: their keys, size and place in the shard object. :func:`read_shard_indexes`
fetches the indexes of written shards (one suffix request per shard, concurrently).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from math import ceil
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.store import RangeByteRequest, Store, SuffixByteRequest

if TYPE_CHECKING:
    from zarr.abc.store import ByteRequest

__all__ = ["FETCH_CONCURRENCY", "ShardCoords", "ShardLayout", "read_shard_index", "read_shard_indexes", "shard_layout"]

#: Concurrent requests of :func:`read_shard_indexes`.
FETCH_CONCURRENCY = 16

ShardCoords = tuple[int, ...]


# -- the layout of one sharded array ------------------------------------------------------------
@dataclass(frozen=True)
class ShardLayout:
    """What a reader needs to find the shard indexes of one array (small, picklable).

    Attributes
    ----------
    chunk_key_encoding : dict
        The array's chunk key encoding as in its ``zarr.json``
        (``{"name": "default", "configuration": {"separator": "/"}}``).
    shard_grid : tuple of int
        Shards along each dimension.
    index_size : int
        Bytes of one shard index as stored (for the default index codecs,
        bytes + crc32c: ``16 * inner chunks per shard + 4``).
    index_location : {"end", "start"}
        Where the index sits in the shard object.
    """

    chunk_key_encoding: Mapping[str, Any]
    shard_grid: tuple[int, ...]
    index_size: int
    index_location: str

    def chunk_key(self, coords: ShardCoords) -> str:
        """The key of shard ``coords`` below its array (``c/0/1``)."""
        from zarr.core.chunk_key_encodings import parse_chunk_key_encoding

        return parse_chunk_key_encoding(dict(self.chunk_key_encoding)).encode_chunk_key(tuple(coords))

    def byte_range(self) -> ByteRequest:
        """The request zarr makes for a shard's index."""
        if self.index_location == "start":
            return RangeByteRequest(0, self.index_size)
        return SuffixByteRequest(self.index_size)

    def to_json(self) -> dict[str, Any]:
        """The layout as JSON-compatible values."""
        return {
            "chunk_key_encoding": json.loads(json.dumps(dict(self.chunk_key_encoding))),
            "shard_grid": [int(n) for n in self.shard_grid],
            "index_size": int(self.index_size),
            "index_location": self.index_location,
        }


def _sharding_codec(array: Any) -> Any:
    from zarr.codecs import ShardingCodec

    codecs = getattr(array.metadata, "codecs", ())
    if not codecs or not isinstance(codecs[0], ShardingCodec):
        raise ValueError(f"array {array.path!r} is not sharded")
    return codecs[0]


def shard_layout(array: Any) -> ShardLayout:
    """The :class:`ShardLayout` of a sharded Zarr v3 array.

    Parameters
    ----------
    array : zarr.Array
        A sharded array (its first codec is zarr's ``ShardingCodec``).

    Returns
    -------
    ShardLayout

    Raises
    ------
    ValueError
        If the array is not sharded.
    """
    codec = _sharding_codec(array)
    shard_shape = tuple(int(n) for n in array.shards)
    per_shard = tuple(s // c for s, c in zip(shard_shape, codec.chunk_shape, strict=True))
    # the same function zarr uses to size its index request, from the codec's index codecs
    index_size = int(codec._shard_index_size(per_shard))
    location = getattr(codec.index_location, "value", codec.index_location)
    return ShardLayout(
        chunk_key_encoding=array.metadata.chunk_key_encoding.to_dict(),
        shard_grid=tuple(ceil(n / s) for n, s in zip(array.shape, shard_shape, strict=True)),
        index_size=index_size,
        index_location=str(location),
    )


# -- reading the indexes of written shards ------------------------------------------------------
def _array_key(array: Any, layout: ShardLayout, coords: ShardCoords) -> str:
    path = array.path.strip("/")
    key = layout.chunk_key(coords)
    return f"{path}/{key}" if path else key


async def _fetch_indexes(store: Store, keys: Sequence[str], layout: ShardLayout) -> list[bytes]:
    from zarr.core.buffer import default_buffer_prototype

    semaphore = asyncio.Semaphore(FETCH_CONCURRENCY)
    prototype = default_buffer_prototype()

    async def one(key: str) -> bytes:
        async with semaphore:
            buf = await store.get(key, prototype, layout.byte_range())
        data = b"" if buf is None else buf.to_bytes()
        if data and len(data) != layout.index_size:
            raise ValueError(
                f"{key}: shard index of {len(data)} bytes, expected {layout.index_size} "
                "(truncated or not a shard of this array)"
            )
        return data

    return list(await asyncio.gather(*(one(k) for k in keys)))


def read_shard_indexes(array: Any, coords: Iterable[ShardCoords] | None = None) -> dict[ShardCoords, bytes]:
    """The stored indexes of shards of ``array`` (one ranged request per shard, concurrently).

    Parameters
    ----------
    array : zarr.Array
        A sharded array.
    coords : iterable of tuple of int, optional
        Shard grid coordinates (one per dimension: ``(sy, sx)``, or
        ``(plane, sy, sx)`` for ``con``); default every shard of the array.

    Returns
    -------
    dict
        ``coords -> index bytes``; ``b""`` for a shard that does not exist.
    """
    from zarr.core.sync import sync

    layout = shard_layout(array)
    wanted = [tuple(int(v) for v in c) for c in (np.ndindex(*layout.shard_grid) if coords is None else coords)]
    keys = [_array_key(array, layout, c) for c in wanted]
    return dict(zip(wanted, sync(_fetch_indexes(array.store, keys, layout)), strict=True))


def read_shard_index(array: Any, coords: ShardCoords) -> bytes:
    """The stored index of one shard of ``array``, after the shard was written (one ranged request).

    Parameters
    ----------
    array : zarr.Array
        A sharded array.
    coords : tuple of int
        The shard's grid coordinates (``(sy, sx)``; ``(plane, sy, sx)`` for ``con``).

    Returns
    -------
    bytes
        The index as stored (:attr:`ShardLayout.index_size` bytes), or ``b""``
        if the shard does not exist.
    """
    return read_shard_indexes(array, [coords])[tuple(int(v) for v in coords)]
