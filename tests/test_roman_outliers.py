"""Outlier detection of Roman WFI images, against romancal's ``OutlierDetectionStep`` (romancal from PyPI).

Every case writes synthetic Level-2 images (romanisim's WCS, see
:mod:`dask_resample.testing.synthetic_roman`) with cosmic rays added, runs
romancal's step on their association (``save_results`` into a directory of its
own) and :func:`dask_resample.detect_outliers` on the same files, and checks
that the DQ of every output is bit-identical, that every other array is exactly
as romancal leaves it (the input's, NaNs included: romancal flags DQ only), and
that ``meta.cal_step.outlier_detection`` agrees.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import dask_resample
from dask_resample.inputs.io import InputError
from dask_resample.outliers import OutlierParams, detect_outliers
from dask_resample.outliers.params import OUTLIER_RULES, outlier_step_params
from dask_resample.roman import roman_params
from dask_resample.testing import synthetic_roman

from .conftest import compare_arrays

pytest.importorskip("romancal")
pytest.importorskip("romanisim")

#: The arrays a flagged file keeps exactly as the input's (romancal changes DQ only).
KEPT = ("data", "err", "var_poisson", "var_rnoise", "var_flat")

#: ``meta.cal_step`` entries a WfiImage has (the synthetic images are written without them).
CAL_STEPS = (
    "assign_wcs",
    "dark",
    "dark_decay",
    "dq_init",
    "flat_field",
    "flux",
    "linearity",
    "outlier_detection",
    "photom",
    "source_catalog",
    "ramp_fit",
    "refpix",
    "saturation",
    "skymatch",
    "tweakreg",
    "wfi18_transient",
)

#: Roman's DO_NOT_USE | OUTLIER.
ROMAN_OUTLIER = 1 | 128


@pytest.fixture(scope="module", autouse=True)
def quiet():
    logging.disable(logging.INFO)
    yield
    logging.disable(logging.NOTSET)


def _rdm():
    import roman_datamodels.datamodels as rdm

    return rdm


def add_cosmic_rays(dataset: synthetic_roman.RomanDataset, *, per_image: int, seed: int) -> int:
    """Add bright single pixels and short tracks to every image, and ``meta.cal_step``; return how many pixels."""
    rdm = _rdm()
    rng = np.random.default_rng(seed)
    n = 0
    for path in dataset.paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = rdm.open(path)
            data = np.array(model.data)
            ny, nx = data.shape
            for k in range(per_image):
                y, x = int(rng.integers(2, ny - 2)), int(rng.integers(2, nx - 2))
                amp = float(rng.uniform(5.0, 80.0))
                data[y, x] += amp
                n += 1
                if k % 3 == 0:  # a short track
                    data[y, x + 1] += 0.6 * amp
                    n += 1
            model.data = data
            model.meta["cal_step"] = {name: "INCOMPLETE" for name in CAL_STEPS}
            tmp = path.parent / ".tmp" / path.name  # the same name: save() records it in meta.filename
            tmp.parent.mkdir(exist_ok=True)
            model.save(str(tmp))
            model.close()
        os.replace(tmp, path)
    return n


def run_romancal(dataset: synthetic_roman.RomanDataset, out: Path, **pars) -> list[Path]:
    """romancal's step on the association, its outputs saved into ``out``; the files in input order."""
    from romancal.outlier_detection import OutlierDetectionStep

    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step = OutlierDetectionStep(save_results=True, output_dir=str(out), **pars)
        step.run(str(dataset.asn_path))
    # the step names its outputs <asn root>_<asn_id>_<index>_outlierdetectionstep.asdf
    files = sorted(out.glob("*_outlierdetectionstep.asdf"), key=lambda p: int(p.stem.split("_")[-2]))
    assert len(files) == len(dataset.paths)
    return files


