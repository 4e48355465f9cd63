#!/usr/bin/env python
"""Benchmark dask-resample against romancal's resampling on Roman WFI Level-2 images.

The inputs are synthetic ``WfiImage`` ASDF files written by
:mod:`dask_resample.testing.synthetic_roman` (romanisim's WCS of each WFI
detector: the focal-plane layout, its gaps and distortion) and an association
listing them. Two parts, each printing a markdown table (``--part`` may be repeated;
``--part all`` runs both):

``--part side-by-side`` (default on)
    romancal and dask-resample on the same files: 2 exposures x all 18 detectors,
    each detector binned ``--binning`` x ``--binning`` (default 4: 1022 x 1022
    pixels per detector, covering the whole detector at 0.44"/px). The size is
    scaled down from the real 4088 x 4088 detectors so that romancal fits on a
    24 GiB machine: its ``ResampleStep`` holds every input model in memory
    (``in_memory=True``) and the whole output mosaic with all its planes, so at
    full size the 36 inputs alone take about 9 GiB (16 bytes a pixel) and the
    mosaic of the whole focal plane tens of GiB more. The parameters are romancal's
    ``ResampleStep`` defaults on both sides (ours:
    :func:`dask_resample.roman.roman_params`), and the output grid is made from
    the inputs by each program with the same ``wcs_pars`` (pixel scale ratio 1),
    as ``tests/test_roman_parity.py`` does; the two grids are checked to have
    the same shape.

    * **romancal** -- in a process of its own, ``ModelLibrary(asn,
      on_disk=False)`` then ``ResampleData(...).resample_group(...)`` with the
      arguments ``ResampleStep.process`` gives it (context, variances, error
      from the variances, exposure times, metadata blending);
    * **dask-resample** -- ``dask_resample.resample(asn, out.zarr,
      params=roman_params(), ...)`` on a fresh ``LocalCluster`` of
      ``--workers`` x 1 thread, driven from a process of its own.

    Parity: the largest ``|data - data_romancal| / max|data_romancal|`` where both
    are finite (and the same for the weight), whether the NaN patterns of
    ``data`` agree, and whether the context arrays are identical.

``--part full-size``
    dask-resample only, on full 4088 x 4088 detectors (``--exposures``, default
    2, x ``--detectors``, default 1,2) onto a grid of half the native pixel
    scale (``wcs_pars={"pixel_scale_ratio": 0.5}``: 0.055"/px, the scale of
    romancal's skycells), on a ``LocalCluster`` of ``--workers`` x 1 thread. It
    shows that every process (client and workers) stays at or below 1 GiB.
    romancal is not run at this size here: its ``ResampleData`` holds the whole
    output mosaic and every plane of it in memory while it drizzles -- data,
    weight, a running sum and a weight per variance array (``var_rnoise``,
    ``var_poisson``), three exposure-time planes (nine float32 planes) and
    ``ceil(N / 32)`` int32 context planes for N inputs, with ``err`` and the
    final variances added when it finishes -- on top of the input models. The
    script prints that lower bound in GiB from the output shape of the run: for
    the defaults (2 exposures of detectors 1 and 2, a grid of about 17,700 x
    8,400 pixels) about 5.5 GiB, five times the 1 GiB a dask-resample process
    stays within; for the whole 18-detector focal plane at this scale (about
    32,500 x 53,300 pixels at the datasets' position angle) about 70 GiB.

Wall time is measured around the resampling call in each process (imports, and
for dask-resample the cluster start-up, excluded; workers import their modules
before the clock starts). Peak RSS is ``VmHWM`` of every process (its own
address space): the romancal process, the dask-resample client process (which
also hosts the scheduler and the nannies of a LocalCluster) and each worker.

Datasets are written under ``--workdir`` (default: a fresh directory under
``/tmp``, removed at the end unless ``--keep``; in a directory given, only what the
run wrote is removed); a ``dataset.json`` marker lets a kept dataset be reused.
Writing a full-size detector file takes about 40 s.

Usage::

    python benchmarks/bench_roman.py                                  # side by side, 18 detectors binned 4x4
    python benchmarks/bench_roman.py --part full-size                 # 2 exposures x detectors 1,2 of 4088x4088
    python benchmarks/bench_roman.py --part all --workers 2
    python benchmarks/bench_roman.py --part all --binning 8 --exposures 1 --detectors 1   # a quick check
    python benchmarks/bench_roman.py --workdir /tmp/bench-roman --keep --json roman.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from _common import (
    GIB,
    dataset_cached,
    mark_dataset,
    maxrss_bytes,
    spawn,
    start_cluster,
    vmhwm_bytes,
    warm_worker,
    worker_cpu,
    worker_maxrss,
)

#: Pixels along a side of a WFI detector.
DETECTOR_PIXELS = 4088
#: Detectors of the side-by-side part: the whole focal plane.
ALL_DETECTORS = tuple(range(1, 19))
#: Dataset settings shared by both parts.
DITHER_ARCSEC = 10.0
N_SOURCES = 60
SEED = 21
#: Float32 planes of the output size romancal's ResampleData holds while drizzling (data, weight, a sum
#: and a weight for each of var_rnoise and var_poisson, the exposure-time resampler's image, weight and total).
ROMANCAL_FLOAT_PLANES = 9
#: The memory every dask-resample process is meant to stay within in the full-size part.
TARGET_RSS = 1 * GIB


# ----------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------
def roman_dataset(workdir: Path, exposures: int, detectors: tuple[int, ...], binning: int) -> Path:
    """Write (or reuse) ``exposures`` x ``detectors`` whole detectors binned ``binning``; return the association."""
    from dask_resample.testing.synthetic_roman import write_roman_dataset

    side = DETECTOR_PIXELS // binning
    spec = {"kind": "roman", "exposures": exposures, "detectors": list(detectors), "binning": binning,
            "dither_arcsec": DITHER_ARCSEC, "n_sources": N_SOURCES, "seed": SEED}  # fmt: skip
    name = "all" if detectors == ALL_DETECTORS else "-".join(str(d) for d in detectors)
    directory = workdir / f"roman-{exposures}x{name}-b{binning}"
    asn = directory / "roman_asn.json"
    if dataset_cached(directory, spec) and asn.is_file():
        print(f"reusing {directory}", flush=True)
        return asn
    if directory.exists():
        shutil.rmtree(directory)
    t0 = time.perf_counter()
    logging.disable(logging.INFO)  # romancal's and stcal's messages for every file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = write_roman_dataset(directory, n_exposures=exposures, detectors=tuple(detectors), shape=(side, side),
                                 binning=binning, dither_arcsec=DITHER_ARCSEC, n_sources=N_SOURCES,
                                 seed=SEED)  # fmt: skip
    logging.disable(logging.NOTSET)
    mark_dataset(directory, spec)
    print(
        f"wrote {len(ds.paths)} images of {side}x{side} ({exposures} exposures x {len(detectors)} detectors, "
        f"binning {binning}) to {directory} ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    return ds.asn_path


def n_members(asn: Path) -> int:
    """Members of an association."""
    return len(json.loads(Path(asn).read_text())["products"][0]["members"])


def romancal_output_bytes(shape_yx: tuple[int, int] | list[int], n_inputs: int) -> int:
    """Lower bound of the bytes of romancal's output arrays while it drizzles (see the module docstring)."""
    ny, nx = shape_yx
    return int(ny) * int(nx) * 4 * (ROMANCAL_FLOAT_PLANES + math.ceil(n_inputs / 32))


