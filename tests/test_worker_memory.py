"""Worker memory: the allocator of a cluster the user started is tuned at run time."""

from __future__ import annotations

import ctypes
import os
import sys

import numpy as np
import pytest

from dask_resample.drizzle import worker_memory
from dask_resample.execution import workers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and mallinfo2")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mapped_by_a_large_array() -> int:
    """Bytes glibc maps with mmap for one live 8 MiB array (0: it came from the heap)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    before = libc.mallinfo2().hblkhd
    a = np.ones(2**20, np.float64)
    during = libc.mallinfo2().hblkhd
    del a
    return int(during - before)


def _probe(prepare: bool) -> tuple[str | None, int, int]:
    """On a worker: the variable distributed set, the mapped bytes before and after preparing."""
    first = _mapped_by_a_large_array()
    if prepare:
        workers.prepare_worker()
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), first, _mapped_by_a_large_array()


def test_a_user_cluster_gets_the_adaptive_thresholds_back():
    """distributed's nanny sets MALLOC_TRIM_THRESHOLD_ (large arrays mmapped each time); prepare_worker undoes it."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        env, before, after = next(iter(client.run(_probe, True).values()))
    assert env is not None  # distributed's default: the situation of a cluster the user started
    assert before >= 8 * 2**20  # every large array mapped and unmapped by the kernel
    assert after == 0  # from the heap, as with glibc's adaptive thresholds


def test_nothing_changes_without_the_variable(monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert worker_memory.tune_allocator() is False
