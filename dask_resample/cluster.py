"""Where work runs: the current client, a LocalCluster, a scheduler address or a batch system.

:func:`connect` is the single entry point used by the API, the command line and
the notebooks. It returns a :class:`ClusterHandle` that closes what it created.
Defaults come from the ``resample`` namespace of :mod:`dask.config` (see
``resample.yaml``); batch-system clusters are started by
:func:`dask_resample.execution.hpc.start_jobqueue_cluster`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import config

__all__ = ["ClusterHandle", "connect", "set_worker_setup"]

log = logging.getLogger(__name__)

#: What every worker of a LocalCluster started here runs before :func:`connect` returns
#: (``"setup"``: a function of no argument). It is
#: :func:`dask_resample.execution.workers.prepare_worker` (the tasks' imports and compiled kernels),
#: a layer above this module, so that module sets it (:func:`set_worker_setup`) when imported.
WORKER_SETUP: dict[str, Callable[..., None]] = {}


def set_worker_setup(setup: Callable[..., None]) -> None:
    """Set what every worker of a LocalCluster started by :func:`connect` runs as the cluster starts.

    :func:`connect` calls it with its ``worker_setup_kwargs``.
    """
    WORKER_SETUP["setup"] = setup


@dataclass
class ClusterHandle:
    """A client and whatever was started to serve it."""

    client: Any
    cluster: Any = None
    owned: bool = False
    extra: list[Any] = field(default_factory=list)

    @property
    def dashboard_link(self) -> str | None:
        """Dashboard URL, if the scheduler serves one."""
        try:
            return self.client.dashboard_link
        except Exception:  # pragma: no cover - no dashboard (bokeh missing)
            return None

    def close(self) -> None:
        """Close the client and the cluster if this handle started them."""
        if not self.owned:
            return
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def __enter__(self) -> ClusterHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _current_client() -> Any | None:
    try:
        from distributed import get_client

        return get_client()
    except (ValueError, ImportError):
        return None


def connect(
    client: Any = None,
    *,
    cluster: str | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | int | None = None,
    jobs: int | None = None,
    worker_setup_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> ClusterHandle:
    """Return a client to run on.

    Unset arguments take their defaults from :mod:`dask.config` (namespace
    ``resample``, see ``resample.yaml``); the order of choice is: ``client``,
    ``scheduler``, ``cluster``, the current client, ``resample.scheduler``,
    ``resample.cluster``.

    Parameters
    ----------
    client : distributed.Client, optional
        Use this client as is.
    cluster : str, optional
        ``"local"`` or a dask-jobqueue cluster name (``"slurm"``, ``"pbs"``,
        ``"sge"``, ``"lsf"``, ``"oar"``, ``"htcondor"``, ``"moab"``).
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``) or a scheduler file.
    n_workers, threads_per_worker, memory_limit
        LocalCluster settings (defaults ``resample.local.*`` of ``resample.yaml``;
        ``n-workers: null`` is one worker per core).
    jobs : int, optional
        Batch jobs of a dask-jobqueue cluster (default ``resample.jobqueue.jobs``).
    worker_setup_kwargs : mapping, optional
        Keyword arguments of the set-up that a LocalCluster started here runs on every
        worker (:func:`set_worker_setup`): a run passes the kinds of its inputs, so that
        the workers load only what those need.
    **kwargs
        For a LocalCluster, more LocalCluster arguments; for a batch-system
        cluster, per-job settings (``cores``, ``memory``, ``walltime``,
        ``processes``, ``queue``, ``account``, ``job_extra_directives``, ...)
        passed to :func:`dask_resample.execution.hpc.start_jobqueue_cluster`.

    Returns
    -------
    ClusterHandle
    """
    import dask.config
    from distributed import Client

    if client is not None:
        return ClusterHandle(client=client)
    if scheduler:
        return _connect_scheduler(scheduler)
    if cluster is None:
        if (current := _current_client()) is not None:
            return ClusterHandle(client=current)
        if configured := config.get("scheduler"):
            return _connect_scheduler(str(configured))
        cluster = config.get("cluster") or config.packaged("cluster")
    cluster = str(cluster).strip().lower()
    if cluster == "local":
        from distributed import LocalCluster

        n = n_workers or config.get("local.n-workers") or max(1, os.cpu_count() or 1)
        threads = (
            threads_per_worker or config.get("local.threads-per-worker") or config.packaged("local.threads-per-worker")
        )
        memory = memory_limit if memory_limit is not None else config.get("local.memory-limit")
        # glibc's allocator setting for the workers: unset (adaptive) unless configured
        trim = config.get("local.malloc-trim-threshold")
        env = dict(kwargs.pop("env", None) or {})
        if trim is not None:
            env.setdefault("MALLOC_TRIM_THRESHOLD_", str(int(trim)))
        with (
            dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}),
            _environ_without("MALLOC_TRIM_THRESHOLD_"),
        ):
            lc = LocalCluster(
                env=env,
                n_workers=int(n),
                threads_per_worker=int(threads),
                memory_limit=memory,
                processes=True,
                dashboard_address=kwargs.pop("dashboard_address", None) or config.get("local.dashboard-address"),
                silence_logs=kwargs.pop("silence_logs", None) or _log_level(config.get("local.silence-logs")),
                **kwargs,
            )
        c = Client(lc)
        log.info("Started a LocalCluster: %d workers x %d threads, dashboard %s", n, threads, c.dashboard_link)
        if setup := WORKER_SETUP.get("setup"):
            # the workers load what the tasks use now, in parallel: a notebook's later runs on this
            # cluster find them ready, and the first run's planning no longer waits behind it
            c.run(setup, **dict(worker_setup_kwargs or {}))
        return ClusterHandle(client=c, cluster=lc, owned=True)
    ignored = {
        k: v
        for k, v in (
            ("n_workers", n_workers),
            ("threads_per_worker", threads_per_worker),
            ("memory_limit", memory_limit),
        )
        if v is not None
    }
    if ignored:
        log.warning("%s: ignored for a %s cluster (use jobs, cores, memory, processes)", ", ".join(ignored), cluster)
    from .execution.hpc import (
        start_jobqueue_cluster,  # here: it imports dask-jobqueue (optional, slow to import)
    )

    client, jobqueue_cluster = start_jobqueue_cluster(cluster, jobs=jobs, **kwargs)
    return ClusterHandle(client=client, cluster=jobqueue_cluster, owned=True)


def _log_level(name: Any) -> int:
    """A logging level from its name (``"error"``) or number; WARNING when unset."""
    if isinstance(name, int):
        return name
    return logging.getLevelName(str(name or "warning").upper()) if name else logging.WARNING


@contextlib.contextmanager
def _environ_without(name: str) -> Iterator[None]:
    """Remove ``name`` from ``os.environ`` while workers are spawned, then restore it.

    Nannies copy their ``pre-spawn-environ`` into the parent process's
    environment, so a LocalCluster started earlier in this process (with
    distributed's defaults) would otherwise hand its setting to ours.
    """
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


def _connect_scheduler(scheduler: str) -> ClusterHandle:
    """Client of a running scheduler, by address or scheduler file."""
    from distributed import Client

    if os.path.isfile(scheduler):
        c = Client(scheduler_file=scheduler)
    elif scheduler.endswith(".json"):
        raise FileNotFoundError(f"scheduler: scheduler file {scheduler} not found")
    else:
        c = Client(scheduler)
    assert c.scheduler is not None  # a connected client
    log.info("Connected to scheduler %s, dashboard %s", c.scheduler.address, c.dashboard_link)
    return ClusterHandle(client=c, owned=True)