# ----------------------------------------------------------------------------
# child processes
# ----------------------------------------------------------------------------
def warm_roman_worker() -> int:
    """Import the Roman readers the tasks use (run on every worker before the clock starts)."""
    import roman_datamodels.datamodels  # noqa: F401
    import romancal.resample.resample  # noqa: F401

    import dask_resample.inputs.drivers.roman_model  # noqa: F401

    return warm_worker()


def child_romancal(args: argparse.Namespace) -> None:
    """Run romancal's ResampleData as ``ResampleStep.process`` does; write timings, peak RSS and the arrays."""
    import numpy as np
    from romancal.datamodels import ModelLibrary
    from romancal.resample.resample import ResampleData
    from romancal.resample.resample_step import ResampleStep

    warnings.simplefilter("ignore")
    logging.disable(logging.INFO)
    step = ResampleStep()  # its parameters' defaults
    psr = float(args.psr)
    wcs_kwargs = {"pscale_ratio": psr, "pscale": None, "rotation": None, "shape": None, "crpix": None, "crval": None}
    names = ["var_rnoise", "var_poisson"] + (["var_flat"] if step.include_var_flat else [])
    t0 = time.perf_counter()
    c0 = time.process_time()
    library = ModelLibrary(str(args.asn), on_disk=not step.in_memory)
    resampler = ResampleData(
        input_models=library,
        output_wcs=None,
        pixfrac=step.pixfrac,
        kernel=step.kernel,
        fillval=step.fillval,
        weight_type=step.weight_type,
        good_bits=step.good_bits,
        enable_ctx=True,
        enable_var=True,
        compute_err="from_var",
        compute_exptime=True,
        blend_meta=True,
        resample_on_skycell=step.resample_on_skycell,  # the association names no skycell: grid from the inputs
        wcs_kwargs=wcs_kwargs,
        variance_array_names=names,
        propagate_dq=step.propagate_dq,
        pixmap_stepsize=step.pixmap_stepsize,
        pixmap_order=int(step.pixmap_order),
    )
    model = resampler.resample_group(range(len(library)))
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    rss = maxrss_bytes()  # before the arrays are saved
    shape = [int(v) for v in model.data.shape]
    np.savez(args.arrays_out, data=np.asarray(model.data), weight=np.asarray(model.weight),
             context=np.asarray(model.context))  # fmt: skip
    Path(args.result).write_text(
        json.dumps(
            {"seconds": seconds, "cpu": cpu, "rss": {"romancal": rss}, "shape_yx": shape, "n_inputs": len(library)}
        )  # fmt: skip
    )


