"""Where work runs: the current client, a LocalCluster, a scheduler address.

:func:`connect` is the single entry point used by the API, the command line and
the notebooks. It returns a :class:`ClusterHandle` that closes what it created.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClusterHandle", "connect"]

log = logging.getLogger(__name__)


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
    **kwargs: Any,
) -> ClusterHandle:
    """Return a client to run on.

    Parameters
    ----------
    client : distributed.Client, optional
        Use this client as is.
    cluster : str, optional
        ``"local"`` (default when no client is current) or a dask-jobqueue
        cluster name (``"slurm"``, ``"pbs"``, ...).
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``) or a scheduler file.
    n_workers, threads_per_worker, memory_limit
        LocalCluster settings (defaults: one single-threaded worker per core,
        the machine's memory shared evenly).

    Returns
    -------
    ClusterHandle
    """
    from distributed import Client

    if client is not None:
        return ClusterHandle(client=client)
    if scheduler:
        if os.path.isfile(scheduler):
            c = Client(scheduler_file=scheduler)
        else:
            c = Client(scheduler)
        return ClusterHandle(client=c, owned=True)
    if cluster in (None, "local"):
        if cluster is None and (current := _current_client()) is not None:
            return ClusterHandle(client=current)
        from distributed import LocalCluster

        n = n_workers or max(1, os.cpu_count() or 1)
        lc = LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker or 1,
            memory_limit=memory_limit if memory_limit is not None else "auto",
            processes=True,
            dashboard_address=kwargs.pop("dashboard_address", ":0"),
            **kwargs,
        )
        c = Client(lc)
        log.info("Started a LocalCluster: %d workers, dashboard %s", n, c.dashboard_link)
        return ClusterHandle(client=c, cluster=lc, owned=True)
    from .hpc import start_jobqueue_cluster

    return start_jobqueue_cluster(cluster, **kwargs)
