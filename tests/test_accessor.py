"""The ``ds.mosaic`` accessor: WCS round trips, cutouts, exposure counts, FITS, plain open_zarr."""

from __future__ import annotations

import warnings

import astropy.units as u
import dask.array as da
import numpy as np
import pytest
import xarray as xr

import dask_resample
from dask_resample.store import gwcs_from_attrs, read_metadata


@pytest.fixture(scope="module")
def mosaic_path(tmp_path_factory, small_dataset, client):
    path = tmp_path_factory.mktemp("accessor") / "m.zarr"
    dask_resample.resample(
        small_dataset.asn_path, path, tile_shape=(64, 64), client=client, compute_err="from_var", progress=False
    )
    return path


@pytest.fixture()
def ds(mosaic_path):
    return dask_resample.open_mosaic(mosaic_path)


def _pixels(shape_yx, n=50, seed=0):
    rng = np.random.default_rng(seed)
    ny, nx = shape_yx
    y = np.concatenate([[0, 0, ny - 1, ny - 1], rng.uniform(-0.5, ny - 0.5, n)])
    x = np.concatenate([[0, nx - 1, 0, nx - 1], rng.uniform(-0.5, nx - 0.5, n)])
    return y, x


def test_world_equals_output_gwcs(ds, mosaic_path):
    y, x = _pixels(ds.mosaic.shape_yx)
    ra, dec = ds.mosaic.world(y, x)
    out_wcs = gwcs_from_attrs(read_metadata(mosaic_path))
    ra_ref, dec_ref = out_wcs(x, y)
    assert np.max(np.abs(ra - ra_ref)) <= 1e-9
    assert np.max(np.abs(dec - dec_ref)) <= 1e-9
    # the FITS cards describe the same sky
    ra_f, dec_f = ds.mosaic.fits_wcs.pixel_to_world_values(x, y)
    assert np.max(np.abs(ra - ra_f)) <= 1e-9
    assert np.max(np.abs(dec - dec_f)) <= 1e-9


def test_pixel_inverts_world(ds):
    y, x = _pixels(ds.mosaic.shape_yx, seed=1)
    yy, xx = ds.mosaic.pixel(*ds.mosaic.world(y, x))
    np.testing.assert_allclose(yy, y, atol=1e-6)
    np.testing.assert_allclose(xx, x, atol=1e-6)


def test_scalar_world_and_skycoord(ds):
    ra, dec = ds.mosaic.world(3, 7)
    assert ra.shape == () and dec.shape == ()
    sc = ds.mosaic.skycoord(3, 7)
    assert sc.frame.name == "icrs"
    assert abs(sc.ra.deg - float(ra)) <= 1e-12 and abs(sc.dec.deg - float(dec)) <= 1e-12


def test_wcs_objects(ds):
    import gwcs
    from astropy.wcs import WCS

    assert isinstance(ds.mosaic.wcs, gwcs.WCS)
    assert ds.mosaic.wcs is ds.mosaic.wcs  # cached
    fw = ds.mosaic.fits_wcs
    assert isinstance(fw, WCS)
    ny, nx = ds.mosaic.shape_yx
    assert tuple(fw.pixel_shape) == (nx, ny)
    assert ds.mosaic.pixel_scale == pytest.approx(0.031, rel=1e-3)


