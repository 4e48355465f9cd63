"""Bad input: one error line naming the culprit, no traceback, nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import asdf
import pytest
from astropy.io import fits

import dask_resample
from dask_resample import cli
from dask_resample.store import is_mosaic, read_metadata
from dask_resample.testing import synthetic


def fails(args: list, capsys, culprit: str) -> str:
    """Run the command; assert a non-zero exit with exactly one error line naming ``culprit``."""
    code = cli.main([str(a) for a in args])
    _, err = capsys.readouterr()
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    assert len(errors) == 1, err
    assert errors[0] == lines[-1]
    assert errors[0].startswith("dask-resample: error: ")
    assert culprit in errors[0], errors[0]
    assert "Traceback" not in err
    return errors[0]


@pytest.fixture()
def data(small_dataset, tmp_path) -> synthetic.SyntheticDataset:
    """A private copy of the small dataset, free to damage."""
    d = tmp_path / "data"
    shutil.copytree(small_dataset.directory, d)
    return synthetic.SyntheticDataset(
        directory=d,
        asn_path=d / small_dataset.asn_path.name,
        paths=tuple(d / p.name for p in small_dataset.paths),
        group_ids=small_dataset.group_ids,
    )


def run_args(data: synthetic.SyntheticDataset, out: Path, *extra) -> list:
    return ["run", data.asn_path, "-o", out, "--serial", "--tile-shape", 64, 64, *extra]


# -- damaged input files ------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.3, 0.62, 0.93, 0.995])
def test_truncated_input(data, tmp_path, capsys, fraction):
    victim = data.paths[3]
    raw = victim.read_bytes()
    victim.write_bytes(raw[: int(len(raw) * fraction)])
    out = tmp_path / "out.zarr"
    line = fails(run_args(data, out), capsys, victim.name)
    assert "truncated" in line
    assert not out.exists()


def test_corrupt_jwst_metadata(data, tmp_path, capsys):
    victim = data.paths[2]
    raw = bytearray(victim.read_bytes())
    start = raw.find(b"#ASDF")
    raw[start : start + 5] = b"XXXXX"
    victim.write_bytes(bytes(raw))
    out = tmp_path / "out.zarr"
    fails(run_args(data, out), capsys, victim.name)
    assert not out.exists()


def test_garbage_file(data, tmp_path, capsys):
    victim = data.paths[1]
    victim.write_bytes(b"this is not FITS at all\n" * 400)
    out = tmp_path / "out.zarr"
    fails(["run", *data.paths, "-o", out, "--serial"], capsys, victim.name)
    assert not out.exists()


def test_missing_association_member(data, tmp_path, capsys):
    victim = data.paths[4]
    victim.unlink()
    out = tmp_path / "out.zarr"
    line = fails(run_args(data, out), capsys, victim.name)
    assert "not found" in line and data.asn_path.name in line
    assert not out.exists()


def test_malformed_association(data, tmp_path, capsys):
    data.asn_path.write_text("{not json")
    fails(run_args(data, tmp_path / "a.zarr"), capsys, data.asn_path.name)
    data.asn_path.write_text(json.dumps({"products": []}))
    fails(run_args(data, tmp_path / "b.zarr"), capsys, data.asn_path.name)
    assert not list(tmp_path.glob("*.zarr"))


def test_input_without_celestial_wcs(tmp_path, capsys):
    ds = synthetic.write_dataset(tmp_path / "plain", n_dithers=2, n_detectors=1, shape=(48, 48), fmt="fits", seed=7)
    victim = ds.paths[1]
    with fits.open(victim) as hdul:
        hdus = [fits.PrimaryHDU(header=hdul[0].header), fits.ImageHDU(hdul["SCI"].data, name="SCI")]
        hdus += [fits.ImageHDU(hdul[n].data, name=n) for n in ("ERR", "DQ", "VAR_RNOISE")]
    fits.HDUList(hdus).writeto(victim, overwrite=True)
    out = tmp_path / "out.zarr"
    line = fails(["run", *ds.paths, "-o", out, "--serial"], capsys, victim.name)
    assert "celestial" in line
    assert not out.exists()


# -- bad parameters -------------------------------------------------------------
def test_unknown_kernel(data, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    fails(run_args(data, out, "--kernel", "bicubic"), capsys, "--kernel")
    cfg = tmp_path / "k.yaml"
    cfg.write_text("kernel: bicubic\n")
    fails(run_args(data, out, "--config", cfg), capsys, "kernel")
    with pytest.raises(ValueError, match="kernel"):
        dask_resample.resample(data.asn_path, out, kernel="bicubic", scheduler="serial")
    assert not out.exists()


def test_unknown_dq_mnemonic(data, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    line = fails(run_args(data, out, "--good-bits", "~DO_NOT_USE+NOT_A_FLAG"), capsys, "NOT_A_FLAG")
    assert "good_bits" in line
    assert not out.exists()


@pytest.mark.parametrize("pixfrac", ["0", "-0.5", "1.5", "nan"])
def test_pixfrac_out_of_range(data, tmp_path, capsys, pixfrac):
    out = tmp_path / "out.zarr"
    fails(run_args(data, out, "--pixfrac", pixfrac), capsys, "pixfrac")
    assert not out.exists()


def test_unknown_wcs_pars_key(data, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    cfg = tmp_path / "w.yaml"
    cfg.write_text("wcs_pars:\n  rotation: 0.0\n  pixel_scael: 0.03\n")
    fails(run_args(data, out, "--config", cfg), capsys, "pixel_scael")
    with pytest.raises(KeyError, match="bogus"):
        dask_resample.resample(data.asn_path, out, wcs_pars={"bogus": 1}, scheduler="serial")
    with pytest.raises(KeyError, match="bogus"):
        dask_resample.plan_mosaic(data.asn_path, wcs_pars={"bogus": 1})
    assert not out.exists()


def test_unknown_config_key_and_bad_config_values(data, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    cfg = tmp_path / "c.toml"
    cfg.write_text("pixfrack = 0.5\n")
    fails(run_args(data, out, "--config", cfg), capsys, "pixfrack")
    cfg.write_text("tile_shape = [64]\n")
    fails(run_args(data, out, "--config", cfg), capsys, "tile_shape")
    cfg.write_text("no_ctx = 'yes'\n")
    fails(run_args(data, out, "--config", cfg), capsys, "no_ctx")
    cfg.write_text("pixfrac = [unclosed\n")
    fails(run_args(data, out, "--config", cfg), capsys, cfg.name)
    fails(run_args(data, out, "--config", tmp_path / "nope.yaml"), capsys, "nope.yaml")
    assert not out.exists()


def test_other_bad_values(data, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    fails(run_args(data, out, "--tile-shape", 0, 64), capsys, "--tile-shape")
    fails(run_args(data, out, "--crval", "ra", "dec"), capsys, "--crval")
    fails(run_args(data, out, "--fillval", "lots"), capsys, "fillval")
    fails(run_args(data, out, "--pixmap-order", 2, "--pixmap-stepsize", 4), capsys, "pixmap_order")
    fails(["run", data.directory, "-o", out, "--serial"], capsys, data.directory.name)
    fails(["run", "-o", out, "--serial"], capsys, "inputs")
    fails(["run", data.asn_path, "--serial"], capsys, "-o")
    not_asdf = tmp_path / "grid.asdf"
    not_asdf.write_text("not asdf")
    fails(run_args(data, out, "--output-wcs", not_asdf), capsys, "grid.asdf")
    assert not out.exists()


def test_output_larger_than_limit_is_refused_before_allocating(data, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    line = fails(run_args(data, out, "--max-output-pixels", 1000), capsys, "max_output_pixels")
    assert "exceeds" in line
    assert not out.exists()
    line = fails(
        run_args(data, out, "--output-shape", 200000, 200000, "--max-output-pixels", "1e9"), capsys, "max_output_pixels"
    )
    assert not out.exists()


# -- overlap with a given output grid ------------------------------------------------
@pytest.fixture()
def grid_asdf(data, tmp_path) -> Path:
    """The small dataset's own output grid, saved as an ASDF output WCS."""
    plan = dask_resample.plan_mosaic(data.asn_path)
    path = tmp_path / "grid.asdf"
    asdf.AsdfFile({"wcs": plan.grid.wcs}).write_to(path)
    return path


