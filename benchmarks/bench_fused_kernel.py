"""One 2048 x 2048 exposure onto its frame: drizzle's C in four passes against the fused kernel in one.

The C side does what ``dask_resample.drizzle.kernel._drizzle_frame`` and stcal do: one
``Drizzle.add_image`` for the data (with context), then one fresh ``Drizzle`` per
variance on ``sqrt(var)``, squared. The fused side drizzles data, weight, context
and the three per-input variances with one :class:`~dask_resample.drizzle.fused_kernel.FusedDrizzle`
pass and squares them likewise. The pixel map (rotated, mildly distorted,
numpy-built) and inputs are the same for both and are not timed.

Each method runs in its own child process: one warm-up call, then ``--repeat``
timed calls (median reported); peak RSS is the child's ``ru_maxrss``, printed with
its RSS once the package, the method's module and the inputs exist. A third child times the fused kernel's first call
with an empty numba cache (compilation). Finally the two outputs are compared.

Usage::

    python benchmarks/bench_fused_kernel.py [--size 2048] [--repeat 5] [--kernel square|turbo|lanczos2|lanczos3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

import numpy as np

VARIANCES = ("var_rnoise", "var_flat", "var_poisson")


def _rss_mib() -> float:
    """Current resident set size (MiB), from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_inputs(size: int) -> tuple[dict[str, np.ndarray], np.ndarray, tuple[int, int]]:
    """Input arrays, the pixel map shifted onto its frame, and the frame shape (as kernel.py)."""
    rng = np.random.default_rng(0)
    shape = (size, size)
    data = rng.normal(1.0, 0.2, shape).astype(np.float32)
    weight = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    weight[rng.random(shape) < 0.01] = 0.0
    arrays = {
        "data": data,
        "weight": weight,
        "var_rnoise": rng.uniform(0.5, 1.5, shape).astype(np.float32),
        "var_flat": rng.uniform(0.0, 0.1, shape).astype(np.float32),
        "var_poisson": np.abs(data) * np.float32(0.1),
    }
    y, x = np.indices(shape, dtype=np.float64)
    u = x - (size - 1) / 2.0
    v = y - (size - 1) / 2.0
    u, v = u + 2e-6 * (u * u - v * v), v + 4e-6 * u * v  # about a pixel at the corners
    c, s = np.cos(np.radians(20.0)), np.sin(np.radians(20.0))
    xo, yo = c * u - s * v, s * u + c * v
    pad = 2
    x0, y0 = np.floor(xo.min()) - pad, np.floor(yo.min()) - pad
    pixmap = np.dstack([xo - x0, yo - y0])
    frame = (int(np.ceil(yo.max() - y0)) + pad + 1, int(np.ceil(xo.max() - x0)) + pad + 1)
    return arrays, pixmap, frame


def run_c(arrays: dict[str, np.ndarray], pixmap: np.ndarray, frame: tuple[int, int], kernel: str) -> dict:
    """Four passes of drizzle's C (data with context, then each variance), as kernel.py."""
    from drizzle.resample import Drizzle

    kw = {
        "exptime": 1.0,
        "pixmap": pixmap,
        "pixel_scale_ratio": 1.0,
        "iscale": 1.0,
        "weight_map": arrays["weight"],
        "wht_scale": 1.0,
        "pixfrac": 1.0,
        "in_units": "cps",
    }
    driz = Drizzle(kernel=kernel, fillval="0", out_shape=frame, begin_ctx_id=0, max_ctx_id=0)
    driz.add_image(arrays["data"], **kw)
    out = {"img": driz.out_img, "wht": driz.out_wht, "ctx": driz.out_ctx[0]}
    for name in VARIANCES:
        dv = Drizzle(kernel=kernel, fillval=np.nan, out_shape=frame, disable_ctx=True)
        with np.errstate(invalid="ignore"):
            sqrt_var = np.sqrt(arrays[name])
        dv.add_image(sqrt_var, **kw)
        del sqrt_var
        out[name] = dv.out_img**2
        del dv
    return out


