"""Scratch files for tile partials: what one exposure drizzled into one tile.

A drizzle task writes each of its tile partials to a file and returns only
small records; the tile's reduction task reads the partials of its
contributors, one at a time and in a fixed order, when the last of them is
done. Nothing large waits in a worker's memory for other exposures, so memory
per process stays at one exposure (drizzling) or one tile (reducing), whatever
the mosaic size, the number of inputs or the order in which tasks run.

Each partial is one object, written whole (:meth:`Location.write_bytes
<dask_resample.store.location.Location.write_bytes>`: one request on an object
store, a temporary file and a rename on a disk), so a retried task rewrites the
same bytes and a reader never sees half of one. They live under the run's
scratch location (:func:`scratch_root`, also used by outlier detection for its
intermediate files): ``resample.scratch-dir`` when set (a path or URL; a
node-local disk is valid for a single-node run only); else, for products on an
object store made by processes that all run on this machine (the serial
scheduler, a LocalCluster of this process), this machine's temporary
directory, which costs no request; else a hidden sibling of the products
(``.<name>.scratch-<token>`` beside a mosaic), on the same store, which every
worker writing them reaches. A tile's partials are removed once it is written,
and the whole scratch location at the end of the run.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import config
from ..store.location import Location, as_location
from .kernel import VARIANCE_NAMES, TilePartial

__all__ = [
    "PartialFile",
    "ScratchSpec",
    "read_partial",
    "remove_all",
    "remove_tile",
    "runs_on_one_node",
    "scratch_root",
    "write_partial",
]


@dataclass(frozen=True)
class ScratchSpec:
    """Where a run keeps its partials (small, picklable)."""

    root: Location

    def tile_dir(self, group: str, ty: int, tx: int) -> Location:
        """Location of one tile's partials."""
        return self.root.join(group or "_", f"{ty}_{tx}")

    def finished_tile(self, group: str, ty: int, tx: int) -> Location:
        """Location of one finished tile of a sharded store, encoded, waiting for its shard's task."""
        return self.root.join(group or "_", f"{ty}_{tx}.tile")

    def location(self, url: str) -> Location:
        """A location of this scratch space from its URL (with the scratch's storage options)."""
        return Location(url, self.root.storage_options)


@dataclass(frozen=True)
class PartialFile:
    """A partial in scratch: its path or URL and the box of the mosaic it covers."""

    path: str
    y0: int
    x0: int
    shape_yx: tuple[int, int]
    nbytes: int


#: The first bytes of a partial file (:func:`write_partial`), then its header's length.
_MAGIC = b"DRPART01"

#: Each array of a partial file starts at a multiple of this many bytes.
_ALIGN = 64


def _padding(n: int) -> bytes:
    return b"\0" * (-n % _ALIGN)


def write_partial(scratch: ScratchSpec, group: str, ty: int, tx: int, partial: TilePartial) -> PartialFile:
    """Write ``partial`` (input ``partial.index`` into tile ``(ty, tx)`` of ``group``) atomically.

    The file is a small JSON header (the partial's box, input index and
    measurement time, and each array's dtype, shape and offset) followed by the
    arrays' raw bytes, each aligned: the same bytes for the same partial (a
    retried task rewrites it identically), and :func:`read_partial` maps the
    arrays in place instead of copying them.
    """
    directory = scratch.tile_dir(group, ty, tx)
    arrays = {"img": partial.img, "wht": partial.wht}
    for name in ("ctx", "dq", "err", "exptime"):
        if (a := getattr(partial, name)) is not None:
            arrays[name] = a
    for name, v in partial.var.items():
        arrays[f"var.{name}"] = v
    table: list[list[Any]] = []
    blobs: list[bytes | memoryview] = []
    offset = 0
    for name, value in arrays.items():
        a = np.ascontiguousarray(value)
        table.append([name, a.dtype.str, list(a.shape), offset])
        blobs += [memoryview(a).cast("B"), _padding(a.nbytes)]
        offset += a.nbytes + len(_padding(a.nbytes))
    meta = [
        int(partial.index),
        int(partial.y0),
        int(partial.x0),
        None if partial.tmeasure is None else float(partial.tmeasure),
    ]
    header = json.dumps({"meta": meta, "arrays": table}, separators=(",", ":")).encode()
    head = _MAGIC + struct.pack("<Q", len(header)) + header
    data = b"".join([head, _padding(len(head)), *blobs])
    target = directory.join(f"{partial.index}.part").write_bytes(data)
    return PartialFile(target.url, partial.y0, partial.x0, partial.shape_yx, partial.nbytes)


