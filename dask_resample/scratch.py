"""Scratch files for tile partials: what one exposure drizzled into one tile.

A drizzle task writes each of its tile partials to a file and returns only
small records; the tile's reduction task reads the partials of its
contributors, one at a time and in a fixed order, when the last of them is
done. Nothing large waits in a worker's memory for other exposures, so memory
per process stays at one exposure (drizzling) or one tile (reducing), whatever
the mosaic size, the number of inputs or the order in which tasks run.

Files are written atomically (a temporary name, then a rename), so a retried
task rewrites the same content and a reader never sees half a file. They live
under the run's scratch directory: by default inside the mosaic
(``<output>/_scratch``), which every worker can reach because they all write
the mosaic; ``resample.scratch-dir`` (or ``scratch_dir=``) moves them, e.g. to a
node-local disk for a single-node run. A tile's partials are removed once it is
written, and the whole directory at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .kernel import VARIANCE_NAMES, TilePartial

__all__ = ["PartialFile", "ScratchSpec", "read_partial", "remove_all", "remove_tile", "write_partial"]


@dataclass(frozen=True)
class ScratchSpec:
    """Where a run keeps its partials (small, picklable)."""

    root: str

    def tile_dir(self, group: str, ty: int, tx: int) -> Path:
        """Directory of one tile's partials."""
        return Path(self.root) / (group or "_") / f"{ty}_{tx}"


@dataclass(frozen=True)
class PartialFile:
    """A partial on disk: its path and the box of the mosaic it covers."""

    path: str
    y0: int
    x0: int
    shape_yx: tuple[int, int]
    nbytes: int


_META = ("index", "y0", "x0", "tmeasure")


def write_partial(scratch: ScratchSpec, group: str, ty: int, tx: int, partial: TilePartial) -> PartialFile:
    """Write ``partial`` (input ``partial.index`` into tile ``(ty, tx)`` of ``group``) atomically."""
    directory = scratch.tile_dir(group, ty, tx)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {"img": partial.img, "wht": partial.wht}
    for name in ("ctx", "dq", "err"):
        if (a := getattr(partial, name)) is not None:
            arrays[name] = a
    for name, v in partial.var.items():
        arrays[f"var.{name}"] = v
    meta = np.array([partial.index, partial.y0, partial.x0,
                     np.nan if partial.tmeasure is None else partial.tmeasure], np.float64)
    target = directory / f"{partial.index}.npz"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{partial.index}-", suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        np.savez(fh, meta=meta, **arrays)
    os.replace(tmp, target)
    return PartialFile(str(target), partial.y0, partial.x0, partial.shape_yx, partial.nbytes)


def read_partial(path: str | os.PathLike) -> TilePartial:
    """Read a partial written by :func:`write_partial`."""
    with np.load(path, allow_pickle=False) as z:
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
    shutil.rmtree(scratch.tile_dir(group, ty, tx), ignore_errors=True)


def remove_all(scratch: ScratchSpec) -> None:
    """Remove the run's scratch directory."""
    shutil.rmtree(scratch.root, ignore_errors=True)
