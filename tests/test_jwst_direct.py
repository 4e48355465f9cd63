"""JWST ``*_cal.fits`` files read straight from their HDUs give the datamodel's stcal dictionary, bit for bit."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from dask_resample.inputs import io as dio
from dask_resample.inputs.drivers import jwst_direct, jwst_model
from dask_resample.store import as_location
from dask_resample.testing import synthetic

pytest.importorskip("stdatamodels")


def _members(ds) -> list[Path]:
    doc = json.loads(Path(ds.asn_path).read_text())
    return [Path(ds.asn_path).parent / m["expname"] for m in doc["products"][0]["members"]]


def _ref(path: Path):
    (ref,) = dio.describe_resolved(dio.resolve_inputs([str(path)]))
    return ref


def _through_datamodel(ref, need_var: bool, need_err: bool) -> dict:
    from jwst.resample.resample import input_jwst_model_to_dict
    from stdatamodels.jwst import datamodels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with datamodels.open(str(ref.location.url)) as model:
            model.meta.group_id = ref.group_id
            d = input_jwst_model_to_dict(
                model, weight_type="ivm", enable_var=need_var, compute_err="driz_err" if need_err else None
            )
            return {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def _direct(ref, need_var: bool, need_err: bool) -> dict | None:
    return jwst_model._direct_model_dict(ref, need_var=need_var, need_err=need_err)


def _assert_same(direct: dict, model: dict) -> None:
    model = {**model, "wcsinfo": None}
    assert direct.keys() == model.keys()
    for key, b in model.items():
        a = direct[key]
        if isinstance(b, np.ndarray):
            assert a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=") and a.shape == b.shape, key
            assert np.array_equal(a, b, equal_nan=True), key
        elif key == "wcs":
            x, y = np.meshgrid(np.arange(0, 60, 7.0), np.arange(0, 60, 5.0))
            np.testing.assert_array_equal(np.array(a(x, y)), np.array(b(x, y)))
        else:
            assert a == b and type(a) is type(b), (key, a, b)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return synthetic.write_dataset(
        tmp_path_factory.mktemp("direct"), n_dithers=2, n_detectors=1, shape=(64, 72), seed=7, sky_level=0.3
    )


@pytest.mark.parametrize(("need_var", "need_err"), [(False, False), (True, False), (True, True)])
def test_direct_read_is_the_datamodel_dictionary(dataset, need_var, need_err):
    for path in _members(dataset):
        ref = _ref(path)
        direct = _direct(ref, need_var, need_err)
        assert direct is not None
        _assert_same(direct, _through_datamodel(ref, need_var, need_err))


def test_siaf_files_read_directly_too(tmp_path):
    synthetic_siaf = pytest.importorskip("dask_resample.testing.synthetic_siaf")
    ds = synthetic_siaf.write_siaf_dataset(tmp_path, instrument="miri", n_dithers=1, subarray="SUB256", seed=2)
    ref = _ref(_members(ds)[0])
    direct = _direct(ref, True, True)
    assert direct is not None
    _assert_same(direct, _through_datamodel(ref, True, True))


def test_edited_headers_go_through_the_datamodel(dataset, tmp_path):
    """A header changed after the file was saved: the datamodel re-reads its keywords, so the direct read declines."""
    from astropy.io import fits

    path = tmp_path / _members(dataset)[0].name
    shutil.copy(_members(dataset)[0], path)
    with fits.open(path, mode="update") as hdul:
        hdul["SCI"].header["XPOSURE"] = 500.0
        hdul[0].header["EFFEXPTM"] = 500.0
    ref = _ref(path)
    assert _direct(ref, False, False) is None
    loaded = jwst_model.load_arrays(ref, need_var=False, need_err=False)
    assert loaded["exposure_time"] == 500.0  # what the datamodel says


def test_an_absent_array_goes_through_the_datamodel(dataset, tmp_path):
    """Without VAR_FLAT the datamodel makes a default array: the direct read declines, load_arrays still works."""
    from stdatamodels.jwst import datamodels

    path = tmp_path / _members(dataset)[0].name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with datamodels.open(str(_members(dataset)[0])) as model:
            del model.var_flat
            model.save(str(path))
    ref = _ref(path)
    assert _direct(ref, True, False) is None
    assert _direct(ref, False, False) is not None
    loaded = jwst_model.load_arrays(ref, need_var=True, need_err=False)
    _assert_same(loaded, _through_datamodel(ref, True, False))


def test_array_dtypes_are_the_schema_dtypes():
    import asdf
    from stdatamodels.jwst.datamodels import ImageModel

    schema = asdf.schema.load_schema(ImageModel.schema_url, resolve_references=True)
    properties = {}
    for part in schema["allOf"]:
        properties.update(part.get("properties", {}))
    for name, dtype in jwst_direct.ARRAY_DTYPES.items():
        assert np.dtype(properties[name]["datatype"]) == dtype, name


def test_a_url_reads_the_same(dataset, s3_server):
    """By range at an s3:// URL: the same dictionary."""
    import s3fs

    bucket = s3_server.new_bucket("direct-read")
    src = _members(dataset)[0]
    fs = s3fs.S3FileSystem(**s3_server.storage_options)
    fs.put(str(src), f"{bucket}/{src.name}")
    url = f"s3://{bucket}/{src.name}"
    (ref,) = dio.describe_resolved(dio.resolve_inputs([url], storage_options=s3_server.storage_options))
    direct = _direct(ref, True, True)
    assert direct is not None
    local = _direct(_ref(src), True, True)
    for key, value in local.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(direct[key], value, equal_nan=True), key
        elif key not in ("wcs",):
            assert direct[key] == value, key
    assert as_location(url).name == direct["filename"]
