#!/usr/bin/env python
"""Benchmark dask-resample against jwst's ResampleImage on NIRCam-like exposures.

Both programs drizzle the same synthetic ``*_cal.fits`` exposures with the same
parameters (those of jwst's ResampleStep: ``good_bits="~DO_NOT_USE+NON_SCIENCE"``,
variances resampled and reported, ``err`` from the variances, context on):

* **jwst** -- ``ResampleImage(ModelLibrary(asn, on_disk=True), ...).resample_many_to_one()``
  in a process of its own, as the pipeline's resample step runs it;
* **dask-resample** -- ``dask_resample.resample(asn, out.zarr, ...)`` on a fresh
  ``LocalCluster`` (``--workers`` x ``--threads``), writing a Zarr mosaic, driven
  from a process of its own.

Wall time is measured around the resampling call in each process (imports and
cluster start-up excluded; workers import their modules before the clock starts).
Peak RSS is ``VmHWM`` of every process (its own address space): the reference
process, the dask-resample client process (which also hosts the scheduler and
the nannies of a LocalCluster) and each worker process.

The scaling run drizzles the same number of inputs spread over about 4 times
the mosaic area (the pointings laid out 2 x 2 side by side) and reports seconds
per input for both programs.

Usage::

    python benchmarks/bench_vs_jwst.py --size 2048 --dithers 4 --detectors 2 --workers 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
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
    task_kind,
    warm_worker,
    worker_cpu,
    worker_maxrss,
)

TARGET_SPEEDUP = 1.8
TARGET_RSS = 1 * GIB
TARGET_FLATNESS = 0.15


# ----------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------
def base_dataset(workdir: Path, size: int, dithers: int, detectors: int) -> Path:
    """The main dataset: ``dithers`` small dithers of ``detectors`` detectors; returns the association."""
    from dask_resample.testing import synthetic

    spec = {"kind": "base", "size": size, "dithers": dithers, "detectors": detectors}
    directory = workdir / f"base-{size}-{dithers}x{detectors}"
    if not dataset_cached(directory, spec):
        t0 = time.perf_counter()
        synthetic.write_dataset(directory, n_dithers=dithers, n_detectors=detectors, shape=(size, size), seed=11)
        mark_dataset(directory, spec)
        print(
            f"wrote {dithers * detectors} exposures of {size}x{size} to {directory} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    return directory / "synthetic_asn.json"


def wide_dataset(workdir: Path, size: int, dithers: int, detectors: int) -> Path:
    """The same number of exposures, with the pointings laid out side by side (about 4x the area).

    Pointing ``k`` is shifted by whole fields of view along the detector axes
    (a 2 x 2 layout for four pointings), each pointing written as its own
    one-dither dataset in a sub-directory; one association lists them all.
    """
    from dask_resample.testing import synthetic

    spec = {"kind": "wide", "size": size, "dithers": dithers, "detectors": detectors}
    directory = workdir / f"wide-{size}-{dithers}x{detectors}"
    asn_path = directory / "wide_asn.json"
    if dataset_cached(directory, spec):
        return asn_path
    t0 = time.perf_counter()
    scale = 0.031
    ra0, dec0, roll = 53.16, -27.78, 20.0
    gap = max(size // 16, 4)
    field_x = detectors * size + (detectors - 1) * gap  # ideal pixels
    field_y = size
    cols = math.ceil(math.sqrt(dithers))
    centre = synthetic.make_detector_wcs(
        ra0, dec0, roll_deg=roll, shape=(1, 1), pixel_scale_arcsec=scale, distortion=0.0
    )
    names: list[str] = []
    for k in range(dithers):
        ix, iy = k % cols, k // cols
        # 1% overlap keeps the layout contiguous
        ra, dec = (float(v) for v in centre(ix * field_x * 0.99, iy * field_y * 0.99, with_bounding_box=False))
        sub = f"p{k}"
        ds = synthetic.write_dataset(
            directory / sub,
            n_dithers=1,
            n_detectors=detectors,
            shape=(size, size),
            ra_deg=ra,
            dec_deg=dec,
            roll_deg=roll,
            seed=100 + k,
        )
        names.extend(f"{sub}/{p.name}" for p in ds.paths)
    asn = {
        "asn_type": "image3",
        "asn_rule": "DMS_Level3_Base",
        "asn_id": "a3001",
        "asn_pool": "synthetic_pool",
        "program": "01234",
        "target": "none",
        "products": [{"name": "wide_mosaic", "members": [{"expname": n, "exptype": "science"} for n in names]}],
    }
    asn_path.write_text(json.dumps(asn, indent=2))
    mark_dataset(directory, spec)
    print(
        f"wrote {len(names)} exposures of {size}x{size} in a {cols}-wide layout to {directory} "
        f"({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    return asn_path


# ----------------------------------------------------------------------------
# child processes
# ----------------------------------------------------------------------------
def child_reference(asn: Path, result: Path, data_out: Path) -> None:
    """Run jwst's ResampleImage as the resample step does; write timings and the data array."""
    import numpy as np

    model, seconds, cpu = run_reference_resample(asn, reference_wcs_pars(1.0))
    np.save(data_out, np.asarray(model.data))
    result.write_text(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": {"reference": cpu},
                "rss": {"reference": maxrss_bytes()},
                "shape_yx": list(model.data.shape),
            }
        )
    )