def measure_on_cluster(args: argparse.Namespace, call: Any) -> tuple[Any, dict[str, Any]]:
    """``call(client)`` on a fresh LocalCluster of ``args.workers`` x 1 thread, workers warmed first.

    Returns
    -------
    result, dict
        ``call``'s result and ``seconds`` (its wall time), ``cpu`` and ``rss`` (client and each
        worker; the client's peak read after the cluster closed).
    """
    import os

    handle = start_cluster(SimpleNamespace(cluster="local", workers=args.workers, threads=1,
                                           memory_limit=args.memory_limit))  # fmt: skip
    client = handle.client
    try:
        client.wait_for_workers(args.workers)
        client.run(warm_roman_worker)
        names = {addr: info.get("name") for addr, info in client.scheduler_info()["workers"].items()}
        pids = client.run(os.getpid)
        cpu0 = client.run(worker_cpu)
        c0 = time.process_time()
        t0 = time.perf_counter()
        result = call(client)
        seconds = time.perf_counter() - t0
        client_cpu = time.process_time() - c0
        cpu1 = client.run(worker_cpu)
        reported = client.run(worker_maxrss)
        # VmHWM of each worker read from /proc here, else as the worker reports it
        rss = {addr: vmhwm_bytes(int(pids[addr])) or reported[addr] for addr in reported}
        order = sorted(rss, key=lambda addr: str(names.get(addr, addr)))
        worker_rss = {f"worker-{names.get(addr, addr)}": rss[addr] for addr in order}
        worker_cpus = {f"worker-{names.get(addr, addr)}": cpu1[addr] - cpu0.get(addr, 0.0) for addr in order}
    finally:
        handle.close()
    return result, {
        "seconds": seconds,
        "cpu": {"client": client_cpu, **worker_cpus},
        "rss": {"client": maxrss_bytes(), **worker_rss},
    }


