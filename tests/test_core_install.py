"""What works with the core dependencies alone, and what a user sees on stderr.

Marked ``core``: ``make test`` also runs these in an environment without
jwst/stdatamodels, so that a plain ``pip install dask-resample`` keeps working.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import dask_resample
from dask_resample.testing import synthetic

pytestmark = pytest.mark.core

CLI = [sys.executable, "-m", "dask_resample.cli"]


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> synthetic.SyntheticDataset:
    return synthetic.write_dataset(
        tmp_path_factory.mktemp("plain"), n_dithers=2, n_detectors=2, shape=(64, 64), seed=8, fmt="fits"
    )


def _cli(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def test_core_import_needs_no_jwst():
    code = (
        "import sys, dask_resample, dask_resample.cli, dask_resample.products.accessor; "
        "dask_resample.ResampleParams(good_bits='~DO_NOT_USE'); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jwst', 'stdatamodels', 'pysiaf')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cli_commands_on_plain_fits(plain, tmp_path):
    """run (on a LocalCluster), info, export, preview and plan, then the accessor, on plain FITS."""
    out = tmp_path / "m.zarr"
    run = _cli("run", *plain.paths, "-o", out, "--workers", "1", "--tile-shape", "48", "48")
    assert run.returncode == 0, run.stderr
    stderr = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert stderr and all(" INFO " in ln for ln in stderr), run.stderr  # no warning of any kind
    assert "127.0.0.1" in run.stderr  # the dashboard of the LocalCluster it started
    assert _cli("info", out).returncode == 0
    export = _cli("export", out, tmp_path / "m_i2d.fits")
    assert export.returncode == 0, export.stderr
    with fits.open(tmp_path / "m_i2d.fits") as hdul:
        assert hdul["SCI"].data.shape == dask_resample.open_mosaic(out)["data"].shape
    assert _cli("preview", out, tmp_path / "m.png").returncode == 0
    assert (tmp_path / "m.png").stat().st_size > 1000
    plan = _cli("plan", *plain.paths, "--png", tmp_path / "plan.png")
    assert plan.returncode == 0, plan.stderr
    ds = dask_resample.open_mosaic(out)
    ra, dec = ds.mosaic.world(10, 12)
    y, x = ds.mosaic.pixel(ra, dec)
    assert abs(float(y) - 10) < 1e-6 and abs(float(x) - 12) < 1e-6
    assert int(np.asarray(ds.mosaic.exposure_count()).max()) >= 2


def test_bad_input_is_one_line_before_any_cluster(plain, tmp_path):
    """A missing file fails before a cluster starts: the whole stderr is one line."""
    out = tmp_path / "m.zarr"
    run = _cli("run", plain.paths[0], tmp_path / "missing.fits", "-o", out)
    assert run.returncode == 1
    assert run.stderr.splitlines() == [f"dask-resample: error: {tmp_path / 'missing.fits'}: input file not found"]
    assert not out.exists()


def test_damaged_file_is_one_line_on_a_cluster(plain, tmp_path):
    """A truncated file found while reading metadata on the workers: one line, nothing written."""
    victim = tmp_path / "cut.fits"
    raw = plain.paths[1].read_bytes()
    victim.write_bytes(raw[: int(len(raw) * 0.7)])
    out = tmp_path / "m.zarr"
    run = _cli("run", plain.paths[0], victim, "-o", out, "--workers", "1")
    assert run.returncode == 1
    errors = [ln for ln in run.stderr.splitlines() if "error" in ln.lower() or "warn" in ln.lower()]
    assert errors == [ln for ln in run.stderr.splitlines() if ln.startswith("dask-resample: error:")], run.stderr
    assert len(errors) == 1 and "cut.fits" in errors[0] and "truncated" in errors[0]
    assert "Traceback" not in run.stderr and not out.exists()


def test_unsafe_group_id_is_refused_naming_the_file(plain, tmp_path):
    bad = tmp_path / "bad.fits"
    with fits.open(plain.paths[0]) as hdul:
        for key in ("PROGRAM", "OBSERVTN", "VISIT"):
            hdul[0].header.remove(key, ignore_missing=True)
        hdul[0].header["GROUP_ID"] = "../../x"
        hdul.writeto(bad)
    out = tmp_path / "m.zarr"
    run = _cli("run", bad, plain.paths[1], "-o", out, "--mode", "many_to_many", "--serial")
    assert run.returncode == 1
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert "bad.fits" in run.stderr and "'../../x' is not a safe store name" in run.stderr
    assert not out.exists() and not (tmp_path / "x").exists()


def test_local_cluster_dashboard_listens_on_localhost_only():
    from dask_resample.cluster import connect

    handle = connect(cluster="local", n_workers=1)
    try:
        link = handle.dashboard_link
        assert link.startswith("http://127.0.0.1:")
        port = int(link.split(":")[2].split("/")[0])
        server = handle.cluster.scheduler.http_server
        bound = {sock.getsockname()[0] for sock in server._sockets.values()}
        assert bound == {"127.0.0.1"}, bound
        # nothing answers on the machine's other addresses
        others = {ai[4][0] for ai in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
        for addr in others:
            with socket.socket() as s:
                s.settimeout(1)
                assert s.connect_ex((addr, port)) != 0
    finally:
        handle.close()