def _profile(task_stream: list[dict[str, Any]], t_start: float, t_end: float) -> dict[str, Any]:
    """Compute seconds per task kind (drizzle, tile reduction and write, metadata, ...) and the phases of the run.

    ``t_start``/``t_end`` are the wall-clock (epoch) bounds of the ``resample`` call.
    """
    per_kind: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for rec in task_stream:
        kind = task_kind(rec.get("key"))
        for ss in rec.get("startstops", []):
            if ss.get("action") == "compute":
                per_kind[kind] += ss["stop"] - ss["start"]
                first[kind] = min(first.get(kind, math.inf), ss["start"])
                last[kind] = max(last.get(kind, -math.inf), ss["stop"])
        counts[kind] += 1
    phases = {}
    if "drizzle" in first:
        phases["planning (until the first drizzle task)"] = first["drizzle"] - t_start
        end_tasks = max(last.values())
        phases["drizzle and tile tasks"] = end_tasks - first["drizzle"]
        phases["after the last task (metadata, opening the result)"] = t_end - end_tasks
    return {"compute_seconds": dict(per_kind), "tasks": dict(counts), "phases": phases}


def child_dask(
    asn: Path, result: Path, out: Path, workers: int, threads: int, tile: int, profile: bool, user_cluster: bool = False
) -> None:
    """Run dask-resample on a fresh LocalCluster; write timings and per-process peak RSS.

    ``user_cluster``: a ``distributed.LocalCluster`` with distributed's own defaults (as a
    user starts one, its nannies setting ``MALLOC_TRIM_THRESHOLD_``) instead of the one
    ``dask_resample.cluster.connect`` starts.
    """
    warnings.simplefilter("ignore")
    from distributed import Client, LocalCluster, get_task_stream

    import dask_resample
    from dask_resample.cluster import connect

    if user_cluster:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, dashboard_address=":0")
        client = Client(cluster)
        handle = None
    else:
        handle = connect(cluster="local", n_workers=workers, threads_per_worker=threads)
        client = handle.client
    try:
        client.wait_for_workers(workers)
        client.run(warm_worker)
        if user_cluster:  # as dask-resample's own LocalCluster does as it starts (the README's advice)
            dask_resample.prepare_workers(client)
        cpu0 = client.run(worker_cpu)
        c0 = time.process_time()
        t0 = time.perf_counter()
        epoch0 = time.time()
        if profile:
            with get_task_stream(client) as ts:
                dask_resample.resample(
                    asn, out, client=client, tile_shape=(tile, tile), overwrite=True, progress=False, **PARAMS
                )
            stream = ts.data
        else:
            dask_resample.resample(
                asn, out, client=client, tile_shape=(tile, tile), overwrite=True, progress=False, **PARAMS
            )
            stream = []
        seconds = time.perf_counter() - t0
        epoch1 = time.time()
        client_cpu = time.process_time() - c0
        cpu1 = client.run(worker_cpu)
        names = {addr: info.get("name") for addr, info in client.scheduler_info()["workers"].items()}
        rss = client.run(worker_maxrss)
        order = sorted(rss, key=lambda addr: str(names.get(addr, addr)))
        worker_rss = {f"worker-{names.get(addr, addr)}": rss[addr] for addr in order}
        cpu_by_worker = {f"worker-{names.get(addr, addr)}": cpu1[addr] - cpu0.get(addr, 0.0) for addr in order}
    finally:
        if handle is not None:
            handle.close()
        else:
            client.close()
            cluster.close()
    doc: dict[str, Any] = {
        "seconds": seconds,
        "cpu": {"client": client_cpu, **cpu_by_worker},
        "rss": {"client": maxrss_bytes(), **worker_rss},
        "shape_yx": list(dask_resample.open_mosaic(out)["data"].shape),
    }
    if profile:
        doc["profile"] = _profile(stream, epoch0, epoch1)
    result.write_text(json.dumps(doc))


