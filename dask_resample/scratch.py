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
scratch location: by default a hidden sibling of the mosaic
(``.<name>.scratch-<token>``), on the same store, which every worker writing
the mosaic can reach; ``resample.scratch-dir`` moves them to another path or
URL (a node-local disk is valid for a single-node run only). A tile's partials
are removed once it is written, and the whole scratch location at the end of
the run.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from .kernel import VARIANCE_NAMES, TilePartial
from .store.location import Location, npz_bytes

__all__ = ["PartialFile", "ScratchSpec", "read_partial", "remove_all", "remove_tile", "write_partial"]


@dataclass(frozen=True)
class ScratchSpec:
    """Where a run keeps its partials (small, picklable)."""

    root: Location

    def tile_dir(self, group: str, ty: int, tx: int) -> Location:
        """Location of one tile's partials."""
        return self.root.join(group or "_", f"{ty}_{tx}")

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


_META = ("index", "y0", "x0", "tmeasure")


def write_partial(scratch: ScratchSpec, group: str, ty: int, tx: int, partial: TilePartial) -> PartialFile:
    """Write ``partial`` (input ``partial.index`` into tile ``(ty, tx)`` of ``group``) atomically."""
    directory = scratch.tile_dir(group, ty, tx)
    arrays = {"img": partial.img, "wht": partial.wht}
    for name in ("ctx", "dq", "err"):
        if (a := getattr(partial, name)) is not None:
            arrays[name] = a
    for name, v in partial.var.items():
        arrays[f"var.{name}"] = v
    meta = np.array([partial.index, partial.y0, partial.x0,
                     np.nan if partial.tmeasure is None else partial.tmeasure], np.float64)
    target = directory.join(f"{partial.index}.npz").write_bytes(npz_bytes({"meta": meta, **arrays}))
    return PartialFile(target.url, partial.y0, partial.x0, partial.shape_yx, partial.nbytes)


def read_partial(location: Location) -> TilePartial:
    """Read a partial written by :func:`write_partial`."""
    source = location.url if location.is_local else io.BytesIO(location.read_bytes())
    with np.load(source, allow_pickle=False) as z:
        index, y0, x0, tmeasure = (float(v) for v in z["meta"])
        names = set(z.files)
        return TilePartial(
            index=int(index),
            y0=int(y0),
            x0=int(x0),
            img=z["img"],
            wht=z["wht"],
            ctx=z["ctx"] if "ctx" in names else None,
            dq=z["dq"] if "dq" in names else None,
            err=z["err"] if "err" in names else None,
            var={n: z[f"var.{n}"] for n in VARIANCE_NAMES if f"var.{n}" in names},
            tmeasure=None if np.isnan(tmeasure) else tmeasure,
        )


def remove_tile(scratch: ScratchSpec, group: str, ty: int, tx: int) -> None:
    """Remove one tile's partials (after the tile is written)."""
    scratch.tile_dir(group, ty, tx).remove()


def remove_all(scratch: ScratchSpec) -> None:
    """Remove the run's scratch location."""
    scratch.root.remove()
