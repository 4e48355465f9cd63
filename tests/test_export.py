"""FITS export: an i2d file that jwst reads like its own, and plain FITS."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import dask_resample
from dask_resample.products.export import EXTENSION_NAMES, export_fits
from dask_resample.store import gwcs_from_attrs, read_metadata

from .conftest import reference_resample

PARAMS = {"good_bits": "~DO_NOT_USE+NON_SCIENCE", "compute_err": "from_var", "enable_var": True, "report_var": True}


@pytest.fixture(scope="module")
def mosaic(small_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "m.zarr"
    dask_resample.resample(
        small_dataset.asn_path,
        out,
        scheduler="serial",
        tile_shape=(64, 64),
        propagate_dq=True,
        progress=False,
        **PARAMS,
    )
    return out


@pytest.fixture(scope="module")
def reference(small_dataset):
    return reference_resample(small_dataset.asn_path, propagate_dq=True, **PARAMS)


def _open_model(path: Path):
    from stdatamodels.jwst import datamodels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return datamodels.open(path)


def test_image_model_arrays_equal_the_mosaic(mosaic, tmp_path):
    from stdatamodels.jwst import datamodels

    out = export_fits(mosaic, tmp_path / "m_i2d.fits")
    ds = dask_resample.open_mosaic(mosaic)
    with _open_model(out) as model:
        assert isinstance(model, datamodels.ImageModel)
        for name in ("data", "wht", "con", "err", "var_rnoise", "var_poisson", "var_flat", "dq"):
            np.testing.assert_array_equal(getattr(model, name), ds[name].values, err_msg=name)
    with fits.open(out) as hdul:
        names = {h.name for h in hdul}
    assert {"SCI", "WHT", "CON", "ERR", "VAR_RNOISE", "VAR_POISSON", "VAR_FLAT", "DQ", "ASDF"} <= names


def test_image_model_metadata_matches_the_reference_i2d(mosaic, reference, tmp_path):
    out = export_fits(mosaic, tmp_path / "m_i2d.fits")
    with _open_model(out) as model:
        ref = reference
        for key in (
            "exposure_time",
            "measurement_time",
            "start_time",
            "end_time",
            "duration",
            "effective_exposure_time",
            "elapsed_exposure_time",
        ):
            assert getattr(model.meta.exposure, key) == pytest.approx(getattr(ref.meta.exposure, key)), key
        for key in ("pointings", "pixfrac", "kernel", "fillval", "weight_type"):
            assert getattr(model.meta.resample, key) == getattr(ref.meta.resample, key), key
        assert model.meta.resample.pixel_scale_ratio == pytest.approx(ref.meta.resample.pixel_scale_ratio)
        for key in ("crpix1", "crpix2", "crval1", "crval2", "cdelt1", "cdelt2", "pc1_1", "pc1_2", "pc2_1", "pc2_2"):
            assert getattr(model.meta.wcsinfo, key) == pytest.approx(getattr(ref.meta.wcsinfo, key), rel=1e-9), key
        for key in ("ctype1", "ctype2", "cunit1", "cunit2"):
            assert getattr(model.meta.wcsinfo, key) == getattr(ref.meta.wcsinfo, key), key
        assert model.meta.photometry.pixelarea_steradians == pytest.approx(ref.meta.photometry.pixelarea_steradians)
        assert model.meta.bunit_data == "MJy/sr"
        # the same sky at the same pixels
        y, x = np.mgrid[0 : model.data.shape[0] : 17, 0 : model.data.shape[1] : 23]
        ra, dec = model.meta.wcs(x, y)
        ra_ref, dec_ref = ref.meta.wcs(x, y)
        np.testing.assert_allclose(ra, ra_ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(dec, dec_ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(model.data, ref.data, rtol=1e-5, atol=1e-6 * np.nanmax(np.abs(ref.data)))


def test_plain_fits_has_named_extensions_and_wcs(mosaic, tmp_path):
    from astropy.wcs import WCS

    out = export_fits(mosaic, tmp_path / "plain.fits", fmt="fits")
    ds = dask_resample.open_mosaic(mosaic)
    meta = read_metadata(mosaic)
    gwcs = gwcs_from_attrs(meta)
    with fits.open(out) as hdul:
        names = [h.name for h in hdul]
        assert "ASDF" not in names
        for var, ext in EXTENSION_NAMES.items():
            if var == "exptime" and var not in ds.data_vars:  # made only with compute_exptime
                assert ext not in names
                continue
            assert ext in names, ext
            np.testing.assert_array_equal(hdul[ext].data, ds[var].values, err_msg=ext)
        sci = hdul["SCI"].header
        assert sci["BUNIT"] == "MJy/sr"
        assert hdul[0].header["PIXFRAC"] == 1.0
        assert hdul[0].header["XPOSURE"] == pytest.approx(meta["totals"]["exposure_time"])
        wcs = WCS(sci)
    y, x = np.mgrid[0 : ds.sizes["y"] : 19, 0 : ds.sizes["x"] : 13]
    ra, dec = wcs.pixel_to_world_values(x, y)
    ra_g, dec_g = gwcs(x, y, with_bounding_box=False)
    np.testing.assert_allclose(ra, ra_g, rtol=0, atol=1e-10)
    np.testing.assert_allclose(dec, dec_g, rtol=0, atol=1e-10)


def test_existing_file_needs_overwrite(mosaic, tmp_path):
    out = tmp_path / "x_i2d.fits"
    out.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="x_i2d.fits"):
        export_fits(mosaic, out)
    assert out.read_bytes() == b"keep me"
    export_fits(mosaic, out, overwrite=True)
    with _open_model(out) as model:
        assert model.data.shape == dask_resample.open_mosaic(mosaic)["data"].shape


def test_refuses_what_is_not_a_mosaic(tmp_path):
    (tmp_path / "dir.zarr").mkdir()
    with pytest.raises(ValueError, match="not a dask-resample mosaic"):
        export_fits(tmp_path / "dir.zarr", tmp_path / "x.fits")
    assert not (tmp_path / "x.fits").exists()


def test_group_rules(mosaic, tmp_path):
    with pytest.raises(ValueError, match="many-to-one"):
        export_fits(mosaic, tmp_path / "g.fits", group="jw01234001001_02101_1")
    with pytest.raises(ValueError, match="fmt"):
        export_fits(mosaic, tmp_path / "g.fits", fmt="hdf5")
    assert not (tmp_path / "g.fits").exists()