def run_fused(arrays: dict[str, np.ndarray], pixmap: np.ndarray, frame: tuple[int, int], kernel: str) -> dict:
    """One fused pass: data, weight, context and the three per-input variances."""
    from dask_resample.drizzle.fused_kernel import FusedDrizzle

    fd = FusedDrizzle(
        frame,
        kernel=kernel,
        fillval="0",
        begin_ctx_id=0,
        max_ctx_id=0,
        variance_names=VARIANCES,
        accumulate_variances=False,
    )
    fd.add_image(
        arrays["data"],
        1.0,
        pixmap,
        variances={n: arrays[n] for n in VARIANCES},
        pixel_scale_ratio=1.0,
        iscale=1.0,
        weight_map=arrays["weight"],
        wht_scale=1.0,
        pixfrac=1.0,
        in_units="cps",
    )
    out = {"img": fd.out_img, "wht": fd.out_wht, "ctx": fd.out_ctx[0]}
    for name in VARIANCES:
        out[name] = fd.input_variance(name)
    return out


def child(method: str, size: int, repeat: int, kernel: str) -> None:
    """Time one method in this process and print a JSON line."""
    warnings.simplefilter("ignore")
    arrays, pixmap, frame = make_inputs(size)
    fn = run_c if method == "c" else run_fused
    import dask_resample  # both: what a worker holds

    if method == "c":
        import drizzle.resample  # noqa: F401
    else:
        import dask_resample.drizzle.fused_kernel  # noqa: F401  (numba and llvmlite: about 60 MiB more)
    rss_inputs = _rss_mib()
    t0 = time.perf_counter()
    fn(arrays, pixmap, frame, kernel)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(arrays, pixmap, frame, kernel)
        times.append(time.perf_counter() - t0)
        del out
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"method": method, "first": first, "times": times, "frame": frame, "rss_inputs": rss_inputs, "peak": peak}
        )
    )


def _spawn(method: str, args: argparse.Namespace, env: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        method,
        "--size",
        str(args.size),
        "--repeat",
        str(args.repeat),
        "--kernel",
        args.kernel,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def compare(size: int, kernel: str) -> str:
    """Largest relative difference between the two methods' outputs (and whether bit-identical)."""
    warnings.simplefilter("ignore")
    arrays, pixmap, frame = make_inputs(size)
    a = run_c(arrays, pixmap, frame, kernel)
    b = run_fused(arrays, pixmap, frame, kernel)
    parts = []
    for key in a:
        same = np.array_equal(a[key], b[key], equal_nan=True)
        if key == "ctx":
            parts.append(f"ctx {'identical' if same else 'DIFFERS'}")
            continue
        fin = np.isfinite(a[key]) & (a[key] != 0)
        rel = np.max(np.abs(b[key][fin].astype(np.float64) - a[key][fin]) / np.abs(a[key][fin])) if fin.any() else 0
        nan_same = np.array_equal(np.isnan(a[key]), np.isnan(b[key]))
        parts.append(f"{key} {'bit-identical' if same else f'max rel {rel:.1e}'}{'' if nan_same else ' NaN DIFFERS'}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--kernel", default="square", choices=("square", "turbo", "lanczos2", "lanczos3"))
    parser.add_argument("--child", choices=("c", "fused"))
    args = parser.parse_args()
    if args.child:
        child(args.child, args.size, args.repeat, args.kernel)
        return
    c = _spawn("c", args)
    f = _spawn("fused", args)
    with tempfile.TemporaryDirectory() as cache:
        cold = _spawn(
            "fused",
            argparse.Namespace(size=64, repeat=1, kernel=args.kernel),
            env={**os.environ, "NUMBA_CACHE_DIR": cache},
        )
    mc, mf = statistics.median(c["times"]), statistics.median(f["times"])
    print(
        f"{args.size} x {args.size} input, {args.kernel} kernel, frame {f['frame'][0]} x {f['frame'][1]}, "
        f"median of {args.repeat} after one warm-up call, one child process per method"
    )
    print()
    print(
        "| method | passes | seconds (median) | min - max | speed-up | first call | RSS, module and inputs "
        "| peak RSS | peak - RSS before |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, passes, r, m in (("drizzle C (data + 3 variances)", 4, c, mc), ("fused (numba)", 1, f, mf)):
        print(
            f"| {label} | {passes} | {m:.3f} | {min(r['times']):.3f} - {max(r['times']):.3f} | {mc / m:.2f}x "
            f"| {r['first']:.2f} s | {r['rss_inputs']:.0f} MiB | {r['peak']:.0f} MiB "
            f"| {r['peak'] - r['rss_inputs']:.0f} MiB |"
        )
    print()
    print(
        f"fused first call on a {cold['frame'][0]} x {cold['frame'][1]} frame with an empty numba cache "
        f"(compilation): {cold['first']:.2f} s"
    )
    print(f"agreement: {compare(args.size, args.kernel)}")


if __name__ == "__main__":
    main()
