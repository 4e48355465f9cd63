#!/usr/bin/env python
"""SWarp and dask-resample side by side on the same plain-FITS TAN survey layout.

The inputs are a grid of pointings (default 5 x 5), ``--dithers`` exposures each
(default 2), one ``--size`` x ``--size`` image per exposure (default 1024), laid out
by :class:`dask_resample.testing.synthetic_survey.SurveyLayout` with the sources of its
catalogue. Every exposure is written as a plain FITS file: one float32 image in
the primary HDU with a TAN WCS without distortion (``CRVAL``, ``CRPIX``, ``CD``),
``EXPTIME`` and no variance, DQ or weight arrays, so both programs read the same
WCS and the same pixels.

Programs (``--programs``), each run as a whole command in a process of its own:

* ``swarp-lanczos3``: SWarp with ``RESAMPLING_TYPE=LANCZOS3`` (its default);
* ``swarp-bilinear``: SWarp with ``RESAMPLING_TYPE=BILINEAR``;
* ``dask-resample-square``: ``python -m dask_resample.cli run --kernel square``;
* ``dask-resample-lanczos3``: the same with ``--kernel lanczos3``.

SWarp gets ``NTHREADS=--swarp-threads`` (default 2); dask-resample a LocalCluster
of ``--workers`` x ``--threads-per-worker`` (default 2 x 1). The wall time covers the
whole command (process start, imports and, for dask-resample, cluster start-up).
Each repeat runs every program once, in the listed order on even repeats and in
the reverse order on odd ones; the median wall time is reported. Before them, every
program runs once, untimed, on two inputs (``--warmup``): the first process of a fresh
checkout compiles dask-resample's numba kernels into their on-disk cache. A thread samples
the RSS and ``VmHWM`` (the kernel's peak RSS) of every process of the command's
process tree every ``--sample-interval`` seconds; for SWarp's single process the
exact peak comes from ``wait4``.

SWarp's settings (see :func:`swarp_command`): ``COMBINE_TYPE=WEIGHTED`` with no
input weight maps (every pixel weighs 1, as dask-resample's ``ivm`` weights
without a read-noise variance), no background subtraction (dask-resample does
none), the inputs' pixel scale, a TAN output centred on all inputs, north up.
SWarp resamples every input to a FITS file on disk (``RESAMPLE_DIR``, in the run's
directory) and co-adds those files in a second pass: that is its design, and its
disk traffic is part of its time. dask-resample's output is north up too
(``--rotation 0``), at the inputs' pixel scale.

``--check`` compares every dask-resample mosaic with its SWarp counterpart
(``square`` with ``BILINEAR``, ``lanczos3`` with ``LANCZOS3``) on a common box:
summed flux and the correlation of block sums. The kernels differ, so this is a
sanity check of the runs, not a parity test.

Usage::

    python benchmarks/bench_swarp.py                     # 5x5x2 of 1024², 3 repeats
    python benchmarks/bench_swarp.py --grid 2x2 --size 256 --repeats 1 --check   # a quick trial
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import dataset_cached, mark_dataset, vmhwm_bytes

MIB = 1024**2
#: SWarp's counterpart of each dask-resample kernel in the ratio column.
COUNTERPART = {"dask-resample-square": "swarp-bilinear", "dask-resample-lanczos3": "swarp-lanczos3"}
ALL_PROGRAMS = ("swarp-lanczos3", "swarp-bilinear", "dask-resample-square", "dask-resample-lanczos3")
#: Noise of the synthetic images (standard deviation, image units).
NOISE_SIGMA = 0.02


# ----------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------
def _grid(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected COLSxROWS such as 5x5, got {text!r}") from None
    if min(cols, rows) < 1:
        raise argparse.ArgumentTypeError(f"expected positive grid sizes, got {text!r}")
    return cols, rows


def make_layout(args: argparse.Namespace) -> Any:
    """The :class:`~dask_resample.testing.synthetic_survey.SurveyLayout` of the benchmark (no distortion)."""
    from dask_resample.testing.synthetic_survey import SurveyLayout

    return SurveyLayout(grid_xy=args.grid, dithers=args.dithers, shape=(args.size, args.size),
                        overlap=args.overlap, pixel_scale_arcsec=args.pixel_scale, roll_deg=args.roll,
                        distortion=0.0)  # fmt: skip


def tan_header(layout: Any, offset_xy: tuple[float, float]) -> Any:
    """FITS TAN header of an exposure centred ``offset_xy`` ideal pixels from the layout's tangent point.

    The same transform as :func:`dask_resample.testing.synthetic.make_detector_wcs` with no
    distortion: detector pixel ``(x, y)`` (0-based) is at ideal pixel
    ``(x - (nx - 1) / 2 + dx, y - (ny - 1) / 2 + dy)``, mapped to the sky by the
    roll/scale matrix, a TAN projection and the tangent point (``LONPOLE = 180``).
    """
    from astropy.io import fits

    from dask_resample.testing.synthetic_scene import _rotation_matrix

    ny, nx = layout.shape
    cd = _rotation_matrix(layout.roll_deg) * (layout.pixel_scale_arcsec / 3600.0)
    header = fits.Header()
    header["WCSAXES"] = 2
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
    header["CUNIT1"], header["CUNIT2"] = "deg", "deg"
    header["CRVAL1"], header["CRVAL2"] = float(layout.ra_deg), float(layout.dec_deg)
    header["CRPIX1"] = (nx - 1) / 2.0 - offset_xy[0] + 1.0  # FITS pixels are 1-based
    header["CRPIX2"] = (ny - 1) / 2.0 - offset_xy[1] + 1.0
    header["CD1_1"], header["CD1_2"] = float(cd[0, 0]), float(cd[0, 1])
    header["CD2_1"], header["CD2_2"] = float(cd[1, 0]), float(cd[1, 1])
    header["LONPOLE"] = 180.0
    header["RADESYS"] = "ICRS"
    header["EQUINOX"] = 2000.0
    header["EXPTIME"] = (1000.0, "exposure time [s]")
    header["BUNIT"] = "MJy/sr"
    return header


def _write_one(job: tuple[Path, Any, Any, np.ndarray, int]) -> str:
    """Write one exposure (``job``: directory, layout, exposure, nearby sources, seed); return its file name."""
    from astropy.io import fits

    from dask_resample.testing.synthetic_survey import _render

    directory, layout, exp, near, seed = job
    ny, nx = layout.shape
    # the catalogue is in ideal pixels of the common tangent plane: without distortion a source's
    # detector position is a shift of it
    xs = near[:, 0] - exp.offset_xy[0] + (nx - 1) / 2.0
    ys = near[:, 1] - exp.offset_xy[1] + (ny - 1) / 2.0
    signal = _render(near, xs, ys, (ny, nx)) if len(near) else np.zeros((ny, nx))
    rng = np.random.default_rng([seed, 1, exp.index])
    data = (signal + rng.standard_normal((ny, nx)) * NOISE_SIGMA).astype(np.float32)
    name = f"survey_{exp.index + 1:05d}.fits"
    fits.PrimaryHDU(data, tan_header(layout, exp.offset_xy)).writeto(directory / name, overwrite=True)
    return name


def write_inputs(directory: Path, layout: Any, seed: int, processes: int) -> list[Path]:
    """Write the layout's exposures as plain FITS TAN images (reused if ``directory`` holds them already).

    Parameters
    ----------
    directory : Path
        Where the files go; a ``dataset.json`` marker records their parameters.
    layout : SurveyLayout
        Pointings, dithers, image shape, overlap, pixel scale and roll.
    seed : int
        Seed of the source catalogue and the noise.
    processes : int
        Processes writing the files.

    Returns
    -------
    list of Path
        The files, in the layout's order (pointing-major, then dither).
    """
    from dask_resample.testing.synthetic_survey import _catalogue

    spec = {"kind": "plain-fits-tan", "layout": layout.to_dict(), "seed": seed, "noise": NOISE_SIGMA}
    names = [f"survey_{e.index + 1:05d}.fits" for e in layout.exposures()]
    if dataset_cached(directory, spec):
        return [directory / n for n in names]
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    sources = _catalogue(layout, seed)
    reach = 0.75 * max(layout.shape) + 30.0
    jobs = [(directory, layout, e,
             sources[(np.abs(sources[:, 0] - e.offset_xy[0]) < reach)
                     & (np.abs(sources[:, 1] - e.offset_xy[1]) < reach)], seed)
            for e in layout.exposures()]  # fmt: skip
    if processes <= 1 or len(jobs) == 1:
        written = [_write_one(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=processes) as pool:
            written = list(pool.map(_write_one, jobs, chunksize=max(1, len(jobs) // (4 * processes))))
    assert written == names
    mark_dataset(directory, spec)
    return [directory / n for n in names]


# ----------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------
def swarp_settings(args: argparse.Namespace, resampling: str, run_dir: Path) -> dict[str, str]:
    """SWarp's configuration for one run: every setting the benchmark relies on, explicitly.

    Parameters
    ----------
    args : argparse.Namespace
        ``pixel_scale`` (arcsec) and ``swarp_threads``.
    resampling : str
        ``RESAMPLING_TYPE`` (``LANCZOS3``, ``BILINEAR``, ...).
    run_dir : Path
        The run's directory: output, resampled intermediates (``RESAMPLE_DIR``) and
        virtual-memory swap files (``VMEM_DIR``).
    """
    return {
        "IMAGEOUT_NAME": str(run_dir / "coadd.fits"),
        "WEIGHTOUT_NAME": str(run_dir / "coadd.weight.fits"),
        "HEADER_ONLY": "N",              # a full image, not just its header
        "WEIGHT_TYPE": "NONE",           # no input weight maps: every pixel weighs 1
        "COMBINE": "Y",
        "COMBINE_TYPE": "WEIGHTED",      # weighted mean, as drizzle's
        "RESAMPLE": "Y",
        "RESAMPLE_DIR": str(run_dir),    # one resampled FITS image (+ weight) per input, deleted at the end
        "DELETE_TMPFILES": "Y",
        "RESAMPLING_TYPE": resampling,
        "OVERSAMPLING": "0",             # automatic: none at the inputs' own scale
        "SUBTRACT_BACK": "N",            # dask-resample subtracts no background
        "CELESTIAL_TYPE": "NATIVE",
        "PROJECTION_TYPE": "TAN",
        "CENTER_TYPE": "ALL",            # centred on all the inputs, large enough for all of them
        "IMAGE_SIZE": "0",
        "PIXELSCALE_TYPE": "MANUAL",
        "PIXEL_SCALE": repr(float(args.pixel_scale)),  # the inputs' scale (arcsec)
        "FSCALASTRO_TYPE": "FIXED",      # surface brightness kept (one scale for all: factor 1)
        "VMEM_DIR": str(run_dir),
        "NTHREADS": str(args.swarp_threads),
        "VERBOSE_TYPE": "QUIET",
        "WRITE_XML": "N",
    }  # fmt: skip


def swarp_command(args: argparse.Namespace, resampling: str, run_dir: Path, list_file: Path) -> list[str]:
    """The SWarp command line (inputs from ``@list_file``, settings of :func:`swarp_settings`)."""
    cmd = [args.swarp, f"@{list_file}"]
    for key, value in swarp_settings(args, resampling, run_dir).items():
        cmd += [f"-{key}", value]
    return cmd


def dask_command(args: argparse.Namespace, kernel: str, run_dir: Path, inputs: Sequence[Path]) -> list[str]:
    """The ``dask-resample run`` command line for ``kernel``.

    The inputs carry no variance, so ``--no-var --compute-err none``; ``--rotation 0``
    makes the mosaic north up as SWarp's; ``--no-ctx`` unless ``args.ctx`` (SWarp
    writes an image and a weight map, no context).
    """
    cmd = [sys.executable, "-m", "dask_resample.cli", "run", *map(str, inputs), "-o", str(run_dir / "mosaic.zarr"),
           "--kernel", kernel, "--pixel-scale-ratio", "1", "--rotation", "0", "--no-var", "--compute-err", "none",
           "--workers", str(args.workers), "--threads-per-worker", str(args.threads_per_worker),
           "--tile-shape", str(args.tile), str(args.tile), "--overwrite", "--quiet"]  # fmt: skip
    if not args.ctx:
        cmd.append("--no-ctx")
    return cmd


@dataclass
class Program:
    """One program of the comparison.

    Attributes
    ----------
    name : str
        Key in ``--programs`` (``swarp-lanczos3``, ``dask-resample-square``, ...).
    label : str
        Row label of the table.
    kind : {"swarp", "dask"}
    setting : str
        SWarp's ``RESAMPLING_TYPE`` or dask-resample's kernel.
    runs : list of dict
        Measurements of every repeat.
    """

    name: str
    label: str
    kind: str
    setting: str
    runs: list[dict[str, Any]] = field(default_factory=list)


def programs(names: Sequence[str]) -> list[Program]:
    """The programs named in ``names``, in that order."""
    out = []
    for name in names:
        if name.startswith("swarp-"):
            setting = name.split("-", 1)[1].upper()
            note = " (its default)" if setting == "LANCZOS3" else ""
            out.append(Program(name, f"SWarp {setting}{note}", "swarp", setting))
        else:
            kernel = name.rsplit("-", 1)[1]
            out.append(Program(name, f"dask-resample {kernel}", "dask", kernel))
    return out


# ----------------------------------------------------------------------------
# running a command
# ----------------------------------------------------------------------------
class TreeSampler:
    """Peak RSS of every process of a process tree, sampled from a thread.

    For every process seen (the root and its descendants) the largest sampled RSS
    and the last ``VmHWM`` read (the kernel's own peak, which sampling cannot miss
    while the process lives) are kept; the peak is the larger of the two.

    Parameters
    ----------
    pid : int
        The root process.
    interval : float
        Seconds between samples.
    """

    def __init__(self, pid: int, interval: float) -> None:
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.interval = float(interval)
        self.procs: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-tree-sampler", daemon=True)

    def sample(self) -> None:
        """Take one sample of every live process of the tree."""
        psutil = self._psutil
        try:
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in tree:
            try:
                rss = int(proc.memory_info().rss)
                rec = self.procs.get(proc.pid)
                if rec is None:
                    rec = self.procs[proc.pid] = {
                        "pid": proc.pid,
                        "ppid": proc.ppid(),
                        "start": proc.create_time(),
                        "cmdline": "",
                        "rss": 0,
                        "hwm": 0,
                    }
                # read again while it lives: a spawned child shows its parent's command line until it
                # execs, and a dask worker renames itself (an ending process shows an empty one)
                cmdline = " ".join(proc.cmdline())[:300]
                if cmdline:
                    rec["cmdline"] = cmdline
            except psutil.Error:
                continue
            rec["rss"] = max(rec["rss"], rss)
            hwm = vmhwm_bytes(proc.pid)
            if hwm is not None:
                rec["hwm"] = max(rec["hwm"], hwm)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def label_processes(procs: dict[int, dict[str, Any]], root_pid: int, kind: str) -> dict[str, int]:
    """Peak RSS (bytes) by role: ``SWarp``; or ``client`` (dask-resample's command: client, scheduler and
    nannies of its LocalCluster), ``worker-0``, ``worker-1``, ... (by start time) and ``resource tracker``
    (multiprocessing's)."""
    out: dict[str, int] = {}
    workers = []
    for rec in procs.values():
        peak = max(rec["rss"], rec["hwm"])
        if rec["pid"] == root_pid:
            out["SWarp" if kind == "swarp" else "client"] = peak
        elif "resource_tracker" in rec["cmdline"]:
            out["resource tracker"] = max(out.get("resource tracker", 0), peak)
        elif rec["ppid"] == root_pid and any(t in rec["cmdline"] for t in ("spawn_main", "forkserver", "dask worker")):
            workers.append(rec)
        # anything else is a short-lived helper (``uname -p`` run by an import in the client or a worker):
        # sampled between its fork and its exec, it shows its parent's command line and pages; it is left
        # out (the JSON keeps it)
    for k, rec in enumerate(sorted(workers, key=lambda r: (r["start"], r["pid"]))):
        out[f"worker-{k}"] = max(rec["rss"], rec["hwm"])
    return out


def run_command(cmd: list[str], cwd: Path, kind: str, interval: float) -> dict[str, Any]:
    """Run ``cmd`` in ``cwd``; wall time, CPU seconds and peak RSS of its processes.

    Returns
    -------
    dict
        ``wall`` (seconds from start to exit), ``cpu`` (user + system seconds of the
        command and the children it waited for, from ``wait4``), ``rss`` (role -> peak
        bytes, see :func:`label_processes`), ``maxrss_tree`` (``wait4``'s ``ru_maxrss``:
        the largest process of the tree), ``processes`` (what was sampled of each).

    Raises
    ------
    RuntimeError
        If the command fails (the end of its output is printed).
    """
    cwd.mkdir(parents=True, exist_ok=True)
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fo, stderr=fe)
        with TreeSampler(proc.pid, interval) as sampler:
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(err.read_text(errors="replace")[-4000:] + out.read_text(errors="replace")[-2000:])
        raise RuntimeError(f"{Path(cmd[0]).name} ... failed with status {proc.returncode}: {' '.join(cmd[:3])} ...")
    rss = label_processes(sampler.procs, proc.pid, kind)
    if kind == "swarp":  # one process: wait4's peak is exact
        rss["SWarp"] = max(rss.get("SWarp", 0), int(usage.ru_maxrss) * 1024)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": rss,
            "maxrss_tree": int(usage.ru_maxrss) * 1024, "processes": list(sampler.procs.values())}  # fmt: skip