def read_partial(location: Location) -> TilePartial:
    """Read a partial written by :func:`write_partial` (a local file is mapped, not copied)."""
    if location.is_local:
        with open(location.url, "rb") as fh:
            buf: Any = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    else:
        buf = location.read_bytes()
    if bytes(buf[: len(_MAGIC)]) != _MAGIC:
        raise ValueError(f"{location.url}: not a tile partial of this version")
    (n,) = struct.unpack("<Q", buf[len(_MAGIC) : len(_MAGIC) + 8])
    start = len(_MAGIC) + 8
    doc = json.loads(bytes(buf[start : start + n]))
    base = start + n + len(_padding(start + n))
    z = {
        name: np.frombuffer(buf, np.dtype(dtype), int(np.prod(shape)), base + offset).reshape(shape)
        for name, dtype, shape, offset in doc["arrays"]
    }
    index, y0, x0, tmeasure = doc["meta"]
    return TilePartial(
        index=int(index),
        y0=int(y0),
        x0=int(x0),
        img=z["img"],
        wht=z["wht"],
        ctx=z.get("ctx"),
        dq=z.get("dq"),
        err=z.get("err"),
        var={n: z[f"var.{n}"] for n in VARIANCE_NAMES if f"var.{n}" in z},
        tmeasure=None if tmeasure is None else float(tmeasure),
        exptime=z.get("exptime"),
    )


def remove_tile(scratch: ScratchSpec, group: str, ty: int, tx: int) -> None:
    """Remove one tile's partials (after the tile is written)."""
    scratch.tile_dir(group, ty, tx).remove()


def remove_all(scratch: ScratchSpec) -> None:
    """Remove the run's scratch location."""
    scratch.root.remove()


def scratch_root(default: Location, name: str, *, one_node: bool, owner: Location | None = None) -> Location:
    """Where a run keeps its intermediate files.

    ``resample.scratch-dir`` if set (a path or URL; it takes the storage
    options of ``default`` when it is on the same file system), under ``name``.
    Otherwise, when ``default`` is on an object store and every process of the
    run is on this machine (``one_node``, see :func:`runs_on_one_node`), this
    machine's temporary directory (Dask's ``temporary-directory``, else the
    system's): every process reaches it and it costs no request. In every
    other case ``default``, on the store every worker writing the products
    reaches.

    Under a configured root or the temporary directory, the space of a run for
    ``owner`` (the products it writes) is named after ``owner``'s URL (a digest)
    then ``name``; what a killed run for the same ``owner`` left there is removed
    first, as :func:`~dask_resample.store.mosaic.remove_stale_siblings` removes a
    killed run's partials beside a mosaic (one run writes to a mosaic at a time).

    Parameters
    ----------
    default : Location
        The run's default scratch location, beside its products.
    name : str
        Unique name of the run's scratch space under a configured or local root.
    one_node : bool
        Every process of the run shares this machine's disk.
    owner : Location, optional
        The products the run writes (its mosaic, its output directory).
    """
    configured = config.get("scratch-dir")
    if configured:
        root = as_location(str(configured))
        if not root.is_local and root.scheme == default.scheme:
            root = as_location(root.url, default.storage_options)
        return _own_space(root, "", name, owner)
    if one_node and not default.is_local:
        import dask

        base = dask.config.get("temporary-directory", None) or tempfile.gettempdir()
        return _own_space(as_location(os.path.abspath(base)), "dask-resample-", name, owner)
    return default


def _own_space(root: Location, prefix: str, name: str, owner: Location | None) -> Location:
    """``root/<prefix><digest of owner>-<name>``, the same owner's earlier spaces removed first.

    Without an ``owner``: ``root/<prefix><name>``.
    """
    if owner is None:
        return root.join(f"{prefix}{name}")
    stem = f"{prefix}{hashlib.sha256(owner.url.encode()).hexdigest()[:12]}-"
    for entry in root.listdir():
        if entry.startswith(stem):  # left by a killed run for the same products
            root.join(entry).remove()
    return root.join(f"{stem}{name}")


def runs_on_one_node(client: Any) -> bool:
    """Whether every process of a run shares this machine's disk.

    True for the serial scheduler (``client`` is ``None``) and for a client of
    a :class:`distributed.LocalCluster` of this process (started by this
    package or by the user: its workers are processes of this machine); false
    for a client of any other scheduler, whose workers may be anywhere.
    """
    if client is None:
        return True
    from distributed import LocalCluster

    return isinstance(getattr(client, "cluster", None), LocalCluster)