def compare(ours: list[Path], theirs: list[Path], dataset: synthetic_roman.RomanDataset) -> int:
    """DQ bit for bit, every other array as the input's, the step status; return the pixels flagged."""
    rdm = _rdm()
    flagged = 0
    assert [p.name for p in ours] == [p.name.replace("_cal.asdf", "_outlier_detection.asdf") for p in dataset.paths]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mine, ref, source in zip(ours, theirs, dataset.paths, strict=True):
            a, b, inp = rdm.open(mine), rdm.open(ref), rdm.open(source)
            dq_a, dq_b = np.asarray(a.dq), np.asarray(b.dq)
            assert dq_a.dtype == dq_b.dtype
            assert np.array_equal(dq_a, dq_b), f"{mine.name}: DQ differs at {np.count_nonzero(dq_a != dq_b)} pixels"
            for name in KEPT:
                present = [name in m for m in (a, b, inp)]
                assert len(set(present)) == 1, f"{mine.name}: {name} present in {present}"
                if not present[0]:
                    continue
                x, y, z = (np.asarray(m[name]) for m in (a, b, inp))
                assert x.dtype == y.dtype == z.dtype, name
                assert np.array_equal(x, y, equal_nan=True), f"{mine.name}: {name} differs from romancal's"
                assert np.array_equal(x, z, equal_nan=True), f"{mine.name}: {name} changed"
            assert a.meta.cal_step.outlier_detection == b.meta.cal_step.outlier_detection
            assert a.meta.filename == mine.name
            new = (dq_a & ~np.asarray(inp.dq)) != 0
            assert np.all((dq_a[new] & ROMAN_OUTLIER) == ROMAN_OUTLIER)
            flagged += int(np.count_nonzero(new))
            a.validate()
    return flagged


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """3 exposures of one 48 x 48 sub-array of detector 7, native scale, with cosmic rays."""
    ds = synthetic_roman.write_roman_dataset(
        tmp_path_factory.mktemp("ro_single"), n_exposures=3, detectors=(7,), shape=(48, 48), seed=21
    )
    add_cosmic_rays(ds, per_image=12, seed=1)
    return ds


@pytest.fixture(scope="module")
def rebuilt_rnoise(tmp_path_factory):
    """2 exposures without var_rnoise (romancal rebuilds it from err) nor var_flat, background subtracted."""
    ds = synthetic_roman.write_roman_dataset(
        tmp_path_factory.mktemp("ro_rn"),
        n_exposures=2,
        detectors=(3,),
        shape=(40, 40),
        seed=24,
        with_var_rnoise=False,
        with_var_flat=False,
        subtracted=True,
    )
    add_cosmic_rays(ds, per_image=10, seed=4)
    return ds


@pytest.fixture(scope="module")
def several(tmp_path_factory):
    """3 exposures x detectors 1, 2 and 4, each whole detector binned to 32 x 32, with cosmic rays."""
    ds = synthetic_roman.write_roman_dataset(
        tmp_path_factory.mktemp("ro_several"),
        n_exposures=3,
        detectors=(1, 2, 4),
        shape=(32, 32),
        binning=127,
        dither_arcsec=30.0,
        seed=22,
    )
    add_cosmic_rays(ds, per_image=8, seed=2)
    return ds


CASES: dict[str, dict] = {
    "defaults": {},
    "pixfrac0.6-point": {"pixfrac": 0.6, "kernel": "point"},
    "turbo-pixfrac0.8": {"kernel": "turbo", "pixfrac": 0.8},
    "fillval0": {"fillval": "0"},
    "exptime-ignored": {"weight_type": "exptime"},
    "snr-scale-maskpt": {"snr": "3.0 2.0", "scale": "0.8 0.5", "maskpt": 0.5},
    "stepsize1": {"pixmap_stepsize": 1, "pixmap_order": 1},
    "no-resample": {"resample_data": False},
}


@pytest.mark.parametrize("case", list(CASES))
def test_single_detector(single, tmp_path, case):
    pars = CASES[case]
    theirs = run_romancal(single, tmp_path / "romancal", **pars)
    ours = detect_outliers(single.asn_path, tmp_path / "ours", scheduler="serial", tile_shape=(24, 24), **pars)
    flagged = compare(ours, theirs, single)
    assert flagged > 0


@pytest.mark.parametrize("case", ["defaults", "pixfrac0.6-point", "no-resample"])
def test_several_detectors(several, tmp_path, case):
    pars = CASES[case]
    theirs = run_romancal(several, tmp_path / "romancal", **pars)
    ours = detect_outliers(several.asn_path, tmp_path / "ours", scheduler="serial", tile_shape=(32, 32), **pars)
    assert compare(ours, theirs, several) > 0