def output_shape(kind: str, run_dir: Path) -> tuple[int, int]:
    """``(ny, nx)`` of the mosaic a run wrote."""
    if kind == "swarp":
        from astropy.io import fits

        header = fits.getheader(run_dir / "coadd.fits")
        return int(header["NAXIS2"]), int(header["NAXIS1"])
    import zarr

    return tuple(int(n) for n in zarr.open_group(str(run_dir / "mosaic.zarr"), mode="r")["data"].shape[-2:])


# ----------------------------------------------------------------------------
# the sanity check
# ----------------------------------------------------------------------------
def read_swarp(run_dir: Path) -> tuple[np.ndarray, Any]:
    """SWarp's image (NaN where its weight is 0) and WCS."""
    from astropy.io import fits
    from astropy.wcs import WCS

    with fits.open(run_dir / "coadd.fits") as hdul:
        data = hdul[0].data.astype(np.float64)
        wcs = WCS(hdul[0].header)
    weight = fits.getdata(run_dir / "coadd.weight.fits")
    data[~(weight > 0)] = np.nan
    return data, wcs


def read_dask(run_dir: Path) -> tuple[np.ndarray, Any]:
    """dask-resample's ``data`` and the FITS WCS of the mosaic (its ``wcs_fits`` cards)."""
    import zarr
    from astropy.io import fits
    from astropy.wcs import WCS

    group = zarr.open_group(str(run_dir / "mosaic.zarr"), mode="r")
    data = np.asarray(group["data"][...], dtype=np.float64)
    cards = find_key(dict(group.attrs), "wcs_fits")
    if cards is None:
        raise RuntimeError(f"{run_dir / 'mosaic.zarr'}: no 'wcs_fits' cards in its attributes")
    return data, WCS(fits.Header(cards))


