#!/usr/bin/env python
"""A Roman skycell mosaic too large for romancal on this machine, made by dask-resample within 1 GiB a process.

The inputs are ``--exposures`` (default 1) WFI exposures of all 18 full-size
4088 x 4088 detectors (synthetic ``WfiImage`` Level-2 ASDF files of
:mod:`dask_resample.testing.synthetic_roman`: romanisim's WCS of each detector,
the focal-plane layout, its gaps and distortion), pointed at (RA, Dec) =
(180, 89) inside projection region 0 of the skymap subset that ships with
romancal (``romancal/skycell/tests/data/skymap_subset.asdf``; ``--skymap`` or
``SKYMAP_PATH`` for the full skymap file). dask-resample drizzles them with
romancal's ``ResampleStep`` defaults (:func:`dask_resample.roman.roman_params`)
onto the projection region's grid spanning every skycell the inputs touch
(:func:`dask_resample.roman.resample_region`: 0.055"/px, the skycells' own
pixels, tiles starting on skycell boundaries, tiles written only where data
land), on a ``LocalCluster`` of ``--workers`` x 1 thread.

romancal is not run: one ``ResampleData`` mosaic on that grid holds nine
float32 planes and ``ceil(N / 32)`` int32 context planes of the whole grid
while it drizzles (see ``bench_roman.py``), which the script prints in GiB
from the grid's shape -- for the default survey about 100 GiB, four times this
machine's memory, besides its 18 input models (16 bytes a pixel, 4.5 GiB).
romancal's way around that is one ``ResampleStep`` run per skycell (about 80
here), each reading every input that touches its skycell.

The table gives the wall time of the ``resample_region`` call (cluster start-up
and imports excluded), the peak RSS (``VmHWM``) of the client process (which also
hosts the scheduler and the nannies) and of every worker, CPU seconds per
process, and what was written (tiles, bytes on disk).

Writing a full-size detector file takes about 40 s; ``--gen-procs`` processes
(default 2) write the detectors of each exposure in parallel. The dataset is
kept for reuse with ``--keep`` (a ``dataset.json`` marker); the mosaic (tens of
GB) is always removed after it has been measured.

Usage::

    python benchmarks/bench_roman_survey.py                          # 1 exposure x 18 detectors
    python benchmarks/bench_roman_survey.py --exposures 2 --workers 2
    python benchmarks/bench_roman_survey.py --detectors 1,2 --binning 8   # a quick check
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from _common import (
    GIB,
    dataset_cached,
    mark_dataset,
    spawn,
)
from bench_roman import (
    ALL_DETECTORS,
    DETECTOR_PIXELS,
    N_SOURCES,
    ROMANCAL_FLOAT_PLANES,
    SEED,
    TARGET_RSS,
    _detectors,
    _mib,
    measure_on_cluster,
)

#: Where the survey points: inside projection region 0 of romancal's skymap subset (Dec 88.2 to 90).
POINTING_RA_DEC = (180.0, 89.0)
#: Offsets of later exposures: a dither of a few arcseconds, as a Roman pass would take.
DITHER_ARCSEC = 10.0
#: Bytes a pixel of a Level-2 model romancal holds in memory (float32 data, uint32 dq, four float16 arrays).
INPUT_BYTES_PER_PIXEL = 16


def skymap_subset() -> Path:
    """The skymap subset that ships inside the romancal wheel."""
    import romancal.skycell.skymap as sc

    return Path(sc.__file__).parent / "tests" / "data" / "skymap_subset.asdf"


def _write_part(directory: str, exposures: int, detectors: tuple[int, ...], binning: int) -> list[str]:
    """Write ``exposures`` x ``detectors`` into ``directory`` (one process); return the file names."""
    from dask_resample.testing.synthetic_roman import write_roman_dataset

    logging.disable(logging.INFO)
    warnings.simplefilter("ignore")
    side = DETECTOR_PIXELS // binning
    ds = write_roman_dataset(directory, n_exposures=exposures, detectors=detectors, shape=(side, side),
                             binning=binning, ra=POINTING_RA_DEC[0], dec=POINTING_RA_DEC[1],
                             dither_arcsec=DITHER_ARCSEC, n_sources=N_SOURCES, seed=SEED)  # fmt: skip
    return [str(p) for p in ds.paths]


def survey_dataset(workdir: Path, exposures: int, detectors: tuple[int, ...], binning: int, procs: int) -> Path:
    """Write (or reuse) the survey's files, ``procs`` processes at a time; return the association."""
    from dask_resample.testing.synthetic_roman import write_association

    spec = {"kind": "roman-survey", "exposures": exposures, "detectors": list(detectors), "binning": binning,
            "pointing": list(POINTING_RA_DEC), "dither_arcsec": DITHER_ARCSEC, "n_sources": N_SOURCES,
            "seed": SEED}  # fmt: skip
    directory = workdir / f"roman-survey-{exposures}x{len(detectors)}-b{binning}"
    asn = directory / "roman_asn.json"
    if dataset_cached(directory, spec) and asn.is_file():
        print(f"reusing {directory}", flush=True)
        return asn
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    t0 = time.perf_counter()
    # each process writes its share of the detectors (every exposure) into a folder of its own
    shares = [tuple(detectors[i::procs]) for i in range(procs) if detectors[i::procs]]
    with ProcessPoolExecutor(len(shares)) as pool:
        futures = [
            pool.submit(_write_part, str(directory / f"part-{i}"), exposures, share, binning)
            for i, share in enumerate(shares)
        ]
        written = [Path(p) for f in futures for p in f.result()]
    names = []
    for path in written:
        path.rename(directory / path.name)
        names.append(path.name)
    for i in range(len(shares)):
        shutil.rmtree(directory / f"part-{i}")
    names.sort()  # exposure, then detector: romancal's order of an exposure's files
    asn = write_association(directory, names)
    mark_dataset(directory, spec)
    print(f"wrote {len(names)} images to {directory} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return asn


def _disk_bytes(path: Path) -> tuple[int, int]:
    """Files and bytes under ``path``."""
    files = size = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            files += 1
            size += os.path.getsize(os.path.join(root, name))
    return files, size


def child_dask(args: argparse.Namespace) -> None:
    """Run :func:`dask_resample.roman.resample_region` on a fresh LocalCluster; write timings and peak RSS."""
    warnings.simplefilter("ignore")
    import numpy as np

    from dask_resample.roman import resample_region

    made, measured = measure_on_cluster(
        args,
        lambda client: resample_region(args.asn, args.zarr_out, region=args.region, skymap=args.skymap,
                                       client=client, overwrite=True, progress=False),
    )  # fmt: skip
    ds = made.mosaic
    grid = made.grid
    # tiles holding data and pixels with weight, read a tile at a time by the threaded scheduler
    wht = ds["wht"].data
    per_tile = wht.map_blocks(lambda b: np.array([[(b > 0).sum()]]), chunks=(1, 1), dtype=np.int64)
    counts = per_tile.compute(scheduler="threads")
    written, covered = int(np.count_nonzero(counts)), int(counts.sum())
    files, size = _disk_bytes(Path(args.zarr_out))
    doc = {
        **measured,
        "shape_yx": [int(v) for v in ds["data"].shape],
        "n_skycells": len(grid.skycells),
        "tiles_total": int(math.prod(wht.numblocks)),
        "tiles_with_data": written,
        "tile_shape": [int(v) for v in wht.chunksize],
        "covered_pixels": covered,
        "disk_files": files,
        "disk_bytes": size,
        "n_ctx_planes": int(ds["con"].shape[0]) if "con" in ds else 0,
    }
    Path(args.result).write_text(json.dumps(doc))


def run_survey(args: argparse.Namespace, workdir: Path, runs: Path) -> tuple[list[str], dict[str, Any]]:
    """dask-resample alone on the survey; romancal's memory for the same grid projected."""
    detectors = tuple(args.detectors)
    asn = survey_dataset(workdir, args.exposures, detectors, args.binning, args.gen_procs)
    n = args.exposures * len(detectors)
    side = DETECTOR_PIXELS // args.binning
    out = runs / "dask-survey.zarr"
    child = ["--child", "dask", "--asn", str(asn), "--zarr-out", str(out), "--workers", str(args.workers),
             "--memory-limit", str(args.memory_limit), "--region", str(args.region),
             "--skymap", str(args.skymap)]  # fmt: skip
    print(f"survey: dask-resample ({args.workers} workers x 1 thread) ...", end=" ", flush=True)
    ours = spawn(__file__, child)
    print(f"{ours['seconds']:.1f} s", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    ny, nx = ours["shape_yx"]
    peak = max(ours["rss"].values())
    planes = ny * nx * 4 * (ROMANCAL_FLOAT_PLANES + math.ceil(n / 32))
    inputs = n * side * side * INPUT_BYTES_PER_PIXEL
    procs = ["client", *[k for k in ours["rss"] if k.startswith("worker-")]]
    table = [
        "| program | wall (s) | " + " | ".join(f"peak RSS {p} (MiB)" for p in procs) + " | CPU (s) |",
        "|" + "---|" * (3 + len(procs)),
        f"| dask-resample ({args.workers} workers x 1 thread) | {ours['seconds']:.1f} | "
        + " | ".join(_mib(ours["rss"].get(p)) for p in procs)
        + f" | {sum(ours['cpu'].values()):.1f} |",
    ]
    ty, tx = ours["tile_shape"]
    lines = [
        "",
        f"## Skycell survey: {n} images of {side}x{side} ({args.exposures} exposure(s) x {len(detectors)} "
        f"detectors), projection region {args.region}, {ours['n_skycells']} skycells, grid {ny} x {nx} "
        f'({ny * nx / 1e6:,.0f} Mpix) at 0.055"/px, tiles {ty}x{tx}',
        "",
        *table,
        "",
        f"all processes <= 1024 MiB: {'yes' if peak <= TARGET_RSS else 'no'} (largest {_mib(peak)} MiB)",
        f"written: {ours['tiles_with_data']:,} of {ours['tiles_total']:,} tiles hold data, "
        f"{ours['covered_pixels'] / 1e6:,.0f} Mpix with weight > 0, {ours['disk_bytes'] / GIB:.1f} GiB in "
        f"{ours['disk_files']:,} files",
        f"romancal (not run): one ResampleData mosaic on this grid holds at least {planes / GIB:,.1f} GiB of planes "
        f"({ROMANCAL_FLOAT_PLANES} float32 + {math.ceil(n / 32)} int32 context of {ny} x {nx}) besides its "
        f"{n} input models ({inputs / GIB:.1f} GiB in memory)",
    ]
    return lines, {"dask": ours, "romancal_plane_bytes": planes, "romancal_input_bytes": inputs,
                   "all_within_1gib": peak <= TARGET_RSS}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--exposures", type=int, default=1, help="exposures (dithered by a few arcseconds)")
    p.add_argument("--detectors", type=_detectors, default=",".join(str(d) for d in ALL_DETECTORS),
                   help="WFI detectors of each exposure")  # fmt: skip
    p.add_argument("--binning", type=int, default=1, help="detector pixels per image pixel (1: full size)")
    p.add_argument("--region", type=int, default=0, help="projection region of the skymap")
    p.add_argument("--skymap", default=os.environ.get("SKYMAP_PATH") or None,
                   help="skymap file (default: SKYMAP_PATH, else the subset inside the romancal wheel)")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers (1 thread each)")
    p.add_argument("--memory-limit", default="auto", help="memory limit per worker (e.g. 4GiB, auto)")
    p.add_argument("--gen-procs", type=int, default=2, help="processes writing the dataset")
    p.add_argument("--workdir", help="datasets and outputs (default: a fresh directory under /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the dataset for reuse")
    p.add_argument("--json", metavar="FILE", help="also write all measurements as JSON")
    p.add_argument("--child", choices=("dask",), help=argparse.SUPPRESS)
    p.add_argument("--asn", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--zarr-out", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.skymap is None:
        args.skymap = str(skymap_subset())
    if args.child == "dask":
        child_dask(args)
        return 0
    if DETECTOR_PIXELS % args.binning:
        parser.error(f"--binning must divide {DETECTOR_PIXELS}")
    fresh = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bench-roman-survey-")) if fresh else Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    runs = workdir / "runs"
    runs.mkdir(exist_ok=True)
    print(f"workdir: {workdir}", flush=True)
    try:
        lines, result = run_survey(args, workdir, runs)
    finally:
        shutil.rmtree(runs, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(workdir if fresh else workdir / "runs", ignore_errors=True)
            for old in workdir.glob("roman-survey-*") if not fresh else ():
                shutil.rmtree(old, ignore_errors=True)
    print("\n".join(lines), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), **result}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
