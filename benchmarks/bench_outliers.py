#!/usr/bin/env python
"""Benchmark dask-resample's outlier detection against jwst's OutlierDetectionStep.

The same ``*_cal.fits`` exposures are flagged, side by side in one invocation, by

* **jwst, in memory** -- ``OutlierDetectionStep(in_memory=True, ...).run(asn)`` in a
  process of its own: the inputs and the median cube (groups x mosaic pixels, float32)
  are held in memory;
* **jwst, on disk** -- the same with ``in_memory=False``: the step opens the association
  as ``ModelLibrary(asn, on_disk=True)`` (what ``calwebb_image3`` builds when its own
  ``in_memory`` is false) and keeps the median cube in temporary files in its working
  directory;
* **dask-resample** -- ``dask_resample.detect_outliers(asn, out_dir, ...)`` on a fresh
  cluster (``--workers`` x ``--threads``), driven from a process of its own.

Both programs use the step's defaults and write one ``*_crf.fits`` file per input
(jwst with ``save_results=True, suffix="crf"``). Wall time is measured around the call
(imports and cluster start-up excluded; the workers import their modules before the
clock starts). Peak RSS is the kernel's ``VmHWM`` of every process (the larger of it and
the peak sampled every ``--sample-interval`` seconds for dask-resample's processes): the
jwst process; dask-resample's client, scheduler (in the client process with
``--cluster local``) and each worker. After the runs the ``DQ`` arrays of all outputs are
compared pixel by pixel.

Two layouts:

* **bench8** -- the data of ``bench_vs_jwst.py`` (``--dithers`` x ``--detectors``
  exposures of ``--size`` pixels, 4 x 2 of 2048 x 2048 by default) with cosmic rays
  added to a fraction ``--cosmic-rays`` of the pixels;
* **survey** -- a :mod:`dask_resample.testing.synthetic_survey` grid (``--survey-grid``
  pointings, ``--survey-dithers`` exposures each of ``--survey-size`` pixels, every
  exposure a group of its own, cosmic rays on ``--survey-cosmic-rays`` of the pixels, added
  to the written files). jwst in memory runs only where its median cube fits in
  ``--jwst-memory-fraction`` of the machine's memory, jwst on disk only where the cube,
  the on-disk copies of the inputs and the outputs fit in ``--disk-fraction`` of the free
  disk under ``--workdir``; otherwise the row says why it was skipped.

Usage::

    python benchmarks/bench_outliers.py --layouts both --survey-grid 8x8
    python benchmarks/bench_outliers.py --layouts bench8 --size 512 --survey-grid 2x2   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import (
    GIB,
    dataset_cached,
    mark_dataset,
    maxrss_bytes,
    spawn,
    start_cluster,
    task_kind,
    vmhwm_bytes,
    warm_outlier_worker,
    worker_cpu,
)
from bench_scale import RssSampler, ensure_dataset

#: Every dask-resample process should stay at or below this peak RSS.
TARGET_RSS = 1 * GIB
#: The two modes of jwst's step, in the order they run.
JWST_MODES = ("in_memory", "on_disk")
#: Task kinds of an outlier-detection graph, in the order the graph runs them.
OUTLIER_KINDS = ("drizzle", "tile", "threshold", "median", "flag")
#: DQ bits, as in ``stdatamodels.jwst.datamodels.dqflags``.
DO_NOT_USE, OUTLIER = 1, 16


# ----------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------
def _grid(text: str) -> tuple[int, int]:
    """``"8x8"`` -> ``(8, 8)`` (columns, rows)."""
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected COLSxROWS such as 8x8, got {text!r}") from None
    if min(cols, rows) < 1:
        raise argparse.ArgumentTypeError(f"expected positive grid sizes, got {text!r}")
    return cols, rows


def bench8_dataset(workdir: Path, size: int, dithers: int, detectors: int, cosmic_rays: float) -> Path:
    """The data of ``bench_vs_jwst.py`` (same layout and seed) with cosmic rays; returns the association.

    Written once per parameters under ``workdir`` (the ``dataset.json`` marker records them)
    and reused while they match.
    """
    from dask_resample.testing import synthetic

    spec = {"kind": "base", "size": size, "dithers": dithers, "detectors": detectors, "seed": 11,
            "cosmic_rays": cosmic_rays}  # fmt: skip
    directory = workdir / f"outliers-base-{size}-{dithers}x{detectors}-cr{cosmic_rays:g}"
    asn = directory / "synthetic_asn.json"
    if dataset_cached(directory, spec) and asn.is_file():
        print(f"reusing {directory}", flush=True)
        return asn
    if directory.exists():
        shutil.rmtree(directory)
    t0 = time.perf_counter()
    synthetic.write_dataset(directory, n_dithers=dithers, n_detectors=detectors, shape=(size, size), seed=11,
                            cosmic_rays=cosmic_rays)  # fmt: skip
    mark_dataset(directory, spec)
    print(
        f"wrote {dithers * detectors} exposures of {size}x{size} with cosmic rays on {100 * cosmic_rays:g}% of "
        f"the pixels to {directory} ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    return asn


def _add_cosmic_rays(job: tuple[str, float, int, int]) -> str:
    """Add cosmic rays to the data of one ``*_cal.fits`` file (``job``: path, fraction, seed, index)."""
    import numpy as np
    from stdatamodels.jwst.datamodels import ImageModel

    from dask_resample.testing.synthetic import add_cosmic_rays

    path, fraction, seed, index = job
    tmp = Path(path).with_name(f".cr-{Path(path).name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ImageModel(path) as model:
            arrays = {"data": np.array(model.data), "err": np.array(model.err)}
            add_cosmic_rays(arrays, fraction, np.random.default_rng([seed, 2, index]))
            model.data = arrays["data"]
            model.save(str(tmp))
    os.replace(tmp, path)
    return path


def survey_dataset(workdir: Path, layout: Any, cosmic_rays: float, processes: int) -> Path:
    """The survey dataset of ``layout``, with cosmic rays on a fraction ``cosmic_rays`` of every exposure's pixels.

    Without cosmic rays this is ``bench_scale.py``'s dataset (same directory and marker, so
    either benchmark reuses it); with them, a directory of its own whose marker records the
    fraction. Returns the association.
    """
    from concurrent.futures import ProcessPoolExecutor

    from dask_resample.testing.synthetic_survey import write_survey

    cols, rows = layout.grid_xy
    name = f"survey-{cols}x{rows}x{layout.dithers}-{layout.shape[1]}-o{layout.overlap:g}"
    if cosmic_rays <= 0:
        return ensure_dataset(workdir / name, layout, processes)
    directory = workdir / f"{name}-cr{cosmic_rays:g}"
    spec = {"kind": "survey", **layout.to_dict(), "cosmic_rays": cosmic_rays}
    asn = directory / "survey_mosaic_asn.json"
    if dataset_cached(directory, spec) and asn.is_file():
        print(f"reusing {directory}", flush=True)
        return asn
    if directory.exists():
        shutil.rmtree(directory)
    t0 = time.perf_counter()
    asn = write_survey(directory, layout, processes=processes)
    jobs = [(str(path), cosmic_rays, 0, k) for k, path in enumerate(_members(asn))]
    if processes > 1:
        with ProcessPoolExecutor(max_workers=processes) as pool:
            list(pool.map(_add_cosmic_rays, jobs, chunksize=max(1, len(jobs) // (4 * processes))))
    else:
        for job in jobs:
            _add_cosmic_rays(job)
    mark_dataset(directory, spec)
    print(
        f"wrote {len(jobs)} exposures of {layout.shape[1]}x{layout.shape[0]} with cosmic rays on "
        f"{100 * cosmic_rays:g}% of the pixels to {directory} ({time.perf_counter() - t0:.0f} s with "
        f"{processes} processes)",
        flush=True,
    )
    return asn


def layouts(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The layouts to run: name, label and how to write the dataset."""
    out: list[dict[str, Any]] = []
    if args.layouts in ("bench8", "both"):
        n = args.dithers * args.detectors
        out.append({
            "name": "bench8",
            "label": f"bench8: {n} x {args.size}² ({args.dithers} dithers x {args.detectors} detectors, "
                     f"cosmic rays {100 * args.cosmic_rays:g}%)",
            "write": lambda workdir: bench8_dataset(workdir, args.size, args.dithers, args.detectors,
                                                    args.cosmic_rays),
            "directory": lambda workdir: workdir / (f"outliers-base-{args.size}-{args.dithers}x{args.detectors}"
                                                    f"-cr{args.cosmic_rays:g}"),
        })  # fmt: skip
    if args.layouts in ("survey", "both"):
        from dask_resample.testing.synthetic_survey import SurveyLayout

        cols, rows = args.survey_grid
        layout = SurveyLayout(grid_xy=(cols, rows), dithers=args.survey_dithers,
                              shape=(args.survey_size, args.survey_size), overlap=args.overlap)  # fmt: skip
        name = f"survey-{cols}x{rows}x{args.survey_dithers}-{args.survey_size}-o{args.overlap:g}"
        if args.survey_cosmic_rays > 0:
            name += f"-cr{args.survey_cosmic_rays:g}"
        out.append({
            "name": "survey",
            "label": f"survey {cols}x{rows}x{args.survey_dithers} of {args.survey_size}² "
                     f"({cols * rows * args.survey_dithers} exposures, one group each, "
                     f"cosmic rays {100 * args.survey_cosmic_rays:g}%)",
            "write": lambda workdir: survey_dataset(workdir, layout, args.survey_cosmic_rays, args.write_processes),
            "directory": lambda workdir: workdir / name,
        })  # fmt: skip
    return out


