"""Numerical parity with romancal's ``ResampleData`` (romancal from PyPI) on Roman WFI Level-2 images.

Every case runs the reference as romancal's ``ResampleStep`` runs it (context,
variances, error from the variances and exposure times always on) and
``dask_resample.resample`` with :func:`dask_resample.roman.roman_params` on
the same files, and compares every output array to 1e-5 of the array's maximum
(data, weight, err, var_rnoise, var_poisson, var_flat when asked), the context
and the NaN patterns exactly, and the coadd exposure times
(``meta.coadd_info.exposure_time``, ``max_exposure_time``) to 1e-5.

The images carry romanisim's WCS (galsim's Roman model: the WFI layout and its
distortion, ``usecrds=False``): sub-arrays of one detector at the native scale,
or whole detectors binned (1 to 18 detectors per exposure, see
:mod:`dask_resample.testing.synthetic_roman`).
"""

from __future__ import annotations

import copy
import logging
import sys
import warnings

import numpy as np
import pytest

import dask_resample
from dask_resample.inputs import io
from dask_resample.roman import coadd_exposure_times, roman_params, roman_step_defaults
from dask_resample.testing import synthetic_roman

from .conftest import compare_arrays

pytest.importorskip("romancal")
pytest.importorskip("romanisim")

#: Our array -> the reference model's attribute.
ARRAYS = {
    "data": "data",
    "wht": "weight",
    "err": "err",
    "var_rnoise": "var_rnoise",
    "var_poisson": "var_poisson",
    "var_flat": "var_flat",
    "dq": "dq",
}


@pytest.fixture(scope="module")
def quiet():
    logging.disable(logging.INFO)
    yield
    logging.disable(logging.NOTSET)


@pytest.fixture(scope="module")
def single(tmp_path_factory, quiet):
    """3 exposures of one 48 x 48 sub-array of detector 7, native scale."""
    return synthetic_roman.write_roman_dataset(
        tmp_path_factory.mktemp("roman1"), n_exposures=3, detectors=(7,), shape=(48, 48), seed=11
    )


@pytest.fixture(scope="module")
def two_detectors(tmp_path_factory, quiet):
    """2 exposures x detectors 1 and 2, each whole detector binned to 32 x 32."""
    return synthetic_roman.write_roman_dataset(
        tmp_path_factory.mktemp("roman2"),
        n_exposures=2,
        detectors=(1, 2),
        shape=(32, 32),
        binning=127,
        dither_arcsec=40.0,
        seed=12,
    )


@pytest.fixture(scope="module")
def eighteen(tmp_path_factory, quiet):
    """2 exposures x all 18 detectors, each binned to 24 x 24."""
    return synthetic_roman.write_roman_dataset(
        tmp_path_factory.mktemp("roman18"),
        n_exposures=2,
        detectors=tuple(range(1, 19)),
        shape=(24, 24),
        binning=170,
        dither_arcsec=60.0,
        seed=13,
    )


@pytest.fixture(scope="module")
def rebuilt_rnoise(tmp_path_factory, quiet):
    """2 exposures without var_rnoise (rebuilt from err) nor var_flat, background already subtracted."""
    return synthetic_roman.write_roman_dataset(
        tmp_path_factory.mktemp("roman_rn"),
        n_exposures=2,
        detectors=(3,),
        shape=(40, 40),
        seed=14,
        with_var_rnoise=False,
        with_var_flat=False,
        subtracted=True,
    )