@pytest.mark.parametrize("case", ["defaults", "no-resample"])
def test_var_rnoise_rebuilt(rebuilt_rnoise, tmp_path, case):
    """Without var_rnoise: rebuilt for the group drizzle, unit weights for the median without resampling."""
    pars = CASES[case]
    theirs = run_romancal(rebuilt_rnoise, tmp_path / "romancal", **pars)
    ours = detect_outliers(rebuilt_rnoise.asn_path, tmp_path / "ours", scheduler="serial", **pars)
    assert compare(ours, theirs, rebuilt_rnoise) > 0


def test_local_cluster_equals_serial(several, tmp_path, client):
    serial = detect_outliers(several.asn_path, tmp_path / "serial", scheduler="serial")
    distributed = detect_outliers(several.asn_path, tmp_path / "cluster", client=client, tile_shape=(16, 16))
    rdm = _rdm()
    for a, b in zip(serial, distributed, strict=True):
        assert a.name == b.name
        with rdm.open(a) as x, rdm.open(b) as y:
            assert np.array_equal(np.asarray(x.dq), np.asarray(y.dq))
            assert np.array_equal(np.asarray(x.data), np.asarray(y.data), equal_nan=True)
    theirs = run_romancal(several, tmp_path / "romancal")
    assert compare(distributed, theirs, several) > 0


def test_one_input_is_skipped(single, tmp_path):
    ours = detect_outliers([single.paths[0]], tmp_path / "ours", scheduler="serial")
    rdm = _rdm()
    with rdm.open(ours[0]) as m, rdm.open(single.paths[0]) as inp:
        assert m.meta.cal_step.outlier_detection == "SKIPPED"
        assert np.array_equal(np.asarray(m.dq), np.asarray(inp.dq))


def test_roman_rules_and_defaults():
    p = outlier_step_params("roman")
    assert (p.pixmap_stepsize, p.pixmap_order, p.mission) == (10.0, 3, "roman")
    assert p.resample_params().weight_type == "ivm"
    assert outlier_step_params("roman", weight_type="exptime").resample_params().weight_type == "ivm"
    assert OutlierParams(weight_type="exptime").resample_params().weight_type == "exptime"
    assert np.isnan(p.blot_fill) and outlier_step_params("roman", fillval="INDEF").blot_fill == 0.0
    assert np.isnan(OutlierParams(fillval="0").blot_fill)  # jwst blots with NaN whatever fillval is
    assert (OUTLIER_RULES["roman"].skipped_status, OUTLIER_RULES["jwst"].skipped_status) == ("SKIPPED", "FAILED")


def test_jwst_rules_refused_for_roman_inputs(single, tmp_path):
    with pytest.raises(InputError, match="romancal's OutlierDetectionStep"):  # refused before any work
        detect_outliers(single.asn_path, tmp_path / "ours", scheduler="serial", mission="jwst")
    assert not any((tmp_path / "ours").glob("*.asdf"))


def test_flagged_files_resample(single, tmp_path):
    """The flagged files are inputs of ``resample``: flagged pixels carry no weight in the mosaic."""
    ours = detect_outliers(single.asn_path, tmp_path / "ours", scheduler="serial")
    theirs = run_romancal(single, tmp_path / "romancal")
    params = roman_params(good_bits="~DO_NOT_USE")
    a = dask_resample.resample([str(p) for p in ours], tmp_path / "a.zarr", params=params, scheduler="serial")
    b = dask_resample.resample([str(p) for p in theirs], tmp_path / "b.zarr", params=params, scheduler="serial")
    before = dask_resample.resample(single.asn_path, tmp_path / "c.zarr", params=params, scheduler="serial")
    for name in ("data", "wht", "err"):
        compare_arrays(a[name].values, b[name].values, name, rtol=0.0)
    assert not np.array_equal(a["wht"].values, before["wht"].values)
    shutil.rmtree(tmp_path / "romancal")


def test_resample_with_outliers_refuses_roman(single, tmp_path):
    """``resample(..., outliers=True)`` would flag with jwst's rules: refused before the mosaic is touched."""
    for outliers in (True, {"mission": "roman"}):
        with pytest.raises(InputError, match="takes JWST inputs only"):
            dask_resample.resample(
                single.asn_path, tmp_path / "m.zarr", params=roman_params(), outliers=outliers, scheduler="serial"
            )
        assert not (tmp_path / "m.zarr").exists()


