"""Whole shards assembled one inner chunk (one tile) at a time.

zarr-python encodes a shard from the whole shard's array: writing a 4 x 4-tile
shard of 1024 x 1024 tiles holds 64 MiB per plane, and a shard of ``con``
holding every context plane would hold that many times more. A Zarr v3 shard
is only its encoded inner chunks, one after the other, and an index of their
byte ranges (the sharding codec's specification), so it can be built a chunk
at a time instead:

* each inner chunk (one tile, or one plane of one tile) is encoded by a
  one-chunk in-memory Zarr array with the array's own inner codecs (so the bytes
  are what zarr itself writes), as it comes, and only the encoded bytes are
  kept (:class:`ShardEncoder`: in memory up to a budget, then in an anonymous
  temporary file), so a task can feed every array's shard in one pass over its
  tiles and encode each tile once;
* a chunk that holds only the fill value is left out (``write_empty_chunks``
  false, as zarr does);
* the index is encoded by a one-chunk in-memory array with the array's own
  index codecs (checksum included), and put where the codec says (start or end).

Memory then holds one tile and the shard's encoded bytes, whatever the shard's
size or its number of planes. Readers see an ordinary Zarr v3 shard.

The inner chunks may also be encoded elsewhere, earlier (:class:`ChunkCodec`,
built from the array's metadata alone, by the task that finishes each tile)
and handed over as bytes (:meth:`ShardEncoder.add_encoded`): the shard's
writer then only lays them out.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from typing import Any, BinaryIO

import numpy as np

__all__ = ["ChunkCodec", "ShardEncoder", "encode_shard", "shard_chunk_key"]

_EMPTY = np.uint64(2**64 - 1)  # offset and length of an absent inner chunk (sharding specification)


def _metadata(array: Any) -> Any:
    """The ``ArrayV3Metadata`` of a zarr array, of metadata, or of its ``to_dict()`` form."""
    from zarr.core.metadata import ArrayV3Metadata

    if isinstance(array, ArrayV3Metadata):
        return array
    if isinstance(array, dict):
        return ArrayV3Metadata.from_dict(dict(array))
    return array.metadata


def _sharding_codec(metadata: Any, name: str) -> Any:
    from zarr.codecs import ShardingCodec

    codecs = metadata.codecs
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        raise ValueError(f"{name}: not a sharded array")
    return codecs[0]


def _split_codecs(codecs: Iterable[Any]) -> dict[str, Any]:
    """``filters``, ``serializer`` and ``compressors`` of a codec chain (Zarr v3 order)."""
    from zarr.abc.codec import ArrayArrayCodec, ArrayBytesCodec

    filters, serializer, compressors = [], None, []
    for codec in codecs:
        if isinstance(codec, ArrayArrayCodec) and serializer is None:
            filters.append(codec)
        elif isinstance(codec, ArrayBytesCodec):
            serializer = codec
        else:
            compressors.append(codec)
    return {"filters": filters, "serializer": serializer, "compressors": compressors}


class _OneChunkEncoder:
    """Encodes arrays of one shape with a codec chain, through a one-chunk in-memory Zarr array."""

    def __init__(
        self, shape: tuple[int, ...], dtype: Any, fill_value: Any, codecs: Iterable[Any], write_empty: bool
    ) -> None:
        import zarr
        from zarr.storage import MemoryStore

        self._data: dict[str, Any] = {}
        self._array = zarr.create_array(
            MemoryStore(self._data),
            shape=shape,
            chunks=shape,
            dtype=dtype,
            fill_value=fill_value,
            zarr_format=3,
            config={"write_empty_chunks": write_empty},
            **_split_codecs(codecs),
        )
        self._key = self._array.metadata.encode_chunk_key((0,) * len(shape))

    def encode(self, block: np.ndarray) -> bytes | None:
        """The encoded bytes of ``block`` (the chunk's full shape), ``None`` if it holds only the fill value."""
        self._data.pop(self._key, None)
        self._array[...] = block
        buf = self._data.pop(self._key, None)
        return None if buf is None else buf.to_bytes()


class ChunkCodec:
    """The inner chunks of one sharded Zarr v3 array: their grid and their encoding.

    Parameters
    ----------
    array : zarr.Array, ArrayV3Metadata or dict
        The array, its metadata, or the metadata's ``to_dict()`` form (small and
        picklable: what a graph carries to the tasks that encode tiles).
    name : str
        The array's name, for messages.
    write_empty : bool
        Keep chunks that hold only the fill value (zarr's ``write_empty_chunks``;
        this package's stores leave them out, as zarr does by default).
    """

    def __init__(self, array: Any, name: str = "array", *, write_empty: bool = False) -> None:
        metadata = _metadata(array)
        self.name = str(getattr(array, "path", None) or name)
        self.sharding = _sharding_codec(metadata, self.name)
        self.inner = tuple(int(v) for v in self.sharding.chunk_shape)
        shard_shape = tuple(int(v) for v in metadata.chunk_grid.chunk_shape)
        self.per_shard = tuple(s // c for s, c in zip(shard_shape, self.inner, strict=True))
        self.dtype = (
            np.dtype(metadata.dtype.to_native_dtype())
            if hasattr(metadata.dtype, "to_native_dtype")
            else np.dtype(metadata.dtype)
        )
        self.fill = metadata.fill_value
        self._metadata = metadata
        self._encoder = _OneChunkEncoder(self.inner, self.dtype, self.fill, self.sharding.codecs, write_empty)

    def encode(self, values: np.ndarray) -> bytes | None:
        """The encoded bytes of one inner chunk; ``None`` if it holds only the fill value.

        ``values`` are clipped at the array's edge as a read of that chunk returns
        them (the rest is fill, as zarr pads it); leading unit axes may be left out.
        """
        values = np.asarray(values, dtype=self.dtype)
        if values.ndim < len(self.inner):  # leading unit axes may be left out (one plane of ``con``)
            values = values.reshape((1,) * (len(self.inner) - values.ndim) + values.shape)
        if values.shape != self.inner:
            full = np.full(self.inner, self.fill, dtype=self.dtype)
            full[tuple(slice(0, n) for n in values.shape)] = values
            values = full
        return self._encoder.encode(values)

    def shard_key(self, shard_coords: tuple[int, ...]) -> str:
        """The store key of shard ``shard_coords``, relative to the array."""
        return str(self._metadata.encode_chunk_key(tuple(int(v) for v in shard_coords)))

    def encode_index(self, index: np.ndarray) -> bytes:
        """A shard's encoded index (its ``(offset, length)`` pairs, with the index codecs)."""
        size = int(self.sharding._shard_index_size(self.per_shard))
        data = _OneChunkEncoder(index.shape, np.uint64, 0, self.sharding.index_codecs, write_empty=True).encode(index)
        if data is None or len(data) != size:
            raise RuntimeError(f"{self.name}: shard index encoded to an unexpected size")
        return data


def _write_order(codec: Any, per_shard: tuple[int, ...]) -> Iterable[tuple[int, ...]]:
    """Inner chunks in the order zarr lays them out (its ``subchunk_write_order``, Morton by default).

    Any order makes a valid shard; zarr's own makes the same bytes as zarr.
    """
    order = getattr(codec, "_subchunk_order_iter", None)
    if order is not None and hasattr(codec, "subchunk_write_order"):
        return [tuple(int(v) for v in c) for c in order(per_shard, codec.subchunk_write_order)]
    return list(np.ndindex(*per_shard))


def shard_chunk_key(array: Any, shard_coords: tuple[int, ...]) -> str:
    """The store key of shard ``shard_coords`` of ``array``, relative to the array."""
    return str(_metadata(array).encode_chunk_key(tuple(int(v) for v in shard_coords)))


class _EncodedChunks:
    """Encoded inner chunks kept in memory up to ``memory_bytes``, the rest appended to a local temporary file."""

    def __init__(self, memory_bytes: int, spill_dir: str | None) -> None:
        self._memory_left = memory_bytes
        self._spill_dir = spill_dir
        self._file: BinaryIO | None = None
        self._end = 0

    def put(self, data: bytes) -> bytes | tuple[int, int]:
        """Keep ``data``; return a handle for :meth:`get` (the bytes themselves while memory lasts)."""
        if len(data) <= self._memory_left:
            self._memory_left -= len(data)
            return data
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="dask-resample-shard-", dir=self._spill_dir)
        self._file.seek(self._end)
        self._file.write(data)
        handle = (self._end, len(data))
        self._end += len(data)
        return handle

    def get(self, handle: bytes | tuple[int, int]) -> bytes:
        if isinstance(handle, bytes):
            return handle
        assert self._file is not None
        offset, length = handle
        self._file.seek(offset)
        return self._file.read(length)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ShardEncoder:
    """One whole shard of a sharded Zarr v3 array, built one inner chunk at a time.

    Each inner chunk is encoded as it is added (with the array's own inner
    codecs), or added already encoded, and only its encoded bytes are kept: in
    memory up to ``memory_bytes`` in all, then in an anonymous temporary file
    in ``spill_dir``. :meth:`to_bytes` lays them out with their index. Memory
    holds one chunk's values and, at the end, the one shard's bytes, whatever
    the number of chunks.

    Parameters
    ----------
    array : zarr.Array, ArrayV3Metadata, dict or ChunkCodec
        The sharded array (read for its metadata only), or its :class:`ChunkCodec`.
    shard_coords : tuple of int
        The shard's position in the shard grid.
    memory_bytes : int
        Encoded bytes kept in memory before spilling to a temporary file.
    spill_dir : str, optional
        Directory of the temporary file (default: the system's).
    """

    def __init__(
        self, array: Any, shard_coords: tuple[int, ...], *, memory_bytes: int = 2**62, spill_dir: str | None = None
    ) -> None:
        self.codec = (
            array
            if isinstance(array, ChunkCodec)
            else ChunkCodec(
                array, write_empty=bool(getattr(getattr(array, "config", None), "write_empty_chunks", False))
            )
        )
        self._shard_coords = tuple(int(v) for v in shard_coords)
        self._origin = tuple(v * n for v, n in zip(self._shard_coords, self.codec.per_shard, strict=True))
        self._chunks = _EncodedChunks(memory_bytes, spill_dir)
        self._encoded: dict[tuple[int, ...], bytes | tuple[int, int]] = {}

    def _local(self, chunk_coords: tuple[int, ...]) -> tuple[int, ...]:
        local = tuple(int(c) - o for c, o in zip(chunk_coords, self._origin, strict=True))
        if any(not 0 <= v < n for v, n in zip(local, self.codec.per_shard, strict=True)):
            raise ValueError(f"inner chunk {tuple(chunk_coords)} is not in shard {self._shard_coords}")
        return local

    def add(self, chunk_coords: tuple[int, ...], values: np.ndarray) -> None:
        """Encode one inner chunk.

        Parameters
        ----------
        chunk_coords : tuple of int
            The chunk's position in the array's inner-chunk grid (it must lie in this shard).
        values : numpy.ndarray
            Its values, clipped at the array's edge as a read of that chunk returns them
            (leading unit axes may be left out). Chunks never added hold the fill value.
        """
        local = self._local(chunk_coords)
        self._keep(local, self.codec.encode(values))

    def add_encoded(self, chunk_coords: tuple[int, ...], data: bytes | None) -> None:
        """Add one inner chunk already encoded by this array's :class:`ChunkCodec` (``None``: only fill)."""
        self._keep(self._local(chunk_coords), data)

    def _keep(self, local: tuple[int, ...], data: bytes | None) -> None:
        if data is not None:
            self._encoded[local] = self._chunks.put(data)
        else:
            self._encoded.pop(local, None)

    def to_bytes(self) -> bytes | None:
        """The shard object; ``None`` when every inner chunk holds only the fill value (zarr writes none)."""
        if not self._encoded:
            return None
        codec, per_shard = self.codec.sharding, self.codec.per_shard
        index_size = int(codec._shard_index_size(per_shard))
        at_start = str(getattr(codec.index_location, "value", codec.index_location)) == "start"
        index = np.full((*per_shard, 2), _EMPTY, dtype=np.uint64)
        offset = index_size if at_start else 0
        parts = []
        for local in _write_order(codec, per_shard):
            handle = self._encoded.get(local)
            if handle is None:
                continue
            data = self._chunks.get(handle)
            index[local] = (offset, len(data))
            parts.append(data)
            offset += len(data)
        index_bytes = self.codec.encode_index(index)
        return b"".join([index_bytes, *parts] if at_start else [*parts, index_bytes])

    def close(self) -> None:
        """Remove the temporary file, if any."""
        self._chunks.close()
        self._encoded.clear()

    def __enter__(self) -> ShardEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_shard(
    array: Any, shard_coords: tuple[int, ...], blocks: Iterable[tuple[tuple[int, ...], np.ndarray]]
) -> bytes | None:
    """Encode one whole shard of ``array`` from its inner chunks, one at a time.

    Parameters
    ----------
    array : zarr.Array
        A sharded Zarr v3 array (read for its metadata only).
    shard_coords : tuple of int
        The shard's position in the shard grid.
    blocks : iterable of (tuple of int, numpy.ndarray)
        ``(chunk_coords, values)`` as :meth:`ShardEncoder.add` takes them.

    Returns
    -------
    bytes or None
        The shard object; ``None`` when every inner chunk holds only the fill
        value (zarr writes no object then).
    """
    with ShardEncoder(array, shard_coords) as encoder:
        for chunk_coords, values in blocks:
            encoder.add(chunk_coords, values)
        return encoder.to_bytes()
