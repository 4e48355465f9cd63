"""The shard indexes of a finished mosaic group in one object: its format, writing and reading.

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

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .location import Location
from .shard_layout import ShardCoords, ShardLayout

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INDEX_OBJECT_KEY",
    "IndexObject",
    "decode_index_object",
    "encode_index_object",
    "load_index_object",
    "write_index_object",
]

#: Key of the index object below a mosaic group.
INDEX_OBJECT_KEY = "_progress/shard_index.npz"
FORMAT_NAME = "dask_resample.shard_index"
FORMAT_VERSION = 1


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
        default_factory=dict, repr=False, compare=False
    )

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


def encode_index_object(
    indexes: Mapping[str, Mapping[ShardCoords, bytes]], layouts: Mapping[str, ShardLayout]
) -> bytes:
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
                layout = ShardLayout(
                    chunk_key_encoding=info["chunk_key_encoding"],
                    shard_grid=tuple(int(n) for n in info["shard_grid"]),
                    index_size=int(info["index_size"]),
                    index_location=str(info["index_location"]),
                )
                coords, present, table = z[f"{k}.coords"], z[f"{k}.present"], z[f"{k}.index"]
                if not (len(coords) == len(present) == len(table) == int(info["count"])) or (
                    table.shape[1:] != (layout.index_size,) or coords.shape[1:] != (len(layout.shard_grid),)
                ):
                    raise ValueError(f"array {info['path']!r}: members of inconsistent shapes")
                layouts[info["path"]] = layout
                indexes[info["path"]] = {
                    tuple(int(v) for v in c): (row.tobytes() if p else b"")
                    for c, p, row in zip(coords, present, table, strict=True)
                }
    except (KeyError, TypeError, OSError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ValueError(f"not a readable shard index object ({type(exc).__name__}: {exc})") from None
    return IndexObject(layouts, indexes, hashlib.sha256(data).hexdigest())


def write_index_object(
    location: Location, indexes: Mapping[str, Mapping[ShardCoords, bytes]], layouts: Mapping[str, ShardLayout]
) -> str:
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
