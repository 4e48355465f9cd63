"""The ``dask-resample`` command line on real files, with the jwst step's defaults."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from dask_resample import cli, open_mosaic
from dask_resample.store import read_metadata, tiles_done

from .conftest import compare_arrays, reference_resample

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``cli.main`` in this process; return (status, stdout, stderr)."""
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def serial_mosaic(small_dataset, tmp_path_factory) -> Path:
    """A mosaic written by ``dask-resample run --serial`` with the default (jwst step) parameters."""
    out = tmp_path_factory.mktemp("cli") / "serial.zarr"
    code = cli.main(
        ["run", str(small_dataset.asn_path), "-o", str(out), "--serial", "--tile-shape", "64", "64", "--quiet"]
    )
    assert code == 0
    return out


@pytest.mark.parametrize("command", [[], ["run"], ["plan"], ["info"], ["export"], ["preview"], ["demo"]])
def test_help_of_every_command(command, capsys):
    code, out, _ = run_cli([*command, "--help"], capsys)
    assert code == 0
    assert out.startswith("usage: dask-resample")


def test_run_help_states_step_defaults(capsys):
    _, out, _ = run_cli(["run", "--help"], capsys)
    flat = " ".join(out.split())
    assert "ResampleStep" in flat
    assert "~DO_NOT_USE+NON_SCIENCE" in flat
    assert "from_var" in flat
    for flag in (
        "--pixfrac",
        "--kernel",
        "--fillval",
        "--weight-type",
        "--good-bits",
        "--pixel-scale-ratio",
        "--pixel-scale",
        "--output-shape",
        "--rotation",
        "--crpix",
        "--crval",
        "--output-wcs",
        "--no-ctx",
        "--no-var",
        "--no-report-var",
        "--compute-err",
        "--propagate-dq",
        "--pixmap-stepsize",
        "--pixmap-order",
        "--tile-shape",
        "--mode",
        "--workers",
        "--threads-per-worker",
        "--memory-limit",
        "--scheduler",
        "--overwrite",
        "--config",
        "--quiet",
        "--debug",
        "--serial",
        "--resume",
        "--max-output-pixels",
    ):
        assert flag in out, flag


def test_run_defaults_match_the_jwst_step(serial_mosaic, small_dataset):
    meta = read_metadata(serial_mosaic)
    params = meta["params"]
    assert params["good_bits"] == "~DO_NOT_USE+NON_SCIENCE"
    assert params["compute_err"] == "from_var"
    assert params["enable_var"] and params["report_var"] and params["enable_ctx"]
    ds = open_mosaic(serial_mosaic)
    ref = reference_resample(
        small_dataset.asn_path,
        good_bits="~DO_NOT_USE+NON_SCIENCE",
        compute_err="from_var",
        enable_var=True,
        report_var=True,
    )
    compare_arrays(ds["data"].values, ref.data, "data")
    compare_arrays(ds["wht"].values, ref.wht, "wht")
    compare_arrays(ds["err"].values, ref.err, "err")
    compare_arrays(ds["con"].values, ref.con, "con")