def reference(inputs, *, wcs_kwargs=None, output_wcs=None, **pars):
    """romancal's ``ResampleData`` as ``ResampleStep`` runs it, on an association path or a ModelLibrary."""
    from romancal.datamodels import ModelLibrary
    from romancal.resample.resample import ResampleData

    p = roman_step_defaults()
    p.update(pars)
    names = ["var_rnoise", "var_poisson"] + (["var_flat"] if p["include_var_flat"] else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(inputs, ModelLibrary):
            library = inputs
        else:
            library = ModelLibrary(list(inputs) if isinstance(inputs, list) else str(inputs), on_disk=False)
        resampler = ResampleData(
            library,
            output_wcs,
            p["pixfrac"],
            p["kernel"],
            str(p["fillval"]),
            p["weight_type"],
            p["good_bits"],
            True,
            True,
            "from_var",
            True,
            False,
            False,
            wcs_kwargs=wcs_kwargs or {},
            variance_array_names=names,
            propagate_dq=p["propagate_dq"],
            pixmap_stepsize=p["pixmap_stepsize"],
            pixmap_order=p["pixmap_order"],
        )
        return resampler.resample_group(range(len(library)))


def _wcs_kwargs(wcs_pars: dict) -> dict:
    """Our ``wcs_pars`` as romancal's ``make_output_wcs`` keywords (``pixel_scale`` in degrees there)."""
    out = {"pscale_ratio": wcs_pars.get("pixel_scale_ratio", 1.0)}
    if "pixel_scale" in wcs_pars:
        out["pscale"] = wcs_pars["pixel_scale"] / 3600.0
    for ours, theirs in (("rotation", "rotation"), ("output_shape", "shape"), ("crpix", "crpix"), ("crval", "crval")):
        if ours in wcs_pars:
            out[theirs] = wcs_pars[ours]
    return out


def check(ours, ref, pars: dict) -> dict[str, float]:
    """Compare every array and the exposure times; return the largest relative differences."""
    params = roman_params(**pars)
    expected = set(dask_resample.drizzle.reduce.output_arrays(params))
    assert set(ours.data_vars) == expected
    diffs = {}
    for name in sorted(expected - {"con", "exptime"}):
        value = getattr(ref, ARRAYS[name], None)
        assert value is not None, f"{name} missing from the reference output"
        diffs[name] = compare_arrays(ours[name].values, np.asarray(value), name)
    con = ours["con"].values.view(np.uint32)
    assert con.shape == np.shape(ref.context)
    assert np.array_equal(con, ref.context), "context differs"
    mean, peak = coadd_exposure_times(ours)
    ref_mean = float(ref.meta.coadd_info.exposure_time)
    ref_peak = float(ref.meta.coadd_info.max_exposure_time)
    diffs["exposure_time"] = abs(mean - ref_mean) / ref_mean
    diffs["max_exposure_time"] = abs(peak - ref_peak) / ref_peak
    assert diffs["exposure_time"] <= 1e-5, (mean, ref_mean)
    assert diffs["max_exposure_time"] <= 1e-5, (peak, ref_peak)
    return diffs


CASES: dict[str, dict] = {
    "defaults": {},
    "gaussian": {"kernel": "gaussian"},
    "point": {"kernel": "point"},
    "turbo": {"kernel": "turbo"},
    "lanczos3": {"kernel": "lanczos3"},
    "pixfrac0.5": {"pixfrac": 0.5},
    "exptime": {"weight_type": "exptime"},
    "ivm-sky": {"weight_type": "ivm-sky"},
    "psr0.6": {"wcs_pars": {"pixel_scale_ratio": 0.6}},
    "psr1.5": {"wcs_pars": {"pixel_scale_ratio": 1.5}},
    "pixel_scale": {"wcs_pars": {"pixel_scale": 0.08}},
    "rotation": {"wcs_pars": {"rotation": 20.0}},
    "var_flat": {"include_var_flat": True},
    "good_bits_outlier": {"good_bits": "~DO_NOT_USE+OUTLIER"},
    "stepsize1": {"pixmap_stepsize": 1, "pixmap_order": 1},
    "propagate_dq": {"propagate_dq": True},
    "fillval0": {"fillval": "0"},
    "combined": {
        "kernel": "turbo",
        "pixfrac": 0.7,
        "weight_type": "ivm-sky",
        "include_var_flat": True,
        "wcs_pars": {"pixel_scale_ratio": 1.3, "rotation": -35.0},
    },
}


def _run(inputs, tmp_path, pars: dict, **kwargs):
    pars = copy.deepcopy(pars)
    wcs_pars = pars.pop("wcs_pars", None)
    ref = reference(inputs, wcs_kwargs=_wcs_kwargs(wcs_pars or {}), **pars)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = dask_resample.resample(
            inputs, tmp_path / "m.zarr", params=roman_params(**pars), wcs_pars=wcs_pars, tile_shape=(32, 32), **kwargs
        )
    assert ours["data"].shape == ref.data.shape
    return ours, ref, pars


@pytest.mark.parametrize("case", list(CASES))
def test_parity_with_romancal(case, single, tmp_path):
    ours, ref, pars = _run(single.asn_path, tmp_path, CASES[case], scheduler="serial")
    diffs = check(ours, ref, pars)
    assert np.isfinite(ours["data"].values).sum() > 0.3 * ours["data"].size
    print(case, {k: f"{v:.1e}" for k, v in diffs.items()})


@pytest.mark.parametrize("case", ["defaults", "exptime_lanczos3", "ivm-sky_psr0.8"])
def test_parity_two_detectors(case, two_detectors, client, tmp_path):
    pars = {
        "defaults": {},
        "exptime_lanczos3": {"weight_type": "exptime", "kernel": "lanczos3"},
        "ivm-sky_psr0.8": {"weight_type": "ivm-sky", "wcs_pars": {"pixel_scale_ratio": 0.8}},
    }[case]
    ours, ref, pars = _run(two_detectors.asn_path, tmp_path, pars, client=client)
    print(case, {k: f"{v:.1e}" for k, v in check(ours, ref, pars).items()})


def test_parity_eighteen_detectors(eighteen, client, tmp_path):
    """The whole focal plane (one case: 36 files are read twice by each side)."""
    pars = {"kernel": "gaussian", "pixfrac": 0.8, "include_var_flat": True}
    ours, ref, pars = _run(eighteen.asn_path, tmp_path, pars, client=client)
    assert len(eighteen.paths) == 36
    print("18 detectors", {k: f"{v:.1e}" for k, v in check(ours, ref, pars).items()})


@pytest.mark.parametrize("weight_type", ["ivm", "ivm-sky"])
def test_parity_var_rnoise_rebuilt_from_err(weight_type, rebuilt_rnoise, tmp_path):
    ours, ref, pars = _run(rebuilt_rnoise.asn_path, tmp_path, {"weight_type": weight_type}, scheduler="serial")
    print(weight_type, {k: f"{v:.1e}" for k, v in check(ours, ref, pars).items()})


@pytest.mark.parametrize("on_disk", [False, True])
def test_parity_model_library(on_disk, single, tmp_path):
    """A romancal ``ModelLibrary`` (in memory or on disk) is read where its models live."""
    from romancal.datamodels import ModelLibrary

    library = ModelLibrary(str(single.asn_path), on_disk=on_disk)
    ours, ref, pars = _run(library, tmp_path, {"weight_type": "ivm-sky"}, scheduler="serial")
    check(ours, ref, pars)


def test_parity_models_in_memory(single, tmp_path):
    """Open Roman datamodels (a list) give the same mosaic as their files."""
    import roman_datamodels.datamodels as rdm

    models = [rdm.open(p) for p in single.paths]
    refs = io.resolve_inputs(models)
    assert [r.kind for r in refs] == ["memory"] * 3
    assert [r.group_id for r in refs] == list(single.group_ids)
    ours, ref, pars = _run(models, tmp_path, {}, scheduler="serial")
    check(ours, ref, pars)


# ----------------------------------------------------------------------------- reading
def test_driver_reads_what_romancal_reads(rebuilt_rnoise):
    """Types and values of the model dictionary are romancal's own."""
    import roman_datamodels.datamodels as rdm
    from romancal.lib.basic_utils import compute_var_rnoise
    from romancal.resample._utils import compute_var_sky

    (ref,) = io.collect_exposures([rebuilt_rnoise.paths[0]])
    assert ref.kind == "roman" and ref.group_id == rebuilt_rnoise.group_ids[0]
    d = io.load_model_dict(ref, need_var=True, need_err=True, need_var_sky=True)
    with rdm.open(rebuilt_rnoise.paths[0]) as model:
        assert not hasattr(model, "var_rnoise")
        assert d["err"].dtype == np.float16 and d["var_poisson"].dtype == np.float16
        np.testing.assert_array_equal(d["var_rnoise"], compute_var_rnoise(model))
        np.testing.assert_array_equal(d["var_sky"], compute_var_sky(model))
        assert d["var_rnoise"].dtype == compute_var_rnoise(model).dtype
        assert d["level"] == model.meta.background.level and d["subtracted"] is True
        assert d["pixelarea_steradians"] == model.meta.photometry.pixel_area
        assert d["effective_exposure_time"] == model.meta.exposure.effective_exposure_time
        assert d["var_flat"] is None
    assert io.load_model_dict(ref, need_var=True, need_err=True)["var_sky"] is None


def test_group_ids_follow_romancal(single, tmp_path):
    """Association member group id, else meta.group_id, else observation_id."""
    import json

    from romancal.datamodels import ModelLibrary

    refs = io.collect_exposures(single.asn_path)
    library = ModelLibrary(str(single.asn_path))
    assert [r.group_id for r in refs] == [m["group_id"] for m in library.asn["products"][0]["members"]]
    asn = json.loads(single.asn_path.read_text())
    asn["products"][0]["members"][0]["group_id"] = "from_the_association"
    asn["products"][0]["members"][0]["expname"] = str(single.paths[0])
    asn["products"][0]["members"][1]["expname"] = str(single.paths[1])
    asn["products"][0]["members"][2]["expname"] = str(single.paths[2])
    path = tmp_path / "asn.json"
    path.write_text(json.dumps(asn))
    assert io.collect_exposures(path)[0].group_id == "from_the_association"


def test_missing_extra_fails_in_one_line(single, monkeypatch):
    monkeypatch.setitem(sys.modules, "romancal", None)
    monkeypatch.setitem(sys.modules, "romancal.resample", None)
    monkeypatch.setitem(sys.modules, "romancal.resample.resample", None)
    with pytest.raises(io.InputError) as err:
        io.resolve_inputs([single.paths[0]])
    message = str(err.value)
    assert "\n" not in message
    assert message == (f"{single.paths[0]}: Roman inputs need the 'roman' extra: pip install 'dask-resample[roman]'")
    with pytest.raises(io.InputError, match=r"roman_asn\.json: Roman inputs need the 'roman' extra"):
        io.resolve_inputs(single.asn_path)


# ----------------------------------------------------------------------------- parameters
def test_roman_step_defaults_are_romancal_s():
    from romancal.resample.resample_step import ResampleStep

    step = ResampleStep()
    defaults = roman_step_defaults()
    for name in (
        "pixfrac",
        "kernel",
        "fillval",
        "weight_type",
        "good_bits",
        "include_var_flat",
        "propagate_dq",
        "pixmap_stepsize",
        "pixmap_order",
    ):
        assert defaults[name] == getattr(step, name), name
    # what ResampleStep always asks of ResampleData
    assert defaults["enable_ctx"] and defaults["enable_var"] and defaults["compute_err"] == "from_var"
    assert defaults["compute_exptime"]
    # one record: the jwst defaults are untouched
    assert dask_resample.params.step_defaults()["include_var_flat"] is True
    assert dask_resample.params.step_defaults()["compute_exptime"] is False
    assert roman_params().good_bits_mask == roman_params(good_bits="~1").good_bits_mask


def test_roman_dq_flag_names_are_roman_datamodels_s():
    from roman_datamodels import dqflags

    from dask_resample.dqflags import ROMAN_PIXEL

    assert dict(ROMAN_PIXEL) == {k: int(v) for k, v in dqflags.pixel.__members__.items()}
    assert (
        roman_params(good_bits="~DO_NOT_USE+OUTLIER").good_bits_mask
        != dask_resample.ResampleParams(good_bits="~DO_NOT_USE+OUTLIER").good_bits_mask
    )


# ----------------------------------------------------------------------------- skycells
@pytest.fixture(scope="module")
def skymap_subset():
    """The tessellation subset inside the romancal wheel (the polar projection regions)."""
    from pathlib import Path

    import romancal.skycell.skymap as sc

    path = Path(sc.__file__).parent / "tests" / "data" / "skymap_subset.asdf"
    assert path.is_file(), path
    return path


#: A skycell well inside the subset's polar projection region (centre RA 63.43, Dec 89.30).
SKYCELL = "135p90x47y41"


@pytest.fixture(scope="module")
def on_skycell(tmp_path_factory, quiet):
    """2 exposures of a sub-array of detector 7 centred in skycell 135p90x47y41 (the association's target)."""
    return synthetic_roman.write_roman_dataset(
        tmp_path_factory.mktemp("roman_sky"),
        n_exposures=2,
        detectors=(7,),
        shape=(48, 48),
        centre_on=(63.435, 89.3043),
        seed=15,
        target=SKYCELL,
    )


def _window_wcs(wcs, x0: int, y0: int, shape_yx: tuple[int, int]):
    """The skycell's WCS on the window ``[y0:y0+ny, x0:x0+nx]`` of its pixels (same pixels, shifted origin)."""
    from astropy.modeling import models
    from gwcs import wcs as gwcs_wcs

    ny, nx = shape_yx
    out = gwcs_wcs.WCS(
        [(wcs.input_frame, (models.Shift(x0) & models.Shift(y0)) | wcs.forward_transform), (wcs.output_frame, None)]
    )
    out.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    out.array_shape = shape_yx
    return out


def test_skycell_mosaics(on_skycell, skymap_subset, tmp_path):
    """One mosaic per touched skycell, on romancal's skycell grid, at parity with romancal on its pixels.

    romancal's reference runs on a window of the skycell's own pixels around the data (its full
    5000 x 5000 run costs a minute here); our skycell mosaic is compared there, and is empty elsewhere.
    """
    from dask_resample.geometry import skycells
    from dask_resample.roman import resample_skycells

    assert skycells.skycell_from_association(on_skycell.asn_path) == SKYCELL
    refs = io.collect_exposures(on_skycell.asn_path)
    touched = skycells.skycells_touched(refs, skymap_subset)
    assert SKYCELL in touched and touched[SKYCELL] == [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mosaics = resample_skycells(
            on_skycell.asn_path,
            tmp_path,
            skymap=skymap_subset,
            names=[SKYCELL],
            scheduler="serial",
            tile_shape=(1000, 1000),
        )
    ours = mosaics[SKYCELL]
    assert ours["data"].shape == (5000, 5000)
    wcs = skycells.skycell_output_wcs(SKYCELL, skymap_subset)["wcs"]
    covered = np.argwhere(ours["wht"].values > 0)
    (y0, x0), (y1, x1) = covered.min(axis=0) - 20, covered.max(axis=0) + 21
    window = _window_wcs(wcs, int(x0), int(y0), (int(y1 - y0), int(x1 - x0)))
    # the output pixel scale of the whole skycell (stcal's mean pixel area over all of it), as on the skycell
    ref = reference(
        on_skycell.asn_path,
        output_wcs={"wcs": window, "pixel_scale": ours.attrs["dask_resample"]["grid"]["pixel_scale"]},
    )
    cut = ours.isel(y=slice(y0, y1), x=slice(x0, x1))
    diffs = check(cut, ref, {})
    outside = ours["wht"].values.copy()
    outside[y0:y1, x0:x1] = 0
    assert not outside.any()
    print("skycell", {k: f"{v:.1e}" for k, v in diffs.items()})


def test_skycell_errors_are_one_line(tmp_path, monkeypatch):
    from dask_resample.geometry import skycells

    monkeypatch.delenv("SKYMAP_PATH", raising=False)
    with pytest.raises(io.InputError, match="skymap file not found"):
        skycells.use_skymap(tmp_path / "missing.asdf")
    with pytest.raises(io.InputError, match="names no skycell"):
        skycells.skycell_from_association({"target": "none", "products": []})


# ----------------------------------------------------------------------------- products
def test_mosaic_model_export(single, tmp_path):
    """The mosaic exports to a MosaicModel ASDF file that roman_datamodels opens and validates."""
    import roman_datamodels.datamodels as rdm

    from dask_resample.roman import to_mosaic_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = dask_resample.resample(
            single.asn_path,
            tmp_path / "m.zarr",
            params=roman_params(include_var_flat=True),
            scheduler="serial",
            tile_shape=(32, 32),
        )
        to_mosaic_model(ours, tmp_path / "mosaic_i2d.asdf")
        with rdm.open(tmp_path / "mosaic_i2d.asdf") as model:
            assert type(model).__name__ == "MosaicModel"
            model.validate()
            for ours_name, name in (
                ("data", "data"),
                ("wht", "weight"),
                ("err", "err"),
                ("var_flat", "var_flat"),
                ("var_rnoise", "var_rnoise"),
                ("var_poisson", "var_poisson"),
            ):
                np.testing.assert_array_equal(np.asarray(getattr(model, name)), ours[ours_name].values)
            np.testing.assert_array_equal(np.asarray(model.context), ours["con"].values.view(np.uint32))
            mean, peak = coadd_exposure_times(ours)
            assert model.meta.coadd_info.exposure_time == mean
            assert model.meta.coadd_info.max_exposure_time == peak
            assert model.meta.resample.pointings == 3 and model.meta.resample.good_bits == "~DO_NOT_USE"
            assert model.meta.wcs.array_shape == ours["data"].shape
    assert set(ours.data_vars) >= {"data", "wht", "con", "exptime"}  # the xarray product stays as it is
