"""One ranged request per tile: the shard indexes of a finished mosaic, kept in one object.

zarr-python reads an inner chunk (one tile) of a sharded array with two requests:
the shard's index (a suffix range of the shard object, or its first bytes), then
the chunk's byte range found in that index. The indexes of a finished mosaic do not
change, so they are collected in one small object per mosaic group, and a reader
wraps its Zarr store in :class:`IndexedStore`, which answers the index requests
from memory. Reading one tile is then one ranged request; a tile of a shard that
was never written, or an inner chunk absent from its shard, costs none.

Life cycle
----------
Write side
    A shard task writes through a :class:`ShardIndexRecorder`, which keeps the
    index of every shard stored through it (sliced from the bytes written: no
    request of its own); or, after the fact, :func:`read_shard_index` fetches a
    shard's index (one suffix request; :func:`read_shard_indexes` fetches every
    shard of an array concurrently, recording the missing ones as absent). Once
    every shard of the group is written, :func:`write_index_object` writes all
    of them as one object (whole, in one request, so a reader never sees half
    of it) and returns the object's digest, which the mosaic's completion
    record keeps.
Read side
    :func:`open_indexed` reads the object (one request), checks its digest
    against the one recorded at completion, and wraps the store. With no
    object, an unreadable one or another digest, the wrapper holds no index and
    passes every request through: plain zarr behaviour, the same values.

The index object
----------------
``<group>/_progress/shard_index.npz`` (:data:`INDEX_OBJECT_KEY`; inside the
progress group, so that zarr's listing of the mosaic group sees no stray
object). A ZIP file that :func:`numpy.load` reads, members deflated, every member
dated 1980-01-01, so the same indexes always give the same bytes:

``header.npy``
    ``uint8``: UTF-8 JSON, keys sorted::

        {"format": "dask_resample.shard_index", "version": 1,
         "arrays": [{"path": "con", "chunk_key_encoding": {"name": "default",
                     "configuration": {"separator": "/"}}, "shard_grid": [3, 2, 2],
                     "index_size": 260, "index_location": "end", "count": 12}, ...]}

    ``arrays`` is sorted by ``path`` (the array's path below the group).
``<k>.coords.npy``
    ``int64 (count, ndim)``: shard grid coordinates of the ``k``-th array's
    entries, in lexicographic order (``(plane, sy, sx)`` for ``con``).
``<k>.present.npy``
    ``bool (count,)``: False for a shard that does not exist (no chunk of it was written).
``<k>.index.npy``
    ``uint8 (count, index_size)``: the shard's index exactly as stored at the end
    (or start) of the shard object; zeros where the shard does not exist.

The store key of an entry is ``<prefix>/<path>/<chunk key>``, the chunk key
given by the array's chunk key encoding (``data/c/0/1``, ``con/c/2/0/1``). A
shard with no entry is not known to the object and is read as usual.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import io
import json
import threading
import zipfile
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from math import ceil
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from zarr.abc.store import RangeByteRequest, Store, SuffixByteRequest
from zarr.storage import WrapperStore

from .location import Location

if TYPE_CHECKING:
    from zarr.abc.store import ByteRequest
    from zarr.core.buffer import Buffer, BufferPrototype

__all__ = [
    "INDEX_OBJECT_KEY",
    "IndexObject",
    "IndexedStore",
    "ShardIndexRecorder",
    "ShardLayout",
    "decode_index_object",
    "encode_index_object",
    "load_index_object",
    "open_indexed",
    "read_shard_index",
    "read_shard_indexes",
    "shard_layout",
    "write_index_object",
]

#: Key of the index object below a mosaic group.
INDEX_OBJECT_KEY = "_progress/shard_index.npz"
FORMAT_NAME = "dask_resample.shard_index"
FORMAT_VERSION = 1
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
        return {"chunk_key_encoding": json.loads(json.dumps(dict(self.chunk_key_encoding))),
                "shard_grid": [int(n) for n in self.shard_grid], "index_size": int(self.index_size),
                "index_location": self.index_location}


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
            raise ValueError(f"{key}: shard index of {len(data)} bytes, expected {layout.index_size} "
                             "(truncated or not a shard of this array)")
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


# -- the index object ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class IndexObject:
    """The shard indexes of every array of a mosaic group, as read from its index object.

    Attributes
    ----------
    layouts : mapping
        Array path below the group -> :class:`ShardLayout`.
    indexes : mapping
        Array path -> ``{shard coords: index bytes}`` (``b""``: the shard does not exist).
    digest : str
        SHA-256 (hex) of the object's bytes.
    """

    layouts: Mapping[str, ShardLayout]
    indexes: Mapping[str, Mapping[ShardCoords, bytes]]
    digest: str
    _entries: dict[str, dict[str, tuple[bytes | None, ShardLayout]]] = field(
        default_factory=dict, repr=False, compare=False)

    def store_entries(self, prefix: str = "") -> dict[str, tuple[bytes | None, ShardLayout]]:
        """Store key -> (index bytes, or None for a missing shard; layout), keys below ``prefix``.

        Built once per prefix and kept (an :class:`IndexedStore` shares it).
        """
        prefix = prefix.strip("/")
        entries = self._entries.get(prefix)
        if entries is None:
            entries = {}
            for path, layout in self.layouts.items():
                base = "/".join(p for p in (prefix, path.strip("/")) if p)
                for coords, data in self.indexes.get(path, {}).items():
                    entries[f"{base}/{layout.chunk_key(coords)}"] = (bytes(data) or None, layout)
            self._entries[prefix] = entries
        return entries

    def __len__(self) -> int:
        return sum(len(v) for v in self.indexes.values())


def _member(zf: zipfile.ZipFile, name: str, value: np.ndarray) -> None:
    info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as fh:
        np.lib.format.write_array(fh, np.ascontiguousarray(value), allow_pickle=False)


def encode_index_object(indexes: Mapping[str, Mapping[ShardCoords, bytes]],
                        layouts: Mapping[str, ShardLayout]) -> bytes:
    """The bytes of an index object (the format is in this module's description).

    Parameters
    ----------
    indexes : mapping
        Array path below the group -> ``{shard coords: index bytes}``, as given
        by :func:`read_shard_index` (``b""`` for a shard that does not exist).
        Shards left out are not known to the object (read as usual).
    layouts : mapping
        Array path -> :class:`ShardLayout` (:func:`shard_layout`), for every path of ``indexes``.

    Returns
    -------
    bytes
        The same bytes for the same indexes, whatever the order of the mappings.

    Raises
    ------
    ValueError
        If an index has the wrong size, or coordinates do not fit the shard grid.
    """
    header: list[dict[str, Any]] = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        members = []
        for k, path in enumerate(sorted(indexes)):
            layout, entries = layouts[path], indexes[path]
            ndim, size = len(layout.shard_grid), layout.index_size
            order = sorted(tuple(int(v) for v in c) for c in entries)
            coords = np.array(order, dtype=np.int64).reshape(len(order), ndim)
            if len(order) and ((coords < 0).any() or (coords >= np.array(layout.shard_grid)).any()):
                raise ValueError(f"{path}: shard coordinates outside the grid {layout.shard_grid}")
            present = np.zeros(len(order), bool)
            table = np.zeros((len(order), size), np.uint8)
            by_coords = {tuple(int(v) for v in c): bytes(v) for c, v in entries.items()}
            for i, c in enumerate(order):
                data = by_coords[c]
                if data:
                    if len(data) != size:
                        raise ValueError(f"{path} shard {c}: index of {len(data)} bytes, expected {size}")
                    present[i] = True
                    table[i] = np.frombuffer(data, np.uint8)
            header.append({"path": path, **layout.to_json(), "count": len(order)})
            members += [(f"{k}.coords", coords), (f"{k}.present", present), (f"{k}.index", table)]
        doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "arrays": header}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        _member(zf, "header", np.frombuffer(text, np.uint8))
        for name, value in members:
            _member(zf, name, value)
    return buf.getvalue()


def decode_index_object(data: bytes) -> IndexObject:
    """Read the bytes of an index object.

    Raises
    ------
    ValueError
        If ``data`` is not an index object of a version this module reads.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            doc = json.loads(z["header"].tobytes())
            if doc.get("format") != FORMAT_NAME or doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"not a {FORMAT_NAME} object of version {FORMAT_VERSION}")
            layouts: dict[str, ShardLayout] = {}
            indexes: dict[str, dict[ShardCoords, bytes]] = {}
            for k, info in enumerate(doc["arrays"]):
                layout = ShardLayout(chunk_key_encoding=info["chunk_key_encoding"],
                                     shard_grid=tuple(int(n) for n in info["shard_grid"]),
                                     index_size=int(info["index_size"]), index_location=str(info["index_location"]))
                coords, present, table = z[f"{k}.coords"], z[f"{k}.present"], z[f"{k}.index"]
                if not (len(coords) == len(present) == len(table) == int(info["count"])) or (
                        table.shape[1:] != (layout.index_size,) or coords.shape[1:] != (len(layout.shard_grid),)):
                    raise ValueError(f"array {info['path']!r}: members of inconsistent shapes")
                layouts[info["path"]] = layout
                indexes[info["path"]] = {tuple(int(v) for v in c): (row.tobytes() if p else b"")
                                         for c, p, row in zip(coords, present, table, strict=True)}
    except (KeyError, TypeError, OSError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ValueError(f"not a readable shard index object ({type(exc).__name__}: {exc})") from None
    return IndexObject(layouts, indexes, hashlib.sha256(data).hexdigest())


def write_index_object(location: Location, indexes: Mapping[str, Mapping[ShardCoords, bytes]],
                       layouts: Mapping[str, ShardLayout]) -> str:
    """Write the index object of a mosaic group (whole, in one request).

    Parameters
    ----------
    location : Location
        The mosaic group (the root of a many-to-one mosaic, else ``root/<group>``);
        the object goes to :data:`INDEX_OBJECT_KEY` below it.
    indexes, layouts : mapping
        See :func:`encode_index_object`.

    Returns
    -------
    str
        The object's digest (SHA-256, hex), to record where a reader finds it
        (the completion record) and pass to :func:`open_indexed`.
    """
    data = encode_index_object(indexes, layouts)
    location.join(*INDEX_OBJECT_KEY.split("/")).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load_index_object(location: Location, expected_digest: str | None = None) -> IndexObject | None:
    """The index object of a mosaic group, or None if it cannot be used (one request).

    Parameters
    ----------
    location : Location
        The mosaic group.
    expected_digest : str, optional
        The digest :func:`write_index_object` returned; an object with another
        digest is stale (the mosaic was written again since) and is not used.

    Returns
    -------
    IndexObject or None
        None if the object is absent, unreadable, of another format version or stale.
    """
    try:
        data = location.join(*INDEX_OBJECT_KEY.split("/")).read_bytes()  # one GET
    except (OSError, ValueError):
        return None
    if expected_digest is not None and hashlib.sha256(data).hexdigest() != expected_digest:
        return None
    try:
        return decode_index_object(data)
    except ValueError:
        return None


# -- the store that answers index requests from memory -------------------------------------------
_LOADED: dict[tuple[str, str, str], IndexObject | None] = {}
_LOADED_MAX = 8
_LOAD_LOCK = threading.Lock()


def _load_once(source: Location, digest: str) -> IndexObject | None:
    """The index object of ``source`` with ``digest``, read once per process."""
    key = (source.url, json.dumps(source.storage_options, sort_keys=True, default=str), digest)
    with _LOAD_LOCK:
        if key not in _LOADED:
            while len(_LOADED) >= _LOADED_MAX:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[key] = load_index_object(source, digest)
        return _LOADED[key]


class _Miss(enum.Enum):
    """A sentinel type of its own, so that ``found is _MISS`` narrows ``found`` to the answer."""

    MISS = enum.auto()


_MISS = _Miss.MISS


class IndexedStore(WrapperStore[Store]):
    """A Zarr store that answers shard-index requests of a finished mosaic from memory.

    A request for exactly the index of a shard the :class:`IndexObject` holds (a
    suffix of :attr:`ShardLayout.index_size` bytes, or the first bytes when the
    index is at the start) is answered from memory; any request of a shard the
    object records as absent is answered with None (no such object). Every other
    request goes to the wrapped store. A write or delete through this store goes
    to the wrapped store and forgets the index of that key.

    Parameters
    ----------
    store : zarr.abc.store.Store
        The store of the mosaic's root (``LocalStore``, ``FsspecStore``, ...).
    index : IndexObject, optional
        The group's index object; None answers nothing from memory.
    prefix : str
        Path of the group below the store's root (``""`` for a many-to-one mosaic).
    source : Location, optional
        Where ``index`` was read from (the group). A pickled store then carries
        the location and digest instead of the indexes, and reads the object
        again (once per process) when unpickled.

    Attributes
    ----------
    served : int
        Requests answered from memory by this instance (not pickled).
    """

    def __init__(self, store: Store, index: IndexObject | None = None, *, prefix: str = "",
                 source: Location | None = None) -> None:
        super().__init__(store)
        self._index = index
        self._prefix = prefix.strip("/")
        self._source = source if index is not None else None
        self._entries: dict[str, tuple[bytes | None, ShardLayout]] = (
            dict(index.store_entries(self._prefix)) if index is not None else {})
        self.served = 0

    @property
    def index(self) -> IndexObject | None:
        """The index object in use (None: every request goes to the wrapped store)."""
        return self._index

    def _with_store(self, store: Store) -> IndexedStore:
        new = type(self)(store, self._index, prefix=self._prefix, source=self._source)
        new._entries = self._entries  # views of the same data: a write through either forgets for both
        return new

    def __getstate__(self) -> dict[str, Any]:
        index = self._index if self._entries else None  # nothing left to answer: travel without it
        if index is None:
            return {"store": self._store, "prefix": self._prefix, "source": None, "digest": None,
                    "index": None, "forgotten": []}
        forgotten = sorted(k for k in index.store_entries(self._prefix) if k not in self._entries)
        if self._source is not None:  # by reference: the location and digest, not the indexes
            return {"store": self._store, "prefix": self._prefix, "source": self._source, "digest": index.digest,
                    "index": None, "forgotten": forgotten}
        return {"store": self._store, "prefix": self._prefix, "source": None, "digest": None, "index": index,
                "forgotten": forgotten}

    def __setstate__(self, state: dict[str, Any]) -> None:
        index, source = state["index"], state["source"]
        if index is None and source is not None:
            index = _load_once(source, state["digest"])
        # unpickling builds the object as its constructor does (mypy: __init__ on an instance is unsound)
        self.__init__(state["store"], index, prefix=state["prefix"], source=source)  # type: ignore[misc]
        for key in state["forgotten"]:
            self._forget(key)

    def __repr__(self) -> str:
        held = len(self._entries)
        return f"IndexedStore({self._store!r}, prefix={self._prefix!r}, shards={held})"

    def __str__(self) -> str:
        return f"indexed-{self._store}"

    # -- reads ------------------------------------------------------------------------------------
    def _answer(self, key: str, byte_range: ByteRequest | None) -> bytes | None | Literal[_Miss.MISS]:
        """The answer from memory, or ``_MISS`` if the wrapped store must answer."""
        entry = self._entries.get(key)
        if entry is None:
            return _MISS
        data, layout = entry
        if data is None:  # the shard does not exist
            self.served += 1
            return None
        size = layout.index_size
        if layout.index_location == "start":
            hit = isinstance(byte_range, RangeByteRequest) and byte_range.start == 0 and byte_range.end == size
        else:
            hit = isinstance(byte_range, SuffixByteRequest) and byte_range.suffix == size
        if not hit:
            return _MISS
        self.served += 1
        return data

    async def get(self, key: str, prototype: BufferPrototype,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        """Get ``key`` (a shard index from memory, everything else from the wrapped store)."""
        found = self._answer(key, byte_range)
        if found is _MISS:
            return await self._store.get(key, prototype, byte_range)
        return None if found is None else prototype.buffer.from_bytes(found)

    def get_sync(self, key: str, *, prototype: BufferPrototype | None = None,
                 byte_range: ByteRequest | None = None) -> Buffer | None:
        """Synchronous :meth:`get` (zarr's synchronous read path on stores that support it)."""
        found = self._answer(key, byte_range)
        if found is _MISS:
            return super().get_sync(key, prototype=prototype, byte_range=byte_range)
        if found is None:
            return None
        if prototype is None:
            from zarr.core.buffer import default_buffer_prototype

            prototype = default_buffer_prototype()
        return prototype.buffer.from_bytes(found)

    async def get_partial_values(self, prototype: BufferPrototype,
                                 key_ranges: Iterable[tuple[str, ByteRequest | None]]) -> list[Buffer | None]:
        """Several gets (indexes from memory, the rest in one call of the wrapped store)."""
        key_ranges = list(key_ranges)
        out: list[Buffer | None] = [None] * len(key_ranges)
        rest = []
        for i, (key, byte_range) in enumerate(key_ranges):
            found = self._answer(key, byte_range)
            if found is _MISS:
                rest.append(i)
            elif found is not None:
                out[i] = prototype.buffer.from_bytes(found)
        if rest:
            got = await self._store.get_partial_values(prototype, [key_ranges[i] for i in rest])
            for i, buf in zip(rest, got, strict=True):
                out[i] = buf
        return out

    async def _get_many(self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
                        ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        rest = []
        for key, prototype, byte_range in requests:
            found = self._answer(key, byte_range)
            if found is _MISS:
                rest.append((key, prototype, byte_range))
            else:
                yield key, None if found is None else prototype.buffer.from_bytes(found)
        if rest:
            async for item in self._store._get_many(rest):
                yield item

    # -- writes: pass through, forget the index of what they change --------------------------------
    def _forget(self, key: str) -> None:
        self._entries.pop(key, None)

    async def set(self, key: str, value: Buffer) -> None:
        """Set ``key`` in the wrapped store; its index is no longer answered from memory."""
        self._forget(key)
        await self._store.set(key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        """Set ``key`` unless it exists (see :meth:`set`)."""
        self._forget(key)
        await self._store.set_if_not_exists(key, value)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        values = list(values)
        for key, _ in values:
            self._forget(key)
        await self._store._set_many(values)

    def set_sync(self, key: str, value: Buffer) -> None:
        """Synchronous :meth:`set`."""
        self._forget(key)
        super().set_sync(key, value)

    async def delete(self, key: str) -> None:
        """Delete ``key`` from the wrapped store (see :meth:`set`)."""
        self._forget(key)
        await self._store.delete(key)

    def delete_sync(self, key: str) -> None:
        """Synchronous :meth:`delete`."""
        self._forget(key)
        super().delete_sync(key)

    async def delete_dir(self, prefix: str) -> None:
        """Delete everything below ``prefix`` (see :meth:`set`)."""
        base = prefix.rstrip("/") + "/" if prefix else ""
        for key in [k for k in self._entries if k.startswith(base)]:
            self._forget(key)
        await self._store.delete_dir(prefix)

    async def clear(self) -> None:
        """Clear the wrapped store; nothing is answered from memory any more."""
        self._entries.clear()
        await self._store.clear()


class ShardIndexRecorder(WrapperStore[Store]):
    """A Zarr store that remembers the index of every shard written through it (no extra request).

    Every request goes to the wrapped store; when a whole shard of a watched array
    is stored, its index (the last, or first, :attr:`ShardLayout.index_size`
    bytes of the object) is kept, and a deleted shard (all of its chunks held
    the fill value) is kept as ``b""``. The writer of a shard learns its index
    without reading it back.

    Parameters
    ----------
    store : zarr.abc.store.Store
        The store written to.

    Attributes
    ----------
    recorded : dict
        ``array.path -> {shard coords: index bytes}`` of the shards written so far.

    Examples
    --------
    >>> rec = ShardIndexRecorder(location.zarr_store())  # doctest: +SKIP
    >>> arr = zarr.open_array(rec, path="data", mode="r+"); rec.watch(arr)  # doctest: +SKIP
    >>> arr[0:512, 0:512] = block  # doctest: +SKIP
    >>> rec.recorded["data"][(0, 0)]  # doctest: +SKIP
    """

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._watched: dict[str, tuple[ShardLayout, Any]] = {}
        self.recorded: dict[str, dict[ShardCoords, bytes]] = {}

    def _with_store(self, store: Store) -> ShardIndexRecorder:
        new = type(self)(store)
        new._watched, new.recorded = self._watched, self.recorded
        return new

    def watch(self, array: Any) -> ShardLayout:
        """Record the shards of ``array`` (a sharded ``zarr.Array``) written from now on; its layout."""
        from zarr.core.chunk_key_encodings import parse_chunk_key_encoding

        layout = shard_layout(array)
        path = array.path.strip("/")
        self._watched[path] = (layout, parse_chunk_key_encoding(dict(layout.chunk_key_encoding)))
        self.recorded.setdefault(path, {})
        return layout

    def _record(self, key: str, value: Buffer | None) -> None:
        path, _, chunk_key = key.rpartition("/")
        while path:
            if path in self._watched:
                break
            path, _, head = path.rpartition("/")
            chunk_key = f"{head}/{chunk_key}"
        else:
            if "" not in self._watched:
                return
        layout, encoding = self._watched[path]
        try:
            coords = tuple(int(v) for v in encoding.decode_chunk_key(chunk_key))
        except (ValueError, NotImplementedError):
            return  # metadata, or not a chunk key of this array
        if len(coords) != len(layout.shard_grid):
            return
        data = b""
        if value is not None:
            n, size = len(value), layout.index_size
            data = (value[:size] if layout.index_location == "start" else value[n - size:]).to_bytes()
        self.recorded[path][coords] = data

    async def set(self, key: str, value: Buffer) -> None:
        """Set ``key`` in the wrapped store; keep its index if it is a shard of a watched array."""
        await self._store.set(key, value)
        self._record(key, value)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        values = list(values)
        await self._store._set_many(values)
        for key, value in values:
            self._record(key, value)

    def set_sync(self, key: str, value: Buffer) -> None:
        """Synchronous :meth:`set`."""
        super().set_sync(key, value)
        self._record(key, value)

    async def delete(self, key: str) -> None:
        """Delete ``key``; a watched shard is kept as absent (``b""``)."""
        await self._store.delete(key)
        self._record(key, None)

    def delete_sync(self, key: str) -> None:
        """Synchronous :meth:`delete`."""
        super().delete_sync(key)
        self._record(key, None)


def open_indexed(store: Store, group: Location, *, prefix: str = "", expected_digest: str | None = None,
                 index: IndexObject | None = None) -> IndexedStore:
    """Wrap the store of a finished mosaic so that reading one tile is one ranged request.

    Parameters
    ----------
    store : zarr.abc.store.Store
        The store of the mosaic's root (``Location.zarr_store(read_only=True)``).
    group : Location
        The mosaic group whose index object is used (the root of a many-to-one
        mosaic, else ``root.join(group_id)``).
    prefix : str
        The group's path below the root (``""``, or the group id).
    expected_digest : str, optional
        The digest recorded when the index object was written; an object with
        another digest is stale and not used.
    index : IndexObject, optional
        An index object already read (then ``group`` is not read).

    Returns
    -------
    IndexedStore
        Holding the index object, or none (every request passes through) when
        the object is absent, unreadable or stale.
    """
    if index is None:
        index = load_index_object(group, expected_digest)
    elif expected_digest is not None and index.digest != expected_digest:
        index = None
    return IndexedStore(store, index, prefix=prefix, source=group)
