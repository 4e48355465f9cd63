"""Pieces shared by the benchmark scripts: step parameters, dataset cache markers,
child processes, the reference runner, per-process memory and task-stream kinds.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

GIB = 1024**3

#: The parameters of jwst's ResampleStep, used by both programs.
PARAMS: dict[str, Any] = {
    "pixfrac": 1.0,
    "kernel": "square",
    "fillval": "NAN",
    "weight_type": "ivm",
    "good_bits": "~DO_NOT_USE+NON_SCIENCE",
    "enable_ctx": True,
    "enable_var": True,
    "report_var": True,
    "compute_err": "from_var",
    "propagate_dq": False,
    "pixmap_stepsize": 1,
    "pixmap_order": 1,
}

#: Task kinds of a dask-resample graph, matched by key-name prefix (longest first).
TASK_KINDS = ("describe_sources", "make_output_grid", "prepare", "drizzle-spec", "scratch", "drizzle", "tile")


# ----------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------
def dataset_cached(directory: Path, spec: dict[str, Any]) -> bool:
    """Whether ``directory`` holds a complete dataset written with ``spec``."""
    marker = directory / "dataset.json"
    return marker.is_file() and json.loads(marker.read_text()) == spec


def mark_dataset(directory: Path, spec: dict[str, Any]) -> None:
    """Record that ``directory`` holds a complete dataset written with ``spec``."""
    (directory / "dataset.json").write_text(json.dumps(spec, indent=2))


def count_inputs(asn: Path) -> int:
    """Number of science members of an association."""
    doc = json.loads(Path(asn).read_text())
    return sum(1 for m in doc["products"][0]["members"] if m.get("exptype", "science") == "science")


# ----------------------------------------------------------------------------
# processes
# ----------------------------------------------------------------------------
def maxrss_bytes() -> int:
    """Peak RSS of this process: ``VmHWM``, else ``getrusage``.

    ``getrusage``'s ``ru_maxrss`` survives ``exec``: a child started by a process that
    held a lot of memory reports its parent's peak. ``VmHWM`` belongs to the process's
    own address space.
    """
    hwm = vmhwm_bytes(os.getpid())
    return hwm if hwm is not None else int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def vmhwm_bytes(pid: int) -> int | None:
    """Peak RSS (``VmHWM``) of process ``pid`` from ``/proc``, or ``None`` if unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss(pid: int) -> bool:
    """Reset the peak RSS (``VmHWM``) of process ``pid`` to its current RSS (Linux ``clear_refs``).

    Lets one process's peak be measured per phase. Returns whether it was reset (the
    kernel allows it for one's own processes).
    """
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def warm_worker() -> int:
    """Import what the tasks use (the reference process imports jwst before its clock starts too)."""
    import jwst.resample.resample  # noqa: F401
    import stdatamodels.jwst.datamodels  # noqa: F401

    import dask_resample.drizzle.kernel  # noqa: F401
    import dask_resample.drizzle.reduce  # noqa: F401
    import dask_resample.execution.graph  # noqa: F401

    return os.getpid()


def warm_outlier_worker() -> int:
    """Import what the outlier-detection tasks use (run on a worker before the clock starts)."""
    import drizzle.resample  # noqa: F401
    import stcal.outlier_detection.median  # noqa: F401
    import stcal.outlier_detection.utils  # noqa: F401

    import dask_resample.outliers.blot  # noqa: F401
    import dask_resample.outliers.flag  # noqa: F401
    import dask_resample.outliers.median  # noqa: F401
    import dask_resample.outliers.threshold  # noqa: F401

    return warm_worker()


def worker_maxrss() -> int:
    """Peak RSS of the calling process (run on a worker)."""
    return maxrss_bytes()


