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

The index object's format is described in :mod:`~dask_resample.store.index_object`; the
layout of one sharded array (where its indexes are) and the reading of written shards'
indexes are in :mod:`~dask_resample.store.shard_layout`. This module re-exports their names.
"""

from __future__ import annotations

import enum
import json
import threading
from collections.abc import AsyncGenerator, Iterable
from typing import TYPE_CHECKING, Any, Literal

from zarr.abc.store import RangeByteRequest, Store, SuffixByteRequest
from zarr.storage import WrapperStore

from .index_object import (
    FORMAT_NAME,  # noqa: F401 - re-exported
    FORMAT_VERSION,  # noqa: F401 - re-exported
    INDEX_OBJECT_KEY,
    IndexObject,
    decode_index_object,
    encode_index_object,
    load_index_object,
    write_index_object,
)
from .location import Location
from .shard_layout import (
    FETCH_CONCURRENCY,  # noqa: F401 - re-exported
    ShardCoords,
    ShardLayout,
    read_shard_index,
    read_shard_indexes,
    shard_layout,
)

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

    def __init__(
        self, store: Store, index: IndexObject | None = None, *, prefix: str = "", source: Location | None = None
    ) -> None:
        super().__init__(store)
        self._index = index
        self._prefix = prefix.strip("/")
        self._source = source if index is not None else None
        self._entries: dict[str, tuple[bytes | None, ShardLayout]] = (
            dict(index.store_entries(self._prefix)) if index is not None else {}
        )
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
            return {
                "store": self._store,
                "prefix": self._prefix,
                "source": None,
                "digest": None,
                "index": None,
                "forgotten": [],
            }
        forgotten = sorted(k for k in index.store_entries(self._prefix) if k not in self._entries)
        if self._source is not None:  # by reference: the location and digest, not the indexes
            return {
                "store": self._store,
                "prefix": self._prefix,
                "source": self._source,
                "digest": index.digest,
                "index": None,
                "forgotten": forgotten,
            }
        return {
            "store": self._store,
            "prefix": self._prefix,
            "source": None,
            "digest": None,
            "index": index,
            "forgotten": forgotten,
        }

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

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        """Get ``key`` (a shard index from memory, everything else from the wrapped store)."""
        found = self._answer(key, byte_range)
        if found is _MISS:
            return await self._store.get(key, prototype, byte_range)
        return None if found is None else prototype.buffer.from_bytes(found)

    def get_sync(
        self, key: str, *, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
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

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
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

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
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
            data = (value[:size] if layout.index_location == "start" else value[n - size :]).to_bytes()
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


def open_indexed(
    store: Store,
    group: Location,
    *,
    prefix: str = "",
    expected_digest: str | None = None,
    index: IndexObject | None = None,
) -> IndexedStore:
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
