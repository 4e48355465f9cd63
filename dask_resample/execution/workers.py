"""The cluster a run uses: :func:`connect_for_run`, and :func:`prepare_worker` started on every worker."""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Collection, Iterable
from typing import Any

from .. import config, store  # noqa: F401  (store and the others below: what the tasks use, see prepare_worker)
from ..cluster import connect, set_worker_setup
from ..drizzle import kernel, reduce
from ..drizzle.worker_memory import mark_prepared, tune_allocator
from ..geometry import pixmap
from ..outliers.flag import flag_task  # noqa: F401  (the outlier tasks' modules)
from ..outliers.median import median_tile_task  # noqa: F401
from ..outliers.threshold import threshold_task  # noqa: F401

__all__ = ["connect_for_run", "prepare_worker", "prepare_workers"]

log = logging.getLogger(__name__)


def prepare_worker(kinds: Collection[str] | None = None) -> None:
    """Import what the tasks use, load the JWST datamodel schemas, tune the allocator (a worker task).

    The tasks' modules come with this module's imports (a worker imports it to run this task);
    the compiled kernels and pixel map (numba) are loaded here.

    Parameters
    ----------
    kinds : collection of str, optional
        The input kinds of the run (``"jwst"``, ``"fits"``, ``"roman"``, ``"memory"``, as
        :class:`~dask_resample.inputs.records.ExposureRef` names them): the JWST datamodel
        schemas (about a second of CPU) are loaded only where ``"jwst"`` is among them.
        ``None`` (unknown, as for a cluster prepared before any run): loaded.

    A fresh worker process otherwise pays this (about a second) before its first
    task. A LocalCluster started by :func:`dask_resample.cluster.connect` runs it on
    every worker as it starts (:func:`prepare_workers` does the same for a cluster
    started elsewhere); each run also starts it on every worker without waiting,
    where it then returns at once. The process is then marked prepared
    (:func:`~dask_resample.drizzle.worker_memory.mark_prepared`): each exposure's task
    collects Python's young generations after it (closed datamodels hold their arrays in
    reference cycles). Import-time objects are not frozen out of the collector
    (``gc.freeze``): measured in one process on 300 exposures of 128², every task took
    52 ms frozen against 31 ms not (the cause inside Python's collector was not analysed).
    """
    if config.get("fused-kernel"):
        kernel.fused_kernel_available()  # imports numba and the kernels (machine code from numba's cache)
    if config.get("fast-pixmap"):
        if pixmap.compiled_available():
            from ..geometry import pixmap_compiled  # deferred: numba, only where it is installed

            pixmap_compiled.warm_up()  # the compiled pixel map, loaded from numba's cache
    reduce.warm_up()  # the tile reduction's compiled additions, from numba's cache
    tune_allocator(config.get("local.malloc-trim-threshold"))  # a cluster the user started
    if kinds is None or "jwst" in kinds:
        _load_jwst_schemas()
    mark_prepared()  # each exposure's task then collects the young generations (collect_garbage)


def _load_jwst_schemas() -> None:
    """Open and close an empty JWST ``ImageModel``: its schemas are then cached in this process."""
    try:
        from stdatamodels.jwst.datamodels import ImageModel
    except ImportError:  # the jwst extra is absent
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ImageModel().close()


set_worker_setup(prepare_worker)  # what the LocalClusters of cluster.connect run on every worker as they start


def prepare_workers(client: Any) -> None:
    """Load what the tasks use on every worker of ``client`` now (:func:`prepare_worker`), and wait.

    A LocalCluster started by this package does it as it starts. On a cluster
    started elsewhere (a notebook's ``LocalCluster``, a scheduler address), call
    it once after the workers are up: the first mosaic then does not wait about
    a second per worker for it. Workers that join later prepare in their first run.
    """
    client.run(prepare_worker)


def connect_for_run(client: Any, scheduler: str, inputs: Iterable[Any] | None = None) -> tuple[Any, Any]:
    """``(handle, client)`` to run on: ``client`` (or the current one, or a new LocalCluster).

    :func:`prepare_worker` is started on every worker without waiting for it (a LocalCluster
    started here prepares its workers as it starts), for the kinds of ``inputs`` (records
    with a ``kind``: :func:`input_kinds`; ``None``: every kind).

    ``scheduler="serial"`` gives ``(None, None)``: the tasks run in this process.
    The caller closes the handle (it only closes what it started).
    """
    if scheduler != "distributed":
        return None, None
    kinds = input_kinds(inputs)
    handle = connect(client, worker_setup_kwargs={"kinds": kinds})
    if link := handle.dashboard_link:
        log.info("Dask dashboard: %s", link)
    _prepare_workers(handle.client, kinds)
    return handle, handle.client


def input_kinds(inputs: Iterable[Any] | None) -> tuple[str, ...] | None:
    """The sorted kinds (``"jwst"``, ``"fits"``, ...) of input records, ``None`` if not all are known."""
    if inputs is None:
        return None
    kinds = {getattr(r, "kind", None) for r in inputs}
    if None in kinds:
        return None
    return tuple(sorted(str(k) for k in kinds))


def _prepare_workers(client: Any, kinds: tuple[str, ...] | None = None) -> None:
    """Start :func:`prepare_worker` for ``kinds`` on every worker without waiting for it."""
    from distributed import fire_and_forget

    try:
        workers = list(client.scheduler_info().get("workers", {}))
    except Exception:  # pragma: no cover - a scheduler that does not answer now fails later, clearly
        return
    for address in workers:
        fire_and_forget(
            client.submit(
                prepare_worker,
                kinds,
                workers=[address],
                allow_other_workers=True,
                pure=False,
                key=f"prepare-worker-{uuid.uuid4().hex[:12]}",
            )
        )
