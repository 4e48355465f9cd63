#!/usr/bin/env python
"""Survey-scale benchmark of dask-resample: many inputs, large mosaics, graph and scheduler costs.

Two layouts, each written by :mod:`dask_resample.synthetic_survey` (cached by
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

Usage::

    python benchmarks/bench_scale.py --grid 10x10 --size 1024 --small-count 2000 --json scale.json
    python benchmarks/bench_scale.py --grid 2x2 --size 256 --small-count 40    # a quick check
"""

from __future__ import annotations

import argparse
import json
import math
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
    from dask_resample.synthetic_survey import SurveyLayout

    out = []
    if "survey" in args.layouts:
        cols, rows = args.grid
        layout = SurveyLayout(grid_xy=(cols, rows), dithers=args.dithers, shape=(args.size, args.size),
                              overlap=args.overlap)  # fmt: skip
        out.append({
            "name": f"survey-{cols}x{rows}x{args.dithers}-{args.size}-o{args.overlap:g}",
            "layout": layout,
            "psr": args.pixel_scale_ratio,
            "label": f"survey {cols}x{rows}x{args.dithers} of {args.size}² (psr {args.pixel_scale_ratio:g})",
        })
    if "small" in args.layouts:
        layout = SurveyLayout.for_count(args.small_count, dithers=2, shape=(args.small_size, args.small_size),
                                        overlap=args.overlap)  # fmt: skip
        cols, rows = layout.grid_xy
        out.append({
            "name": f"small-{args.small_count}-{args.small_size}-o{args.overlap:g}",
            "layout": layout,
            "psr": 1.0,
            "label": f"small {args.small_count} of {args.small_size}² ({cols}x{rows}x2, psr 1)",
        })
    return out


def ensure_dataset(directory: Path, layout: Any, processes: int) -> Path:
    """Write the dataset of ``layout`` unless ``directory`` already holds it; return the association."""
    from dask_resample.synthetic_survey import write_survey

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
    print(f"wrote {n} exposures of {layout.shape[1]}x{layout.shape[0]} to {directory} "
          f"({time.perf_counter() - t0:.0f} s with {processes} processes)", flush=True)
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
        "tasks_by_kind": counts,
        "seconds_by_kind": dict(seconds),
        "tasks": sum(counts.values()),
        "graph_tasks": sum(n for k, n in counts.items() if k not in PLANNING_KINDS),
        "to_first_drizzle": first_drizzle - epoch0 if math.isfinite(first_drizzle) else None,
    }