def _spawn(args: list[str]) -> dict[str, Any]:
    """Run this script in a child process with ``args``; return its JSON result."""
    return spawn(__file__, args)


def run_reference(asn: Path, runs: Path, label: str) -> dict[str, Any]:
    data = runs / f"reference-{label}-data.npy"
    doc = _spawn(["--child", "reference", "--asn", str(asn), "--data-out", str(data)])
    doc["data_path"] = str(data)
    return doc


def run_dask(asn: Path, runs: Path, label: str, args: argparse.Namespace, user_cluster: bool = False) -> dict[str, Any]:
    out = runs / f"dask-{label}{'-user' if user_cluster else ''}.zarr"
    child = [
        "--child",
        "dask",
        "--asn",
        str(asn),
        "--zarr-out",
        str(out),
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--tile",
        str(args.tile),
    ]
    child.append("--profile" if args.profile else "--no-profile")
    if user_cluster:
        child.append("--user-cluster-child")
    doc = _spawn(child)
    doc["zarr_path"] = str(out)
    return doc


def _median_run(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time, with every process's peak RSS the largest over all runs."""
    ordered = sorted(docs, key=lambda d: d["seconds"])
    doc = dict(ordered[(len(ordered) - 1) // 2])
    doc["rss"] = {k: max(d["rss"].get(k, 0) for d in docs) for k in doc["rss"]}
    doc["all_seconds"] = [d["seconds"] for d in docs]
    return doc


def run_pair(asn: Path, runs: Path, label: str, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the programs ``args.repeat`` times, the order rotated each repeat, so that all see the same machine.

    Returns the median-time run of each (peak RSS: the largest of all runs).
    """
    refs, ours, users = [], [], []
    programs = ["jwst", "ours", "user"] if args.user_cluster and label == "1x" else ["jwst", "ours"]
    for k in range(args.repeat):
        # each repeat starts with the next program: every program meets every place in the order
        # (the run right after another program's process otherwise always meets the same machine state)
        print(f"  [{label} {k + 1}/{args.repeat}]", end="", flush=True)
        for i, program in enumerate(programs[k % len(programs) :] + programs[: k % len(programs)]):
            sep = " " if i == 0 else "; "
            if program == "jwst":
                print(f"{sep}jwst ResampleImage ...", end=" ", flush=True)
                run = run_reference(asn, runs, label)
                refs.append(run)
            else:
                where = f"{args.workers} workers x {args.threads} thread"
                where = "a user-started LocalCluster" if program == "user" else where
                print(f"{sep}dask-resample ({where}) ...", end=" ", flush=True)
                run = run_dask(asn, runs, label, args, user_cluster=program == "user")
                (users if program == "user" else ours).append(run)
            print(f"{run['seconds']:.1f} s", end="", flush=True)
        print(flush=True)
    if users:
        args.user_run = _median_run(users)
    return _median_run(refs), _median_run(ours)


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------
def parity(reference_npy: str, zarr_path: str) -> dict[str, Any]:
    """Largest |ours - reference| / max |reference| of ``data``, and whether the NaN patterns agree."""
    import numpy as np

    import dask_resample

    ref = np.load(reference_npy)
    ours = np.asarray(dask_resample.open_mosaic(zarr_path)["data"].values)
    if ours.shape != ref.shape:
        return {"shape_equal": False, "max_rel_diff": math.inf, "nan_pattern_equal": False}
    nan_equal = bool(np.array_equal(np.isnan(ours), np.isnan(ref)))
    both = np.isfinite(ours) & np.isfinite(ref)
    scale = float(np.nanmax(np.abs(ref))) or 1.0
    diff = float(np.max(np.abs(ours[both].astype(np.float64) - ref[both]))) / scale if both.any() else 0.0
    return {"shape_equal": True, "max_rel_diff": diff, "nan_pattern_equal": nan_equal}


def _secs(doc: dict[str, Any]) -> str:
    return ", ".join(f"{v:.1f}" for v in doc.get("all_seconds", [doc["seconds"]]))


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f} MiB"


def main_table(ref: dict[str, Any], ours: dict[str, Any], args: argparse.Namespace) -> str:
    workers = [k for k in ours["rss"] if k.startswith("worker-")]
    cols = ["reference", "client", *workers]
    head = "| program | wall [s] | speedup vs jwst | " + " | ".join(f"peak RSS {c}" for c in cols) + " |"
    sep = "|" + "---|" * (3 + len(cols))
    ref_row = (
        f"| jwst ResampleImage (1 process) | {ref['seconds']:.1f} | 1.00x | "
        + " | ".join(_mib(ref["rss"].get(c)) for c in cols)
        + " |"
    )
    speed = ref["seconds"] / ours["seconds"]
    ours_row = (
        f"| dask-resample ({args.workers} workers x {args.threads} thread) | {ours['seconds']:.1f} | "
        f"{speed:.2f}x | " + " | ".join(_mib(ours["rss"].get(c)) for c in cols) + " |"
    )
    rows = [head, sep, ref_row, ours_row]
    user = getattr(args, "user_run", None)
    if user is not None:
        rows.append(
            f"| dask-resample on a LocalCluster the user started (distributed's defaults) | "
            f"{user['seconds']:.1f} | {ref['seconds'] / user['seconds']:.2f}x | "
            + " | ".join(_mib(user["rss"].get(c)) for c in cols)
            + " |"
        )
    return "\n".join(rows)


def cpu_line(ref: dict[str, Any], ours: dict[str, Any]) -> str:
    """CPU seconds of every process: comparable even when the machine is shared."""
    ref_cpu = sum(ref.get("cpu", {}).values())
    parts = ", ".join(f"{k} {v:.1f}" for k, v in ours.get("cpu", {}).items())
    total = sum(ours.get("cpu", {}).values())
    busiest = max((v for k, v in ours.get("cpu", {}).items() if k.startswith("worker-")), default=0.0)
    return (
        f"CPU seconds: jwst {ref_cpu:.1f}; dask-resample {total:.1f} ({parts}); "
        f"jwst CPU / busiest worker's CPU = {ref_cpu / busiest:.2f}x"
        if busiest
        else ""
    )


def scaling_table(rows: list[tuple[str, dict, dict, int]]) -> str:
    """rows: (label, reference result, dask result, n_inputs)."""
    out = [
        "| layout | mosaic [Mpix] | jwst [s/input] | dask-resample [s/input] | speedup | jwst [CPU s/input] | "
        "dask-resample [CPU s/input] |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, ref, ours, n in rows:
        ny, nx = ref["shape_yx"]
        ref_cpu = sum(ref.get("cpu", {}).values()) / n
        our_cpu = sum(ours.get("cpu", {}).values()) / n
        out.append(
            f"| {label} | {ny * nx / 1e6:.1f} | {ref['seconds'] / n:.2f} | {ours['seconds'] / n:.2f} | "
            f"{ref['seconds'] / ours['seconds']:.2f}x | {ref_cpu:.2f} | {our_cpu:.2f} |"
        )
    return "\n".join(out)


def profile_lines(ours: dict[str, Any], n_workers: int, threads: int) -> list[str]:
    prof = ours.get("profile")
    if not prof:
        return []
    total = sum(prof["compute_seconds"].values())
    slots = n_workers * threads * ours["seconds"]
    lines = [
        f"where worker time goes ({total:.1f} s of task compute in {slots:.1f} worker-thread seconds, "
        f"{100 * total / slots:.0f}% busy):"
    ]
    for kind, secs in sorted(prof["compute_seconds"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {kind:<18} {secs:7.1f} s  {100 * secs / total:5.1f}%  ({prof['tasks'].get(kind, 0)} tasks)")
    if prof.get("phases"):
        lines.append(f"wall-clock phases of the {ours['seconds']:.1f} s run:")
        for name, secs in prof["phases"].items():
            lines.append(f"  {secs:6.1f} s  {name}")
    return lines


def orchestrate(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-dask-resample-"))
    workdir.mkdir(parents=True, exist_ok=True)
    runs = workdir / "runs"
    runs.mkdir(exist_ok=True)
    print(f"workdir: {workdir}", flush=True)
    asn = base_dataset(workdir, args.size, args.dithers, args.detectors)
    n = count_inputs(asn)

    ref, ours = run_pair(asn, runs, "1x", args)
    par = parity(ref["data_path"], ours["zarr_path"])

    ny, nx = ref["shape_yx"]
    report = [
        "",
        f"## {n} exposures of {args.size}x{args.size} ({args.dithers} dithers x {args.detectors} detectors), "
        f"mosaic {ny} x {nx}, tiles {args.tile}x{args.tile}",
        "",
        main_table(ref, ours, args),
        "",
        f"wall times of the {args.repeat} runs: jwst {_secs(ref)}; dask-resample {_secs(ours)}"
        + (f"; on the user's LocalCluster {_secs(args.user_run)}" if getattr(args, "user_run", None) else "")
        + " (median reported; "
        "peak RSS: the largest of all runs)",
        "",
        f"parity: max |data - jwst| / max |jwst| = {par['max_rel_diff']:.2g}; "
        f"NaN pattern identical: {'yes' if par['nan_pattern_equal'] else 'NO'}",
        "",
        cpu_line(ref, ours),
    ]
    results: dict[str, Any] = {"args": vars(args), "reference_1x": ref, "dask_1x": ours, "parity_1x": par}

    speedup = ref["seconds"] / ours["seconds"]
    rss_max = max(ours["rss"].values())
    checks = [
        f"speedup {speedup:.2f}x (target >= {TARGET_SPEEDUP}x): {'met' if speedup >= TARGET_SPEEDUP else 'MISSED'}",
        f"largest peak RSS of a dask-resample process {_mib(rss_max)} (target <= 1 GiB): "
        f"{'met' if rss_max <= TARGET_RSS else 'MISSED'}; jwst process: {_mib(ref['rss']['reference'])}",
    ]
    if args.scaling:
        wide = wide_dataset(workdir, args.size, args.dithers, args.detectors)
        print("scaling run on the 4x layout:", flush=True)
        ref4, ours4 = run_pair(wide, runs, "4x", args)
        par4 = parity(ref4["data_path"], ours4["zarr_path"])
        n4 = count_inputs(wide)
        area = (ref4["shape_yx"][0] * ref4["shape_yx"][1]) / (ny * nx)
        report += [
            "",
            f"## scaling: {n} inputs over 1x and {area:.1f}x the mosaic area",
            "",
            scaling_table([("1x (dithered)", ref, ours, n), (f"{area:.1f}x (side by side)", ref4, ours4, n4)]),
            "",
            f"parity ({area:.1f}x): max rel diff {par4['max_rel_diff']:.2g}; NaN pattern identical: "
            f"{'yes' if par4['nan_pattern_equal'] else 'NO'}",
        ]
        growth = (ours4["seconds"] / n4) / (ours["seconds"] / n) - 1.0
        growth_ref = (ref4["seconds"] / n4) / (ref["seconds"] / n) - 1.0
        checks.append(
            f"dask-resample s/input change {100 * growth:+.0f}% (target within +/-{100 * TARGET_FLATNESS:.0f}%): "
            f"{'met' if abs(growth) <= TARGET_FLATNESS else 'MISSED'}; jwst: {100 * growth_ref:+.0f}%"
        )
        rss4 = max(ours4["rss"].values())
        checks.append(
            f"largest peak RSS of a dask-resample process at {area:.1f}x: {_mib(rss4)}; "
            f"jwst: {_mib(ref4['rss']['reference'])}"
        )
        results.update({"reference_4x": ref4, "dask_4x": ours4, "parity_4x": par4, "area_ratio": area})
    report += ["", "targets:", *[f"- {c}" for c in checks]]
    report += ["", *profile_lines(ours, args.workers, args.threads)]
    print("\n".join(report), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=2048, help="detector size in pixels (default 2048)")
    p.add_argument("--dithers", type=int, default=4, help="pointings (default 4)")
    p.add_argument("--detectors", type=int, default=2, help="detectors per pointing (default 2)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    p.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    p.add_argument("--tile", type=int, default=1024, help="tile size of the Zarr mosaic (default 1024)")
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each program per layout, the order rotated each repeat; the median is reported (default 3)",
    )
    p.add_argument(
        "--scaling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the 1x/4x area scaling comparison (default on)",
    )
    p.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="report where dask-resample's worker time goes (default on)",
    )
    p.add_argument(
        "--user-cluster",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run dask-resample on a distributed.LocalCluster started with distributed's own "
        "defaults, as a user starts one (default on)",
    )
    p.add_argument("--workdir", help="directory for datasets and outputs (kept; datasets are reused)")
    p.add_argument("--json", metavar="FILE", help="also write all results as JSON")
    # internal: child processes
    p.add_argument("--child", choices=("reference", "dask"), help=argparse.SUPPRESS)
    p.add_argument("--asn", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--data-out", help=argparse.SUPPRESS)
    p.add_argument("--zarr-out", help=argparse.SUPPRESS)
    p.add_argument("--user-cluster-child", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child == "reference":
        child_reference(Path(args.asn), Path(args.result), Path(args.data_out))
        return 0
    if args.child == "dask":
        child_dask(
            Path(args.asn),
            Path(args.result),
            Path(args.zarr_out),
            args.workers,
            args.threads,
            args.tile,
            bool(args.profile),
            bool(args.user_cluster_child),
        )
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
