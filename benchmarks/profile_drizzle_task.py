"""Where the time of one drizzle task goes, phase by phase.

Plans a mosaic of an association (serially, on the client) and runs the drizzle
task of one exposure in this process, timing its phases: reading, weights, the
pixel map (fast and full), the drizzle passes (data, each variance) and cutting
the frame into tile partials. The phases are timed by running the task's own
steps in order (those of :func:`dask_resample.drizzle.kernel.exposure_partials`).

Usage::

    python benchmarks/profile_drizzle_task.py ASN.json [--index 0]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def main(argv: list[str] | None = None) -> None:
    from drizzle.resample import Drizzle
    from stcal.resample.utils import build_driz_weight, resample_range

    from dask_resample.api import plan_mosaic
    from dask_resample.drizzle import kernel
    from dask_resample.geometry.exposure_pixmap import compute_pixmap
    from dask_resample.inputs.io import load_model_dict
    from dask_resample.params import ResampleParams

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("asn")
    p.add_argument("--index", type=int, default=0)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")

    params = ResampleParams(good_bits="~DO_NOT_USE+NON_SCIENCE", compute_err="from_var")
    plan = plan_mosaic(args.asn, params=params)
    ref = plan.refs[args.index]
    out_wcs = plan.grid.wcs
    times: dict[str, float] = {}

    def timed(name: str, fn, *a, **k):
        t0 = time.perf_counter()
        out = fn(*a, **k)
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0
        return out

    model = timed("read (load_model_dict)", load_model_dict, ref, need_var=True, need_err=False)
    data = np.asarray(model["data"])
    wcs = model["wcs"]
    timed("pixmap, full (calc_pixmap equivalent)", compute_pixmap, wcs, out_wcs, data.shape, fast=False)
    pixmap = timed("pixmap, fast", compute_pixmap, wcs, out_wcs, data.shape, fast=True)
    weight = timed(
        "weights (build_driz_weight)",
        build_driz_weight,
        model,
        weight_type=params.weight_type,
        good_bits=params.good_bits,
        flag_name_map=params.flag_name_map,
    )
    rng = resample_range(data.shape, getattr(wcs, "bounding_box", None))
    frame = kernel._frame_box(pixmap, rng, plan.halo, plan.grid.shape_yx)
    fy0, fy1, fx0, fx1 = frame
    pixmap -= np.array([fx0, fy0], dtype=np.float64)
    xmin, xmax, ymin, ymax = rng
    kw = dict(
        exptime=model["exposure_time"],
        pixmap=pixmap,
        pixel_scale_ratio=plan.grid.pixel_scale_ratio,
        iscale=1.0,
        weight_map=weight,
        wht_scale=1.0,
        pixfrac=params.pixfrac,
        in_units="cps",
        xmin=xmin,
        xmax=xmax,
        ymin=ymin,
        ymax=ymax,
    )
    shape = (fy1 - fy0, fx1 - fx0)
    driz = Drizzle(kernel=params.kernel, fillval="0", out_shape=shape, disable_ctx=False, begin_ctx_id=0, max_ctx_id=0)
    timed("drizzle data (+wht, ctx)", driz.add_image, data, **kw)
    for name in kernel.VARIANCE_NAMES:
        dv = Drizzle(kernel=params.kernel, fillval=np.nan, out_shape=shape, disable_ctx=True)
        sq = timed("drizzle variances (3 passes, incl. sqrt)", np.sqrt, model[name])
        timed("drizzle variances (3 passes, incl. sqrt)", dv.add_image, sq, **kw)
    # the whole task, as the graph runs it (fast pixel map), including cutting into tile partials
    spec_fast = kernel.DrizzleSpec(
        out_wcs=out_wcs,
        shape_yx=plan.grid.shape_yx,
        tile_shape_yx=plan.tiles.tile_shape_yx,
        halo=plan.halo,
        params=params,
        pixel_scale_ratio=plan.grid.pixel_scale_ratio,
        fast_pixmap=True,
    )
    tile_keys = tuple(sorted({k for (g, k), idx in plan.contributions.items() if ref.index in idx}))
    t0 = time.perf_counter()
    parts = kernel.drizzle_exposure(ref, spec_fast, tile_keys)
    total_fast = time.perf_counter() - t0
    spec_full = kernel.DrizzleSpec(**{**spec_fast.__dict__, "fast_pixmap": False})
    t0 = time.perf_counter()
    kernel.drizzle_exposure(ref, spec_full, tile_keys)
    total_full = time.perf_counter() - t0
    known = sum(v for k, v in times.items() if not k.startswith("pixmap, full"))
    print(f"exposure {ref.filename} {data.shape}, {len(tile_keys)} tiles, frame {shape}")
    for name, sec in times.items():
        print(f"  {name:45s} {sec:7.3f} s")
    print(f"  {'cutting tiles + bookkeeping (task - phases)':45s} {max(0.0, total_fast - known):7.3f} s")
    print(f"  {'whole task, fast pixel map':45s} {total_fast:7.3f} s")
    print(f"  {'whole task, full pixel map':45s} {total_full:7.3f} s")
    print(f"  partials: {sum(p is not None for p in parts.values())}")


if __name__ == "__main__":
    main()