def child_dask(args: argparse.Namespace) -> None:
    """Run ``dask_resample.resample`` with romancal's step parameters on a fresh LocalCluster."""
    warnings.simplefilter("ignore")
    import dask_resample
    from dask_resample.roman import roman_params

    params = roman_params()
    _, measured = measure_on_cluster(
        args,
        lambda client: dask_resample.resample(
            args.asn, args.zarr_out, client=client, params=params, wcs_pars={"pixel_scale_ratio": float(args.psr)},
            tile_shape=(args.tile, args.tile), overwrite=True, progress=False,
        ),
    )  # fmt: skip
    ds = dask_resample.open_mosaic(args.zarr_out)
    doc = {
        **measured,
        "shape_yx": [int(v) for v in ds["data"].shape],
        "n_ctx_planes": int(ds["con"].shape[0]) if "con" in ds else 0,
    }
    Path(args.result).write_text(json.dumps(doc))


def _child_args(kind: str, asn: Path, psr: float, args: argparse.Namespace, **files: Path) -> list[str]:
    out = ["--child", kind, "--asn", str(asn), "--psr", repr(psr)]
    for flag, path in files.items():
        out += [f"--{flag.replace('_', '-')}", str(path)]
    if kind == "dask":
        out += ["--workers", str(args.workers), "--tile", str(args.tile), "--memory-limit", str(args.memory_limit)]
    return out


# ----------------------------------------------------------------------------
# parity and report
# ----------------------------------------------------------------------------
def _rel_diff(ours: Any, ref: Any) -> float:
    """Largest ``|ours - ref|`` where both are finite, over ``max|ref|``."""
    import numpy as np

    a, b = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        return 0.0
    scale = float(np.max(np.abs(b[both]))) or 1.0
    return float(np.max(np.abs(a[both] - b[both]))) / scale


def parity(ref_npz: Path, zarr_path: Path) -> dict[str, Any]:
    """Compare data, weight and context as ``tests/test_roman_parity.py``'s ``check`` does (no assertions)."""
    import numpy as np

    import dask_resample

    ref = np.load(ref_npz)
    ours = dask_resample.open_mosaic(zarr_path)
    data, wht = ours["data"].values, ours["wht"].values
    if data.shape != ref["data"].shape:
        return {"shape_equal": False, "shapes": [list(ref["data"].shape), list(data.shape)]}
    nan_ours, nan_ref = np.isnan(data), np.isnan(ref["data"])
    con = ours["con"].values.view(np.uint32)
    ctx = ref["context"]
    return {
        "shape_equal": True,
        "data_max_rel_diff": _rel_diff(data, ref["data"]),
        "weight_max_rel_diff": _rel_diff(wht, ref["weight"]),
        "nan_pattern_equal": bool(np.array_equal(nan_ours, nan_ref)),
        "nan_pattern_mismatches": int(np.count_nonzero(nan_ours != nan_ref)),
        "context_equal": bool(con.shape == ctx.shape and np.array_equal(con, ctx)),
        "context_planes": [int(ctx.shape[0]), int(con.shape[0])],
    }


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def side_by_side_table(ref: dict[str, Any], ours: dict[str, Any], workers: int) -> str:
    """program | wall (s) | ratio | peak RSS of every process (MiB)."""
    procs = ["romancal", "client", *[k for k in ours["rss"] if k.startswith("worker-")]]
    head = "| program | wall (s) | ratio (romancal wall / wall) | " + " | ".join(f"peak RSS {p} (MiB)" for p in procs)
    rows = [head + " |", "|" + "---|" * (3 + len(procs))]
    for label, doc in (
        ("romancal ResampleData (1 process)", ref),
        (f"dask-resample ({workers} workers x 1 thread)", ours),
    ):
        cells = " | ".join(_mib(doc["rss"].get(p)) for p in procs)
        rows.append(f"| {label} | {doc['seconds']:.1f} | {ref['seconds'] / doc['seconds']:.2f}x | {cells} |")
    return "\n".join(rows)


def full_size_table(ours: dict[str, Any], workers: int) -> str:
    """program | wall (s) | peak RSS of every process (MiB)."""
    procs = ["client", *[k for k in ours["rss"] if k.startswith("worker-")]]
    head = "| program | wall (s) | " + " | ".join(f"peak RSS {p} (MiB)" for p in procs) + " |"
    cells = " | ".join(_mib(ours["rss"].get(p)) for p in procs)
    return "\n".join(
        [
            head,
            "|" + "---|" * (2 + len(procs)),
            f"| dask-resample ({workers} workers x 1 thread) | {ours['seconds']:.1f} | {cells} |",
        ]
    )


