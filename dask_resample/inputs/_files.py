"""Whole-file writes and reads of the intermediate products, on any store.

Every file a task writes (masks, kept pixel maps, median bands, ``*_crf.fits``
files) is written whole: on a local disk in a temporary file renamed into
place, on an object store in one request (:class:`~dask_resample.store.location.Location`),
so a task killed or retried never leaves a partial file that a later task could
read, and a retry rewrites the same bytes. Paths may be local paths or
:class:`~dask_resample.store.location.Location` objects (URLs with their
storage options).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..store.location import Location, as_location

__all__ = ["load_arrays", "remove_file", "save_arrays", "write_atomic"]

PathLike = str | os.PathLike[str] | Location


def write_atomic(path: PathLike, write: Callable[[Path], None]) -> str:
    """Call ``write(tmp)`` with a temporary local path, then put the file at ``path`` whole.

    Returns
    -------
    str
        ``path`` (its URL for a location).
    """
    return as_location(path).write_with(write).url


def save_arrays(path: PathLike, *arrays: np.ndarray) -> str:
    """Write arrays one after the other in one ``.npy`` stream, whole (:func:`load_arrays` reads them)."""
    buf = io.BytesIO()
    for a in arrays:
        np.save(buf, a)
    return as_location(path).write_bytes(buf.getbuffer()).url


def load_arrays(path: PathLike, n: int = 1, *, mmap: bool = False) -> list[np.ndarray]:
    """The first ``n`` arrays written by :func:`save_arrays` (``mmap``: a local file is mapped, not read)."""
    location = as_location(path)
    if location.is_local and mmap and n == 1:
        return [np.load(location.url, mmap_mode="r")]
    source = open(location.url, "rb") if location.is_local else io.BytesIO(location.read_bytes())  # noqa: SIM115
    with source as fh:
        return [np.load(fh) for _ in range(n)]


def file_exists(path: PathLike) -> bool:
    """True if a file is at ``path``."""
    return as_location(path).is_file()


def remove_file(path: PathLike) -> None:
    """Remove the file at ``path`` if it is there."""
    as_location(path).remove()