def find_key(tree: Any, key: str) -> Any:
    """The first value stored under ``key`` in nested dictionaries, or ``None``."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = find_key(value, key)
            if found is not None:
                return found
    return None


def compare(ours_dir: Path, swarp_dir: Path, box: int, block: int) -> dict[str, Any]:
    """Compare a dask-resample mosaic with a SWarp mosaic on a common box around the mosaic's centre.

    The box (``box`` x ``box`` pixels of dask-resample's mosaic) is located in
    SWarp's mosaic through both WCSs (both north up, same pixel scale: a shift,
    rounded to whole pixels). Pixels without data in either mosaic are left out of
    both. Reported: the ratio of summed flux (SWarp / dask-resample), the
    correlation of ``block`` x ``block`` block sums, the residual sub-pixel shift and
    the covered fraction of the box.
    """
    ours, ours_wcs = read_dask(ours_dir)
    theirs, theirs_wcs = read_swarp(swarp_dir)
    ny, nx = ours.shape
    box = min(box, ny, nx)
    box -= box % block
    y0, x0 = (ny - box) // 2, (nx - box) // 2
    cx, cy = x0 + (box - 1) / 2.0, y0 + (box - 1) / 2.0
    sky = ours_wcs.pixel_to_world_values(cx, cy)
    tx, ty = theirs_wcs.world_to_pixel_values(*sky)
    sx, sy = float(tx) - cx, float(ty) - cy
    dx, dy = round(sx), round(sy)
    if not (0 <= y0 + dy and y0 + dy + box <= theirs.shape[0] and 0 <= x0 + dx and x0 + dx + box <= theirs.shape[1]):
        raise RuntimeError("the common box is not inside SWarp's mosaic")
    a = ours[y0 : y0 + box, x0 : x0 + box]
    b = theirs[y0 + dy : y0 + dy + box, x0 + dx : x0 + dx + box]
    good = np.isfinite(a) & np.isfinite(b)
    a, b = np.where(good, a, 0.0), np.where(good, b, 0.0)
    blocks_a = a.reshape(box // block, block, box // block, block).sum(axis=(1, 3)).ravel()
    blocks_b = b.reshape(box // block, block, box // block, block).sum(axis=(1, 3)).ravel()
    return {
        "box": box, "block": block, "shift_px": [sx, sy], "residual_shift_px": [sx - dx, sy - dy],
        "covered": float(good.mean()),
        "flux_ours": float(a.sum()), "flux_swarp": float(b.sum()),
        "flux_ratio": float(b.sum() / a.sum()) if a.sum() else math.nan,
        "block_correlation": float(np.corrcoef(blocks_a, blocks_b)[0, 1]),
    }  # fmt: skip


def check_passes(res: dict[str, Any], args: argparse.Namespace) -> bool:
    """Whether a comparison looks like two working runs (thresholds ``--check-*``)."""
    return (abs(res["flux_ratio"] - 1.0) <= args.check_flux_tol and res["block_correlation"] >= args.check_min_corr
            and res["covered"] >= 0.9)  # fmt: skip


# ----------------------------------------------------------------------------
# the benchmark
# ----------------------------------------------------------------------------
def _mib(value: int | None) -> str:
    return "-" if not value else f"{value / MIB:,.0f} MiB"


def summarise(progs: list[Program]) -> dict[str, dict[str, Any]]:
    """Median wall time, output size, seconds per output megapixel and the largest peaks, per program."""
    out: dict[str, dict[str, Any]] = {}
    for p in progs:
        if not p.runs:
            continue
        walls = [r["wall"] for r in p.runs]
        ny, nx = p.runs[-1]["shape"]
        rss: dict[str, int] = {}
        for r in p.runs:
            for role, value in r["rss"].items():
                rss[role] = max(rss.get(role, 0), value)
        wall = statistics.median(walls)
        mpix = ny * nx / 1e6
        out[p.name] = {"label": p.label, "walls": walls, "wall": wall,
                       "cpu": statistics.median(r["cpu"] for r in p.runs), "shape": (ny, nx), "mpix": mpix,
                       "s_per_mpix": wall / mpix, "rss": rss}  # fmt: skip
    for name, counterpart in COUNTERPART.items():
        if name in out and counterpart in out:
            out[name]["vs"] = out[counterpart]["s_per_mpix"] / out[name]["s_per_mpix"]
            out[name]["wall_vs"] = out[counterpart]["wall"] / out[name]["wall"]
            out[name]["cpu_vs"] = out[counterpart]["cpu"] / out[name]["cpu"]
            out[name]["vs_label"] = out[counterpart]["label"].split(" (")[0]
    return out


def table(summary: dict[str, dict[str, Any]]) -> str:
    """The Markdown table of the results."""
    workers = sorted(
        {r for s in summary.values() for r in s["rss"] if r.startswith("worker-")}, key=lambda r: int(r.split("-")[1])
    )
    head = ["program", "wall [s]", "CPU [s]", "output (ny x nx)", "output Mpix", "s / output Mpix",
            "per output pixel vs SWarp", "wall vs SWarp", "CPU vs SWarp", "peak RSS SWarp / client",
            *(f"peak RSS {w}" for w in workers), "largest process"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary.values():
        ny, nx = s["shape"]
        vs = f"{s['vs']:.2f}x ({s['vs_label']})" if "vs" in s else "-"
        wall_vs = f"{s['wall_vs']:.2f}x" if "wall_vs" in s else "-"
        cpu_vs = f"{s['cpu_vs']:.2f}x" if "cpu_vs" in s else "-"
        main_rss = s["rss"].get("SWarp") or s["rss"].get("client")
        row = [s["label"], f"{s['wall']:.1f}", f"{s['cpu']:.1f}", f"{ny:,} x {nx:,}", f"{s['mpix']:.1f}",
               f"{s['s_per_mpix']:.3f}", vs, wall_vs, cpu_vs, _mib(main_rss), *(_mib(s["rss"].get(w)) for w in workers),
               _mib(max(s["rss"].values()))]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def command(args: argparse.Namespace, p: Program, run_dir: Path, inputs: Sequence[Path], list_file: Path) -> list[str]:
    """The command line of program ``p`` writing into ``run_dir``."""
    if p.kind == "swarp":
        return swarp_command(args, p.setting, run_dir, list_file)
    return dask_command(args, p.setting, run_dir, inputs)


def warm_up(args: argparse.Namespace, progs: list[Program], inputs: Sequence[Path], runs_dir: Path) -> None:
    """Run every program once, untimed, on the first two inputs.

    This fills numba's on-disk cache of dask-resample's compiled kernels (a fresh
    checkout compiles them in the first process that needs them: tens of seconds)
    and the page cache of both programs' executables and libraries.
    """
    few = list(inputs[:2])
    list_file = runs_dir / "warmup-inputs.txt"
    runs_dir.mkdir(parents=True, exist_ok=True)
    list_file.write_text("".join(f"{p}\n" for p in few))
    for p in progs:
        run_dir = runs_dir / f"warmup-{p.name}"
        t0 = time.perf_counter()
        run_command(command(args, p, run_dir, few, list_file), run_dir, p.kind, 1.0)
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"  warm-up {p.label:<34} {time.perf_counter() - t0:7.1f} s (2 inputs, not counted)", flush=True)


def run_benchmark(args: argparse.Namespace) -> int:
    """Write the inputs, run every program ``--repeats`` times alternating the order, print the table."""
    if shutil.which(args.swarp) is None and any(n.startswith("swarp") for n in args.programs):
        print(f"SWarp not found: {args.swarp} (Debian/Ubuntu: apt-get install swarp)", file=sys.stderr)
        return 2
    layout = make_layout(args)
    workdir = Path(args.workdir)
    cols, rows = args.grid
    data_dir = workdir / f"data-{cols}x{rows}x{args.dithers}-{args.size}-roll{args.roll:g}-seed{args.seed}"
    runs_dir = workdir / "runs"
    t0 = time.perf_counter()
    inputs = write_inputs(data_dir, layout, args.seed, args.write_processes)
    print(f"inputs: {len(inputs)} plain FITS TAN images of {args.size}x{args.size} in {data_dir} "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)  # fmt: skip
    list_file = data_dir / "inputs.txt"
    list_file.write_text("".join(f"{p}\n" for p in inputs))
    progs = programs(args.programs)
    try:
        if args.warmup:
            warm_up(args, progs, inputs, runs_dir)
        for rep in range(args.repeats):
            order = progs if rep % 2 == 0 else progs[::-1]
            for p in order:
                run_dir = runs_dir / p.name
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                run_dir.mkdir(parents=True)
                res = run_command(command(args, p, run_dir, inputs, list_file), run_dir, p.kind, args.sample_interval)
                res["shape"] = output_shape(p.kind, run_dir)
                res["repeat"] = rep
                p.runs.append(res)
                peaks = ", ".join(f"{k} {_mib(v)}" for k, v in res["rss"].items())
                ny, nx = res["shape"]
                print(f"  repeat {rep + 1}/{args.repeats} {p.label:<32} {res['wall']:7.1f} s  "
                      f"CPU {res['cpu']:6.1f} s  {ny} x {nx}  {peaks}", flush=True)  # fmt: skip
        summary = summarise(progs)
        ncores = os.cpu_count()
        load = os.getloadavg()
        print()
        print(f"### {len(inputs)} plain FITS TAN images of {args.size}x{args.size} "
              f"({args.grid[0]} x {args.grid[1]} pointings x {args.dithers} dithers, no variances), "
              f"SWarp NTHREADS={args.swarp_threads}, dask-resample {args.workers} workers x "
              f"{args.threads_per_worker} thread{'s' if args.threads_per_worker > 1 else ''}")  # fmt: skip
        print()
        print(table(summary))
        print()
        for s in summary.values():
            print(f"- {s['label']}: wall times {', '.join(f'{w:.1f}' for w in s['walls'])} s")
        print(f"- whole commands timed (process start, imports, cluster start-up); median of {args.repeats} "
              f"repeat{'s' if args.repeats > 1 else ''}, order alternated each repeat; "
              f"CPU = user + system seconds of the command's processes (wait4); "
              f"{ncores} CPUs, load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")  # fmt: skip
        print(
            "- per output pixel vs SWarp: SWarp's seconds per output pixel / ours; wall vs SWarp: SWarp's wall "
            "time / ours on the same inputs; CPU vs SWarp: the same for CPU seconds (above 1: dask-resample "
            "faster). SWarp's frame (CENTER_TYPE=ALL, IMAGE_SIZE=0) is a few percent wider than dask-resample's "
            "bounding box on each axis"
        )
        check_ok = True
        checks: dict[str, Any] = {}
        if args.check:
            print()
            print("check (flux on a common box; the kernels differ: a sanity check, not parity):")
            for name, counterpart in COUNTERPART.items():
                if name not in summary or counterpart not in summary:
                    continue
                res = compare(runs_dir / name, runs_dir / counterpart, args.check_box, args.check_block)
                ok = check_passes(res, args)
                check_ok &= ok
                checks[name] = {**res, "counterpart": counterpart, "ok": ok}
                print(f"- {summary[name]['label']} vs {summary[counterpart]['label']}: box {res['box']}² "
                      f"(covered {res['covered']:.1%}), flux SWarp / ours = {res['flux_ratio']:.4f}, "
                      f"correlation of {res['block']}² block sums {res['block_correlation']:.4f}: "
                      f"{'ok' if ok else 'FAILED'}")  # fmt: skip
        if args.json:
            doc = {"args": {k: v for k, v in vars(args).items()}, "summary": summary, "check": checks,
                   "runs": {p.name: p.runs for p in progs}, "inputs": len(inputs), "loadavg": load}  # fmt: skip
            Path(args.json).write_text(json.dumps(doc, indent=1, default=str))
        return 0 if check_ok else 1
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    d = p.add_argument_group("inputs")
    d.add_argument("--grid", type=_grid, default=(5, 5), metavar="COLSxROWS", help="pointings along x and y")
    d.add_argument("--dithers", type=int, default=2, help="exposures per pointing")
    d.add_argument("--size", type=int, default=1024, help="image size (N x N pixels)")
    d.add_argument("--overlap", type=float, default=0.04, help="fraction of the field shared by neighbouring pointings")
    d.add_argument(
        "--pixel-scale", type=float, default=0.031, help="pixel scale of the inputs and of both mosaics, arcsec"
    )
    d.add_argument(
        "--roll",
        type=float,
        default=0.0,
        help="position angle of the images' y axis, deg East of North (0: north up, as both mosaics)",
    )
    d.add_argument("--seed", type=int, default=0, help="seed of the sources and the noise")
    d.add_argument("--write-processes", type=int, default=os.cpu_count() or 1, help="processes writing the inputs")
    r = p.add_argument_group("programs")
    r.add_argument(
        "--programs",
        type=lambda s: [v.strip() for v in s.split(",") if v.strip()],
        default=list(ALL_PROGRAMS),
        help=f"comma-separated, from {','.join(ALL_PROGRAMS)}",
    )
    r.add_argument("--swarp", default="SWarp", help="SWarp executable")
    r.add_argument("--swarp-threads", type=int, default=2, help="SWarp's NTHREADS")
    r.add_argument("--workers", type=int, default=2, help="dask-resample's workers")
    r.add_argument("--threads-per-worker", type=int, default=1, help="threads per dask-resample worker")
    r.add_argument("--tile", type=int, default=1024, help="dask-resample's tile (Zarr chunk) size")
    r.add_argument(
        "--ctx",
        action="store_true",
        help="dask-resample also computes its context array (off: data and weight, as SWarp's image and weight map)",
    )
    m = p.add_argument_group("measurement")
    m.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of every program, the order reversed on every other repeat; the median is reported",
    )
    m.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run every program once on two inputs before the timed runs (fills numba's cache of "
        "dask-resample's kernels and the page cache)",
    )
    m.add_argument("--sample-interval", type=float, default=0.1, help="seconds between RSS samples")
    m.add_argument(
        "--check",
        action="store_true",
        help="compare each dask-resample mosaic with its SWarp counterpart on a common box (exit "
        "status 1 if a comparison fails)",
    )
    m.add_argument("--check-box", type=int, default=2048, help="size of the common box")
    m.add_argument("--check-block", type=int, default=32, help="block size of the correlation of block sums")
    m.add_argument("--check-flux-tol", type=float, default=0.05, help="largest |flux ratio - 1| accepted")
    m.add_argument("--check-min-corr", type=float, default=0.95, help="smallest block correlation accepted")
    o = p.add_argument_group("files")
    o.add_argument("--workdir", default="/tmp/dask-resample-bench-swarp", help="inputs and the runs' outputs")
    o.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the inputs (reused by later runs with the same parameters); the runs' outputs are always removed",
    )
    o.add_argument("--json", help="write every measurement to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    unknown = [n for n in args.programs if n not in ALL_PROGRAMS]
    if unknown:
        build_parser().error(f"unknown programs {unknown}; choose from {', '.join(ALL_PROGRAMS)}")
    if args.repeats < 1:
        build_parser().error("--repeats must be at least 1")
    return run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
