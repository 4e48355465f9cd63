"""The ``dask_resample.jwst.ResampleImage`` drop-in against the real jwst class.

Every test runs the reference and the facade the same way and compares the
output arrays (``compare_arrays``) and the output model's metadata, field by
field (:data:`META_FIELDS`) and then as a whole.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from dask_resample.store import read_metadata

from .conftest import compare_arrays, reference_resample

jwst_datamodels = pytest.importorskip("jwst.datamodels")
jwst_resample = pytest.importorskip("jwst.resample.resample")
facade = pytest.importorskip("dask_resample.jwst")

ModelLibrary = jwst_datamodels.ModelLibrary
Reference = jwst_resample.ResampleImage
ResampleImage = facade.ResampleImage

#: Output arrays compared (those the model holds).
ARRAYS = ("data", "wht", "con", "err", "var_rnoise", "var_flat", "var_poisson", "dq")

#: Metadata compared one by one.
META_FIELDS = (
    "meta.resample.pixfrac",
    "meta.resample.kernel",
    "meta.resample.fillval",
    "meta.resample.weight_type",
    "meta.resample.pixel_scale_ratio",
    "meta.resample.pointings",
    "meta.photometry.pixelarea_steradians",
    "meta.photometry.pixelarea_arcsecsq",
    "meta.exposure.start_time",
    "meta.exposure.end_time",
    "meta.exposure.duration",
    "meta.exposure.exposure_time",
    "meta.exposure.measurement_time",
    "meta.exposure.effective_exposure_time",
    "meta.exposure.elapsed_exposure_time",
    "meta.background.level",
    "meta.background.subtracted",
    "meta.wcsinfo.crpix1",
    "meta.wcsinfo.crpix2",
    "meta.wcsinfo.crval1",
    "meta.wcsinfo.crval2",
    "meta.wcsinfo.cdelt1",
    "meta.wcsinfo.cdelt2",
    "meta.wcsinfo.pc1_1",
    "meta.wcsinfo.pc1_2",
    "meta.wcsinfo.pc2_1",
    "meta.wcsinfo.pc2_2",
    "meta.wcsinfo.ctype1",
    "meta.wcsinfo.ctype2",
    "meta.wcsinfo.cunit1",
    "meta.wcsinfo.cunit2",
    "meta.wcsinfo.radesys",
    "meta.wcsinfo.s_region",
    "meta.asn.pool_name",
    "meta.asn.table_name",
    "meta.cal_step.resample",
    "meta.filename",
    "meta.bunit_data",
)

#: Fields that must be set (not None) in the outputs of these tests.
ALWAYS_SET = (
    "meta.resample.pixfrac",
    "meta.resample.pixel_scale_ratio",
    "meta.resample.pointings",
    "meta.photometry.pixelarea_steradians",
    "meta.exposure.start_time",
    "meta.exposure.exposure_time",
    "meta.exposure.elapsed_exposure_time",
    "meta.wcsinfo.crpix1",
    "meta.wcsinfo.s_region",
    "meta.cal_step.resample",
    "meta.bunit_data",
)

#: Differ between any two runs (creation date, hash of the file read).
VOLATILE = ("meta.date", "_fits_hash")


@pytest.fixture(autouse=True)
def _quiet_and_contained(tmp_path, monkeypatch):
    # on-disk libraries keep their temporary files under the working directory
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _same(a, b) -> bool:
    if hasattr(a, "forward_transform") and hasattr(b, "forward_transform"):
        if a.array_shape != b.array_shape:
            return False
        ny, nx = a.array_shape
        x = np.array([0.0, nx - 1.0, 0.5 * nx, 3.0])
        y = np.array([0.0, ny - 1.0, 0.5 * ny, 7.0])
        return np.array_equal(np.array(a(x, y)), np.array(b(x, y)))
    try:
        eq = a == b
        if isinstance(eq, np.ndarray):
            return bool(eq.all())
        return bool(eq)
    except Exception:
        return str(a) == str(b)


def compare_metadata(ours, ref) -> list[str]:
    """Assert that the metadata of two output models agree; return the fields compared."""
    fo = ours.to_flat_dict(include_arrays=False)
    fr = ref.to_flat_dict(include_arrays=False)
    for field in META_FIELDS:
        assert _same(fo.get(field), fr.get(field)), f"{field}: {fo.get(field)!r} != {fr.get(field)!r}"
    for field in ALWAYS_SET:
        assert fr.get(field) is not None, f"{field} unset in the reference"
    assert _same(ours.meta.wcs, ref.meta.wcs), "meta.wcs differs"
    keys = sorted((set(fo) | set(fr)) - set(VOLATILE))
    differ = [k for k in keys if not _same(fo.get(k), fr.get(k))]
    assert not differ, f"metadata differs: {differ}"
    assert ours.hasattr("hdrtab") == ref.hasattr("hdrtab")
    if ref.hasattr("hdrtab"):
        assert ours.hdrtab.dtype.names == ref.hdrtab.dtype.names
        for column in set(ref.hdrtab.dtype.names) - {"DATE"}:  # DATE: when each input was last saved
            a, b = np.asarray(ours.hdrtab[column]), np.asarray(ref.hdrtab[column])
            same = np.array_equal(a, b, equal_nan=True) if a.dtype.kind == "f" else np.array_equal(a, b)
            assert same, f"hdrtab column {column} differs"
    return keys


def compare_outputs(ours, ref, tag: str) -> dict[str, float]:
    """Assert array parity of two output models; return the largest relative difference per array."""
    assert type(ours) is type(ref)
    diffs = {}
    for name in ARRAYS:
        assert ours.hasattr(name) == ref.hasattr(name), f"{tag}: {name} present in one output only"
        if ref.hasattr(name):
            diffs[name] = compare_arrays(getattr(ours, name), getattr(ref, name), f"{tag}/{name}")
    assert "data" in diffs and "wht" in diffs
    compare_metadata(ours, ref)
    return diffs


def library_models(library) -> list:
    models = []
    with library:
        for i in range(len(library)):
            model = library.borrow(i)
            models.append(model)
            library.shelve(model, i, modify=False)
    return models


# ----------------------------------------------------------------------------- API
def test_is_a_drop_in_subclass(single_detector_dataset):
    library = ModelLibrary(str(single_detector_dataset.asn_path), on_disk=True)
    ours = ResampleImage(library)
    ref = Reference(ModelLibrary(str(single_detector_dataset.asn_path), on_disk=True))
    assert isinstance(ours, Reference)
    assert ResampleImage.dq_flag_name_map is Reference.dq_flag_name_map
    assert ours.dq_flag_name_map["DO_NOT_USE"] == 1
    assert ours.output_wcs.array_shape == ref.output_wcs.array_shape
    assert ours.output_pixel_scale == ref.output_pixel_scale
    assert ours.pixel_scale_ratio == ref.pixel_scale_ratio
    # no full-frame drizzle arrays are allocated up front
    assert not hasattr(ours, "_driz") and not hasattr(ours, "_variance_info")
    assert ours.input_model_to_dict.__func__ is Reference.input_model_to_dict
    assert ours.update_fits_wcsinfo is Reference.update_fits_wcsinfo


def test_bad_parameters_fail_early(single_detector_dataset, tmp_path):
    library = ModelLibrary(str(single_detector_dataset.asn_path), on_disk=True)
    with pytest.raises(ValueError, match="kernel"):
        ResampleImage(library, kernel="boxcar")
    with pytest.raises(ValueError, match="pixfrac"):
        ResampleImage(library, pixfrac=0.0)
    with pytest.raises(ValueError, match="tile_shape"):
        ResampleImage(library, tile_shape=(0, 64))
    with pytest.raises(KeyError, match="bogus"):
        ResampleImage(library, wcs_pars={"bogus": 1})
    not_a_mosaic = tmp_path / "taken"
    not_a_mosaic.mkdir()
    (not_a_mosaic / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="taken"):
        ResampleImage(library, store=not_a_mosaic)
    assert (not_a_mosaic / "keep.txt").read_text() == "x"


# ---------------------------------------------------------------------- many to one
def test_many_to_one_matches_reference(small_dataset, client):
    ref = reference_resample(small_dataset.asn_path)
    library = ModelLibrary(str(small_dataset.asn_path), on_disk=True)
    resampler = ResampleImage(library, client=client, tile_shape=(64, 64))
    ours = resampler.resample_many_to_one()
    diffs = compare_outputs(ours, ref, "many_to_one")
    assert set(diffs) == {"data", "wht", "con", "var_rnoise", "var_flat", "var_poisson"}
    assert ours.meta.resample.pointings == 3
    assert ours.meta.background.level is None  # as the reference: reset after the sky was removed
    assert not resampler.store.exists()  # the temporary store is removed


def _reference_output_wcs(asn_path):
    ref = Reference(ModelLibrary(str(asn_path), on_disk=True))
    return {"wcs": copy.deepcopy(ref.output_wcs), "pixel_scale": ref.output_pixel_scale}


@pytest.mark.parametrize(
    "params",
    [
        {
            "pixfrac": 0.7,
            "weight_type": "exptime",
            "compute_err": "driz_err",
            "propagate_dq": True,
            "good_bits": "~DO_NOT_USE+NON_SCIENCE",
            "fillval": "0",
            "report_var": False,
            "blendheaders": False,
        },
        {
            "kernel": "gaussian",
            "compute_err": "from_var",
            "enable_ctx": False,
            "wcs_pars": {"pixel_scale_ratio": 0.8, "rotation": 30.0},
        },
        {"kernel": "turbo", "pixfrac": 0.5, "output_wcs": "custom"},
    ],
    ids=["exptime-drizerr-dq", "gaussian-fromvar-wcspars", "turbo-custom-wcs"],
)
def test_many_to_one_parameters_match_reference(single_detector_dataset, client, params):
    asn = single_detector_dataset.asn_path
    ref_params, our_params = dict(params), dict(params)
    if params.get("output_wcs") == "custom":
        # a given WCS without 'pixel_scale_ratio': the ratio comes from the first input
        ref_params["output_wcs"] = _reference_output_wcs(asn)
        our_params["output_wcs"] = _reference_output_wcs(asn)
    ref = Reference(ModelLibrary(str(asn), on_disk=False), **ref_params).resample_many_to_one()
    ours = ResampleImage(ModelLibrary(str(asn), on_disk=False), client=client, **our_params).resample_many_to_one()
    diffs = compare_outputs(ours, ref, "params")
    if params.get("compute_err"):
        assert "err" in diffs
    if params.get("propagate_dq"):
        assert "dq" in diffs and ours.dq.any()
    if params.get("report_var") is False:
        assert "var_rnoise" not in diffs


def test_add_model_and_finalize_match_reference_and_many_to_one(small_dataset, client):
    asn = str(small_dataset.asn_path)

    def drive(cls, **kw):
        library = ModelLibrary(asn, on_disk=False)
        resampler = cls(library, **kw)
        for model in library_models(library):
            resampler.add_model(model)
        resampler.finalize()
        return resampler.output_jwst_model

    ours = drive(ResampleImage, client=client)
    compare_outputs(ours, drive(Reference), "add_model")
    many_to_one = ResampleImage(ModelLibrary(asn, on_disk=True), client=client).resample_many_to_one()
    for name in ("data", "wht", "con", "var_rnoise", "var_flat", "var_poisson"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(many_to_one, name), err_msg=name)


def test_reset_arrays_behaves_as_reference(single_detector_dataset, client):
    outputs = {}
    for name, cls, kw in (("ours", ResampleImage, {"client": client}), ("reference", Reference, {})):
        library = ModelLibrary(str(single_detector_dataset.asn_path), on_disk=False)
        resampler = cls(library, **kw)
        models = library_models(library)
        resampler.add_model(models[0])
        resampler.finalize()
        with pytest.raises(RuntimeError, match="reset_arrays"):
            resampler.add_model(models[1])
        # room for 40 inputs: drizzle allocates two context planes
        resampler.reset_arrays(n_input_models=40)
        assert resampler.output_jwst_model is None
        resampler.add_model(models[1])
        resampler.add_model(models[2])
        resampler.finalize()
        outputs[name] = resampler.output_jwst_model
    ours, ref = outputs["ours"], outputs["reference"]
    assert ref.con.shape[0] == 2
    compare_outputs(ours, ref, "reset")
    assert ours.meta.resample.pointings == 3  # groups seen since construction, as the reference counts


# ---------------------------------------------------------------------- many to many
def _models_of(result) -> list:
    models = []
    with result:
        for i in range(len(result)):
            model = result.borrow(i)
            models.append(model)
            result.shelve(model, i, modify=False)
    return models


def test_many_to_many_in_memory_matches_reference(small_dataset, client, tmp_path, monkeypatch):
    asn = str(small_dataset.asn_path)
    calls = []
    real = facade.resample

    def counting(*args, **kwargs):
        calls.append(kwargs["mode"])
        return real(*args, **kwargs)

    monkeypatch.setattr(facade, "resample", counting)
    store = tmp_path / "facade.zarr"
    library = ModelLibrary(asn, on_disk=False)
    result = ResampleImage(library, client=client, store=store).resample_many_to_many(in_memory=True)
    ref_result = Reference(ModelLibrary(asn, on_disk=False)).resample_many_to_many(in_memory=True)

    assert isinstance(result, ModelLibrary) and not result.on_disk
    # one graph for all groups, kept in the given store
    assert calls == ["many_to_many"]
    meta = read_metadata(store)
    assert meta["mode"] == "many_to_many" and meta["groups"] == list(library.group_indices)
    ours, refs = _models_of(result), _models_of(ref_result)
    assert [m.meta.filename for m in ours] == [m.meta.filename for m in refs]
    assert ours[0].meta.filename.endswith("_nrca1_outlier_i2d.fits")
    for k, (o, r) in enumerate(zip(ours, refs, strict=True)):
        compare_outputs(o, r, f"group{k}")
    # the reference's pointings count groups seen so far; so do ours
    assert [m.meta.resample.pointings for m in ours] == [1, 2, 3]


def test_many_to_many_on_disk_matches_reference(small_dataset, client, tmp_path):
    asn = str(small_dataset.asn_path)
    ref_dir, our_dir = tmp_path / "reference", tmp_path / "ours"
    ref_dir.mkdir()
    our_dir.mkdir()
    ref_result = Reference(ModelLibrary(asn, on_disk=True), output=str(ref_dir)).resample_many_to_many(in_memory=False)
    result = ResampleImage(ModelLibrary(asn, on_disk=True), output=str(our_dir), client=client).resample_many_to_many(
        in_memory=False
    )
    assert isinstance(result, ModelLibrary) and result.on_disk
    assert sorted(os.listdir(our_dir)) == sorted(os.listdir(ref_dir))
    assert len(os.listdir(our_dir)) == 3
    ref_members = ref_result.asn["products"][0]["members"]
    our_members = result.asn["products"][0]["members"]
    assert [Path(m["expname"]).name for m in our_members] == [Path(m["expname"]).name for m in ref_members]
    assert [m["group_id"] for m in our_members] == [m["group_id"] for m in ref_members]
    for key in ("asn_id", "asn_pool", "asn_type", "asn_rule"):
        assert result.asn.get(key) == ref_result.asn.get(key), key
    assert result.asn["products"][0]["name"] == ref_result.asn["products"][0]["name"] == "outlier_i2d"
    for k, (o, r) in enumerate(zip(_models_of(result), _models_of(ref_result), strict=True)):
        compare_outputs(o, r, f"disk{k}")


def test_resample_group_matches_reference(small_dataset, client):
    asn = str(small_dataset.asn_path)
    ours_obj = ResampleImage(ModelLibrary(asn, on_disk=True), client=client)
    ref_obj = Reference(ModelLibrary(asn, on_disk=True))
    groups = list(ref_obj.input_models.group_indices.values())
    # a later group first, then an earlier one: the second call resets the arrays
    for indices in (groups[2], groups[0]):
        ours = ours_obj.resample_group(indices)
        ref = ref_obj.resample_group(indices)
        compare_outputs(ours, ref, f"group{indices}")
        assert ours.meta.filename == ref.meta.filename
        assert set(np.unique(ours.con)) <= {0, 1, 2, 3}


# -------------------------------------------------------------------- usage as is
USAGE = """
{import_line}
from jwst.datamodels import ModelLibrary

