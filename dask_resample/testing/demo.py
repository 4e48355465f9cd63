"""The newcomer demo (``dask-resample demo``, ``make demo``).

Writes a small synthetic NIRCam-like dataset (4 dithers x 2 detectors of
512 x 512 pixels), drizzles it on a LocalCluster into a tiled Zarr mosaic with
a progress bar, draws a PNG preview and prints where everything is.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api import resample
from ..cluster import connect
from ..products.figures import preview_png
from ..store import is_mosaic

__all__ = ["DemoResult", "main"]


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its products."""

    data_dir: Path
    asn_path: Path
    mosaic: Path
    preview: Path
    seconds: float


def _say(text: str, quiet: bool) -> None:
    if not quiet:
        print(text, flush=True)


def main(
    output_dir: str | os.PathLike = "demo_output",
    workers: int | None = None,
    *,
    n_dithers: int = 4,
    n_detectors: int = 2,
    shape: tuple[int, int] = (512, 512),
    tile_shape: tuple[int, int] = (256, 256),
    quiet: bool = False,
    client: Any = None,
) -> DemoResult:
    """Run the demo.

    Parameters
    ----------
    output_dir : path-like
        Directory for the dataset (``data/``), the mosaic (``mosaic.zarr``) and
        the preview (``mosaic.png``). A mosaic left by an earlier demo is
        replaced; any other existing ``mosaic.zarr`` is left alone (error).
    workers : int, optional
        LocalCluster workers, one thread each (default 2).
    n_dithers, n_detectors : int
        Exposures written: ``n_dithers`` pointings of ``n_detectors`` detectors.
    shape : (int, int)
        Detector shape (ny, nx).
    tile_shape : (int, int)
        Mosaic tile shape (ny, nx).
    quiet : bool
        Print nothing (no progress bar either).
    client : distributed.Client, optional
        Run on this client instead of starting a LocalCluster.

    Returns
    -------
    DemoResult
    """
    from . import synthetic  # deferred: astropy.modeling, gwcs and stcal, loaded only when the demo runs

    t0 = time.perf_counter()
    out_dir = Path(output_dir).resolve()
    data_dir = out_dir / "data"
    mosaic = out_dir / "mosaic.zarr"
    png = out_dir / "mosaic.png"
    if mosaic.exists() and not is_mosaic(mosaic):
        raise FileExistsError(f"{mosaic}: exists and is not a dask-resample mosaic; refusing to touch it")

    ny, nx = shape
    _say(
        f"[1/4] Writing {n_dithers} dithers x {n_detectors} detectors of {ny} x {nx} pixels "
        f"(synthetic NIRCam-like *_cal.fits) to {data_dir}",
        quiet,
    )
    dataset = synthetic.write_dataset(
        data_dir,
        n_dithers=n_dithers,
        n_detectors=n_detectors,
        shape=(ny, nx),
        seed=42,
        sky_level=0.1,
    )

    n_workers = workers or 2
    if client is None:
        _say(f"[2/4] Starting a LocalCluster: {n_workers} workers x 1 thread", quiet)
        handle = connect(cluster="local", n_workers=n_workers, threads_per_worker=1)
    else:
        _say(f"[2/4] Using the Dask client {client.scheduler.address}", quiet)
        handle = connect(client)
    try:
        if (link := handle.dashboard_link) and not quiet:
            print(f"      Dask dashboard: {link}", flush=True)
        _say(f"[3/4] Drizzling {len(dataset.paths)} exposures into {mosaic}", quiet)
        ds = resample(
            dataset.asn_path,
            mosaic,
            client=handle.client,
            good_bits="~DO_NOT_USE+NON_SCIENCE",
            compute_err="from_var",
            tile_shape=tile_shape,
            overwrite=True,
            progress=not quiet,
        )
    finally:
        handle.close()
    _say(f"[4/4] Drawing the preview {png}", quiet)
    preview_png(mosaic, png)
    seconds = time.perf_counter() - t0
    if not quiet:
        mny, mnx = ds["data"].shape
        cli = "dask-resample" if shutil.which("dask-resample") else f"{sys.executable} -m dask_resample.cli"
        print(
            f"\nDone in {seconds:.0f} s.\n"
            f"  inputs:  {dataset.asn_path}\n"
            f"  mosaic:  {mosaic}  ({mny} x {mnx} pixels, arrays {', '.join(sorted(ds.data_vars))})\n"
            f"  preview: {png}\n\n"
            "Next:\n"
            f"  {cli} info {mosaic}\n"
            f"  {cli} export {mosaic} {out_dir / 'mosaic_i2d.fits'}\n"
            f"  {sys.executable} -c \"import dask_resample as dr; print(dr.open_mosaic('{mosaic}'))\"",
            flush=True,
        )
    return DemoResult(data_dir=data_dir, asn_path=Path(dataset.asn_path), mosaic=mosaic, preview=png, seconds=seconds)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1]) if len(sys.argv) > 1 else main()
