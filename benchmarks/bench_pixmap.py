"""Per-exposure pixel-map time: calc_pixmap, the numpy fast path and the compiled fast path.

For each input WCS the script times, on the same output WCS:

* ``calc``: stcal's ``calc_pixmap`` (the reference);
* ``numpy``: ``dask_resample.drizzle.kernel.compute_pixmap(..., fast=True)`` with the
  compiled evaluation off (``pixmap.compiled_head(False)``): the head evaluated by
  astropy in blocks of rows, the sky part by numpy (the fast path before the
  compiled one);
* ``compiled``: the same call with the compiled evaluation
  (:mod:`dask_resample.geometry.pixmap_compiled`).

Both fast columns include the recognition and the self-check on sample pixels,
as a drizzle task runs them. The numpy and compiled runs alternate; each column
shows the best and the median of ``--repeat`` runs (wall seconds); ``numpy/comp``
is the ratio of the best wall times, ``cpu ratio`` that of the best CPU times of
the process (steadier on a shared machine). The last
columns are the largest differences, in output pixels, of the compiled map from
``calc_pixmap`` and from the numpy fast map, and of the compiled head's outputs
from astropy's, in input pixels (through the head's local scale).

Inputs: the synthetic gwcs (:func:`dask_resample.testing.synthetic.make_detector_wcs`,
cubic polynomial + TAN) and a FITS TAN-SIP fitted to it at each ``--shapes``
size, and, with jwst and pysiaf installed, the full frames of NIRCam's NRCA1
(2048x2048) and of the MIRI imager (1024x1032, bounding box without the Lyot
coronagraph), whose WCSs ``jwst.assign_wcs`` builds from SIAF distortion
(:mod:`dask_resample.testing.synthetic_siaf`).

Usage::

    python benchmarks/bench_pixmap.py [--repeat 5] [--shapes 2048 1024] [--no-siaf]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from stcal.alignment.util import wcs_from_sregions
from stcal.resample.utils import calc_pixmap

from dask_resample.geometry import pixmap
from dask_resample.geometry.exposure_pixmap import compute_pixmap
from dask_resample.testing.synthetic import make_detector_wcs

RA, DEC, ROLL = 53.16, -27.78, 20.0


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of this process (less sensitive to a shared machine's load)."""
    c0 = time.process_time()
    wall, out = _timed(fn)
    return wall, time.process_time() - c0, out


def _synthetic_cases(size: int) -> list[tuple[str, Any, Any, tuple[int, int]]]:
    """(name, input WCS, output WCS, shape) of the synthetic gwcs and its TAN-SIP fit."""
    from astropy.wcs import WCS

    from dask_resample.geometry.wcs_adapter import FitsImagingWCS

    shape = (size, size)
    synthetic = make_detector_wcs(RA, DEC, roll_deg=ROLL, shape=shape, offset_pixels=(0.1 * size, 0.05 * size))
    ref = make_detector_wcs(RA, DEC, roll_deg=ROLL, shape=shape)
    info = {"roll_ref": ROLL, "v3yangle": 0.0, "vparity": -1, "ra_ref": RA, "dec_ref": DEC}
    out = wcs_from_sregions([ref.footprint(), synthetic.footprint()], ref, info)
    header = synthetic.to_fits_sip(degree=3, max_inv_pix_error=0.01, inv_degree=range(3, 7))
    fits_sip = FitsImagingWCS(WCS(header), shape)
    return [("synthetic gwcs (poly+TAN)", synthetic, out, shape), ("FITS TAN-SIP", fits_sip, out, shape)]


def siaf_input(instrument: str, va_scale: float = 1.00002) -> tuple[Any, tuple[int, int], dict[str, float]]:
    """Full-frame WCS of the first detector of a :mod:`dask_resample.testing.synthetic_siaf` setup.

    Built as :func:`~dask_resample.testing.synthetic_siaf.write_siaf_dataset` builds its
    exposures (``jwst.assign_wcs`` on SIAF distortion), without writing files.

    Returns
    -------
    wcs : gwcs.wcs.WCS
    shape : tuple of int
        ``(ny, nx)``.
    wcsinfo : dict
        ``roll_ref, v3yangle, vparity, ra_ref, dec_ref`` of the exposure.
    """
    from dask_resample.testing import synthetic_siaf as ss
    from dask_resample.testing.synthetic_scene import _MJD_START

    setup = ss.INSTRUMENT_SETUPS[instrument]
    placement = ss._placements(setup, setup.detectors[:1], None)[0]
    attitude = ss._attitude(placement.v2_ref, placement.v3_ref, RA, DEC, ROLL)
    meta = ss._common_meta(0, _MJD_START, 1000.0, 1000.0, 0.0)
    model = ss._build_model(placement, attitude=attitude, va_scale=va_scale, meta=meta)
    w = model.meta.wcsinfo
    info = {k: float(getattr(w, k)) for k in ("roll_ref", "v3yangle", "vparity", "ra_ref", "dec_ref")}
    return model.meta.wcs, tuple(model.data.shape), info


