#!/usr/bin/env python
"""Survey-scale benchmark of dask-resample: many inputs, large mosaics, graph and scheduler costs.

Two layouts, each written by :mod:`dask_resample.testing.synthetic_survey` (cached by
parameters under ``--workdir``):

* **survey** -- a ``--grid`` of pointings (default 10 x 10), ``--dithers`` exposures
  each (default 2), one ``--size`` x ``--size`` detector per exposure (default
  1024), neighbouring pointings overlapping by ``--overlap`` of the field, drizzled
  at ``--pixel-scale-ratio`` (default 0.5): an output of about 0.4-0.5 Gpix;
* **small** -- ``--small-count`` exposures (default 2,000) of ``--small-size``
  pixels (default 128) on a 1.6:1 grid of pointings (40 x 25 x 2 dithers for
  2,000), with the step's defaults (pixel scale ratio 1).

For each layout dask-resample runs, in a process of its own, on a fresh cluster
(``--workers`` x ``--threads``, ``--memory-limit``); a thread samples the RSS of
the client, scheduler and worker processes every ``--sample-interval`` seconds,
and ``VmHWM`` (the kernel's peak RSS) is read at the end. The task stream gives
the tasks that ran, compute seconds per task kind and the start of the first
drizzle task. Where the reference's output arrays fit in ``--jwst-max-gib``,
jwst's ``ResampleImage`` runs on the same files in a process of its own
(``ModelLibrary(asn, on_disk=True)``, as ``bench_vs_jwst.py`` runs it) and a
crop of both outputs is compared.

With ``--store s3`` (or ``both``) the survey layout also runs with its mosaic on
an S3 server started for the benchmark (SeaweedFS ``weed mini`` on 127.0.0.1,
``tests/s3_server.py``), alternating with runs on local disk (``--repeats``) on
the same cluster settings: wall time, overhead against local disk, peak RSS,
objects in the mosaic, S3 requests per tile (from the server's counters) and the
object counts projected to a Roman-scale survey. The inputs are uploaded to a
bucket and read from ``s3://`` (``--s3-inputs local``: from local disk).

Usage::

    python benchmarks/bench_scale.py --grid 10x10 --size 1024 --small-count 2000 --json scale.json
    python benchmarks/bench_scale.py --grid 2x2 --size 256 --small-count 40    # a quick check
    python benchmarks/bench_scale.py --layouts survey --store both --no-jwst   # local disk vs S3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import statistics
import sys
import threading
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import (
    GIB,
    PARAMS,
    count_inputs,
    dataset_cached,
    mark_dataset,
    maxrss_bytes,
    reference_wcs_pars,
    run_reference_resample,
    spawn,
    start_cluster,
    task_kind,
    vmhwm_bytes,
    warm_worker,
)

#: Task kinds of the planning phase (not part of the per-tile graph).
PLANNING_KINDS = ("prepare", "make_output_grid", "compute_footprint")
#: Task kinds reported in the per-kind totals, in this order; others follow.
REPORTED_KINDS = ("drizzle", "tile")
FLOAT_PLANES = 6  # data, wht, err, var_rnoise, var_poisson, var_flat (float32)
#: The S3 test server (SeaweedFS ``weed mini``), imported by path.
S3_SERVER_PY = Path(__file__).resolve().parent.parent / "tests" / "s3_server.py"
#: Buckets of the store comparison: the mosaics (and their scratch), and the uploaded inputs.
OUT_BUCKET, IN_BUCKET = "mosaics", "inputs"
#: Order of the S3 request kinds in the tables (SeaweedFS's labels); others follow.
REQUEST_KINDS = ("PUT", "GET", "LIST", "DELETE", "COPY", "POST")
#: The Roman-scale projection of README.md: tiles with data and chunk files per tile (7 arrays
#: + 1-2 context planes).
ROMAN_TILES = 138_000
ROMAN_FILES_PER_TILE = (8, 9)


# ----------------------------------------------------------------------------
# layouts and datasets
# ----------------------------------------------------------------------------
def _grid(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected COLSxROWS such as 10x10, got {text!r}") from None
    if min(cols, rows) < 1:
        raise argparse.ArgumentTypeError(f"expected positive grid sizes, got {text!r}")
    return cols, rows


def layouts(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The layouts to run: name, :class:`SurveyLayout`, pixel scale ratio, label."""
    from dask_resample.testing.synthetic_survey import SurveyLayout

    out = []
    if "survey" in args.layouts:
        cols, rows = args.grid
        layout = SurveyLayout(grid_xy=(cols, rows), dithers=args.dithers, shape=(args.size, args.size),
                              overlap=args.overlap)  # fmt: skip
        out.append(
            {
                "name": f"survey-{cols}x{rows}x{args.dithers}-{args.size}-o{args.overlap:g}",
                "layout": layout,
                "psr": args.pixel_scale_ratio,
                "label": f"survey {cols}x{rows}x{args.dithers} of {args.size}² (psr {args.pixel_scale_ratio:g})",
            }
        )
    if "small" in args.layouts:
        layout = SurveyLayout.for_count(args.small_count, dithers=2, shape=(args.small_size, args.small_size),
                                        overlap=args.overlap)  # fmt: skip
        cols, rows = layout.grid_xy
        out.append(
            {
                "name": f"small-{args.small_count}-{args.small_size}-o{args.overlap:g}",
                "layout": layout,
                "psr": 1.0,
                "label": f"small {args.small_count} of {args.small_size}² ({cols}x{rows}x2, psr 1)",
            }
        )
    return out


def ensure_dataset(directory: Path, layout: Any, processes: int) -> Path:
    """Write the dataset of ``layout`` unless ``directory`` already holds it; return the association."""
    from dask_resample.testing.synthetic_survey import write_survey

    spec = {"kind": "survey", **layout.to_dict()}
    asn = directory / "survey_mosaic_asn.json"
    if dataset_cached(directory, spec) and asn.is_file():
        print(f"reusing {directory}", flush=True)
        return asn
    if directory.exists():
        shutil.rmtree(directory)
    t0 = time.perf_counter()
    asn = write_survey(directory, layout, processes=processes)
    mark_dataset(directory, spec)
    n = count_inputs(asn)
    print(
        f"wrote {n} exposures of {layout.shape[1]}x{layout.shape[0]} to {directory} "
        f"({time.perf_counter() - t0:.0f} s with {processes} processes)",
        flush=True,
    )
    return asn


def reference_output_bytes(shape_yx: tuple[int, int], n_inputs: int) -> int:
    """Bytes of the reference's output arrays: six float32 planes and ceil(N/32) int32 context planes."""
    ny, nx = shape_yx
    return ny * nx * 4 * (FLOAT_PLANES + math.ceil(n_inputs / 32))