def describe_layout(asn: Path) -> dict[str, Any]:
    """Inputs, exposure groups, the median grid (the step's: pixel scale ratio 1) and jwst's median cube size."""
    warnings.simplefilter("ignore")
    from dask_resample.geometry.grid import make_output_grid
    from dask_resample.inputs.io import describe_resolved, resolve_inputs

    refs = describe_resolved(resolve_inputs(asn))
    grid = make_output_grid(refs)
    ny, nx = grid.shape_yx
    groups = len({r.group_id for r in refs})
    input_bytes = sum(Path(r.source).stat().st_size for r in refs)
    return {
        "n_inputs": len(refs),
        "n_groups": groups,
        "shape_yx": [int(ny), int(nx)],
        "cube_bytes": groups * int(ny) * int(nx) * 4,
        "input_bytes": input_bytes,
    }


# ----------------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------------
class RssTimeline(RssSampler):
    """:class:`bench_scale.RssSampler` that also keeps every sample: ``(epoch seconds, {pid: rss})``."""

    def __init__(self, pids: dict[str, int], interval: float = 0.1) -> None:
        super().__init__(pids, interval)
        self.series: list[tuple[float, dict[int, int]]] = []

    def sample(self) -> dict[int, int]:
        """Take one sample now and keep it; returns ``pid -> rss``."""
        now = super().sample()
        self.series.append((time.time(), now))
        return now


