"""Adding one pointing (its dithers) to a living survey mosaic, against a full run from scratch.

The survey layout is that of ``bench_scale.py`` (:mod:`dask_resample.testing.synthetic_survey`):
``cols x rows`` pointings with ``dithers`` exposures each. The living mosaic is made of every
pointing but the central one (untimed); then

* ``update``: the central pointing's dithers are added (timed): the tiles they touch are
  recomputed from every exposure that reaches them (its 8 neighbours' included), each earlier
  one drizzled only where it lands on those tiles; only the added inputs are read for planning
  (the earlier ones are planned from the descriptions the mosaic keeps);
* ``full``: ``resample()`` over all exposures in the same order on the same grid (timed);

and every array of the two is checked bit-identical. The figure of merit is
``update / full`` (the issue's goal: at most 5% at 10 x 10 x 2, 1024 x 1024 detectors).

Usage::

    python benchmarks/bench_living.py --grid 10x10 --shape 1024 --workers 2
    python benchmarks/bench_living.py --grid 4x4 --shape 256 --workers 2   # small
    python benchmarks/bench_living.py --grid 10x10 --shape 128 --tile 128  # the layout at 1/64 of the pixels
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def _grid(text: str) -> tuple[int, int]:
    cols, rows = (int(v) for v in text.lower().split("x"))
    return cols, rows


def _stored_mib(mosaic: Path) -> tuple[float, float]:
    """MiB stored by the newest version's arrays, and by its kept sums (``dask_resample.living.sums``)."""
    import zarr

    from dask_resample.living.sums import SUMS_GROUP
    from dask_resample.store import as_location
    from dask_resample.store.living import BRANCH, open_repository

    root = zarr.open_group(open_repository(as_location(mosaic)).readonly_session(branch=BRANCH).store, mode="r")
    arrays = sum(arr.nbytes_stored() for _, arr in root.arrays())
    sums = sum(arr.nbytes_stored() for _, arr in root[SUMS_GROUP].arrays()) if SUMS_GROUP in root else 0
    return round(arrays / 2**20, 1), round(sums / 2**20, 1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=_grid, default=(10, 10), help="pointings COLSxROWS (default 10x10)")
    parser.add_argument("--dithers", type=int, default=2)
    parser.add_argument("--shape", type=int, default=1024, help="detector side in pixels (default 1024)")
    parser.add_argument("--tile", type=int, default=1024, help="tile side in pixels (default 1024)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the dataset here (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = parser.parse_args(argv)

    from _common import reset_peak_rss, vmhwm_bytes
    from distributed import Client, LocalCluster

    from dask_resample import (
        living_output_wcs,
        open_mosaic,
        plan_mosaic,
        resample,
        update,
    )
    from dask_resample.testing.synthetic_survey import SurveyLayout, write_survey

    warnings.simplefilter("ignore")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-living-"))
    layout = SurveyLayout(grid_xy=args.grid, dithers=args.dithers, shape=(args.shape, args.shape))
    data = workdir / f"survey-{args.grid[0]}x{args.grid[1]}x{args.dithers}-{args.shape}"
    asn = data / "survey_mosaic_asn.json"
    if not asn.exists():
        write_survey(data, layout, processes=args.workers)
    members = [str(data / m["expname"]) for m in json.loads(asn.read_text())["products"][0]["members"]]
    cols, rows = args.grid
    centre = (rows // 2) * cols + cols // 2  # pointing-major order: the central pointing's exposures
    new = members[centre * args.dithers : (centre + 1) * args.dithers]
    survey = [m for m in members if m not in new]
    order = survey + new
    tile = (args.tile, args.tile)

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=":0")
    client = Client(cluster)
    pids = {"client+scheduler": os.getpid()}  # a LocalCluster's scheduler runs in this process
    pids.update({f"worker-{k}": pid for k, pid in enumerate(client.run(os.getpid).values())})
    peaks: dict[str, dict[str, float]] = {}

    def phase(name: str, call: Any) -> Any:
        """Run one timed phase, with every process's peak RSS reset before it and read after it."""
        reset = all(reset_peak_rss(pid) for pid in pids.values())
        result = call()
        peaks[name] = {
            who: round((vmhwm_bytes(pid) or 0) / 2**20) if reset else float("nan") for who, pid in pids.items()
        }
        return result

    try:
        grid = plan_mosaic(order, client=client, tile_shape=tile).grid
        mosaic = workdir / "living.icechunk"
        shutil.rmtree(mosaic, ignore_errors=True)
        t0 = time.perf_counter()
        update(
            mosaic,
            add=survey,
            output_wcs={"wcs": grid.wcs, "pixel_scale": grid.pixel_scale, "pixel_scale_ratio": grid.pixel_scale_ratio},
            tile_shape=tile,
            client=client,
        )
        t_create = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = phase("update", lambda: update(mosaic, add=new, client=client))
        t_update = time.perf_counter() - t0
        full = workdir / "full.zarr"
        shutil.rmtree(full, ignore_errors=True)
        t0 = time.perf_counter()
        phase(
            "full",
            lambda: resample(
                order, full, output_wcs=living_output_wcs(mosaic), tile_shape=tile, client=client, progress=False
            ),
        )
        t_full = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    a, b = open_mosaic(mosaic), open_mosaic(full)
    arrays_mib, sums_mib = _stored_mib(mosaic)
    identical = all(np.array_equal(a[n].values, b[n].values, equal_nan=a[n].dtype.kind == "f") for n in b.data_vars)
    figures = {
        "layout": f"{cols}x{rows}x{args.dithers}, {args.shape} px detectors, tiles {args.tile} px",
        "exposures": len(order),
        "added": len(new),
        "workers": args.workers,
        "create_s": round(t_create, 2),
        "update_s": round(t_update, 2),
        "full_s": round(t_full, 2),
        "update_over_full": round(t_update / t_full, 4),
        "tiles_recomputed": result.n_recomputed,
        "tiles_extended": result.n_extended,
        "exposures_drizzled": result.n_drizzled,
        "inputs_described": result.n_described,
        "bit_identical": identical,
        "peak_rss_mib_update": peaks["update"],
        "peak_rss_mib_full": peaks["full"],
        "arrays_stored_mib": arrays_mib,
        "kept_sums_stored_mib": sums_mib,
    }
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


if __name__ == "__main__":
    main()