# ----------------------------------------------------------------------------
# the two parts
# ----------------------------------------------------------------------------
def run_side_by_side(args: argparse.Namespace, workdir: Path, runs: Path) -> tuple[list[str], dict[str, Any]]:
    """romancal and dask-resample on 2 exposures x 18 detectors binned ``args.binning``."""
    side = DETECTOR_PIXELS // args.binning
    asn = roman_dataset(workdir, 2, ALL_DETECTORS, args.binning)
    n = n_members(asn)
    arrays = runs / "romancal-side-by-side.npz"
    out = runs / "dask-side-by-side.zarr"
    print("side by side: romancal ResampleData ...", end=" ", flush=True)
    ref = spawn(__file__, _child_args("romancal", asn, 1.0, args, arrays_out=arrays))
    print(f"{ref['seconds']:.1f} s; dask-resample ({args.workers} workers x 1 thread) ...", end=" ", flush=True)
    ours = spawn(__file__, _child_args("dask", asn, 1.0, args, zarr_out=out))
    print(f"{ours['seconds']:.1f} s", flush=True)
    par = parity(arrays, out)
    ny, nx = ref["shape_yx"]
    lines = [
        "",
        f"## Side by side: {n} images of {side}x{side} (2 exposures x 18 detectors, binned {args.binning}x"
        f"{args.binning}), romancal's ResampleStep defaults, pixel scale ratio 1, mosaic {ny} x {nx}, "
        f"tiles {args.tile}x{args.tile}",
        "",
        side_by_side_table(ref, ours, args.workers),
        "",
    ]
    if par["shape_equal"]:
        lines += [
            f"parity: max |data - romancal| / max |romancal| where both are finite = {par['data_max_rel_diff']:.2g}; "
            f"weight: {par['weight_max_rel_diff']:.2g}; NaN pattern of data identical: "
            + ("yes" if par["nan_pattern_equal"] else f"NO ({par['nan_pattern_mismatches']} pixels differ)")
            + f"; context identical: {'yes' if par['context_equal'] else 'NO'} "
            f"(planes romancal {par['context_planes'][0]}, dask-resample {par['context_planes'][1]})"
        ]
    else:
        lines += [f"parity: output shapes differ (romancal {par['shapes'][0]}, dask-resample {par['shapes'][1]})"]
    lines += [
        f"CPU seconds: romancal {ref['cpu']:.1f}; dask-resample {sum(ours['cpu'].values()):.1f} ("
        + ", ".join(f"{k} {v:.1f}" for k, v in ours["cpu"].items())
        + ")",
        "",
        f"Scaled down from 4088x4088 detectors (binning {args.binning}) so that romancal, which holds all "
        f"{n} input models and its whole output mosaic in memory, fits on this machine.",
    ]
    shutil.rmtree(out, ignore_errors=True)
    arrays.unlink(missing_ok=True)
    return lines, {"romancal": ref, "dask": ours, "parity": par}