def test_cutout_is_lazy_with_shifted_wcs(ds):
    ny, nx = ds.mosaic.shape_yx
    centre = ds.mosaic.skycoord(ny // 2, nx // 2)
    cut = ds.mosaic.cutout(centre, (21, 31))
    assert dict(cut.sizes)["y"] == 21 and dict(cut.sizes)["x"] == 31
    assert isinstance(cut["data"].data, da.Array)
    y0, x0 = cut.attrs["dask_resample"]["subgrid"]["origin_yx"]
    assert (y0, x0) == (ny // 2 - 10, nx // 2 - 15)
    ra0, dec0 = cut.mosaic.world(0, 0)
    rap, decp = ds.mosaic.world(y0, x0)
    assert abs(ra0 - rap) <= 1e-9 and abs(dec0 - decp) <= 1e-9
    ra_f, dec_f = cut.mosaic.fits_wcs.pixel_to_world_values(5, 4)
    rap, decp = ds.mosaic.world(y0 + 4, x0 + 5)
    assert abs(ra_f - rap) <= 1e-9 and abs(dec_f - decp) <= 1e-9
    expected = ds["data"].values[int(y0) : int(y0) + 21, int(x0) : int(x0) + 31]
    np.testing.assert_array_equal(cut["data"].values, expected)
    # a cutout of a cutout composes the offsets
    inner = cut.mosaic.cutout(cut.mosaic.skycoord(10, 15), 5)
    iy0, ix0 = inner.attrs["dask_resample"]["subgrid"]["origin_yx"]
    assert (iy0, ix0) == (y0 + 8, x0 + 13)
    ra_i, dec_i = inner.mosaic.world(0, 0)
    rap, decp = ds.mosaic.world(iy0, ix0)
    assert abs(ra_i - rap) <= 1e-9 and abs(dec_i - decp) <= 1e-9


def test_cutout_angular_size_and_trim(ds):
    ny, nx = ds.mosaic.shape_yx
    cut = ds.mosaic.cutout(ds.mosaic.skycoord(ny // 2, nx // 2), 1.0 * u.arcsec)
    side = int(np.ceil(1.0 / ds.mosaic.pixel_scale))
    assert (cut.sizes["y"], cut.sizes["x"]) == (side, side)
    corner = ds.mosaic.cutout(tuple(float(v) for v in ds.mosaic.world(0, 0)), 11)
    assert (corner.sizes["y"], corner.sizes["x"]) == (6, 6)
    with pytest.raises(ValueError, match="does not fit"):
        ds.mosaic.cutout(ds.mosaic.skycoord(0, 0), 11, mode="strict")


def test_cutout_outside_raises(ds):
    ra, dec = ds.mosaic.world(0, 0)
    with pytest.raises(ValueError, match="outside the mosaic"):
        ds.mosaic.cutout((float(ra) + 1.0, float(dec)), 10)
    with pytest.raises(ValueError, match="size"):
        ds.mosaic.cutout((float(ra), float(dec)), 0)


def test_exposure_count_from_context_bits(ds, small_dataset):
    count = ds.mosaic.exposure_count()
    assert isinstance(count.data, da.Array)
    assert count.dims == ("y", "x")
    values = count.values
    con = ds["con"].values.view(np.uint32)
    expected = sum(((con >> k) & 1).sum(axis=0) for k in range(32))
    np.testing.assert_array_equal(values, expected)
    assert values.max() <= len(small_dataset.paths)
    assert values.max() >= 2
    wht = ds["wht"].values
    assert np.all(values[wht > 0] >= 1)


def test_contributors_match_bits(ds):
    count = ds.mosaic.exposure_count().values
    y, x = np.unravel_index(np.argmax(count), count.shape)
    names = ds.mosaic.contributors(int(y), int(x))
    assert len(names) == count[y, x]
    assert all(n.endswith("_cal.fits") for n in names)


def test_to_fits_round_trip(ds, tmp_path):
    from astropy.io import fits
    from astropy.wcs import WCS

    ny, nx = ds.mosaic.shape_yx
    cut = ds.mosaic.cutout(ds.mosaic.skycoord(ny // 2, nx // 2), 24)
    path = cut.mosaic.to_fits(tmp_path / "cut_i2d.fits")
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert names[:3] == ["PRIMARY", "SCI", "WHT"]
        assert {"CON", "ERR", "VAR_RNOISE", "VAR_POISSON", "VAR_FLAT"} <= set(names)
        np.testing.assert_array_equal(hdul["SCI"].data, cut["data"].values)
        np.testing.assert_array_equal(hdul["CON"].data, cut["con"].values)
        w = WCS(hdul["SCI"].header)
        ra, dec = w.pixel_to_world_values(3.0, 2.0)
        ra_ref, dec_ref = cut.mosaic.world(2.0, 3.0)
        assert abs(ra - ra_ref) <= 1e-9 and abs(dec - dec_ref) <= 1e-9
        assert hdul[0].header["NINPUTS"] == 6
    with pytest.raises(FileExistsError):
        cut.mosaic.to_fits(path)
    cut.mosaic.to_fits(path, overwrite=True)


def test_plain_open_zarr(mosaic_path, ds):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = xr.open_zarr(mosaic_path)
    assert plain["data"].dims == ("y", "x")
    assert plain["con"].dims == ("plane", "y", "x")
    assert plain.sizes["y"] == ds.sizes["y"] and plain.sizes["x"] == ds.sizes["x"]
    np.testing.assert_array_equal(plain["wht"].values, ds["wht"].values)
    ra, dec = plain.mosaic.world(4, 9)
    ra_ref, dec_ref = ds.mosaic.world(4, 9)
    assert ra == ra_ref and dec == dec_ref


def test_many_to_many_group(tmp_path, single_detector_dataset, client):
    out = dask_resample.resample(
        single_detector_dataset.asn_path,
        tmp_path / "mm.zarr",
        mode="many_to_many",
        tile_shape=(64, 64),
        client=client,
        progress=False,
    )
    meta = read_metadata(tmp_path / "mm.zarr")
    ref_wcs = gwcs_from_attrs(meta)
    for group, gds in out.items():
        ra, dec = gds.mosaic.world(10.0, 20.0)
        ra_ref, dec_ref = ref_wcs(20.0, 10.0)
        assert abs(ra - ra_ref) <= 1e-9 and abs(dec - dec_ref) <= 1e-9
        count = gds.mosaic.exposure_count().values
        assert count.max() == 1, group


def test_accessor_needs_metadata_and_keeps_xarray_resample():
    with pytest.raises(ValueError, match="open_mosaic"):
        _ = xr.Dataset().mosaic.wcs
    assert xr.Dataset.resample.__qualname__.startswith("Dataset")