def test_run_on_a_scheduler_address_equals_serial(serial_mosaic, small_dataset, client, tmp_path, capsys):
    out = tmp_path / "dist.zarr"
    code, stdout, err = run_cli(
        ["run", small_dataset.asn_path, "-o", out, "--scheduler", client.scheduler.address, "--tile-shape", 64, 64],
        capsys,
    )
    assert code == 0, err
    assert stdout.strip().endswith("dist.zarr")
    assert "dashboard" in err.lower()
    a, b = open_mosaic(out), open_mosaic(serial_mosaic)
    for name in ("data", "wht", "con", "err", "var_rnoise"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    # the session client is still usable: the command closed only its own connection
    assert client.submit(lambda: 41 + 1).result() == 42


def test_existing_mosaic_needs_overwrite_and_resume_finishes(serial_mosaic, small_dataset, tmp_path, capsys):
    out = tmp_path / "again.zarr"
    base = ["run", small_dataset.asn_path, "-o", out, "--serial", "--tile-shape", 64, 64, "--quiet"]
    assert run_cli(base, capsys)[0] == 0
    code, _, err = run_cli(base, capsys)
    assert code != 0 and "--overwrite" in err
    marker_dir = out / "_progress"
    removed = sorted(marker_dir.glob("*.json"))[0]
    removed.unlink()
    assert run_cli([*base, "--resume"], capsys)[0] == 0
    assert removed.exists()
    assert len(tiles_done(out)) == read_metadata(out)["n_tiles_planned"][""]
    assert run_cli([*base, "--overwrite"], capsys)[0] == 0
    np.testing.assert_array_equal(open_mosaic(out)["data"].values, open_mosaic(serial_mosaic)["data"].values)


def test_info_reports_grid_tiles_inputs_and_parameters(serial_mosaic, small_dataset, capsys):
    code, out, _ = run_cli(["info", serial_mosaic], capsys)
    assert code == 0
    meta = read_metadata(serial_mosaic)
    ny, nx = meta["grid"]["shape_yx"]
    planned = meta["n_tiles_planned"][""]
    assert f"{ny} x {nx} pixels" in out
    assert f"{planned} / {planned} (complete)" in out
    assert "CRVAL1" in out and "CTYPE1" in out
    assert "~DO_NOT_USE+NON_SCIENCE" in out
    for path in small_dataset.paths:
        assert path.name in out
    code, out, _ = run_cli(["info", serial_mosaic, "--json"], capsys)
    doc = json.loads(out)
    assert doc["tiles_done"] == {"": planned}
    assert doc["grid"]["shape_yx"] == [ny, nx]


def test_export_reopens_as_image_model(serial_mosaic, tmp_path, capsys):
    from stdatamodels.jwst import datamodels

    out = tmp_path / "mosaic_i2d.fits"
    code, stdout, err = run_cli(["export", serial_mosaic, out], capsys)
    assert code == 0, err
    ds = open_mosaic(serial_mosaic)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = datamodels.open(out)
    with model:
        assert isinstance(model, datamodels.ImageModel)
        np.testing.assert_array_equal(model.data, ds["data"].values)
        np.testing.assert_array_equal(model.wht, ds["wht"].values)
        np.testing.assert_array_equal(model.con, ds["con"].values)


def test_preview_writes_png(serial_mosaic, tmp_path, capsys):
    out = tmp_path / "preview.png"
    code, _, err = run_cli(["preview", serial_mosaic, out], capsys)
    assert code == 0, err
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size > 10_000


def test_plan_prints_summary_and_draws_coverage(small_dataset, tmp_path, capsys):
    png = tmp_path / "plan.png"
    code, out, err = run_cli(["plan", small_dataset.asn_path, "--tile-shape", 64, 64, "--png", png], capsys)
    assert code == 0, err
    assert "grid:" in out and "inputs per tile:" in out
    assert f"inputs:          {len(small_dataset.paths)} (0 skipped)" in out
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert not list(tmp_path.glob("*.zarr"))  # planning writes no mosaic


def test_config_yaml_applied_and_flags_win(small_dataset, tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "pixfrac: 0.7\n"
        "weight-type: exptime\n"
        "tile_shape: [48, 48]\n"
        "no-ctx: true\n"
        "good_bits: '~DO_NOT_USE'\n"
        "wcs_pars:\n"
        "  rotation: 0.0\n"
    )
    out = tmp_path / "yaml.zarr"
    code, _, err = run_cli(
        ["run", small_dataset.asn_path, "-o", out, "--serial", "--config", cfg, "--pixfrac", "0.9", "--quiet"], capsys
    )
    assert code == 0, err
    meta = read_metadata(out)
    assert meta["params"]["pixfrac"] == 0.9  # the command line wins
    assert meta["params"]["weight_type"] == "exptime"
    assert meta["params"]["enable_ctx"] is False
    assert meta["params"]["good_bits"] == "~DO_NOT_USE"
    assert meta["grid"]["tile_shape_yx"] == [48, 48]
    assert "con" not in open_mosaic(out).data_vars
    pc = meta["wcs_fits"]
    assert abs(pc["PC1_2"]) < 1e-9 and abs(pc["PC2_1"]) < 1e-9  # north up


def test_config_toml_applied(small_dataset, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'inputs = ["{small_dataset.asn_path}"]\n'
        f'output = "{tmp_path / "toml.zarr"}"\n'
        "serial = true\n"
        "pixel_scale_ratio = 0.8\n"
        'kernel = "point"\n'
        "tile-shape = [40, 40]\n"
        "enable_var = false\n"
        'compute-err = "none"\n'
    )
    code, _, err = run_cli(["run", "--config", cfg, "--quiet"], capsys)
    assert code == 0, err
    meta = read_metadata(tmp_path / "toml.zarr")
    assert meta["params"]["kernel"] == "point"
    assert meta["params"]["enable_var"] is False and meta["params"]["compute_err"] is None
    assert meta["grid"]["pixel_scale_ratio"] == pytest.approx(0.8)
    assert meta["grid"]["tile_shape_yx"] == [40, 40]
    assert not {"err", "var_rnoise"} & set(open_mosaic(tmp_path / "toml.zarr").data_vars)


def test_many_to_many_export_and_preview_by_group(single_detector_dataset, tmp_path, capsys):
    out = tmp_path / "m2m.zarr"
    code, _, err = run_cli(
        ["run", single_detector_dataset.asn_path, "-o", out, "--serial", "--mode", "many_to_many", "--quiet"], capsys
    )
    assert code == 0, err
    groups = read_metadata(out)["groups"]
    assert len(groups) == 4
    code, _, err = run_cli(["export", out, tmp_path / "x_i2d.fits"], capsys)
    assert code != 0 and "--group" in err
    code, _, err = run_cli(["export", out, tmp_path / "g_i2d.fits", "--group", groups[1]], capsys)
    assert code == 0, err
    code, _, err = run_cli(["preview", out, tmp_path / "g.png", "--group", groups[1]], capsys)
    assert code == 0, err
    code, out_text, _ = run_cli(["info", out], capsys)
    assert all(f"{g}: " in out_text for g in groups)


def test_pyramid_flag_writes_levels(small_dataset, tmp_path, capsys):
    pytest.importorskip("dask_resample.products.pyramid")
    out = tmp_path / "pyr.zarr"
    code, _, err = run_cli(
        [
            "run",
            small_dataset.asn_path,
            "-o",
            out,
            "--serial",
            "--tile-shape",
            128,
            128,
            "--pixel-scale-ratio",
            0.4,
            "--pyramid",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    ny, nx = open_mosaic(out)["data"].shape
    assert max(ny, nx) > 256  # big enough for at least one level
    level1 = open_mosaic(out, level=1)
    assert level1["data"].shape == ((ny + 1) // 2, (nx + 1) // 2)


def test_demo_on_the_session_client(client, tmp_path):
    from dask_resample.testing import demo

    result = demo.main(
        tmp_path / "demo", client=client, n_dithers=2, n_detectors=1, shape=(64, 64), tile_shape=(64, 64), quiet=True
    )
    ds = open_mosaic(result.mosaic)
    assert np.isfinite(ds["data"].values).any()
    assert result.preview.read_bytes()[:8] == PNG_MAGIC
    assert len(read_metadata(result.mosaic)["inputs"]) == 2


def test_console_script_exit_codes(tmp_path):
    """The real entry point, in a subprocess: exit status and a single error line."""
    ok = subprocess.run([sys.executable, "-m", "dask_resample.cli", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and "dask-resample" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "dask_resample.cli", "info", str(tmp_path / "missing.zarr")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [f"dask-resample: error: {tmp_path / 'missing.zarr'}: not found"]