def crop_box(shape_yx: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """A centred ``size`` x ``size`` box (y0, y1, x0, x1), clipped to the output."""
    ny, nx = shape_yx
    hy, hx = min(size, ny), min(size, nx)
    y0, x0 = (ny - hy) // 2, (nx - hx) // 2
    return y0, y0 + hy, x0, x0 + hx


# ----------------------------------------------------------------------------
# memory sampling
# ----------------------------------------------------------------------------
class RssSampler:
    """Sample the RSS of some processes from a thread: peak and latest value of each.

    Parameters
    ----------
    pids : dict
        ``name -> pid``; several names may share a pid.
    interval : float
        Seconds between samples.
    """

    def __init__(self, pids: dict[str, int], interval: float = 0.2) -> None:
        import psutil

        self.pids = dict(pids)
        self.interval = float(interval)
        self._procs = {pid: psutil.Process(pid) for pid in set(self.pids.values())}
        self.peak: dict[int, int] = defaultdict(int)
        self.latest: dict[int, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def sample(self) -> dict[int, int]:
        """Take one sample now; returns ``pid -> rss``."""
        now = {}
        for pid, proc in self._procs.items():
            try:
                now[pid] = int(proc.memory_info().rss)
            except Exception:  # the process may have ended
                continue
            self.peak[pid] = max(self.peak[pid], now[pid])
        self.latest.update(now)
        self.samples += 1
        return now

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# ----------------------------------------------------------------------------
# task stream
# ----------------------------------------------------------------------------
def stream_summary(stream: list[dict[str, Any]], epoch0: float) -> dict[str, Any]:
    """Tasks, compute seconds per kind and the first drizzle start (seconds after ``epoch0``)."""
    seconds: dict[str, float] = defaultdict(float)
    keys: dict[str, set] = defaultdict(set)
    first_drizzle = math.inf
    for rec in stream:
        kind = task_kind(rec.get("key"))
        keys[kind].add(str(rec.get("key")))
        for ss in rec.get("startstops", []):
            if ss.get("action") == "compute":
                seconds[kind] += ss["stop"] - ss["start"]
                if kind == "drizzle":
                    first_drizzle = min(first_drizzle, ss["start"])
    counts = {k: len(v) for k, v in keys.items()}
    return {
        **flatness(stream),
        "tasks_by_kind": counts,
        "seconds_by_kind": dict(seconds),
        "tasks": sum(counts.values()),
        "graph_tasks": sum(n for k, n in counts.items() if k not in PLANNING_KINDS),
        "to_first_drizzle": first_drizzle - epoch0 if math.isfinite(first_drizzle) else None,
    }


def flatness(stream: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds per input in the first and the last tenth of the drizzle tasks (by start time).

    ``drizzle_s_first_tenth`` / ``..._last_tenth``: the tasks' mean compute time;
    ``wall_per_input_first_tenth`` / ``..._last_tenth``: the wall time from the first to the
    last start within the tenth, per task (what a growing per-task overhead anywhere, on the
    workers or the scheduler, shows as).
    """
    runs = sorted(
        (ss["start"], ss["stop"] - ss["start"])
        for rec in stream
        if task_kind(rec.get("key")) == "drizzle"
        for ss in rec.get("startstops", [])
        if ss.get("action") == "compute"
    )
    n = len(runs) // 10
    if n < 2:
        return {}

    def stats(part: list[tuple[float, float]]) -> tuple[float, float]:
        return sum(d for _, d in part) / len(part), (part[-1][0] - part[0][0]) / (len(part) - 1)

    first, last = stats(runs[:n]), stats(runs[-n:])
    return {
        "drizzle_s_first_tenth": first[0],
        "drizzle_s_last_tenth": last[0],
        "wall_per_input_first_tenth": first[1],
        "wall_per_input_last_tenth": last[1],
    }


# ----------------------------------------------------------------------------
# child processes
# ----------------------------------------------------------------------------
def s3_server_module() -> Any:
    """``tests/s3_server.py``, imported by path (the benchmarks do not import the test package)."""
    name = "_bench_s3_server"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, S3_SERVER_PY)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def warm_storage() -> int:
    """Import the storage libraries (client and workers, before the clock, whatever the store)."""
    import fsspec  # noqa: F401
    import zarr  # noqa: F401

    try:
        import s3fs  # noqa: F401
    except ImportError:
        pass
    return os.getpid()


def server_traffic(metrics_url: str | None, bucket: str) -> dict[str, Any]:
    """Bytes received and sent for ``bucket`` and the server's seconds per request kind, from the
    S3 server's Prometheus counters (``SeaweedFS_s3_bucket_traffic_*_bytes_total``,
    ``SeaweedFS_s3_request_seconds_sum``); empty if there is no metrics endpoint."""
    import re
    import urllib.request

    if not metrics_url:
        return {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    with opener.open(metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, Any] = {"received_bytes": 0.0, "sent_bytes": 0.0, "request_seconds": {}}
    for name, labels, value in re.findall(r"^(SeaweedFS_s3_\w+)\{([^}]*)\} (\S+)$", text, re.MULTILINE):
        lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if lab.get("bucket") != bucket:
            continue
        if name == "SeaweedFS_s3_bucket_traffic_received_bytes_total":
            out["received_bytes"] += float(value)
        elif name == "SeaweedFS_s3_bucket_traffic_sent_bytes_total":
            out["sent_bytes"] += float(value)
        elif name == "SeaweedFS_s3_request_seconds_sum":
            out["request_seconds"][lab["type"]] = out["request_seconds"].get(lab["type"], 0.0) + float(value)
    return out


def _traffic_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    if not after:
        return {}
    secs0 = before.get("request_seconds", {})
    return {"received_bytes": after["received_bytes"] - before.get("received_bytes", 0.0),
            "sent_bytes": after["sent_bytes"] - before.get("sent_bytes", 0.0),
            "request_seconds": {k: v - secs0.get(k, 0.0) for k, v in after["request_seconds"].items()
                                if v - secs0.get(k, 0.0) > 0}}  # fmt: skip


def _process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (``None`` if unreadable)."""
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
    except (psutil.Error, OSError):
        return None
    return float(t.user + t.system)


def child_dask(args: argparse.Namespace) -> None:
    """Run dask-resample once; write timings, peak RSS per process, the task-stream summary and the crop.

    With ``DASK_RESAMPLE_TEST_S3_*`` in the environment (``--zarr-out`` or ``--asn`` at ``s3://``),
    the S3 server's request counts of ``--count-buckets`` are read just before and after the
    call, and its process's CPU seconds and RSS are measured with the others.
    """
    warnings.simplefilter("ignore")
    import dask.config
    import numpy as np
    from distributed import get_task_stream

    import dask_resample

    server = s3_server_module().S3Server.from_env()
    storage_options = server.storage_options if server is not None else None
    buckets = [b for b in (args.count_buckets or "").split(",") if b]
    # keep every task of the run in the scheduler's task-stream buffer
    dask.config.set({"distributed.scheduler.dashboard.tasks.task-stream-length": 10_000_000})
    os.environ["DASK_DISTRIBUTED__SCHEDULER__DASHBOARD__TASKS__TASK_STREAM_LENGTH"] = "10000000"
    if args.scratch_dir:  # read on the client, where the graph is built
        dask.config.set({"resample.scratch-dir": args.scratch_dir})
    warm_storage()
    handle = start_cluster(args)
    client = handle.client
    try:
        client.wait_for_workers(args.workers)
        client.run(warm_worker)
        client.run(warm_storage)
        names = {addr: info.get("name") for addr, info in client.scheduler_info()["workers"].items()}
        worker_pids = client.run(os.getpid)
        pids = {"client": os.getpid(), "scheduler": int(client.run_on_scheduler(os.getpid))}
        ranked = sorted(worker_pids, key=lambda a: (str(names.get(a)), a))
        for rank, addr in enumerate(ranked):
            pids[f"worker-{rank}"] = int(worker_pids[addr])
        if server is not None and server.pid:
            pids["s3-server"] = int(server.pid)
        requests0 = {b: server.request_counts(b) for b in buckets} if server is not None else {}
        traffic0 = {b: server_traffic(server.metrics_url, b) for b in buckets} if server is not None else {}
        cpu0 = {name: _process_cpu(pid) for name, pid in pids.items()}
        with RssSampler(pids, args.sample_interval) as sampler:
            scheduler_rss0 = sampler.latest[pids["scheduler"]]
            epoch0 = time.time()
            t0 = time.perf_counter()
            with get_task_stream(client) as ts:
                dask_resample.resample(
                    args.asn, args.zarr_out, client=client, wcs_pars=reference_wcs_pars(args.psr),
                    tile_shape=(args.tile, args.tile), overwrite=True, progress=False,
                    storage_options=storage_options, **PARAMS,
                )  # fmt: skip
            seconds = time.perf_counter() - t0
        cpu1 = {name: _process_cpu(pid) for name, pid in pids.items()}
        requests1 = {b: server.request_counts(b) for b in buckets} if server is not None else {}
        traffic1 = {b: server_traffic(server.metrics_url, b) for b in buckets} if server is not None else {}
        stream = ts.data
        hwm = {name: vmhwm_bytes(pid) for name, pid in pids.items()}
    finally:
        handle.close()
    rss = {name: max(hwm[name] or 0, sampler.peak[pid]) for name, pid in pids.items()}
    cpu = {name: cpu1[name] - cpu0[name] for name in pids if cpu0[name] is not None and cpu1[name] is not None}
    requests = {b: {kind: n - requests0[b].get(kind, 0) for kind, n in requests1[b].items()
                    if n - requests0[b].get(kind, 0)} for b in buckets}  # fmt: skip
    ds = dask_resample.open_mosaic(args.zarr_out, storage_options=storage_options)
    shape = tuple(int(v) for v in ds["data"].shape)
    from dask_resample.store import as_location, read_metadata

    grid = read_metadata(as_location(args.zarr_out, storage_options)).get("grid", {})
    doc: dict[str, Any] = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "requests": requests,
        "traffic": {b: _traffic_delta(traffic0[b], traffic1[b]) for b in buckets},
        "shard_tiles": grid.get("shard_tiles"),
        "shape_yx": list(shape),
        "n_ctx_planes": int(ds["con"].shape[0]) if "con" in ds else None,
        "pids": pids,
        "scheduler_in_client": pids["scheduler"] == pids["client"],
        "rss_peak": rss,
        "rss_sampled_peak": {name: sampler.peak[pid] for name, pid in pids.items()},
        "rss_samples": sampler.samples,
        "scheduler_rss_before": scheduler_rss0,
        "scheduler_rss_growth": sampler.peak[pids["scheduler"]] - scheduler_rss0,
        **stream_summary(stream, epoch0),
    }
    if args.crop_out:
        y0, y1, x0, x1 = crop_box(shape, args.crop)
        np.savez(args.crop_out, box=np.array([y0, y1, x0, x1]),
                 data=np.asarray(ds["data"].data[y0:y1, x0:x1]),
                 con=np.asarray(ds["con"].data[:, y0:y1, x0:x1]))  # fmt: skip
    Path(args.result).write_text(json.dumps(doc))


def child_reference(args: argparse.Namespace) -> None:
    """Run jwst's ResampleImage once; write timings, peak RSS and the crop of ``data`` and ``con``."""
    import numpy as np

    model, seconds, cpu = run_reference_resample(Path(args.asn), reference_wcs_pars(args.psr))
    shape = tuple(int(v) for v in model.data.shape)
    y0, y1, x0, x1 = crop_box(shape, args.crop)
    np.savez(args.crop_out, box=np.array([y0, y1, x0, x1]), data=np.asarray(model.data[y0:y1, x0:x1]),
             con=np.asarray(model.con[:, y0:y1, x0:x1]))  # fmt: skip
    Path(args.result).write_text(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "shape_yx": list(shape),
                "rss_peak": {"jwst": maxrss_bytes()},
            }
        )
    )