def run_full_size(args: argparse.Namespace, workdir: Path, runs: Path) -> tuple[list[str], dict[str, Any]]:
    """dask-resample alone on full-size detectors at half the native pixel scale."""
    detectors = tuple(args.detectors)
    asn = roman_dataset(workdir, args.exposures, detectors, 1)
    n = n_members(asn)
    out = runs / "dask-full-size.zarr"
    print(f"full size: dask-resample ({args.workers} workers x 1 thread) ...", end=" ", flush=True)
    ours = spawn(__file__, _child_args("dask", asn, 0.5, args, zarr_out=out))
    print(f"{ours['seconds']:.1f} s", flush=True)
    ny, nx = ours["shape_yx"]
    peak = max(ours["rss"].values())
    need = romancal_output_bytes((ny, nx), n)
    lines = [
        "",
        f"## Full size: {n} images of {DETECTOR_PIXELS}x{DETECTOR_PIXELS} ({args.exposures} exposures x detectors "
        f'{",".join(str(d) for d in detectors)}), pixel scale ratio 0.5 (0.055"/px), mosaic {ny} x {nx} '
        f"({ny * nx / 1e6:,.0f} Mpix), tiles {args.tile}x{args.tile}",
        "",
        full_size_table(ours, args.workers),
        "",
        f"all processes <= 1024 MiB: {'yes' if peak <= TARGET_RSS else 'no'} (largest {_mib(peak)} MiB)",
        f"romancal (not run): its output arrays alone would take at least {need / GIB:.1f} GiB for this grid "
        f"({ROMANCAL_FLOAT_PLANES} float32 planes + {math.ceil(n / 32)} int32 context plane(s) of {ny} x {nx}), "
        "besides its input models",
    ]
    shutil.rmtree(out, ignore_errors=True)
    return lines, {"dask": ours, "romancal_output_bytes": need, "all_within_1gib": peak <= TARGET_RSS}


def orchestrate(args: argparse.Namespace) -> int:
    fresh = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bench-roman-")) if fresh else Path(args.workdir)
    existed = not fresh and workdir.exists()
    workdir.mkdir(parents=True, exist_ok=True)
    runs = workdir / "runs"
    runs.mkdir(exist_ok=True)
    print(f"workdir: {workdir}", flush=True)
    report: list[str] = []
    results: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if not k.startswith("_")}}
    made: list[Path] = [runs]
    try:
        if args.side_by_side:
            made.append(workdir / f"roman-2xall-b{args.binning}")
            lines, results["side_by_side"] = run_side_by_side(args, workdir, runs)
            report += lines
        if args.full_size:
            made.append(workdir / f"roman-{args.exposures}x{'-'.join(str(d) for d in args.detectors)}-b1")
            lines, results["full_size"] = run_full_size(args, workdir, runs)
            report += lines
    finally:
        if not args.keep:
            if fresh or not existed:
                shutil.rmtree(workdir, ignore_errors=True)
            else:  # a directory given by the user: remove only what this run wrote
                for path in made:
                    shutil.rmtree(path, ignore_errors=True)
    print("\n".join(report), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


def _detectors(text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected detectors such as 1,2, got {text!r}") from None
    if not out or any(not 1 <= d <= 18 for d in out) or len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"expected distinct detectors from 1 to 18, got {text!r}")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--part", action="append", choices=("side-by-side", "full-size", "all"),
                   help="run this part; repeat it for both, or 'all' (default: side-by-side)")  # fmt: skip
    p.add_argument("--binning", type=int, default=4,
                   help="side by side: detector pixels per image pixel (4: 1022x1022 per detector)")  # fmt: skip
    p.add_argument("--exposures", type=int, default=2, help="full size: exposures")
    p.add_argument("--detectors", type=_detectors, default="1,2", help="full size: WFI detectors of each exposure")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers (1 thread each)")
    p.add_argument("--memory-limit", default="auto", help="memory limit per worker (e.g. 4GiB, auto)")
    p.add_argument("--tile", type=int, default=1024, help="tile (Zarr chunk) size of the mosaic")
    p.add_argument("--workdir", help="datasets and outputs (default: a fresh directory under /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (and its datasets, for reuse)")
    p.add_argument("--json", metavar="FILE", help="also write all measurements as JSON")
    # internal: child processes
    p.add_argument("--child", choices=("romancal", "dask"), help=argparse.SUPPRESS)
    p.add_argument("--asn", help=argparse.SUPPRESS)
    p.add_argument("--psr", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--arrays-out", help=argparse.SUPPRESS)
    p.add_argument("--zarr-out", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.child == "romancal":
        child_romancal(args)
        return 0
    if args.child == "dask":
        child_dask(args)
        return 0
    parts = set(args.part or ["side-by-side"])
    if "all" in parts:
        parts = {"side-by-side", "full-size"}
    if DETECTOR_PIXELS % args.binning:
        parser.error(f"--binning must divide {DETECTOR_PIXELS}")
    args.side_by_side, args.full_size = "side-by-side" in parts, "full-size" in parts
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
