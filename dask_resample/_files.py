"""Atomic file writes: a path is either absent or complete.

Every file a task writes (masks, kept pixel maps, median bands, ``*_crf.fits``
files) is written in a hidden temporary directory beside its final path and
moved into place by one rename, so a task killed or retried never leaves a
partial file that a later task could read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["save_arrays", "write_atomic"]


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> str:
    """Call ``write(tmp)`` with a temporary path beside ``path``, then rename it to ``path``.

    Returns
    -------
    str
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        tmp = tmpdir / path.name
        write(tmp)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return str(path)


def save_arrays(path: str | os.PathLike, *arrays: np.ndarray) -> str:
    """Write arrays one after the other in one ``.npy`` stream, atomically (``np.load`` reads the first)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            for a in arrays:
                np.save(fh, a)

    return write_atomic(path, write)
