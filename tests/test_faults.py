"""Fault tolerance: killed workers, inputs that break after planning."""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from dask_resample import open_mosaic, resample
from dask_resample.api import IncompleteMosaicError, plan_mosaic
from dask_resample.execution.graph import TileTaskError
from dask_resample.execution.run import execute_plan
from dask_resample.params import ResampleParams
from dask_resample.store import tiles_done
from dask_resample.testing import synthetic

from .test_resume import TILE, _markers, assert_same_mosaic, reference  # noqa: F401 - module fixture


class KillWorkerOnce(WorkerPlugin):
    """SIGKILL the worker process that first starts a task whose key begins with ``prefix``.

    A file created with O_EXCL makes it happen exactly once in the whole
    cluster, also on the worker the nanny starts in place of the killed one.
    """

    def __init__(self, sentinel: str, prefix: str) -> None:
        self.sentinel = sentinel
        self.prefix = prefix

    def transition(self, key, start, finish, **kwargs) -> None:
        name = key[0] if isinstance(key, tuple) else str(key)
        if finish != "executing" or not str(name).startswith(self.prefix):
            return
        try:
            fd = os.open(self.sentinel, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def cluster_client():
    """A dedicated two-worker LocalCluster whose workers may be killed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="2GiB"
        )
        c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _worker_pids(c: Client) -> set[int]:
    return set(c.run(os.getpid).values())


@pytest.mark.parametrize("prefix", ["drizzle-", "tile-"])
def test_worker_killed_during_a_task(prefix, cluster_client, small_dataset, reference, tmp_path):
    """A worker dies (SIGKILL) as it starts a drizzle / a tile reduction: the run still ends bit-identical."""
    c = cluster_client
    before = _worker_pids(c)
    sentinel = tmp_path / "killed.pid"
    c.register_plugin(KillWorkerOnce(str(sentinel), prefix), name="kill-once")
    out = tmp_path / "m.zarr"
    resample(small_dataset.asn_path, out, tile_shape=TILE, client=c, progress=False)
    killed = int(sentinel.read_text())
    assert killed in before
    c.wait_for_workers(2, timeout=60)
    after = _worker_pids(c)
    assert killed not in after and len(after) == 2  # the nanny started a new worker
    assert_same_mosaic(out, reference)


def test_worker_killed_from_outside_mid_run(cluster_client, small_dataset, reference, tmp_path):
    """``os.kill(pid, SIGKILL)`` of a worker while tiles are being written."""
    c = cluster_client
    pids = c.run(os.getpid)
    out = tmp_path / "m.zarr"
    result: dict = {}

    def run() -> None:
        try:
            result["ds"] = resample(small_dataset.asn_path, out, tile_shape=TILE, client=c, progress=False)
        except BaseException as exc:  # reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while _markers(out) < 1 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    n_at_kill = _markers(out)
    victim = max(pids.values())
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=180)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    n_total = _markers(reference)
    assert 1 <= n_at_kill < n_total, "the kill did not happen mid-run"
    c.wait_for_workers(2, timeout=60)
    assert victim not in _worker_pids(c)
    assert_same_mosaic(out, reference)


@pytest.fixture(scope="module")
def fits_dataset(tmp_path_factory) -> synthetic.SyntheticDataset:
    """Plain-FITS exposures (headers read at planning, pixels only by the drizzle tasks)."""
    d = tmp_path_factory.mktemp("fits_inputs")
    return synthetic.write_dataset(d, n_dithers=2, n_detectors=2, shape=(64, 64), seed=11, fmt="fits")


@pytest.fixture(scope="module")
def clean_fits(fits_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean_fits") / "clean.zarr"
    resample([str(p) for p in fits_dataset.paths], out, tile_shape=TILE, scheduler="serial", progress=False)
    return out


@pytest.mark.filterwarnings("ignore:File may have been truncated")
@pytest.mark.parametrize("scheduler", ["serial", "distributed"])
def test_input_corrupted_after_planning(scheduler, fits_dataset, clean_fits, client, tmp_path, caplog):
    """The failing tiles name the input; every other tile is written, equal to a clean run."""
    # work on copies so that the module's dataset stays intact
    copies = []
    for p in fits_dataset.paths:
        q = tmp_path / Path(p).name
        q.write_bytes(Path(p).read_bytes())
        copies.append(str(q))
    plan = plan_mosaic(copies, params=ResampleParams(), tile_shape=TILE)
    bad = 1
    with open(copies[bad], "r+b") as fh:  # a copy cut short after the headers
        fh.truncate(2880 * 4)
    out = tmp_path / "m.zarr"
    with caplog.at_level(logging.ERROR, logger="dask_resample"), pytest.raises(IncompleteMosaicError) as err:
        execute_plan(
            plan,
            out,
            mode="many_to_one",
            overwrite=False,
            resume=False,
            client=client if scheduler == "distributed" else None,
            progress=False,
        )
    exc = err.value
    assert isinstance(exc, TileTaskError)
    msg = str(exc)
    bad_name = Path(copies[bad]).name
    assert "\n" not in msg and bad_name in msg
    touched = {key for (g, key), idx in plan.contributions.items() if bad in idx}
    untouched = {key for (g, key), idx in plan.contributions.items() if bad not in idx}
    assert touched and untouched
    assert {key for (_g, key) in exc.errors} == touched
    assert exc.summary.n_tiles == len(untouched) and exc.summary.n_tiles_failed == len(touched)
    assert re.search(rf"{len(touched)} of {len(plan.contributions)} tiles failed", msg)
    assert set(tiles_done(out)) == untouched
    # the error is logged once, not once per tile
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and bad_name in r.getMessage()]
    assert len(errors) == 1
    # written tiles are those of the clean run
    ours, ref = open_mosaic(out), open_mosaic(clean_fits)
    ty_n, tx_n = TILE
    for ty, tx in untouched:
        sl = (slice(ty * ty_n, (ty + 1) * ty_n), slice(tx * tx_n, (tx + 1) * tx_n))
        for name in ref.data_vars:
            a = ours[name].values[(..., *sl)]
            b = ref[name].values[(..., *sl)]
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), (name, ty, tx)
