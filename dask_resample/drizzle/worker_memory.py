"""Memory of a worker process: what a task frees goes back to the system, at a cost that does not grow.

Three things keep a long-running worker's memory and per-task cost flat:

* :func:`tune_allocator`: distributed's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536``
  in the worker processes of clusters it starts, which turns off glibc's adaptive
  allocator: every large temporary array is then mapped and unmapped by the kernel,
  and drizzle tasks run 10-30% slower. The environment variable is read once, at
  process start, but the same thresholds can be set at run time (``mallopt``), so
  :func:`dask_resample.execution.workers.prepare_worker` gives the workers of a cluster the user
  started the thresholds the adaptive allocator reaches (the clusters this package
  starts never get the variable: ``resample.local.malloc-trim-threshold``);
* :func:`release_free_memory` after each exposure: freed memory back to the system;
* :func:`collect_garbage`: the young generations only (constant cost per task).
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

__all__ = ["collect_garbage", "mark_prepared", "release_free_memory", "tune_allocator"]

log = logging.getLogger(__name__)

#: glibc's ``mallopt`` parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Where glibc's adaptive allocator ends up for large arrays on 64-bit systems: its
#: largest dynamic mmap threshold (``DEFAULT_MMAP_THRESHOLD_MAX``, 32 MiB) and a trim
#: threshold of twice that.
ADAPTIVE_MMAP_THRESHOLD = 32 * 2**20
ADAPTIVE_TRIM_THRESHOLD = 2 * ADAPTIVE_MMAP_THRESHOLD


def _libc() -> Any:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6")
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without the name)
        return None


def tune_allocator(trim_threshold: int | None = None) -> bool:
    """Undo ``MALLOC_TRIM_THRESHOLD_`` at run time in this process (glibc only).

    Parameters
    ----------
    trim_threshold : int, optional
        ``resample.local.malloc-trim-threshold``: a number sets glibc's trim
        threshold to it; ``None`` sets the thresholds glibc's adaptive allocator
        reaches (:data:`ADAPTIVE_MMAP_THRESHOLD`, :data:`ADAPTIVE_TRIM_THRESHOLD`).

    Returns
    -------
    bool
        Whether anything was changed: only when the process was started with
        ``MALLOC_TRIM_THRESHOLD_`` (distributed's nanny sets it) and glibc is there.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    if trim_threshold is None:
        ok = libc.mallopt(_M_MMAP_THRESHOLD, ADAPTIVE_MMAP_THRESHOLD) and libc.mallopt(
            _M_TRIM_THRESHOLD, ADAPTIVE_TRIM_THRESHOLD
        )
    else:
        ok = libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    return bool(ok)


def release_free_memory() -> None:
    """Give the memory freed by a task back to the operating system (glibc only).

    Workers started by this package keep glibc's adaptive allocator (see
    ``resample.local.malloc-trim-threshold``), which is much faster for large
    temporary arrays but keeps freed memory in the process; trimming once per
    exposure keeps the worker's resident memory at what it really holds.

    A closed JWST datamodel keeps its arrays until Python's cycle collector
    runs (about 100 MiB for a 2048 x 2048 exposure). In a worker prepared by
    :func:`dask_resample.execution.workers.prepare_worker` (:func:`mark_prepared`), the
    young generations are collected here first (see :func:`collect_garbage`); elsewhere
    (a user's process, the serial scheduler) it is left to Python.
    """
    global _MALLOC_TRIM
    collect_garbage()
    if _MALLOC_TRIM is None:
        libc = _libc()
        _MALLOC_TRIM = getattr(libc, "malloc_trim", None) or False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


def collect_garbage() -> None:
    """Collect the young generations in a prepared worker, else nothing.

    See :func:`release_free_memory`: closed JWST datamodels hold their arrays in
    reference cycles until a collection. Only generations 0 and 1 are collected:
    their size is bounded by the objects made since the last collections, so the
    cost is the same for the first task and the thousandth. A full collection
    walks everything the worker has accumulated (the scheduler's task records,
    logs, caches) and grows with every task run: quadratic over a long run.
    Cycles that reach the old generation are left to Python's own collections,
    whose cost is amortised.
    """
    if _PREPARED:
        gc.collect(1)


def mark_prepared() -> None:
    """Mark this process a prepared worker: :func:`collect_garbage` then collects (see there)."""
    global _PREPARED
    _PREPARED = True


#: Whether :func:`mark_prepared` ran in this process.
_PREPARED = False