# ----------------------------------------------------------------------------
# child processes
# ----------------------------------------------------------------------------
def child_dask(args: argparse.Namespace) -> None:
    """Run dask-resample once; write timings, peak RSS per process, the task-stream summary and the crop."""
    warnings.simplefilter("ignore")
    import dask.config
    import numpy as np
    from distributed import get_task_stream

    import dask_resample

    # keep every task of the run in the scheduler's task-stream buffer
    dask.config.set({"distributed.scheduler.dashboard.tasks.task-stream-length": 10_000_000})
    os.environ["DASK_DISTRIBUTED__SCHEDULER__DASHBOARD__TASKS__TASK_STREAM_LENGTH"] = "10000000"
    handle = start_cluster(args)
    client = handle.client
    try:
        client.wait_for_workers(args.workers)
        client.run(warm_worker)
        names = {addr: info.get("name") for addr, info in client.scheduler_info()["workers"].items()}
        worker_pids = client.run(os.getpid)
        pids = {"client": os.getpid(), "scheduler": int(client.run_on_scheduler(os.getpid))}
        for rank, addr in enumerate(sorted(worker_pids, key=lambda a: (str(names.get(a)), a))):
            pids[f"worker-{rank}"] = int(worker_pids[addr])
        with RssSampler(pids, args.sample_interval) as sampler:
            scheduler_rss0 = sampler.latest[pids["scheduler"]]
            epoch0 = time.time()
            t0 = time.perf_counter()
            with get_task_stream(client) as ts:
                dask_resample.resample(
                    args.asn, args.zarr_out, client=client, wcs_pars=reference_wcs_pars(args.psr),
                    tile_shape=(args.tile, args.tile), overwrite=True, progress=False, **PARAMS,
                )  # fmt: skip
            seconds = time.perf_counter() - t0
        stream = ts.data
        hwm = {name: vmhwm_bytes(pid) for name, pid in pids.items()}
    finally:
        handle.close()
    rss = {name: max(hwm[name] or 0, sampler.peak[pid]) for name, pid in pids.items()}
    ds = dask_resample.open_mosaic(args.zarr_out)
    shape = tuple(int(v) for v in ds["data"].shape)
    doc: dict[str, Any] = {
        "seconds": seconds,
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
    Path(args.result).write_text(json.dumps({
        "seconds": seconds,
        "cpu": cpu,
        "shape_yx": list(shape),
        "rss_peak": {"jwst": maxrss_bytes()},
    }))


# ----------------------------------------------------------------------------
# orchestration
# ----------------------------------------------------------------------------
def _child_args(args: argparse.Namespace, kind: str, asn: Path, psr: float, result_files: dict[str, Path]) -> list[str]:
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


def run_layout(spec: dict[str, Any], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Write (or reuse) the dataset, run dask-resample, then jwst if its output fits; remove the outputs."""
    directory = workdir / spec["name"]
    asn = ensure_dataset(directory, spec["layout"], args.write_processes)
    n = count_inputs(asn)
    runs = workdir / f"runs-{os.getpid()}"
    runs.mkdir(parents=True, exist_ok=True)
    files = {"zarr": runs / f"{spec['name']}.zarr", "ours": runs / f"{spec['name']}-dask.npz",
             "ref": runs / f"{spec['name']}-jwst.npz"}  # fmt: skip
    out: dict[str, Any] = {"layout": spec["label"], "name": spec["name"], "n_inputs": n, "psr": spec["psr"]}
    try:
        print(f"[{spec['label']}] dask-resample ({args.workers} workers x {args.threads} thread, "
              f"{args.cluster} cluster) ...", end=" ", flush=True)
        ours = spawn(__file__, _child_args(args, "dask", asn, spec["psr"],
                                           {"--zarr-out": files["zarr"], "--crop-out": files["ours"]}))
        print(f"{ours['seconds']:.1f} s", flush=True)
        out["dask"] = ours
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
        shutil.rmtree(runs, ignore_errors=True)
        if not args.keep_data:
            shutil.rmtree(directory, ignore_errors=True)
    return out


def _mib(value: int | None) -> str:
    return "-" if not value else f"{value / 2**20:,.0f} MiB"


def main_table(results: list[dict[str, Any]], n_workers: int) -> str:
    """One Markdown table: a row per layout and program."""
    workers = [f"worker-{k}" for k in range(n_workers)]
    for res in results:
        workers += [k for k in res["dask"]["rss_peak"] if k.startswith("worker-") and k not in workers]
    head = ["layout", "program", "inputs", "output (ny x nx)", "Gpix", "reference output arrays", "wall [s]",
            "s/input", "speedup", "peak RSS client", "peak RSS scheduler", *[f"peak RSS {w}" for w in workers],
            "tasks", "tasks/input", "to first drizzle [s]", "client s/input", "scheduler KiB/task"]  # fmt: skip
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        ours, ref, n = res["dask"], res["jwst"], res["n_inputs"]
        ny, nx = ours["shape_yx"]
        common = [res["layout"], "", f"{n:,}", f"{ny:,} x {nx:,}", f"{ny * nx / 1e9:.3f}",
                  f"{res['reference_output_bytes'] / GIB:.2f} GiB"]  # fmt: skip
        rss = ours["rss_peak"]
        same = ours["scheduler_in_client"]
        first = ours.get("to_first_drizzle")
        per_task = ours["scheduler_rss_growth"] / max(ours["tasks"], 1) / 1024
        speed = f"{ref['seconds'] / ours['seconds']:.2f}x" if "seconds" in ref else "-"
        common[1] = f"dask-resample ({res.get('cluster', 'local')})"
        rows.append("| " + " | ".join([
            *common, f"{ours['seconds']:.1f}", f"{ours['seconds'] / n:.3f}", speed,
            _mib(rss["client"]), "(in client)" if same else _mib(rss["scheduler"]), *[_mib(rss.get(w)) for w in workers],
            f"{ours['tasks']:,}", f"{ours['tasks'] / n:.1f}", "-" if first is None else f"{first:.1f}",
            "-" if first is None else f"{first / n:.4f}", f"{per_task:.1f}" + (" (client+scheduler)" if same else ""),
        ]) + " |")  # fmt: skip
        common[1] = "jwst ResampleImage (1 process)"
        if "seconds" in ref:
            jwst_cells = [f"{ref['seconds']:.1f}", f"{ref['seconds'] / n:.3f}", "1.00x", _mib(ref["rss_peak"]["jwst"])]
        else:
            jwst_cells = [ref["skipped"], "-", "-", "-"]
        rows.append("| " + " | ".join([*common, *jwst_cells, "-", *["-" for _ in workers], "-", "-", "-", "-", "-"])
                    + " |")
    return "\n".join(rows)


def kinds_table(results: list[dict[str, Any]]) -> str:
    """Compute seconds and task counts per task kind of every dask-resample run."""
    rows = ["| layout | task kind | tasks | compute [s] | share of task time | s/input |", "|---|---|---|---|---|---|"]
    for res in results:
        secs, counts, n = res["dask"]["seconds_by_kind"], res["dask"]["tasks_by_kind"], res["n_inputs"]
        total = sum(secs.values()) or 1.0
        kinds = [k for k in REPORTED_KINDS if k in counts] + sorted(k for k in counts if k not in REPORTED_KINDS)
        for kind in kinds:
            s = secs.get(kind, 0.0)
            rows.append(f"| {res['layout']} | {kind} | {counts[kind]:,} | {s:.1f} | {100 * s / total:.1f}% | "
                        f"{s / n:.4f} |")
    return "\n".join(rows)


def parity_lines(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for res in results:
        par = res.get("parity")
        if not par:
            continue
        y0, y1, x0, x1 = par["box"]
        if not par["comparable"] or not par.get("shape_equal", True):
            lines.append(f"- {res['layout']}: outputs not comparable (shapes differ: "
                         f"jwst {res['jwst']['shape_yx']}, dask-resample {res['dask']['shape_yx']})")
            continue
        lines.append(
            f"- {res['layout']}: crop y {y0}:{y1}, x {x0}:{x1}: max |data diff| / max |data_jwst| = "
            f"{par['max_rel_diff']:.2g}; NaN pattern identical: {'yes' if par['nan_pattern_equal'] else 'NO'}; "
            f"con identical: {'yes' if par['con_equal'] else 'NO'} (planes jwst {par['con_planes'][0]}, "
            f"dask-resample {par['con_planes'][1]})"
        )
    return lines


def orchestrate(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir: {workdir}", flush=True)
    results = []
    for spec in layouts(args):
        res = run_layout(spec, args, workdir)
        res["cluster"] = f"{args.workers}x{args.threads}, {args.cluster}"
        results.append(res)
    if not args.keep_data:
        try:
            workdir.rmdir()  # only if nothing else is left in it
        except OSError:
            pass
    report = ["", main_table(results, args.workers), "", "Task time by kind (from the task stream):", "",
              kinds_table(results)]  # fmt: skip
    par = parity_lines(results)
    if par:
        report += ["", "Parity with jwst:", *par]
    report += [
        "",
        "Notes: peak RSS is the larger of VmHWM and the sampled peak (every "
        f"{args.sample_interval:g} s); 'to first drizzle' is the start of the first drizzle task after the "
        "call began (client graph construction and planning); scheduler KiB/task is the sampled growth of the "
        "scheduler process's RSS during the call divided by the tasks that ran"
        + ("; with a LocalCluster the scheduler runs in the client process, so it also counts the client's "
           "graph (an upper bound)." if args.cluster == "local" else "."),
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
    p.add_argument("--layouts", default="survey,small",
                   type=lambda s: [v.strip() for v in s.split(",") if v.strip()],
                   help="comma-separated layouts to run: survey, small")
    g = p.add_argument_group("survey layout")
    g.add_argument("--grid", type=_grid, default="10x10", metavar="COLSxROWS",
                   help="pointings along x and y (10x10: ~0.4-0.5 Gpix at psr 0.5; 14x14: ~0.8-1 Gpix)")
    g.add_argument("--size", type=int, default=1024, help="detector size N (N x N pixels per exposure)")
    g.add_argument("--dithers", type=int, default=2, help="exposures per pointing")
    g.add_argument("--pixel-scale-ratio", type=float, default=0.5, help="output / input pixel scale (wcs_pars)")
    s = p.add_argument_group("many-small-inputs layout")
    s.add_argument("--small-count", type=int, default=2000, help="number of exposures (2 dithers per pointing)")
    s.add_argument("--small-size", type=int, default=128, help="detector size of the small exposures")
    p.add_argument("--overlap", type=float, default=0.04,
                   help="fraction of the field shared by neighbouring pointings (both layouts)")
    c = p.add_argument_group("dask-resample")
    c.add_argument("--workers", type=int, default=2, help="workers")
    c.add_argument("--threads", type=int, default=1, help="threads per worker")
    c.add_argument("--memory-limit", default="auto", help="memory limit per worker (e.g. 4GiB, auto)")
    c.add_argument("--cluster", choices=("local", "subprocess"), default="local",
                   help="local: dask-resample's LocalCluster (scheduler inside the client process); subprocess: "
                        "scheduler and workers in processes of their own (scheduler memory measured alone)")
    c.add_argument("--tile", type=int, default=1024, help="tile (Zarr chunk) size of the mosaic")
    c.add_argument("--sample-interval", type=float, default=0.2, help="seconds between RSS samples")
    r = p.add_argument_group("reference")
    r.add_argument("--jwst", action=argparse.BooleanOptionalAction, default=True,
                   help="run jwst's ResampleImage side by side where it fits")
    r.add_argument("--jwst-max-gib", type=float, default=16.0,
                   help="skip jwst when its output arrays would need more than this many GiB")
    r.add_argument("--crop", type=int, default=1024, help="size of the centred crop compared with jwst")
    d = p.add_argument_group("data")
    d.add_argument("--workdir", default="/tmp/dask-resample-bench",
                   help="datasets (one sub-directory per layout and parameters) and temporary outputs")
    d.add_argument("--keep-data", action="store_true",
                   help="keep the datasets for later runs (otherwise removed after the run)")
    d.add_argument("--write-processes", type=int, default=os.cpu_count() or 1,
                   help="processes writing the datasets")
    d.add_argument("--json", metavar="PATH", help="also write all measurements as JSON")
    # internal: child processes
    p.add_argument("--child", choices=("reference", "dask"), help=argparse.SUPPRESS)
    p.add_argument("--asn", help=argparse.SUPPRESS)
    p.add_argument("--psr", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--zarr-out", help=argparse.SUPPRESS)
    p.add_argument("--crop-out", help=argparse.SUPPRESS)
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
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
