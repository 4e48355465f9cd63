"""Dask clusters on HPC batch systems through dask-jobqueue.

Every cluster class that :mod:`dask_jobqueue` offers is reachable by its
configuration name (``"slurm"``, ``"pbs"``, ``"sge"``, ``"lsf"``, ``"oar"``,
``"htcondor"``, ``"moab"``) or by its class name (``"SLURMCluster"``).

Settings come, by increasing precedence, from dask-jobqueue's own defaults,
the user's ``jobqueue.yaml`` (``jobqueue.<name>.*`` in :mod:`dask.config`),
and the arguments given here: an argument left as ``None`` never overrides
the user's configuration.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import dask.config

from .. import config

try:  # registers dask-jobqueue's defaults (jobqueue.*) with dask.config on import
    import dask_jobqueue  # noqa: F401
except ImportError:  # pragma: no cover - optional dependency, reported when used (_cluster_classes)
    pass

__all__ = [
    "jobqueue_class",
    "jobqueue_kwargs",
    "jobqueue_names",
    "make_jobqueue_cluster",
    "start_jobqueue_cluster",
]

log = logging.getLogger(__name__)


def _cluster_classes() -> dict[str, type[Any]]:
    """``{config name: cluster class}`` of every class dask-jobqueue exports."""
    try:
        import dask_jobqueue
        from dask_jobqueue.core import JobQueueCluster
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise ImportError(
            "dask-jobqueue is needed for batch-system clusters: pip install 'dask-resample[hpc]'"
        ) from exc
    out: dict[str, type[Any]] = {}
    for attr in dir(dask_jobqueue):
        obj = getattr(dask_jobqueue, attr)
        if isinstance(obj, type) and issubclass(obj, JobQueueCluster) and obj is not JobQueueCluster:
            name = getattr(getattr(obj, "job_cls", None), "config_name", None)
            if name:
                out[name] = obj
    return out


def jobqueue_names() -> list[str]:
    """Names accepted by :func:`start_jobqueue_cluster` (``["htcondor", "lsf", ...]``)."""
    return sorted(_cluster_classes())


def jobqueue_class(name: str) -> type[Any]:
    """The dask-jobqueue cluster class called ``name``.

    Parameters
    ----------
    name : str
        Configuration name (``"slurm"``) or class name (``"SLURMCluster"``),
        case-insensitive.

    Raises
    ------
    ValueError
        If no such class exists.
    """
    classes = _cluster_classes()
    key = str(name).strip().lower()
    if key in classes:
        return classes[key]
    for cls in classes.values():
        if cls.__name__.lower() == key:
            return cls
    raise ValueError(f"cluster: unknown cluster {name!r}; expected 'local' or one of {sorted(classes)}")


def _job_parameters(cls: type[Any]) -> set[str]:
    """Settings accepted by the cluster class and its job class."""
    from dask_jobqueue.core import Job

    params: set[str] = set()
    for func in (cls.__init__, cls.job_cls.__init__, Job.__init__):
        params |= {
            p.name
            for p in inspect.signature(func).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }
    return params - {"self", "scheduler", "job_cls", "config_name", "base_class_kwargs", "job_kwargs"}


def _configured(config_name: str, key: str) -> Any:
    return dask.config.get(f"jobqueue.{config_name}.{key}", default=None)


def jobqueue_kwargs(
    name: str,
    *,
    cores: int | None = None,
    memory: str | None = None,
    walltime: str | None = None,
    processes: int | None = None,
    queue: str | None = None,
    account: str | None = None,
    job_extra_directives: Sequence[str] | None = None,
    **kw: Any,
) -> tuple[type[Any], dict[str, Any]]:
    """Cluster class and the keyword arguments that override the user's configuration.

    Only arguments that are not ``None`` are passed on, so every other setting
    keeps the value of the user's ``jobqueue.yaml``. ``account`` becomes
    ``project`` for the batch systems that call it so (SGE, LSF, OAR).

    Parameters
    ----------
    name : str
        Batch system or dask-jobqueue class name.
    cores, memory, walltime, processes, queue, account, job_extra_directives
        Per-job settings; ``None`` leaves the configured value.
    **kw
        Any other setting of the cluster or job class.

    Returns
    -------
    cls : type
        The dask-jobqueue cluster class.
    kwargs : dict
        Arguments to create it with.

    Raises
    ------
    ValueError
        If the batch system has no such setting, or no ``cores``/``memory`` is
        known from the arguments or the configuration.
    """
    cls = jobqueue_class(name)
    config_name = cls.job_cls.config_name
    accepted = _job_parameters(cls)
    given: dict[str, Any] = {
        "cores": cores,
        "memory": memory,
        "walltime": walltime,
        "processes": processes,
        "queue": queue,
        "job_extra_directives": list(job_extra_directives) if job_extra_directives is not None else None,
        **kw,
    }
    if account is not None:
        if "account" in accepted:
            given["account"] = account
        elif "project" in accepted:
            given["project"] = account
        else:
            raise ValueError(f"account: {cls.__name__} has no account or project setting")
    out = {k: v for k, v in given.items() if v is not None}
    for key in out:
        if key not in accepted:
            raise ValueError(f"{key}: not a setting of {cls.__name__}")
    for key in ("cores", "memory"):
        if key not in out and _configured(config_name, key) is None:
            raise ValueError(
                f"{key}: no value for {cls.__name__}; pass {key}= or set jobqueue.{config_name}.{key} in jobqueue.yaml"
            )
    return cls, out


def make_jobqueue_cluster(name: str, **kwargs: Any) -> Any:
    """Create (but do not scale) a dask-jobqueue cluster.

    Parameters
    ----------
    name : str
        Batch system (``"slurm"``, ``"pbs"``, ...).
    **kwargs
        As for :func:`jobqueue_kwargs`.

    Returns
    -------
    dask_jobqueue.JobQueueCluster
        Its :meth:`job_script` shows what would be submitted.
    """
    cls, kw = jobqueue_kwargs(name, **kwargs)
    log.debug("%s(%s)", cls.__name__, ", ".join(f"{k}={v!r}" for k, v in kw.items()))
    return cls(**kw)


def start_jobqueue_cluster(
    name: str,
    *,
    jobs: int | None = None,
    cores: int | None = None,
    memory: str | None = None,
    walltime: str | None = None,
    processes: int | None = None,
    queue: str | None = None,
    account: str | None = None,
    job_extra_directives: Sequence[str] | None = None,
    wait_for_workers: int | None = None,
    timeout: float | None = None,
    **kw: Any,
) -> tuple[Any, Any]:
    """Start a batch-system cluster, submit its jobs and wait for workers.

    :func:`dask_resample.cluster.connect` wraps the result in a
    :class:`~dask_resample.cluster.ClusterHandle`; this module does not depend on it.

    Parameters
    ----------
    name : str
        ``"slurm"``, ``"pbs"``, ``"sge"``, ``"lsf"``, ``"oar"``, ``"htcondor"``,
        ``"moab"`` or a dask-jobqueue class name.
    jobs : int, optional
        Number of batch jobs (default ``resample.jobqueue.jobs``).
    cores, memory, walltime, processes, queue, account, job_extra_directives
        Per-job settings; ``None`` keeps the value of the user's
        ``jobqueue.yaml`` (``jobqueue.<name>.*``).
    wait_for_workers : int, optional
        Return once this many workers are connected (default
        ``resample.jobqueue.wait-for-workers``; ``None`` there means all of
        them). The others join as their jobs start.
    timeout : float, optional
        Seconds to wait for them (default ``resample.jobqueue.wait-timeout``).
    **kw
        Any other setting of the cluster class (``python``, ``interface``,
        ``local_directory``, ``log_directory``, ``job_script_prologue``, ...).

    Returns
    -------
    client, cluster : distributed.Client, dask_jobqueue.JobQueueCluster
        Closing the cluster cancels the jobs. With
        ``resample.jobqueue.keep-alive`` (see ``resample.yaml``) jobs that end before
        the run (walltime, pre-emption) are replaced by new ones; the tasks
        they held are recomputed elsewhere.

    Raises
    ------
    TimeoutError
        If the workers do not connect in time (the jobs are cancelled).
    """
    from distributed import Client

    jobs = int(jobs if jobs is not None else config.get("jobqueue.jobs"))
    if jobs < 1:
        raise ValueError(f"jobs: expected a positive number of batch jobs, got {jobs}")
    cluster = make_jobqueue_cluster(
        name,
        cores=cores,
        memory=memory,
        walltime=walltime,
        processes=processes,
        queue=queue,
        account=account,
        job_extra_directives=job_extra_directives,
        **kw,
    )
    client = None
    try:
        cluster.scale(jobs=jobs)
        if config.get("jobqueue.keep-alive"):
            # resubmit jobs that end (walltime, pre-emption) so that ``jobs`` keep running
            cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)
        client = Client(cluster)
        n_total = jobs * _workers_per_job(cluster)
        if wait_for_workers is None:
            wait_for_workers = config.get("jobqueue.wait-for-workers")
        n_wait = n_total if wait_for_workers is None else min(int(wait_for_workers), n_total)
        timeout = float(timeout if timeout is not None else config.get("jobqueue.wait-timeout"))
        log.info(
            "%s: %d job(s) submitted (%d worker(s)); waiting up to %.0f s for %d worker(s); dashboard %s",
            type(cluster).__name__,
            jobs,
            n_total,
            timeout,
            n_wait,
            client.dashboard_link,
        )
        try:
            client.wait_for_workers(n_wait, timeout=timeout)
        except TimeoutError:
            raise TimeoutError(
                f"cluster: {n_wait} worker(s) of {type(cluster).__name__} did not start within {timeout:.0f} s; "
                "check the batch queue and the job logs"
            ) from None
    except BaseException:
        if client is not None:
            client.close()
        cluster.close()
        raise
    log.info("%s ready: %d worker(s)", type(cluster).__name__, len(client.scheduler_info(n_workers=-1)["workers"]))
    return client, cluster


def _workers_per_job(cluster: Any) -> int:
    """Worker processes started by one job of ``cluster``."""
    try:
        return max(1, int(cluster._dummy_job.worker_processes))
    except (AttributeError, TypeError, ValueError):
        return 1