library = ModelLibrary(asn_path, on_disk=True)
resampler = ResampleImage(library, pixfrac=0.8, good_bits="~DO_NOT_USE", blendheaders=True)
mosaic = resampler.resample_many_to_one()

outlier_library = ModelLibrary(asn_path, on_disk=False)
per_group = ResampleImage(outlier_library, output=output_dir).resample_many_to_many(in_memory=False)
with per_group:
    first = per_group.borrow(0)
    names = [first.meta.filename]
    per_group.shelve(first, 0, modify=False)
"""


def test_reference_usage_runs_unchanged_apart_from_the_import(small_dataset, client, tmp_path):
    results = {}
    for name, import_line in (
        ("reference", "from jwst.resample.resample import ResampleImage"),
        ("ours", "from dask_resample.jwst import ResampleImage"),
    ):
        output_dir = tmp_path / name
        output_dir.mkdir()
        namespace = {"asn_path": str(small_dataset.asn_path), "output_dir": str(output_dir)}
        exec(USAGE.format(import_line=import_line), namespace)  # noqa: S102 - the usage under test
        results[name] = namespace
    ours, ref = results["ours"], results["reference"]
    assert type(ours["resampler"]).__module__ == "dask_resample.jwst"
    compare_outputs(ours["mosaic"], ref["mosaic"], "usage")
    assert ours["names"] == ref["names"]
    assert sorted(os.listdir(tmp_path / "ours")) == sorted(os.listdir(tmp_path / "reference"))


@pytest.mark.parametrize("on_disk", [False, True], ids=["in-memory-library", "on-disk-library"])
def test_models_changed_in_the_library_are_the_ones_resampled(single_detector_dataset, client, on_disk):
    def changed_library():
        library = ModelLibrary(str(single_detector_dataset.asn_path), on_disk=on_disk)
        with library:
            model = library.borrow(1)
            model.data = model.data * 3.0 + 1.0
            model.meta.background.level = 0.5
            model.meta.background.subtracted = False
            library.shelve(model, 1, modify=True)
        return library

    ref = Reference(changed_library()).resample_many_to_one()
    ours = ResampleImage(changed_library(), client=client).resample_many_to_one()
    compare_outputs(ours, ref, "changed")
    unchanged = reference_resample(single_detector_dataset.asn_path)
    assert not np.allclose(ours.data, unchanged.data, equal_nan=True)