def _siaf_cases() -> list[tuple[str, Any, Any, tuple[int, int]]]:
    try:
        import jwst  # noqa: F401
        import pysiaf  # noqa: F401
    except ImportError:
        print("(jwst or pysiaf not installed: no SIAF cases)")
        return []
    cases = []
    for name, instrument in (("SIAF NIRCam NRCA1", "nircam_sw"), ("SIAF MIRI imager", "miri")):
        wcs, shape, info = siaf_input(instrument)
        out = wcs_from_sregions([wcs.footprint()], wcs, info)
        cases.append((name, wcs, out, shape))
    return cases


def _head_diff_px(wcs_in: Any, shape: tuple[int, int]) -> float | None:
    """Largest difference of the compiled head from astropy's on 200,000 pixels, in input pixels."""
    source = pixmap.recognise_input(wcs_in)
    if source is None or source.program is None or not pixmap.compiled_available():
        return None
    from dask_resample.geometry.pixmap_compiled import evaluate_head

    rng = np.random.default_rng(0)
    x = rng.integers(0, shape[1], 200_000).astype(float)
    y = rng.integers(0, shape[0], 200_000).astype(float)
    a0, b0 = (np.asarray(v, float) for v in source.head(x, y))
    a1, b1 = evaluate_head(source.program, x, y)
    # local scale of the head (its units per input pixel), from the centre pixel
    cx, cy = np.array([shape[1] / 2, shape[1] / 2 + 1, shape[1] / 2]), np.array([shape[0] / 2] * 2 + [shape[0] / 2 + 1])
    ha, hb = (np.asarray(v, float) for v in source.head(cx, cy))
    scale = np.hypot(ha[1] - ha[0], hb[1] - hb[0])
    return float(max(np.max(np.abs(a1 - a0)), np.max(np.abs(b1 - b0))) / scale)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="timings per column; best and median shown (default 5)")
    p.add_argument(
        "--shapes", type=int, nargs="+", default=[2048, 1024], help="synthetic detector sizes (default 2048 1024)"
    )
    p.add_argument("--no-siaf", action="store_true", help="skip the SIAF NIRCam and MIRI inputs")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    if pixmap.compiled_available():
        from dask_resample.geometry.pixmap_compiled import warm_up

        t_warm, _ = _timed(warm_up)
        print(f"numba: compiled evaluation loaded (or compiled) in {t_warm:.2f} s, before the timings")
    else:
        print("numba not installed: the compiled column is the numpy path")
    cases = [c for size in args.shapes for c in _synthetic_cases(size)]
    if not args.no_siaf:
        cases += _siaf_cases()
    print(
        f"{'WCS kind':26s} {'shape':>10s} {'calc s':>7s} {'numpy s best/med':>17s} "
        f"{'compiled s best/med':>20s} {'numpy/comp':>10s} {'cpu ratio':>9s} {'calc/comp':>9s} {'|d| calc px':>11s} "
        f"{'|d| numpy px':>12s} {'|d| head px':>11s}"
    )
    for kind, wcs_in, wcs_out, shape in cases:
        t_ref, ref = _timed(lambda: calc_pixmap(wcs_in, wcs_out, shape))  # noqa: B023
        t_np, t_c, cpu_np, cpu_c = [], [], [], []
        for _ in range(args.repeat):
            with pixmap.compiled_head(False):
                t, cpu, fast_np = _timed_cpu(lambda: compute_pixmap(wcs_in, wcs_out, shape, fast=True))  # noqa: B023
            t_np.append(t)
            cpu_np.append(cpu)
            t, cpu, fast_c = _timed_cpu(lambda: compute_pixmap(wcs_in, wcs_out, shape, fast=True))  # noqa: B023
            t_c.append(t)
            cpu_c.append(cpu)
        d_ref = float(np.nanmax(np.abs(fast_c - ref)))
        d_np = float(np.nanmax(np.abs(fast_c - fast_np)))
        d_head = _head_diff_px(wcs_in, shape)
        head = "-" if d_head is None else f"{d_head:.1e}"
        b_np, b_c = min(t_np), min(t_c)
        print(
            f"{kind:26s} {shape[0]:>4d}x{shape[1]:<5d} {t_ref:7.3f} {b_np:8.3f}/{statistics.median(t_np):<8.3f} "
            f"{b_c:9.3f}/{statistics.median(t_c):<10.3f} {b_np / b_c:10.1f} {min(cpu_np) / min(cpu_c):9.1f} "
            f"{t_ref / b_c:9.1f} {d_ref:11.1e} "
            f"{d_np:12.1e} {head:>11s}"
        )


if __name__ == "__main__":
    main()