@pytest.fixture()
def far_away(tmp_path) -> Path:
    """One exposure 6 degrees away from the small dataset."""
    ds = synthetic.write_dataset(tmp_path / "far", n_dithers=1, n_detectors=1, shape=(48, 48), ra_deg=59.0, seed=9)
    far = ds.paths[0].with_name("faraway_cal.fits")
    ds.paths[0].rename(far)
    return far


def test_non_overlapping_input_is_skipped_with_a_warning(data, grid_asdf, far_away, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    code = cli.main(
        ["run", *map(str, data.paths), str(far_away), "-o", str(out), "--serial", "--output-wcs", str(grid_asdf)]
    )
    _, err = capsys.readouterr()
    assert code == 0, err
    warning = [ln for ln in err.splitlines() if "faraway_cal.fits" in ln]
    assert len(warning) == 1 and "WARNING" in warning[0] and "skipped" in warning[0]
    rows = read_metadata(out)["inputs"]
    assert [r["skipped"] for r in rows] == [False] * len(data.paths) + [True]
    assert "Traceback" not in err


def test_no_input_overlapping_is_an_error(grid_asdf, far_away, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    fails(["run", far_away, "-o", out, "--serial", "--output-wcs", grid_asdf], capsys, "no input overlaps")
    assert not out.exists()


# -- the output path ------------------------------------------------------------
def test_existing_path_that_is_not_a_mosaic_is_never_touched(data, tmp_path, capsys):
    out = tmp_path / "precious.zarr"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    for extra in ([], ["--overwrite"], ["--resume"]):
        fails(run_args(data, out, *extra), capsys, "precious.zarr")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    assert (out / "thesis.tex").read_text() == "years of work"
    plain = tmp_path / "notes.txt"
    plain.write_text("keep")
    fails(run_args(data, plain, "--overwrite"), capsys, "notes.txt")
    assert plain.read_text() == "keep"
    with pytest.raises(FileExistsError, match="precious.zarr"):
        dask_resample.resample(data.asn_path, out, scheduler="serial", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_existing_mosaic_replaced_only_with_overwrite(data, tmp_path, capsys):
    out = tmp_path / "m.zarr"
    assert cli.main([str(a) for a in run_args(data, out, "--quiet")]) == 0
    capsys.readouterr()
    before = (out / "zarr.json").read_bytes()
    fails(run_args(data, out, "--pixfrac", "0.5"), capsys, "--overwrite")
    assert (out / "zarr.json").read_bytes() == before
    assert read_metadata(out)["params"]["pixfrac"] == 1.0
    assert cli.main([str(a) for a in run_args(data, out, "--pixfrac", "0.5", "--overwrite", "--quiet")]) == 0
    assert is_mosaic(out) and read_metadata(out)["params"]["pixfrac"] == 0.5


# -- --debug and the real process -------------------------------------------------------
def test_debug_shows_the_traceback(data, tmp_path, capsys):
    victim = data.paths[0]
    victim.write_bytes(victim.read_bytes()[:5000])
    code = cli.main([str(a) for a in run_args(data, tmp_path / "out.zarr", "--debug")])
    _, err = capsys.readouterr()
    assert code != 0
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("dask-resample: error: ")


def test_subprocess_reports_one_line(data, tmp_path):
    victim = data.paths[5]
    victim.write_bytes(victim.read_bytes()[:20000])
    out = tmp_path / "out.zarr"
    proc = subprocess.run(
        [sys.executable, "-m", "dask_resample.cli", *map(str, run_args(data, out))], capture_output=True, text=True
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dask-resample: error: ") and victim.name in lines[0]
    assert not out.exists()
