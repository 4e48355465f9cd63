"""Per-exposure pixel-map time: stcal's calc_pixmap against the fast pixel map.

For each WCS kind and input shape the script times ``calc_pixmap`` and
``dask_resample.kernel.compute_pixmap(..., fast=True)`` (which includes the
recognition and the self-check on sample pixels) and prints a table with the
speed-up and the largest difference between the two maps in output pixels.

Usage::

    python benchmarks/bench_pixmap.py [--repeat 3] [--shapes 2048 128]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from stcal.alignment.util import wcs_from_sregions
from stcal.resample.utils import calc_pixmap

from dask_resample.kernel import compute_pixmap
from dask_resample.synthetic import make_detector_wcs


def _best(fn, repeat: int) -> tuple[float, np.ndarray]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _cases(size: int) -> list[tuple[str, object, object]]:
    """(kind, input WCS, output WCS) for one detector size."""
    from astropy.wcs import WCS

    from dask_resample.wcs_adapter import FitsImagingWCS

    shape = (size, size)
    ra, dec, roll = 53.16, -27.78, 20.0
    synthetic = make_detector_wcs(ra, dec, roll_deg=roll, shape=shape, offset_pixels=(0.1 * size, 0.05 * size))
    ref = make_detector_wcs(ra, dec, roll_deg=roll, shape=shape)
    info = {"roll_ref": roll, "v3yangle": 0.0, "vparity": -1, "ra_ref": ra, "dec_ref": dec}
    out = wcs_from_sregions([ref.footprint(), synthetic.footprint()], ref, info)
    header = synthetic.to_fits_sip(degree=3, max_inv_pix_error=0.01, inv_degree=range(3, 7))
    fits_sip = FitsImagingWCS(WCS(header), shape)
    return [("synthetic gwcs (poly+TAN)", synthetic, out), ("FITS TAN-SIP", fits_sip, out)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="timings per case; the best is shown (default 3)")
    p.add_argument("--shapes", type=int, nargs="+", default=[2048, 128], help="detector sizes (default 2048 128)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"{'WCS kind':28s} {'shape':>11s} {'calc_pixmap s':>14s} {'fast s':>9s} {'speedup':>8s} "
          f"{'max |diff| px':>14s}")
    for size in args.shapes:
        for kind, wcs_in, wcs_out in _cases(size):
            shape = (size, size)
            t_ref, ref = _best(lambda: calc_pixmap(wcs_in, wcs_out, shape), args.repeat)  # noqa: B023
            t_fast, fast = _best(lambda: compute_pixmap(wcs_in, wcs_out, shape, fast=True), args.repeat)  # noqa: B023
            diff = float(np.nanmax(np.abs(fast - ref)))
            print(f"{kind:28s} {size:>5d}x{size:<5d} {t_ref:14.4f} {t_fast:9.4f} {t_ref / t_fast:8.1f} {diff:14.2e}")


if __name__ == "__main__":
    main()