class DiskWatcher:
    """Largest growth of the used space of a file system while a block runs (sampled from a thread).

    Parameters
    ----------
    path : Path
        Any path on the file system to watch.
    interval : float
        Seconds between samples.
    """

    def __init__(self, path: Path, interval: float = 0.5) -> None:
        self.path = path
        self.interval = interval
        self.before = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="disk-watcher", daemon=True)

    def _used(self) -> int:
        return int(shutil.disk_usage(self.path).used)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._used())

    @property
    def growth(self) -> int:
        """Peak used bytes minus used bytes at the start (others' files on the same disk count too)."""
        return max(0, self.peak - self.before)

    def __enter__(self) -> DiskWatcher:
        self.before = self.peak = self._used()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._used())


def outlier_task_kind(key: Any) -> str:
    """Kind of a task from its key, as :func:`_common.task_kind`, with the shared ``drizzle-spec`` key apart."""
    name = str(key[0]) if isinstance(key, tuple) and key else str(key)
    if name.lstrip("([\"' ").startswith("drizzle-spec"):
        return "drizzle-spec"
    return task_kind(key)


def kind_summary(stream: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Tasks and compute seconds per task kind (key prefix) of a task stream."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"tasks": 0, "seconds": 0.0})
    seen: dict[str, set] = defaultdict(set)
    for rec in stream:
        kind = outlier_task_kind(rec.get("key"))
        seen[kind].add(str(rec.get("key")))
        for ss in rec.get("startstops", []):
            if ss.get("action") == "compute":
                out[kind]["seconds"] += ss["stop"] - ss["start"]
    for kind, keys in seen.items():
        out[kind]["tasks"] = len(keys)
    return dict(out)


def attribute_memory(
    series: list[tuple[float, dict[int, int]]],
    stream: list[dict[str, Any]],
    pid_of_worker: dict[str, int],
    name_of_pid: dict[int, str],
    epoch0: float,
) -> dict[str, Any]:
    """Which task kinds run when the workers' RSS is high.

    Every compute interval of the task stream is matched with the RSS samples of its
    worker taken during it (and the first one after it, which still sees what the task
    held). Per kind: the largest worker RSS while such a task ran, and the largest rise
    of RSS during one task over the sample just before it started. Per worker: the time
    of its largest sample and the tasks running then (or the last one before, between
    tasks).

    Parameters
    ----------
    series : list
        ``(epoch seconds, {pid: rss})`` samples, in time order.
    stream : list of dict
        The task stream (``key``, ``worker`` address, ``startstops``).
    pid_of_worker : dict
        Worker address -> pid.
    name_of_pid : dict
        pid -> process name (``worker-0``, ...).
    epoch0 : float
        Start of the call (epoch seconds): times are reported from it.
    """
    import numpy as np

    if not series:
        return {"by_kind": {}, "at_peak": {}}
    times = np.array([t for t, _ in series])
    intervals: dict[int, list[tuple[float, float, str, str]]] = defaultdict(list)
    for rec in stream:
        pid = pid_of_worker.get(rec.get("worker"))
        if pid is None:
            continue
        kind = outlier_task_kind(rec.get("key"))
        for ss in rec.get("startstops", []):
            if ss.get("action") == "compute":
                intervals[pid].append((ss["start"], ss["stop"], kind, str(rec.get("key"))))
    by_kind: dict[str, dict[str, Any]] = {}
    at_peak: dict[str, Any] = {}
    for pid, ivals in intervals.items():
        rss = np.array([s.get(pid, 0) for _, s in series], dtype=np.int64)
        ivals.sort()
        for start, stop, kind, key in ivals:
            i0 = int(np.searchsorted(times, start, "left"))
            i1 = min(int(np.searchsorted(times, stop, "right")) + 1, len(times))
            before = int(rss[i0 - 1]) if i0 > 0 else int(rss[0])
            during = rss[i0:i1]
            peak = int(during.max()) if len(during) else before
            rec = by_kind.setdefault(
                kind, {"max_rss": 0, "max_rss_worker": None, "max_rise": 0, "max_rise_key": None, "max_seconds": 0.0}
            )
            if peak > rec["max_rss"]:
                rec["max_rss"], rec["max_rss_worker"] = peak, name_of_pid.get(pid)
            if peak - before > rec["max_rise"]:
                rec["max_rise"], rec["max_rise_key"] = peak - before, key
            rec["max_seconds"] = max(rec["max_seconds"], stop - start)
        k = int(rss.argmax())
        t = float(times[k])
        running = [key for start, stop, _, key in ivals if start <= t <= stop]
        if not running:
            done = [(stop, key) for start, stop, _, key in ivals if stop <= t]
            running = [f"(after) {max(done)[1]}"] if done else []
        at_peak[name_of_pid.get(pid, str(pid))] = {"rss": int(rss[k]), "t": t - epoch0, "tasks": running}
    return {"by_kind": by_kind, "at_peak": at_peak}


# ----------------------------------------------------------------------------
# child processes
# ----------------------------------------------------------------------------
def child_ours(args: argparse.Namespace) -> None:
    """Run ``detect_outliers`` once on a fresh cluster; write timings, per-process peaks and the task profile."""
    warnings.simplefilter("ignore")
    import dask.config
    from distributed import get_task_stream

    import dask_resample

    # keep every task of the run in the scheduler's task-stream buffer
    dask.config.set({"distributed.scheduler.dashboard.tasks.task-stream-length": 10_000_000})
    os.environ["DASK_DISTRIBUTED__SCHEDULER__DASHBOARD__TASKS__TASK_STREAM_LENGTH"] = "10000000"
    handle = start_cluster(args)
    client = handle.client
    try:
        client.wait_for_workers(args.workers)
        client.run(warm_outlier_worker)
        names = {addr: info.get("name") for addr, info in client.scheduler_info()["workers"].items()}
        worker_pids = client.run(os.getpid)
        pids = {"client": os.getpid(), "scheduler": int(client.run_on_scheduler(os.getpid))}
        pid_of_worker = {}
        for rank, addr in enumerate(sorted(worker_pids, key=lambda a: (str(names.get(a)), a))):
            pids[f"worker-{rank}"] = int(worker_pids[addr])
            pid_of_worker[addr] = int(worker_pids[addr])
        cpu0 = client.run(worker_cpu)
        c0 = time.process_time()
        with RssTimeline(pids, args.sample_interval) as sampler:
            epoch0 = time.time()
            t0 = time.perf_counter()
            with get_task_stream(client) as ts:
                paths = dask_resample.detect_outliers(args.asn, args.out_dir, client=client,
                                                      tile_shape=(args.tile, args.tile), overwrite=True,
                                                      progress=False)  # fmt: skip
            seconds = time.perf_counter() - t0
        client_cpu = time.process_time() - c0
        cpu1 = client.run(worker_cpu)
        stream = ts.data
        hwm = {name: vmhwm_bytes(pid) for name, pid in pids.items()}
    finally:
        handle.close()
    rss = {name: max(hwm[name] or 0, sampler.peak[pid]) for name, pid in pids.items()}
    workers_cpu = {
        f"worker-{rank}": cpu1[addr] - cpu0.get(addr, 0.0)
        for rank, addr in enumerate(sorted(worker_pids, key=lambda a: (str(names.get(a)), a)))
    }
    name_of_pid = {pid: name for name, pid in pids.items() if name.startswith("worker-")}
    doc = {
        "seconds": seconds,
        "cpu": {"client": client_cpu, **workers_cpu},
        "pids": pids,
        "scheduler_in_client": pids["scheduler"] == pids["client"],
        "rss_peak": rss,
        "rss_samples": sampler.samples,
        "n_outputs": len(paths),
        "kinds": kind_summary(stream),
        "memory": attribute_memory(sampler.series, stream, pid_of_worker, name_of_pid, epoch0),
    }
    Path(args.result).write_text(json.dumps(doc))


def child_jwst(args: argparse.Namespace) -> None:
    """Run jwst's ``OutlierDetectionStep`` once (``--in-memory`` or not); write timings and peak RSS.

    The working directory is ``--cwd``: an on-disk ``ModelLibrary`` and the on-disk median
    keep their temporary files there.
    """
    warnings.simplefilter("ignore")
    import drizzle.resample  # noqa: F401
    import jwst.resample.resample  # noqa: F401
    import stcal.outlier_detection.median  # noqa: F401
    from jwst.outlier_detection import OutlierDetectionStep

    cwd = Path(args.cwd)
    cwd.mkdir(parents=True, exist_ok=True)
    os.chdir(cwd)
    step = OutlierDetectionStep(in_memory=bool(args.in_memory), output_dir=str(args.out_dir), save_results=True,
                                suffix="crf")  # fmt: skip
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = step.run(str(args.asn))
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    rss = maxrss_bytes()
    del result
    Path(args.result).write_text(json.dumps({"seconds": seconds, "cpu": {"jwst": cpu}, "rss_peak": {"jwst": rss}}))


# ----------------------------------------------------------------------------
# orchestration
# ----------------------------------------------------------------------------
def _spawn_watched(args_list: list[str], watch: Path) -> dict[str, Any]:
    """Run this script as a child; add the disk growth under ``watch`` and the load averages around it."""
    load0 = os.getloadavg()
    with DiskWatcher(watch) as disk:
        doc = spawn(__file__, args_list)
    doc["disk_growth"] = disk.growth
    doc["load_before"], doc["load_after"] = list(load0), list(os.getloadavg())
    return doc


def run_ours(asn: Path, out_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """dask-resample in a process of its own."""
    shutil.rmtree(out_dir, ignore_errors=True)
    child = ["--child", "ours", "--asn", str(asn), "--out-dir", str(out_dir), "--workers", str(args.workers),
             "--threads", str(args.threads), "--tile", str(args.tile), "--memory-limit", str(args.memory_limit),
             "--cluster", args.cluster, "--sample-interval", str(args.sample_interval)]  # fmt: skip
    return _spawn_watched(child, out_dir.parent)


def run_jwst(asn: Path, out_dir: Path, cwd: Path, in_memory: bool) -> dict[str, Any]:
    """jwst's step in a process of its own, working directory ``cwd`` (removed afterwards)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.rmtree(cwd, ignore_errors=True)
    child = ["--child", "jwst", "--asn", str(asn), "--out-dir", str(out_dir), "--cwd", str(cwd)]
    if in_memory:
        child.append("--in-memory")
    try:
        return _spawn_watched(child, out_dir.parent)
    finally:
        shutil.rmtree(cwd, ignore_errors=True)


def _members(asn: Path) -> list[Path]:
    doc = json.loads(Path(asn).read_text())
    return [
        Path(asn).parent / m["expname"]
        for m in doc["products"][0]["members"]
        if m.get("exptype", "science") == "science"
    ]


def _crf(directory: Path, root: str) -> Path:
    """The ``*_crf.fits`` file of input ``root`` in ``directory`` (jwst adds the association id to the name)."""
    found = sorted(directory.glob(f"{root}_*crf.fits")) + sorted(directory.glob(f"{root}_crf.fits"))
    found = sorted(set(found))
    if len(found) != 1:
        raise FileNotFoundError(f"{directory}: expected one crf file of {root}, found {[p.name for p in found]}")
    return found[0]


def compare_outputs(asn: Path, dirs: dict[str, Path]) -> dict[str, Any]:
    """Flagged pixels of every program and pixel-by-pixel ``DQ`` and ``SCI`` differences between them.

    Parameters
    ----------
    asn : Path
        The association (its members are the inputs).
    dirs : dict
        Program label -> directory of its ``*_crf.fits`` files.

    Returns
    -------
    dict
        ``flagged[label]``: pixels whose DQ differs from the input's; ``outlier_set[label]``:
        pixels with ``OUTLIER`` set that the input did not have; ``dq_diff["a|b"]`` and
        ``sci_diff["a|b"]``: pixels that differ between two programs (NaN equal to NaN).
    """
    import numpy as np
    from astropy.io import fits

    labels = list(dirs)
    flagged = dict.fromkeys(labels, 0)
    outlier_set = dict.fromkeys(labels, 0)
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]]
    dq_diff = {f"{a}|{b}": 0 for a, b in pairs}
    sci_diff = {f"{a}|{b}": 0 for a, b in pairs}
    n_pixels = 0
    for cal in _members(asn):
        root = cal.name[: -len("_cal.fits")] if cal.name.endswith("_cal.fits") else cal.stem
        dq_in = fits.getdata(cal, "DQ")
        n_pixels += dq_in.size
        dq, sci = {}, {}
        for label in labels:
            with fits.open(_crf(dirs[label], root), memmap=False) as hdul:
                dq[label] = np.asarray(hdul["DQ"].data)
                sci[label] = np.asarray(hdul["SCI"].data)
            flagged[label] += int(np.count_nonzero(dq[label] != dq_in))
            outlier_set[label] += int(np.count_nonzero((dq[label] & OUTLIER) & ~(dq_in & OUTLIER)))
        for a, b in pairs:
            dq_diff[f"{a}|{b}"] += int(np.count_nonzero(dq[a] != dq[b]))
            same = (sci[a] == sci[b]) | (np.isnan(sci[a]) & np.isnan(sci[b]))
            sci_diff[f"{a}|{b}"] += int(np.count_nonzero(~same))
    return {
        "flagged": flagged,
        "outlier_set": outlier_set,
        "dq_diff": dq_diff,
        "sci_diff": sci_diff,
        "n_pixels": n_pixels,
    }


def _median_run(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time, with every process's peak RSS and the disk growth the largest of all runs."""
    ordered = sorted(docs, key=lambda d: d["seconds"])
    doc = dict(ordered[(len(ordered) - 1) // 2])
    doc["rss_peak"] = {k: max(d["rss_peak"].get(k, 0) for d in docs) for k in doc["rss_peak"]}
    doc["disk_growth"] = max(d["disk_growth"] for d in docs)
    doc["all_seconds"] = [d["seconds"] for d in docs]
    return doc


def jwst_plan(info: dict[str, Any], args: argparse.Namespace, workdir: Path) -> dict[str, str | None]:
    """Which jwst modes run: mode -> ``None`` (runs) or the reason it is skipped."""
    import psutil

    ram = psutil.virtual_memory().total
    free = shutil.disk_usage(workdir).free
    cube = info["cube_bytes"]
    # on disk: the median cube, the library's copies of the inputs and the crf files
    disk_need = cube + 2 * info["input_bytes"]
    plan: dict[str, str | None] = {}
    if not args.jwst:
        return dict.fromkeys(JWST_MODES, "not run (--no-jwst)")
    if cube > ram:
        plan["in_memory"] = (
            f"skipped: its median cube alone needs {cube / GIB:.1f} GiB, more than the "
            f"machine's {ram / GIB:.1f} GiB of memory"
        )
    elif cube > args.jwst_memory_fraction * ram:
        plan["in_memory"] = (
            f"skipped: its median cube needs {cube / GIB:.1f} GiB, more than "
            f"{args.jwst_memory_fraction:g} x the machine's {ram / GIB:.1f} GiB"
        )
    else:
        plan["in_memory"] = None
    if disk_need > args.disk_fraction * free:
        plan["on_disk"] = (
            f"skipped: its temporary files and outputs need {disk_need / GIB:.1f} GiB of disk, more "
            f"than {args.disk_fraction:g} x the {free / GIB:.1f} GiB free under {workdir}"
        )
    else:
        plan["on_disk"] = None
    print(
        f"  jwst's median cube: {info['n_groups']} groups x {info['shape_yx'][0]:,} x {info['shape_yx'][1]:,} "
        f"pixels x 4 bytes = {cube / GIB:.2f} GiB (machine memory {ram / GIB:.1f} GiB); on disk it needs "
        f"{disk_need / GIB:.2f} GiB with the inputs' copies and outputs (free under {workdir}: "
        f"{free / GIB:.1f} GiB)",
        flush=True,
    )
    for mode, reason in plan.items():
        print(f"  jwst {mode}: {'runs' if reason is None else reason}", flush=True)
    return plan


def run_layout(spec: dict[str, Any], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Write (or reuse) a dataset, run every program on it, compare the outputs, clean up."""
    print(f"[{spec['label']}]", flush=True)
    directory = spec["directory"](workdir)
    runs = workdir / f"outliers-runs-{os.getpid()}"
    out: dict[str, Any] = {"name": spec["name"], "label": spec["label"]}
    try:
        asn = spec["write"](workdir)
        info = describe_layout(asn)
        out.update(info)
        print(
            f"  {info['n_inputs']} inputs in {info['n_groups']} groups; median grid "
            f"{info['shape_yx'][0]:,} x {info['shape_yx'][1]:,}",
            flush=True,
        )
        plan = jwst_plan(info, args, workdir)
        out["jwst_skipped"] = {m: r for m, r in plan.items() if r is not None}
        runs.mkdir(parents=True, exist_ok=True)
        docs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        dirs = {"ours": runs / "ours", **{f"jwst_{m}": runs / f"jwst-{m}" for m in JWST_MODES if plan[m] is None}}
        for rep in range(args.repeat):
            tag = f"  [{rep + 1}/{args.repeat}]" if args.repeat > 1 else " "
            print(
                f"{tag} dask-resample ({args.workers} workers x {args.threads} thread, {args.cluster} cluster) ...",
                end=" ",
                flush=True,
            )
            docs["ours"].append(run_ours(asn, dirs["ours"], args))
            print(f"{docs['ours'][-1]['seconds']:.1f} s", flush=True)
            for mode in JWST_MODES:
                if plan[mode] is not None:
                    continue
                print(f"{tag} jwst OutlierDetectionStep(in_memory={mode == 'in_memory'}) ...", end=" ", flush=True)
                docs[f"jwst_{mode}"].append(
                    run_jwst(asn, dirs[f"jwst_{mode}"], runs / f"cwd-{mode}", mode == "in_memory")
                )
                print(f"{docs[f'jwst_{mode}'][-1]['seconds']:.1f} s", flush=True)
        out["runs"] = {label: _median_run(d) for label, d in docs.items()}
        print("  comparing the crf files ...", flush=True)
        out["compare"] = compare_outputs(asn, dirs)
    finally:
        shutil.rmtree(runs, ignore_errors=True)
        if not args.keep_data:
            shutil.rmtree(directory, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------
def _mib(value: int | None) -> str:
    return "-" if not value else f"{value / 2**20:,.0f} MiB"


def _diff(compare: dict[str, Any], a: str, b: str) -> int | None:
    for key in (f"{a}|{b}", f"{b}|{a}"):
        if key in compare["dq_diff"]:
            return compare["dq_diff"][key]
    return None


def _program(label: str, args: argparse.Namespace) -> str:
    if label == "ours":
        return f"dask-resample ({args.workers} workers x {args.threads} thread, {args.cluster} cluster)"
    return f"jwst OutlierDetectionStep, in_memory={label == 'jwst_in_memory'} (1 process)"


def main_table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """One Markdown table: a row per layout and program."""
    workers = [f"worker-{k}" for k in range(args.workers)]
    head = ["layout", "program", "wall [s]", "jwst in_memory / this", "jwst on_disk / this", "CPU [s]",
            "peak RSS jwst", "peak RSS client", "peak RSS scheduler", *[f"peak RSS {w}" for w in workers],
            "flagged pixels", "DQ px ≠ jwst in_memory", "DQ px ≠ jwst on_disk", "peak disk growth"]  # fmt: skip
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        runs, comp = res["runs"], res["compare"]
        for label in ("jwst_in_memory", "jwst_on_disk", "ours"):
            if label not in runs:
                mode = label.removeprefix("jwst_")
                reason = res["jwst_skipped"].get(mode, "not run")
                rows.append(
                    "| " + " | ".join([res["label"], _program(label, args), reason, *["-"] * (len(head) - 3)]) + " |"
                )
                continue
            doc = runs[label]
            ratios = []
            for ref in ("jwst_in_memory", "jwst_on_disk"):
                ratios.append(f"{runs[ref]['seconds'] / doc['seconds']:.2f}x" if ref in runs else "-")
            rss = doc["rss_peak"]
            sched = "(in client)" if doc.get("scheduler_in_client") else _mib(rss.get("scheduler"))
            diffs = []
            for ref in ("jwst_in_memory", "jwst_on_disk"):
                d = None if ref == label else _diff(comp, label, ref)
                diffs.append("-" if d is None else f"{d:,}")
            rows.append("| " + " | ".join([
                res["label"], _program(label, args), f"{doc['seconds']:.1f}", *ratios,
                f"{sum(doc['cpu'].values()):.1f}", _mib(rss.get("jwst")), _mib(rss.get("client")),
                sched if label == "ours" else "-", *[_mib(rss.get(w)) for w in workers],
                f"{comp['flagged'][label]:,}", *diffs, f"{doc['disk_growth'] / GIB:.2f} GiB",
            ]) + " |")  # fmt: skip
    return "\n".join(rows)


def kinds_table(results: list[dict[str, Any]]) -> str:
    """Task kinds of every dask-resample run: count, compute seconds, worker memory while they ran."""
    head = ["layout", "task kind", "tasks", "compute [s]", "share", "mean [s/task]", "longest [s]",
            "largest worker RSS while running", "largest rise during one task"]  # fmt: skip
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        ours = res["runs"]["ours"]
        kinds, mem = ours["kinds"], ours["memory"]["by_kind"]
        total = sum(k["seconds"] for k in kinds.values()) or 1.0
        order = [k for k in OUTLIER_KINDS if k in kinds] + sorted(k for k in kinds if k not in OUTLIER_KINDS)
        for kind in order:
            k, m = kinds[kind], mem.get(kind, {})
            rows.append("| " + " | ".join([
                res["name"], kind, f"{k['tasks']:,}", f"{k['seconds']:.1f}", f"{100 * k['seconds'] / total:.1f}%",
                f"{k['seconds'] / max(k['tasks'], 1):.2f}", f"{m.get('max_seconds', 0.0):.1f}",
                f"{_mib(m.get('max_rss'))} ({m.get('max_rss_worker') or '-'})", _mib(m.get("max_rise")),
            ]) + " |")  # fmt: skip
    return "\n".join(rows)


def report_lines(results: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """The tables, the parity lines and the memory verdict."""
    lines = ["", main_table(results, args), "", "Task kinds of dask-resample (from the task stream):", "",
             kinds_table(results), ""]  # fmt: skip
    verdicts = []
    for res in results:
        comp, runs = res["compare"], res["runs"]
        lines.append(
            f"{res['label']}: {res['n_inputs']} inputs, {res['n_groups']} groups, median grid "
            f"{res['shape_yx'][0]:,} x {res['shape_yx'][1]:,}; jwst's in-memory median cube "
            f"{res['cube_bytes'] / GIB:.2f} GiB"
        )
        for key, n in comp["dq_diff"].items():
            a, b = key.split("|")
            lines.append(
                f"  DQ parity {a} vs {b}: {n:,} of {comp['n_pixels']:,} pixels differ "
                f"({'identical' if n == 0 else 'DIFFERENT'}); SCI: {comp['sci_diff'][key]:,} differ"
            )
        for label, n in comp["flagged"].items():
            lines.append(
                f"  {label}: {n:,} pixels flagged (DQ changed from the input), "
                f"{comp['outlier_set'][label]:,} with OUTLIER newly set"
            )
        for mode, reason in res["jwst_skipped"].items():
            lines.append(f"  jwst {mode}: {reason}")
        for label, doc in runs.items():
            secs = ", ".join(f"{s:.1f}" for s in doc["all_seconds"])
            lines.append(
                f"  {label}: wall {secs} s; load average before {doc['load_before'][0]:.1f}, after "
                f"{doc['load_after'][0]:.1f}"
            )
        ours = runs["ours"]
        for name, peak in ours["memory"]["at_peak"].items():
            tasks = ", ".join(peak["tasks"][:3]) or "no task"
            lines.append(
                f"  {name} peak {_mib(peak['rss'])} (sampled) at {peak['t']:.1f} s into the call, running: {tasks}"
            )
        biggest = max(ours["rss_peak"].items(), key=lambda kv: kv[1])
        ok = biggest[1] <= TARGET_RSS
        verdicts.append(ok)
        lines.append(
            f"  {'PASS' if ok else 'FAIL'}: largest peak RSS of a dask-resample process {_mib(biggest[1])} "
            f"({biggest[0]}), target <= 1 GiB"
        )
        lines.append("")
    lines.append(
        f"{'PASS' if all(verdicts) else 'FAIL'}: every dask-resample process at or below 1 GiB in every layout"
    )
    lines.append(f"machine: {os.cpu_count()} cores; load average now {os.getloadavg()[0]:.1f}")
    return lines


def orchestrate(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir: {workdir}; load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    results = [run_layout(spec, args, workdir) for spec in layouts(args)]
    if not args.keep_data:
        try:
            workdir.rmdir()  # only if nothing else is left in it
        except OSError:
            pass
    print("\n".join(report_lines(results, args)), flush=True)
    if args.json:
        doc = {"args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "results": results}
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--layouts", choices=("bench8", "survey", "both"), default="both", help="which layouts to run")
    b = p.add_argument_group("bench8 layout (the data of bench_vs_jwst.py with cosmic rays)")
    b.add_argument("--size", type=int, default=2048, help="detector size N (N x N pixels)")
    b.add_argument("--dithers", type=int, default=4, help="pointings")
    b.add_argument("--detectors", type=int, default=2, help="detectors per pointing")
    b.add_argument("--cosmic-rays", type=float, default=0.005, help="fraction of each exposure's pixels hit")
    s = p.add_argument_group("survey layout")
    s.add_argument("--survey-grid", type=_grid, default="8x8", metavar="COLSxROWS", help="pointings along x and y")
    s.add_argument("--survey-size", type=int, default=1024, help="detector size N (N x N pixels per exposure)")
    s.add_argument("--survey-dithers", type=int, default=2, help="exposures per pointing")
    s.add_argument("--overlap", type=float, default=0.04, help="fraction of the field shared by neighbours")
    s.add_argument(
        "--survey-cosmic-rays",
        type=float,
        default=0.005,
        help="fraction of each exposure's pixels hit (0: none, and the dataset is bench_scale.py's)",
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
        "scheduler and workers in processes of their own",
    )
    c.add_argument("--tile", type=int, default=1024, help="tile size of the group images and the median")
    c.add_argument("--sample-interval", type=float, default=0.1, help="seconds between RSS samples")
    r = p.add_argument_group("jwst")
    r.add_argument("--jwst", action=argparse.BooleanOptionalAction, default=True, help="run jwst's step")
    r.add_argument(
        "--jwst-memory-fraction",
        type=float,
        default=0.5,
        help="skip in_memory=True when its median cube needs more than this fraction of the memory",
    )
    r.add_argument(
        "--disk-fraction",
        type=float,
        default=0.6,
        help="skip in_memory=False when its temporary files and outputs need more than this fraction "
        "of the free disk under --workdir",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs of each program per layout; the median is reported")
    d = p.add_argument_group("data")
    d.add_argument("--workdir", default="/tmp/dask-resample-bench", help="datasets and temporary outputs")
    d.add_argument("--keep-data", action="store_true", help="keep the datasets (otherwise removed after use)")
    d.add_argument(
        "--write-processes", type=int, default=os.cpu_count() or 1, help="processes writing the survey dataset"
    )
    d.add_argument("--json", metavar="PATH", help="also write all measurements as JSON")
    # internal: child processes
    p.add_argument("--child", choices=("ours", "jwst"), help=argparse.SUPPRESS)
    p.add_argument("--asn", help=argparse.SUPPRESS)
    p.add_argument("--out-dir", help=argparse.SUPPRESS)
    p.add_argument("--cwd", help=argparse.SUPPRESS)
    p.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child == "ours":
        child_ours(args)
        return 0
    if args.child == "jwst":
        child_jwst(args)
        return 0
    if args.repeat < 1:
        build_parser().error("--repeat: expected at least 1")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
