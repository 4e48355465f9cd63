"""Where work runs: packaged defaults, ``connect`` choices, logging of a run."""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import re
import subprocess
import sys

import dask.config
import pytest
import yaml

from dask_resample import config, resample
from dask_resample.cluster import ClusterHandle, connect


def test_packaged_defaults_are_loaded_under_resample():
    shipped = importlib.resources.files("dask_resample").joinpath("resample.yaml")
    doc = yaml.safe_load(shipped.read_text())
    assert list(doc) == ["resample"]
    assert dask.config.get("resample.cluster") == doc["resample"]["cluster"] == "local"
    assert dask.config.get("resample.tile-shape") == [1024, 1024]
    assert dask.config.get("resample.local.threads-per-worker") == 1
    assert dask.config.get("resample.jobqueue.jobs") == 1
    assert config.get("scratch-dir") is None
    assert config.get("local.dashboard-address") == "127.0.0.1:0"
    assert config.get("local.malloc-trim-threshold") is None
    # the batch-system keys are dask-jobqueue's, not ours
    assert "jobqueue" not in doc


def test_environment_overrides_defaults():
    code = "from dask_resample import config; print(config.get('jobqueue.jobs'), config.get('cluster'))"
    env = {**os.environ, "DASK_RESAMPLE__JOBQUEUE__JOBS": "12", "DASK_RESAMPLE__CLUSTER": "pbs"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["12", "pbs"]


def test_given_client_is_used_and_not_closed(client):
    handle = connect(client)
    assert handle.client is client and not handle.owned
    handle.close()
    assert client.status == "running"


def test_current_client_is_used_by_default(client):
    with client.as_current():
        handle = connect()
    assert handle.client is client and not handle.owned


def test_scheduler_address_and_file(client, tmp_path):
    address = client.scheduler.address
    with connect(scheduler=address) as handle:
        assert handle.owned and handle.client.scheduler.address == address
        assert handle.client.submit(sum, [1, 2]).result() == 3
    sched_file = tmp_path / "scheduler.json"
    # what a scheduler writes with --scheduler-file (Client.write_scheduler_file also dumps the workers'
    # metrics, whose tuple keys JSON refuses once the session's workers have run tasks)
    sched_file.write_text(json.dumps({"type": "Scheduler", "address": address}))
    with connect(scheduler=str(sched_file)) as handle:
        assert handle.client.scheduler.address == address
    assert client.status == "running"  # closing our handle left the shared cluster alone
    with dask.config.set({"resample.scheduler": address}):
        with connect() as handle:
            assert handle.client.scheduler.address == address
    with pytest.raises(FileNotFoundError, match="scheduler: scheduler file .*missing.json not found"):
        connect(scheduler=str(tmp_path / "missing.json"))


def test_local_cluster_from_arguments_and_config():
    with dask.config.set({"resample.local.memory-limit": "1GiB", "resample.local.n-workers": 1}):
        with connect(cluster="local") as handle:
            assert isinstance(handle, ClusterHandle) and handle.owned
            workers = handle.client.scheduler_info()["workers"].values()
            assert len(workers) == 1
            assert [w["memory_limit"] for w in workers] == [2**30]
            assert [w["nthreads"] for w in workers] == [1]
            assert handle.dashboard_link and handle.dashboard_link.startswith("http")
            cluster = handle.cluster
        assert cluster.status.name == "closed"


def _kernels_loaded() -> tuple[bool, bool]:
    """On a worker: whether prepare_worker marked it prepared, and whether the fused kernel's module is loaded."""
    from dask_resample.drizzle import worker_memory

    return worker_memory._PREPARED, "dask_resample.drizzle.fused_kernel.once" in sys.modules


def test_workers_are_prepared_as_the_cluster_starts():
    """A LocalCluster started by connect() has run prepare_worker on every worker before it is returned."""
    with dask.config.set({"resample.local.n-workers": 2}), connect(cluster="local") as handle:
        states = handle.client.run(_kernels_loaded)
    assert len(states) == 2
    assert all(prepared and loaded for prepared, loaded in states.values()), states


def _jwst_schemas_loaded() -> bool:
    """On a worker: whether the JWST datamodels (and their schemas) were imported."""
    return "stdatamodels.jwst.datamodels" in sys.modules


def test_workers_prepare_for_the_kinds_of_the_run(tmp_path):
    """A run's LocalCluster loads the JWST datamodel schemas only when the run has JWST inputs."""
    import types

    from dask_resample.execution.workers import input_kinds, prepare_worker

    fits_inputs = [types.SimpleNamespace(kind="fits"), types.SimpleNamespace(kind="fits")]
    assert input_kinds(fits_inputs) == ("fits",)
    assert input_kinds([*fits_inputs, types.SimpleNamespace(kind="jwst")]) == ("fits", "jwst")
    assert input_kinds([object()]) is None and input_kinds(None) is None
    # what connect_for_run does for a run without a client (a LocalCluster of its own: named here,
    # as the suite's session client would otherwise be the current one)
    kinds = {"kinds": input_kinds(fits_inputs)}
    with (
        dask.config.set({"resample.local.n-workers": 1}),
        connect(cluster="local", worker_setup_kwargs=kinds) as handle,
    ):
        client = handle.client
        assert list(client.run(_kernels_loaded).values()) == [(True, True)]
        assert list(client.run(_jwst_schemas_loaded).values()) == [False]
        client.run(prepare_worker, ("jwst",))  # a later run with JWST inputs on the same cluster
        assert list(client.run(_jwst_schemas_loaded).values()) == [True]


def test_command_line_cluster_prepares_for_the_kinds_of_its_inputs():
    """The LocalCluster of a command (``run``, ``outliers``...) is told its inputs' kinds too."""
    import types

    from dask_resample.cli.arguments import _connect

    where = {
        "serial": False,
        "dashboard_address": ":0",
        "cluster": "local",
        "scheduler": None,
        "workers": 1,
        "threads_per_worker": 1,
        "memory_limit": None,
        "jobs": None,
    }
    handle = _connect(where, [types.SimpleNamespace(kind="fits")])
    try:
        assert list(handle.client.run(_kernels_loaded).values()) == [(True, True)]
        assert list(handle.client.run(_jwst_schemas_loaded).values()) == [False]
    finally:
        handle.close()


def test_prepare_workers_on_a_cluster_started_elsewhere():
    """dask_resample.prepare_workers() prepares the workers of a plain distributed LocalCluster."""
    from distributed import Client, LocalCluster

    import dask_resample

    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        assert list(client.run(_kernels_loaded).values()) == [(False, False)]
        dask_resample.prepare_workers(client)
        assert list(client.run(_kernels_loaded).values()) == [(True, True)]


def test_cluster_names_are_checked():
    with pytest.raises(ValueError, match=r"cluster: unknown cluster 'nosuch'; expected 'local' or one of \["):
        connect(cluster="nosuch", jobs=1)
    # with no client around, resample.cluster from the configuration decides
    code = "from dask_resample.cluster import connect; connect()"
    env = {**os.environ, "DASK_RESAMPLE__CLUSTER": "nosuch"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "ValueError: cluster: unknown cluster 'nosuch'" in out.stderr


def test_run_logs_dashboard_and_summary(client, small_dataset, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="dask_resample"):
        resample(small_dataset.asn_path, tmp_path / "m.zarr", tile_shape=(64, 64), client=client, progress=False)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert re.search(r"Dask dashboard: http://\S+/status", text)
    m = re.search(
        r"Mosaic done: (\d+) inputs, (\d+) tiles written \(0 already complete, 0 failed\), [\d.]+ s; "
        r"slowest tasks: (.*)",
        text,
    )
    assert m, text[-2000:]
    assert int(m.group(1)) == len(small_dataset.paths)
    assert int(m.group(2)) > 1
    slowest = m.group(3).split(", ")
    assert 1 <= len(slowest) <= 5
    assert any(s.startswith("drizzle jw") and s.endswith(" s") for s in slowest), slowest


def _worker_malloc_trim() -> str | None:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_local_cluster_keeps_the_adaptive_allocator(client):
    """Our LocalClusters leave MALLOC_TRIM_THRESHOLD_ unset, even after a default LocalCluster in this process."""
    # the session's LocalCluster (distributed's defaults) set it in this process's environment
    before = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    assert before is not None
    with dask.config.set({"resample.local.n-workers": 1}):
        with connect(cluster="local") as handle:
            assert list(handle.client.run(_worker_malloc_trim).values()) == [None]
        assert os.environ.get("MALLOC_TRIM_THRESHOLD_") == before  # restored for the rest of the process
        with dask.config.set({"resample.local.malloc-trim-threshold": 131072}):
            with connect(cluster="local") as handle:
                assert list(handle.client.run(_worker_malloc_trim).values()) == ["131072"]