#: A skycell well inside the polar projection region of the skymap subset shipped with romancal.
SKYCELL = "135p90x47y41"


@pytest.mark.parametrize("where", ["inside", "edge-fillval0"])
def test_median_on_association_skycell(tmp_path, where):
    """An association naming a skycell: the median is drizzled on the skycell's grid (``resample_on_skycell``).

    ``edge-fillval0``: the images straddle the skycell's edge, so that half of each blot falls
    outside the median and takes ``fillval`` (romancal's blot), which the flags then compare with.
    """
    import romancal.skycell.skymap as sc

    from dask_resample.geometry import skycells
    from dask_resample.outliers.api import skycell_median_wcs

    skymap = Path(sc.__file__).parent / "tests" / "data" / "skymap_subset.asdf"
    skycells.use_skymap(skymap)  # romancal's step reads the same global skymap
    grid = skycells.skycell_output_wcs(SKYCELL, skymap)["wcs"]
    centre = (63.435, 89.3043) if where == "inside" else tuple(float(v) for v in grid(0.0, 2500.0))
    ds = synthetic_roman.write_roman_dataset(
        tmp_path / "in", n_exposures=2, detectors=(7,), shape=(48, 48), centre_on=centre, seed=25, target=SKYCELL
    )
    add_cosmic_rays(ds, per_image=10, seed=5)
    pars = {} if where == "inside" else {"fillval": "0"}
    found = skycell_median_wcs(ds.asn_path, outlier_step_params("roman"), skymap=skymap)
    assert found is not None and tuple(found["wcs"].array_shape) == (5000, 5000)
    assert skycell_median_wcs(ds.asn_path, outlier_step_params("roman", resample_on_skycell=False)) is None
    theirs = run_romancal(ds, tmp_path / "romancal", **pars)
    ours = detect_outliers(
        ds.asn_path, tmp_path / "ours", scheduler="serial", skymap=skymap, tile_shape=(500, 500), **pars
    )
    flagged = compare(ours, theirs, ds)
    assert flagged > (500 if where != "inside" else 0)  # off the skycell the data are compared with 0


@pytest.mark.parametrize("mission", [[], ["--mission", "roman"]], ids=["from-inputs", "given"])
def test_command_line(single, tmp_path, capsys, mission):
    """``dask-resample outliers`` on Roman inputs: romancal's rules and its step's defaults, with no option given."""
    from dask_resample.cli import main

    out = tmp_path / "ours"
    code = main(["outliers", str(single.asn_path), "-o", str(out), "--serial", *mission])
    assert code == 0
    printed = [Path(line) for line in capsys.readouterr().out.split()]
    assert [p.name for p in printed] == [p.name.replace("_cal.asdf", "_outlier_detection.asdf") for p in single.paths]
    assert compare(printed, run_romancal(single, tmp_path / "romancal"), single) > 0


def test_command_line_mission_defaults(single, tmp_path, capsys):
    """``--mission roman`` gives romancal's step defaults under the values given; jwst's refuses Roman inputs."""
    from dask_resample.cli import main
    from dask_resample.cli.options import outlier_for

    roman = outlier_for("roman").build({"pixfrac": 0.5})
    assert (roman.mission, roman.pixmap_stepsize, roman.pixmap_order, roman.fillval, roman.pixfrac) == (
        "roman",
        10.0,
        3,
        "NaN",
        0.5,
    )
    assert outlier_for("jwst").build({}) == OutlierParams(mission="jwst")
    code = main(["outliers", str(single.asn_path), "-o", str(tmp_path / "o"), "--serial", "--mission", "jwst"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "romancal" in err and "Roman WFI image" in err
    assert not (tmp_path / "o").exists()


def test_models_in_memory_refused(single, tmp_path):
    """Open Roman datamodels would be written back as JWST files by the in-memory driver: refused in one line."""
    rdm = _rdm()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = [rdm.open(p) for p in single.paths]
    with pytest.raises(InputError, match="held in memory"):
        detect_outliers(models, tmp_path / "ours", scheduler="serial")
    assert not (tmp_path / "ours").exists() or not any((tmp_path / "ours").iterdir())