def worker_cpu() -> float:
    """User + system CPU seconds of the calling process (run on a worker)."""
    import resource as _resource

    usage = _resource.getrusage(_resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


def spawn(script: str | Path, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script`` in a child process with ``args`` plus ``--result FILE``; return the JSON it wrote.

    ``env``: variables added to this process's environment for the child only (credentials
    go there rather than on its command line).
    """
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result = Path(fh.name)
    try:
        cmd = [sys.executable, str(Path(script).resolve()), *args, "--result", str(result)]
        # written data (a dataset just made or uploaded, an earlier run's mosaic) reaches the disk
        # now, not while the child's clock runs
        os.sync()
        t0 = time.perf_counter()
        # in the temporary directory: an on-disk ModelLibrary keeps its models in ./tmp_* of the cwd
        proc = subprocess.run(
            cmd, capture_output=True, text=True, cwd=result.parent, env=None if env is None else {**os.environ, **env}
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise RuntimeError(f"child {' '.join(args[:2])} failed with status {proc.returncode}")
        doc = json.loads(result.read_text())
        doc["process_seconds"] = time.perf_counter() - t0
        return doc
    finally:
        result.unlink(missing_ok=True)


# ----------------------------------------------------------------------------
# the reference
# ----------------------------------------------------------------------------
def reference_wcs_pars(pixel_scale_ratio: float = 1.0) -> dict[str, Any]:
    """``wcs_pars`` as the resample step passes them to ResampleImage."""
    return {"crpix": None, "crval": None, "rotation": None, "pixel_scale": None,
            "pixel_scale_ratio": float(pixel_scale_ratio), "output_shape": None}  # fmt: skip


def run_reference_resample(asn: Path, wcs_pars: dict[str, Any] | None = None) -> tuple[Any, float, float]:
    """Run jwst's ResampleImage as the resample step does (imports done before the clock starts).

    Returns
    -------
    model, seconds, cpu_seconds
        The output ImageModel, the wall and CPU seconds of
        ``ModelLibrary(asn, on_disk=True)`` + ``resample_many_to_one()``.
    """
    from jwst.datamodels import ModelLibrary
    from jwst.resample.resample import ResampleImage
    from stdatamodels.jwst.datamodels import ImageModel

    warnings.simplefilter("ignore")
    ImageModel().close()  # the ASDF extensions and schemas loaded before the clock, as on dask-resample's workers
    t0 = time.perf_counter()
    c0 = time.process_time()
    library = ModelLibrary(str(asn), on_disk=True)
    resampler = ResampleImage(library, blendheaders=True, output_wcs=None,
                              wcs_pars=wcs_pars or reference_wcs_pars(), **PARAMS)  # fmt: skip
    model = resampler.resample_many_to_one()
    return model, time.perf_counter() - t0, time.process_time() - c0


# ----------------------------------------------------------------------------
# task stream
# ----------------------------------------------------------------------------
_KEY_NAME = re.compile(r"^[\s(\[\"']*([A-Za-z_][A-Za-z0-9_]*)")


def task_kind(key: Any) -> str:
    """Kind of a task from its key: ``("drizzle-<token>", 3)`` -> ``"drizzle"``.

    Keys may come as tuples or as their string form; the kind is the first of
    :data:`TASK_KINDS` that the key's name starts with, else the name up to its
    first ``-``.
    """
    name = str(key[0]) if isinstance(key, tuple) and key else str(key)
    match = _KEY_NAME.match(name)
    head = match.group(1) if match else name
    for kind in TASK_KINDS:
        if head.startswith(kind):
            return kind
    return head.split("-")[0]


def start_cluster(args: Any) -> Any:
    """A fresh cluster for one benchmark child: dask-resample's LocalCluster, or (``args.cluster ==
    "subprocess"``) scheduler and plain workers in processes of their own.

    ``args`` holds ``cluster``, ``workers``, ``threads`` and ``memory_limit``.
    """
    import os
    from pathlib import Path

    from dask_resample.cluster import ClusterHandle, connect

    if args.cluster == "local":
        return connect(cluster="local", n_workers=args.workers, threads_per_worker=args.threads,
                       memory_limit=args.memory_limit)  # fmt: skip
    from distributed import Client
    from distributed.deploy.subprocess import SubprocessCluster

    # plain workers (no nanny) inherit this environment: leave glibc's adaptive allocation on, as
    # dask-resample's LocalCluster does, and let them unpickle functions of ``_common``
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(v for v in (here, os.environ.get("PYTHONPATH")) if v)
    cluster = SubprocessCluster(n_workers=args.workers, threads_per_worker=args.threads,
                                worker_class="distributed.Worker", dashboard_address=":0",
                                worker_kwargs={"memory_limit": args.memory_limit})  # fmt: skip
    return ClusterHandle(client=Client(cluster), cluster=cluster, owned=True)