# ----------------------------------------------------------------------------
# orchestration
# ----------------------------------------------------------------------------
def _child_args(
    args: argparse.Namespace, kind: str, asn: Path | str, psr: float, result_files: dict[str, Path | str]
) -> list[str]:
    out = ["--child", kind, "--asn", str(asn), "--psr", repr(psr), "--crop", str(args.crop)]
    for flag, path in result_files.items():
        out += [flag, str(path)]
    if kind == "dask":
        out += ["--workers", str(args.workers), "--threads", str(args.threads), "--tile", str(args.tile),
                "--memory-limit", str(args.memory_limit), "--cluster", args.cluster,
                "--sample-interval", str(args.sample_interval)]  # fmt: skip
    return out


def parity(ref_npz: Path, ours_npz: Path) -> dict[str, Any]:
    """Compare the crops: max |data diff| / max |data_jwst|, NaN pattern and context equality."""
    import numpy as np

    ref, ours = np.load(ref_npz), np.load(ours_npz)
    if not np.array_equal(ref["box"], ours["box"]) or ref["data"].shape != ours["data"].shape:
        return {"box": ref["box"].tolist(), "comparable": False}
    a, b = ref["data"].astype(np.float64), ours["data"].astype(np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    scale = float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 1.0
    diff = float(np.max(np.abs(a[both] - b[both]))) / (scale or 1.0) if both.any() else 0.0
    ca, cb = ref["con"], ours["con"]
    n = max(ca.shape[0], cb.shape[0])
    pad = lambda c: np.concatenate([c, np.zeros((n - c.shape[0], *c.shape[1:]), c.dtype)]) if c.shape[0] < n else c  # noqa: E731
    return {
        "box": ref["box"].tolist(),
        "comparable": True,
        "max_rel_diff": diff,
        "nan_pattern_equal": bool(np.array_equal(np.isnan(a), np.isnan(b))),
        "con_equal": bool(np.array_equal(pad(ca), pad(cb))),
        "con_planes": [int(ca.shape[0]), int(cb.shape[0])],
    }


def crops_equal(a_npz: Path, b_npz: Path) -> bool:
    """Whether two crops of ``data`` and ``con`` are identical (NaN equal to NaN)."""
    import numpy as np

    a, b = np.load(a_npz), np.load(b_npz)
    return (np.array_equal(a["box"], b["box"]) and np.array_equal(a["data"], b["data"], equal_nan=True)
            and np.array_equal(a["con"], b["con"]))  # fmt: skip


def classify_objects(names: list[str]) -> dict[str, int]:
    """Objects (or files) of a mosaic by kind, from their paths relative to the mosaic.

    ``chunks``: array chunks or shards (``<array>/c/...``); ``markers``: the per-tile or
    per-shard completion records (``_progress/*`` but its ``zarr.json``); ``metadata``: the rest.
    """
    out = {"objects": len(names), "chunks": 0, "markers": 0, "metadata": 0}
    for name in names:
        parts = name.strip("/").split("/")
        if "c" in parts[:-1]:
            out["chunks"] += 1
        elif parts[0] == "_progress" and parts[-1] != "zarr.json":
            out["markers"] += 1
        else:
            out["metadata"] += 1
    return out


def local_objects(path: Path) -> tuple[dict[str, int], int]:
    """Files of a local mosaic by kind, and their bytes."""
    names, size = [], 0
    for root, _, files in os.walk(path):
        for f in files:
            full = Path(root, f)
            names.append(str(full.relative_to(path)))
            size += full.stat().st_size
    return classify_objects(names), size


def s3_objects(fs: Any, url: str) -> tuple[dict[str, int], int]:
    """Objects under ``url`` by kind, and their bytes."""
    fs.invalidate_cache()
    prefix = url.split("://", 1)[-1].rstrip("/") + "/"
    try:
        found = fs.find(prefix, detail=True)
    except FileNotFoundError:
        found = {}
    return classify_objects([k[len(prefix) :] for k in found]), sum(int(v.get("size", 0)) for v in found.values())


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One record for repeated runs: the median run's fields, with the median wall time, the median
    of the request counts and CPU seconds, and the largest peak RSS of each process."""
    order = sorted(range(len(runs)), key=lambda i: runs[i]["seconds"])
    out = dict(runs[order[(len(runs) - 1) // 2]])
    out["seconds"] = statistics.median(r["seconds"] for r in runs)
    out["seconds_runs"] = [r["seconds"] for r in runs]
    out["rss_peak"] = {k: max(r["rss_peak"].get(k, 0) for r in runs) for k in runs[0]["rss_peak"]}
    out["cpu_seconds"] = {k: statistics.median(r["cpu_seconds"].get(k, 0.0) for r in runs)
                          for k in runs[0].get("cpu_seconds", {})}  # fmt: skip
    out["requests"] = {b: {kind: statistics.median(r["requests"].get(b, {}).get(kind, 0) for r in runs)
                           for kind in set().union(*(r["requests"].get(b, {}) for r in runs))}
                       for b in runs[0].get("requests", {})}  # fmt: skip
    out["repeats"] = len(runs)
    return out


class S3Side:
    """The S3 half of a store comparison: a private SeaweedFS, its buckets and the uploaded inputs."""

    def __init__(self, base_dir: Path) -> None:
        import s3fs

        self.server = s3_server_module().S3Server(base_dir=str(base_dir))
        try:
            self.server.new_bucket(OUT_BUCKET)
            self.server.new_bucket(IN_BUCKET)
            self.fs = s3fs.S3FileSystem(**self.server.storage_options)
        except BaseException:
            self.server.stop()
            raise
        print(
            f"S3 server {self.server.endpoint_url} (SeaweedFS weed mini, pid {self.server.pid}, "
            f"started in {self.server.startup_seconds:.1f} s)",
            flush=True,
        )

    def upload(self, asn: Path, name: str) -> tuple[str, dict[str, Any]]:
        """Copy the association and its members to ``s3://inputs/<name>/``; its URL and what it took."""
        doc = json.loads(asn.read_text())
        files = [asn.parent / m["expname"] for m in doc["products"][0]["members"]]
        size = sum(f.stat().st_size for f in files) + asn.stat().st_size
        t0 = time.perf_counter()
        self.fs.put([str(f) for f in [*files, asn]], f"{IN_BUCKET}/{name}/")
        seconds = time.perf_counter() - t0
        print(
            f"uploaded {len(files)} inputs and the association ({size / 2**30:.2f} GiB) to "
            f"s3://{IN_BUCKET}/{name}/ in {seconds:.1f} s",
            flush=True,
        )
        return f"s3://{IN_BUCKET}/{name}/{asn.name}", {"files": len(files) + 1, "bytes": size, "seconds": seconds}

    def stop(self) -> None:
        self.server.stop()


def run_once(
    args: argparse.Namespace,
    spec: dict[str, Any],
    store: str,
    rep: int,
    asn: Path,
    s3_asn: str | None,
    s3: S3Side | None,
    runs: Path,
) -> dict[str, Any]:
    """One dask-resample run of a layout with its mosaic on ``store``; the child's record plus objects counted."""
    crop = runs / f"{spec['name']}-{store}-{rep}.npz"
    if store == "local":
        out_url: str = str(runs / f"{spec['name']}-{rep}.zarr")
        asn_arg: str = str(asn)
        env, extra = None, []
    else:
        out_url = f"s3://{OUT_BUCKET}/{spec['name']}-{rep}.zarr"
        asn_arg = s3_asn or str(asn)
        env, extra = s3.server.env(), ["--count-buckets", f"{OUT_BUCKET},{IN_BUCKET}"]
        if args.s3_scratch == "local":
            extra += ["--scratch-dir", str(runs / "scratch")]
        elif args.s3_scratch == "store":
            extra += ["--scratch-dir", f"s3://{OUT_BUCKET}/.scratch"]
    where = "local disk" if store == "local" else f"S3, inputs {'on S3' if s3_asn else 'on local disk'}"
    if store == "s3" and args.s3_scratch != "default":
        where += f", scratch on {'local disk' if args.s3_scratch == 'local' else 'S3'}"
    print(f"[{spec['label']}] dask-resample ({args.workers} workers x {args.threads} thread, {args.cluster} cluster, "
          f"mosaic on {where}{f', repeat {rep + 1}/{args.repeats}' if args.repeats > 1 else ''}) ...",
          end=" ", flush=True)  # fmt: skip
    rec = spawn(__file__, _child_args(args, "dask", asn_arg, spec["psr"], {"--zarr-out": out_url, "--crop-out": crop})
                + extra, env=env)  # fmt: skip
    print(f"{rec['seconds']:.1f} s", flush=True)
    rec["store"], rec["crop_file"] = store, str(crop)
    if store == "local":
        rec["objects"], rec["bytes"] = local_objects(Path(out_url))
        shutil.rmtree(out_url, ignore_errors=True)
    else:
        rec["objects"], rec["bytes"] = s3_objects(s3.fs, out_url)
        bucket_all, _ = s3_objects(s3.fs, f"s3://{OUT_BUCKET}")
        rec["objects_left_beside"] = bucket_all["objects"] - rec["objects"]["objects"]  # scratch not removed
        s3.fs.rm(f"{OUT_BUCKET}/{spec['name']}-{rep}.zarr", recursive=True)
        rec["inputs_on"] = "s3" if s3_asn else "local"
        rec["scratch_on"] = args.s3_scratch
    return rec


def run_layout(
    spec: dict[str, Any], args: argparse.Namespace, workdir: Path, stores: tuple[str, ...] = ("local",)
) -> dict[str, Any]:
    """Write (or reuse) the dataset, run dask-resample on each store (``--repeats`` times, alternating),
    then jwst if its output fits; remove the outputs."""
    directory = workdir / spec["name"]
    asn = ensure_dataset(directory, spec["layout"], args.write_processes)
    n = count_inputs(asn)
    runs = workdir / f"runs-{os.getpid()}"
    runs.mkdir(parents=True, exist_ok=True)
    files = {"ref": runs / f"{spec['name']}-jwst.npz"}
    out: dict[str, Any] = {"layout": spec["label"], "name": spec["name"], "n_inputs": n, "psr": spec["psr"]}
    s3 = None
    try:
        s3_asn = None
        if "s3" in stores:
            s3 = S3Side(runs)
            if args.s3_inputs == "s3":
                s3_asn, out["upload"] = s3.upload(asn, spec["name"])
        by_store: dict[str, list[dict[str, Any]]] = {st: [] for st in stores}
        for rep in range(args.repeats):
            # alternate, and start every other repeat with the other store (local, S3, S3, local, ...)
            for store in stores if rep % 2 == 0 else stores[::-1]:
                by_store[store].append(run_once(args, spec, store, rep, asn, s3_asn, s3, runs))
        ours = out["dask"] = median_run(by_store["local"])
        files["ours"] = Path(by_store["local"][0]["crop_file"])
        if s3 is not None:
            out["dask_s3"] = median_run(by_store["s3"])
            out["store_runs"] = by_store
            first = files["ours"]
            out["stores_identical"] = all(crops_equal(first, Path(r["crop_file"])) for st in stores
                                          for r in by_store[st])  # fmt: skip
            out["s3_server"] = {"endpoint": s3.server.endpoint_url, "startup_seconds": s3.server.startup_seconds}
        need = reference_output_bytes(tuple(ours["shape_yx"]), n)
        out["reference_output_bytes"] = need
        if not args.jwst:
            out["jwst"] = {"skipped": "not run (--no-jwst)"}
        elif need > args.jwst_max_gib * GIB:
            out["jwst"] = {"skipped": f"skipped (needs {need / GIB:.3g} GiB)"}
        else:
            print(f"[{spec['label']}] jwst ResampleImage ...", end=" ", flush=True)
            ref = spawn(__file__, _child_args(args, "reference", asn, spec["psr"], {"--crop-out": files["ref"]}))
            print(f"{ref['seconds']:.1f} s", flush=True)
            out["jwst"] = ref
            out["parity"] = parity(files["ref"], files["ours"])
            out["parity"]["shape_equal"] = ref["shape_yx"] == ours["shape_yx"]
    finally:
        if s3 is not None:
            s3.stop()
        shutil.rmtree(runs, ignore_errors=True)
        if not args.keep_data:
            shutil.rmtree(directory, ignore_errors=True)
    return out


def _mib(value: int | None) -> str:
    return "-" if not value else f"{value / 2**20:,.0f} MiB"


def _tenths(run: dict[str, Any], name: str) -> str:
    """``first / last (last/first - 1)`` of a :func:`flatness` pair."""
    a, b = run.get(f"{name}_first_tenth"), run.get(f"{name}_last_tenth")
    if a is None or b is None:
        return "-"
    return f"{a:.3f} / {b:.3f} ({100 * (b / a - 1):+.0f}%)" if a else f"{a:.3f} / {b:.3f}"


def main_table(results: list[dict[str, Any]], n_workers: int) -> str:
    """One Markdown table: a row per layout and program."""
    workers = [f"worker-{k}" for k in range(n_workers)]
    for res in results:
        workers += [k for k in res["dask"]["rss_peak"] if k.startswith("worker-") and k not in workers]
    head = ["layout", "program", "inputs", "output (ny x nx)", "Gpix", "reference output arrays", "wall [s]",
            "s/input", "speedup", "peak RSS client", "peak RSS scheduler", *[f"peak RSS {w}" for w in workers],
            "tasks", "tasks/input", "to first drizzle [s]", "client s/input", "scheduler KiB/task",
            "whole process [s]", "speedup, process to process",
            "drizzle task s, first / last tenth", "wall s/input, first / last tenth"]  # fmt: skip
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        ref, n = res["jwst"], res["n_inputs"]
        ny, nx = res["dask"]["shape_yx"]
        common = [res["layout"], "", f"{n:,}", f"{ny:,} x {nx:,}", f"{ny * nx / 1e9:.3f}",
                  f"{res['reference_output_bytes'] / GIB:.2f} GiB"]  # fmt: skip
        for key in ("dask", "dask_s3"):
            if key not in res:
                continue
            ours = res[key]
            rss = ours["rss_peak"]
            same = ours["scheduler_in_client"]
            first = ours.get("to_first_drizzle")
            per_task = ours["scheduler_rss_growth"] / max(ours["tasks"], 1) / 1024
            speed = f"{ref['seconds'] / ours['seconds']:.2f}x" if "seconds" in ref else "-"
            common[1] = f"dask-resample ({res.get('cluster', 'local')})"
            if "dask_s3" in res:
                common[1] += ", mosaic on S3" if key == "dask_s3" else ", mosaic on local disk"
            rows.append("| " + " | ".join([
                *common, f"{ours['seconds']:.1f}", f"{ours['seconds'] / n:.3f}", speed,
                _mib(rss["client"]), "(in client)" if same else _mib(rss["scheduler"]),
                *[_mib(rss.get(w)) for w in workers],
                f"{ours['tasks']:,}", f"{ours['tasks'] / n:.1f}", "-" if first is None else f"{first:.1f}",
                "-" if first is None else f"{first / n:.4f}",
                f"{per_task:.1f}" + (" (client+scheduler)" if same else ""),
                f"{ours['process_seconds']:.1f}" if "process_seconds" in ours else "-",
                f"{ref['process_seconds'] / ours['process_seconds']:.2f}x"
                if "process_seconds" in ref and "process_seconds" in ours else "-",
                _tenths(ours, "drizzle_s"), _tenths(ours, "wall_per_input"),
            ]) + " |")  # fmt: skip
        common[1] = "jwst ResampleImage (1 process)"
        if "seconds" in ref:
            jwst_cells = [f"{ref['seconds']:.1f}", f"{ref['seconds'] / n:.3f}", "1.00x", _mib(ref["rss_peak"]["jwst"])]
        else:
            jwst_cells = [ref["skipped"], "-", "-", "-"]
        process = [f"{ref['process_seconds']:.1f}" if "process_seconds" in ref else "-", "1.00x", "-", "-"]
        rows.append(
            "| "
            + " | ".join([*common, *jwst_cells, "-", *["-" for _ in workers], "-", "-", "-", "-", "-", *process])
            + " |"
        )
    return "\n".join(rows)


def kinds_table(results: list[dict[str, Any]]) -> str:
    """Compute seconds and task counts per task kind of every dask-resample run."""
    rows = ["| layout | task kind | tasks | compute [s] | share of task time | s/input |", "|---|---|---|---|---|---|"]
    for res in results:
        for key in ("dask", "dask_s3"):
            if key not in res:
                continue
            label = res["layout"] + ({"dask": " [local disk]", "dask_s3": " [S3]"}[key] if "dask_s3" in res else "")
            secs, counts, n = res[key]["seconds_by_kind"], res[key]["tasks_by_kind"], res["n_inputs"]
            total = sum(secs.values()) or 1.0
            kinds = [k for k in REPORTED_KINDS if k in counts] + sorted(k for k in counts if k not in REPORTED_KINDS)
            for kind in kinds:
                s = secs.get(kind, 0.0)
                rows.append(f"| {label} | {kind} | {counts[kind]:,} | {s:.1f} | {100 * s / total:.1f}% | {s / n:.4f} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------
# the store comparison
# ----------------------------------------------------------------------------
def tiles_with_data(run: dict[str, Any]) -> int:
    """Tiles that received data: one ``tile`` task each on an unsharded store (a tile no input
    reaches has none), else the tiles of the shard tasks' records."""
    return int(run["tasks_by_kind"].get("tile", 0)) or int(run.get("tiles_written", 0))


def _requests_cell(counts: dict[str, float], per: float) -> str:
    kinds = [k for k in REQUEST_KINDS if counts.get(k)]
    kinds += sorted(k for k in counts if k not in REQUEST_KINDS and counts[k])
    return ", ".join(f"{k} {counts[k] / per:.2f}" for k in kinds) or "-"


def storage_table(res: dict[str, Any], n_workers: int) -> str:
    """Local disk against S3 for one layout: a Markdown table."""
    local, s3 = res["dask"], res["dask_s3"]
    workers = [f"worker-{k}" for k in range(n_workers)]
    workers += [k for k in local["rss_peak"] if k.startswith("worker-") and k not in workers]
    head = ["store", "inputs read from", "wall [s]", "overhead vs local", "peak RSS client [MiB]",
            "peak RSS scheduler [MiB]", *[f"peak RSS {w} [MiB]" for w in workers],
            "objects in the mosaic (chunks + markers + metadata)", "total PUTs", "requests per tile with data",
            "mosaic objects / local files"]  # fmt: skip
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    n_local = local["objects"]["objects"]
    for run, store in ((local, "local disk"), (s3, "S3 (SeaweedFS, loopback)")):
        o, rss = run["objects"], run["rss_peak"]
        tiles = tiles_with_data(local) or 1  # the same layout on both stores
        out_req = run.get("requests", {}).get(OUT_BUCKET, {})
        wall = f"{run['seconds']:.1f}"
        if len(run["seconds_runs"]) > 1:
            wall += " (" + ", ".join(f"{v:.1f}" for v in run["seconds_runs"]) + ")"
        overhead = "-" if run is local else f"{100 * (run['seconds'] / local['seconds'] - 1):+.1f}%"

        def mib(v):
            return f"{v / 2**20:,.0f}" if v else "-"

        rows.append("| " + " | ".join([
            store + ({"local": ", scratch on local disk", "store": ", scratch on S3"}.get(run.get("scratch_on"), "")
                     if run is s3 else ""),
            "local disk" if run is local or run.get("inputs_on") == "local" else "S3 (s3:// association)",
            wall, overhead, mib(rss["client"]), "(in client)" if run["scheduler_in_client"] else mib(rss["scheduler"]),
            *[mib(rss.get(w)) for w in workers],
            f"{o['objects']:,} ({o['chunks']:,} + {o['markers']:,} + {o['metadata']:,})",
            "-" if run is local else f"{out_req.get('PUT', 0):,.0f}",
            "-" if run is local else _requests_cell(out_req, tiles),
            f"{o['objects'] / n_local:.3f} (1/{n_local / max(o['objects'], 1):.1f})" if run is s3 else "1",
        ]) + " |")  # fmt: skip
    return "\n".join(rows)


def storage_kinds_table(res: dict[str, Any]) -> str:
    """Compute seconds per task kind, local disk against S3 (the task stream's per-task timer)."""
    local, s3 = res["dask"], res["dask_s3"]
    rows = [
        "| task kind | tasks (local / S3) | local disk [s] | S3 [s] | S3 - local [s] | per task, local / S3 [s] |",
        "|---|---|---|---|---|---|",
    ]
    seen = set(local["tasks_by_kind"]) | set(s3["tasks_by_kind"])
    kinds = list(dict.fromkeys([*REPORTED_KINDS, "shard", *sorted(seen)]))
    for kind in kinds:
        nl, ns = local["tasks_by_kind"].get(kind, 0), s3["tasks_by_kind"].get(kind, 0)
        if not nl and not ns:
            continue
        sl, ss = local["seconds_by_kind"].get(kind, 0.0), s3["seconds_by_kind"].get(kind, 0.0)

        def per(s_, n_):
            return f"{s_ / n_:.3f}" if n_ else "-"

        rows.append(
            f"| {kind} | {nl:,} / {ns:,} | {sl:.1f} | {ss:.1f} | {ss - sl:+.1f} | {per(sl, nl)} / {per(ss, ns)} |"
        )
    tl, ts = sum(local["seconds_by_kind"].values()), sum(s3["seconds_by_kind"].values())
    rows.append(f"| all | {local['tasks']:,} / {s3['tasks']:,} | {tl:.1f} | {ts:.1f} | {ts - tl:+.1f} | |")
    return "\n".join(rows)


def projection_lines(res: dict[str, Any]) -> list[str]:
    """Object counts of a Roman-scale mosaic from the measured objects per tile with data."""
    local, s3 = res["dask"], res["dask_s3"]
    tiles = tiles_with_data(local) or 1
    lo, so = local["objects"], s3["objects"]
    per_l = (lo["chunks"] + lo["markers"]) / tiles
    per_s = (so["chunks"] + so["markers"]) / tiles
    sy, sx = s3.get("shard_tiles") or (4, 4)
    ty, tx = (math.ceil(v / res["tile"]) for v in local["shape_yx"])
    ny, nx = math.ceil(ty / sy), math.ceil(tx / sx)
    edge = ny * nx - (ty // sy) * (tx // sx)  # shards partly outside the mosaic
    # context planes written per tile and per shard: chunks beyond the float arrays (one each per tile or shard)
    ctx_tile = lo["chunks"] / tiles - FLOAT_PLANES
    ctx_shard = so["chunks"] / max(so["markers"], 1) - FLOAT_PLANES
    lo_est, hi_est = (ROMAN_TILES * k for k in ROMAN_FILES_PER_TILE)
    return [
        (
            f"Objects per tile with data ({tiles:,} tiles with data; chunks or shards + completion markers; "
            f"the fixed metadata objects, {lo['metadata']} on disk and {so['metadata']} on S3, left out):"
        ),
        (
            f"- local disk, one file per tile, array and context plane: {per_l:.2f} "
            f"({lo['chunks'] / tiles:.2f} chunk files + {lo['markers'] / tiles:.2f} markers)"
        ),
        (
            f"- S3, {sy} x {sx}-tile shards: {per_s:.3f} ({so['chunks'] / tiles:.3f} shard objects + "
            f"{so['markers'] / tiles:.3f} markers), 1/{per_l / per_s:.1f} of local disk"
        ),
        (
            f"- the mosaic is {ty} x {tx} tiles = {ny} x {nx} shards, {edge} of them partly outside it; a tile writes "
            f"{ctx_tile:.2f} context planes on average, a shard {ctx_shard:.2f}"
            + (" (its tiles span more inputs)" if ctx_shard > ctx_tile + 0.005 else "")
            + f", besides the {FLOAT_PLANES} float arrays"
        ),
        (
            f"Projection to {ROMAN_TILES:,} tiles (benchmarks/README.md: {ROMAN_TILES:,} tiles x "
            f"(7 arrays + 1-2 context planes) = {lo_est / 1e6:.1f}-{hi_est / 1e6:.1f} million chunk files; "
            f"1/16 of that with 4 x 4-tile shards = {lo_est / 16:,.0f}-{hi_est / 16:,.0f}):"
        ),
        (
            f"- without shards (measured {per_l:.2f} per tile): {ROMAN_TILES * per_l:,.0f} objects "
            f"({ROMAN_TILES * lo['chunks'] / tiles:,.0f} of them chunks)"
        ),
        (
            f"- with {sy} x {sx}-tile shards (measured {per_s:.3f} per tile): {ROMAN_TILES * per_s:,.0f} objects "
            f"({ROMAN_TILES * so['chunks'] / tiles:,.0f} of them shards)"
        ),
    ]


def storage_notes(res: dict[str, Any]) -> list[str]:
    local, s3 = res["dask"], res["dask_s3"]
    tiles, n = tiles_with_data(local) or 1, res["n_inputs"]
    lines = []
    in_req = s3.get("requests", {}).get(IN_BUCKET, {})
    if s3.get("inputs_on") == "s3":
        up = res.get("upload", {})
        lines.append(f"- inputs: uploaded before the runs ({up.get('files', 0)} objects, "
                     f"{up.get('bytes', 0) / 2**30:.2f} GiB, {up.get('seconds', 0):.1f} s, not timed) and read from "
                     f"the association's s3:// URL; requests per input on the inputs bucket: "
                     f"{_requests_cell(in_req, n)}")  # fmt: skip
    else:
        lines.append("- inputs: read from local disk in both runs (only the mosaic and its scratch are on S3)")
    if s3.get("scratch_on") == "local":
        lines.append(
            "- scratch (tile partials) of the S3 run on local disk (--s3-scratch local, "
            "resample.scratch-dir): only the mosaic's objects go to S3"
        )
    elif s3.get("scratch_on") == "store":
        lines.append(
            "- scratch (tile partials) of the S3 run on S3 (--s3-scratch store, resample.scratch-dir "
            "s3://...), as on a cluster whose workers share no disk"
        )
    else:
        lines.append(
            "- scratch (tile partials) of the S3 run where dask-resample puts it by default: this "
            "machine's temporary directory, as every process runs on it (a LocalCluster started by "
            "dask-resample); on a cluster given by the user it goes beside the mosaic on S3 "
            "(--s3-scratch store measures that)"
        )
    cpu_l, cpu_s = local.get("cpu_seconds", {}), s3.get("cpu_seconds", {})

    def fmt(c):
        return ", ".join(f"{k} {v:.1f}" for k, v in c.items())

    lines.append(
        f"- CPU seconds during the call: local disk: {fmt(cpu_l)}; S3: {fmt(cpu_s)} "
        f"(the S3 server runs on the same 2 cores as the workers)"
    )
    if "s3-server" in s3["rss_peak"]:
        lines.append(f"- S3 server (weed mini) peak RSS: {s3['rss_peak']['s3-server'] / 2**20:,.0f} MiB")
    for bucket, what in ((OUT_BUCKET, "the mosaic bucket (mosaic and scratch)"), (IN_BUCKET, "the inputs bucket")):
        t = s3.get("traffic", {}).get(bucket)
        if not t:
            continue
        secs = t["request_seconds"]
        lines.append(
            f"- {what}: {t['received_bytes'] / 2**30:.2f} GiB received, "
            f"{t['sent_bytes'] / 2**30:.2f} GiB sent; "
            f"server time in requests {sum(secs.values()):.0f} s ("
            + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(secs.items(), key=lambda kv: -kv[1]))
            + ")"
        )
    lines.append(
        f"- mosaic bytes: local disk {local['bytes'] / 2**30:.2f} GiB, S3 {s3['bytes'] / 2**30:.2f} GiB; "
        f"tiles with data {tiles:,}; objects left in the bucket beside the mosaic after the run "
        f"(scratch not removed): {s3.get('objects_left_beside', 0)}"
    )
    lines.append(
        f"- the S3 mosaic equals the local one on a {res.get('crop', '?')}-pixel crop of data and con: "
        f"{'yes' if res.get('stores_identical') else 'NO'}"
    )
    return lines


def parity_lines(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for res in results:
        par = res.get("parity")
        if not par:
            continue
        y0, y1, x0, x1 = par["box"]
        if not par["comparable"] or not par.get("shape_equal", True):
            lines.append(
                f"- {res['layout']}: outputs not comparable (shapes differ: "
                f"jwst {res['jwst']['shape_yx']}, dask-resample {res['dask']['shape_yx']})"
            )
            continue
        lines.append(
            f"- {res['layout']}: crop y {y0}:{y1}, x {x0}:{x1}: max |data diff| / max |data_jwst| = "
            f"{par['max_rel_diff']:.2g}; NaN pattern identical: {'yes' if par['nan_pattern_equal'] else 'NO'}; "
            f"con identical: {'yes' if par['con_equal'] else 'NO'} (planes jwst {par['con_planes'][0]}, "
            f"dask-resample {par['con_planes'][1]})"
        )
    return lines


def storage_report(res: dict[str, Any], workers: int, threads: int) -> list[str]:
    """The store comparison of one layout as printed: tables, notes and the object-count projection."""
    reps = res["dask"]["repeats"]
    return [
        f"Storage: local disk vs S3 (SeaweedFS on loopback), {res['layout']}, {workers} workers x {threads} thread, "
        f"tiles {res['tile']} x {res['tile']}, "
        + ("one run per store:" if reps == 1 else f"median of {reps} alternating runs per store:"),
        "",
        storage_table(res, workers),
        "",
        "Compute seconds per task kind (task stream):",
        "",
        storage_kinds_table(res),
        "",
        *storage_notes(res),
        "",
        *projection_lines(res),
        "",
        (
            "Notes: overhead = median S3 wall / median local wall - 1 (goal: at most 15%); requests are the S3 "
            "server's counters (SeaweedFS_s3_request_total) of the mosaics bucket over the call, divided by the "
            "tiles with data; GET includes HEAD; PUT includes multipart parts; peak RSS is the largest of the runs."
        ),
    ]


def orchestrate(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir: {workdir}", flush=True)
    results = []
    for spec in layouts(args):
        survey = spec["name"].startswith("survey-")
        stores = ("local", "s3") if args.store != "local" and survey else ("local",)
        if args.store == "s3" and not survey:
            print(f"[{spec['label']}] skipped: --store s3 runs the survey layout (local disk and S3)", flush=True)
            continue
        res = run_layout(spec, args, workdir, stores)
        res["cluster"] = f"{args.workers}x{args.threads}, {args.cluster}"
        res["tile"], res["crop"] = args.tile, args.crop
        results.append(res)
    if not args.keep_data:
        try:
            workdir.rmdir()  # only if nothing else is left in it
        except OSError:
            pass
    if not results:
        return 0
    report = ["", main_table(results, args.workers), "", "Task time by kind (from the task stream):", "",
              kinds_table(results)]  # fmt: skip
    for res in results:
        if "dask_s3" in res:
            report += ["", *storage_report(res, args.workers, args.threads)]
    par = parity_lines(results)
    if par:
        report += ["", "Parity with jwst:", *par]
    report += [
        "",
        "Notes: peak RSS is the larger of VmHWM and the sampled peak (every "
        f"{args.sample_interval:g} s); 'to first drizzle' is the start of the first drizzle task after the "
        "call began (client graph construction and planning); scheduler KiB/task is the sampled growth of the "
        "scheduler process's RSS during the call divided by the tasks that ran"
        + (
            "; with a LocalCluster the scheduler runs in the client process, so it also counts the client's "
            "graph (an upper bound)."
            if args.cluster == "local"
            else "."
        ),
    ]
    print("\n".join(report), flush=True)
    if args.json:
        doc = {"args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "results": results}
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--layouts",
        default="survey,small",
        type=lambda s: [v.strip() for v in s.split(",") if v.strip()],
        help="comma-separated layouts to run: survey, small",
    )
    g = p.add_argument_group("survey layout")
    g.add_argument(
        "--grid",
        type=_grid,
        default="10x10",
        metavar="COLSxROWS",
        help="pointings along x and y (10x10: ~0.4-0.5 Gpix at psr 0.5; 14x14: ~0.8-1 Gpix)",
    )
    g.add_argument("--size", type=int, default=1024, help="detector size N (N x N pixels per exposure)")
    g.add_argument("--dithers", type=int, default=2, help="exposures per pointing")
    g.add_argument("--pixel-scale-ratio", type=float, default=0.5, help="output / input pixel scale (wcs_pars)")
    s = p.add_argument_group("many-small-inputs layout")
    s.add_argument("--small-count", type=int, default=2000, help="number of exposures (2 dithers per pointing)")
    s.add_argument("--small-size", type=int, default=128, help="detector size of the small exposures")
    p.add_argument(
        "--overlap",
        type=float,
        default=0.04,
        help="fraction of the field shared by neighbouring pointings (both layouts)",
    )
    c = p.add_argument_group("dask-resample")
    c.add_argument("--workers", type=int, default=2, help="workers")
    c.add_argument("--threads", type=int, default=1, help="threads per worker")
    c.add_argument("--memory-limit", default="auto", help="memory limit per worker (e.g. 4GiB, auto)")
    c.add_argument(
        "--cluster",
        choices=("local", "subprocess"),
        default="local",
        help="local: dask-resample's LocalCluster (scheduler inside the client process); subprocess: "
        "scheduler and workers in processes of their own (scheduler memory measured alone)",
    )
    c.add_argument("--tile", type=int, default=1024, help="tile (Zarr chunk) size of the mosaic")
    c.add_argument("--sample-interval", type=float, default=0.2, help="seconds between RSS samples")
    c.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of dask-resample per layout and store, alternating stores; medians reported",
    )
    st = p.add_argument_group("storage")
    st.add_argument(
        "--store",
        choices=("local", "s3", "both"),
        default="local",
        help="local: mosaics on local disk; s3: the survey layout on local disk and on a private S3 "
        "server (SeaweedFS on 127.0.0.1), side by side, other layouts skipped; both: as s3, and "
        "the other layouts on local disk",
    )
    st.add_argument(
        "--s3-inputs",
        choices=("s3", "local"),
        default="s3",
        help="where the S3 runs read the inputs: uploaded to the server (s3) or the local files",
    )
    st.add_argument(
        "--s3-scratch",
        choices=("default", "store", "local"),
        default="default",
        help="tile partials of the S3 runs: where dask-resample puts them by default (default: the "
        "temporary directory of this machine, as every process runs on it), on S3 (store: "
        "resample.scratch-dir s3://..., as on a cluster whose workers share no disk) or on local "
        "disk under --workdir (local: resample.scratch-dir)",
    )
    r = p.add_argument_group("reference")
    r.add_argument(
        "--jwst",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run jwst's ResampleImage side by side where it fits",
    )
    r.add_argument(
        "--jwst-max-gib",
        type=float,
        default=16.0,
        help="skip jwst when its output arrays would need more than this many GiB",
    )
    r.add_argument("--crop", type=int, default=1024, help="size of the centred crop compared with jwst")
    d = p.add_argument_group("data")
    d.add_argument(
        "--workdir",
        default="/tmp/dask-resample-bench",
        help="datasets (one sub-directory per layout and parameters) and temporary outputs",
    )
    d.add_argument(
        "--keep-data", action="store_true", help="keep the datasets for later runs (otherwise removed after the run)"
    )
    d.add_argument("--write-processes", type=int, default=os.cpu_count() or 1, help="processes writing the datasets")
    d.add_argument("--json", metavar="PATH", help="also write all measurements as JSON")
    # internal: child processes
    p.add_argument("--child", choices=("reference", "dask"), help=argparse.SUPPRESS)
    p.add_argument("--asn", help=argparse.SUPPRESS)
    p.add_argument("--psr", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--zarr-out", help=argparse.SUPPRESS)
    p.add_argument("--crop-out", help=argparse.SUPPRESS)
    p.add_argument("--count-buckets", help=argparse.SUPPRESS)
    p.add_argument("--scratch-dir", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child == "reference":
        child_reference(args)
        return 0
    if args.child == "dask":
        child_dask(args)
        return 0
    unknown = set(args.layouts) - {"survey", "small"}
    if unknown or not args.layouts:
        build_parser().error(f"--layouts: expected survey and/or small, got {','.join(args.layouts)}")
    if args.repeats < 1:
        build_parser().error("--repeats: expected at least 1")
    if args.store != "local" and "survey" not in args.layouts:
        build_parser().error("--store s3/both compares the stores on the survey layout: add it to --layouts")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
