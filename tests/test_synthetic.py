"""Tests for :mod:`dask_resample.testing.synthetic`."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from dask_resample.testing.synthetic import SyntheticDataset, make_detector_wcs, write_dataset

datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
jwst_datamodels = pytest.importorskip("jwst.datamodels")
resample = pytest.importorskip("jwst.resample.resample")

SMALL = {"n_dithers": 2, "n_detectors": 2, "shape": (128, 128), "n_sources": 40, "seed": 3}


@pytest.fixture(scope="module")
def small_jwst(tmp_path_factory) -> SyntheticDataset:
    return write_dataset(tmp_path_factory.mktemp("jwst"), **SMALL)


@pytest.fixture(scope="module")
def small_fits(tmp_path_factory) -> SyntheticDataset:
    return write_dataset(tmp_path_factory.mktemp("fits"), fmt="fits", **SMALL)


@pytest.fixture(scope="module")
def mosaic(small_jwst):
    library = jwst_datamodels.ModelLibrary(small_jwst.asn_path, on_disk=False)
    return resample.ResampleImage(library).resample_many_to_one()


# --------------------------------------------------------------------------- WCS
@pytest.mark.parametrize("shape", [(256, 256), (300, 200), (2048, 2048)])
@pytest.mark.parametrize("distortion", [0.0, 1e-6, 5e-6])
def test_wcs_roundtrip(shape, distortion):
    wcs = make_detector_wcs(
        53.16, -27.78, roll_deg=37.0, shape=shape, distortion=distortion, offset_pixels=(300.0, -40.0)
    )
    ny, nx = shape
    rng = np.random.default_rng(1)
    # inside the detector and up to 10% of its size beyond its edges
    x = rng.uniform(-0.1 * nx, 1.1 * nx, 5000)
    y = rng.uniform(-0.1 * ny, 1.1 * ny, 5000)
    ra, dec = wcs(x, y, with_bounding_box=False)
    xb, yb = wcs.invert(ra, dec, with_bounding_box=False)
    assert np.max(np.hypot(xb - x, yb - y)) < 1e-4
    xi, yi = rng.uniform(-0.5, nx - 0.5, 1000), rng.uniform(-0.5, ny - 0.5, 1000)
    xw, yw = wcs.world_to_pixel_values(*wcs.pixel_to_world_values(xi, yi))
    assert np.max(np.hypot(xw - xi, yw - yi)) < 1e-4

    assert wcs.available_frames == ["detector", "world"]
    assert wcs.get_transform("detector", "world") is not None
    assert wcs.bounding_box.bounding_box(order="F") == ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    assert wcs.pixel_shape == (nx, ny) and wcs.array_shape == (ny, nx)


def test_wcs_scale_and_orientation():
    wcs = make_detector_wcs(10.0, 20.0, roll_deg=30.0, distortion=0.0)
    x0, y0 = 127.5, 127.5
    ra0, dec0 = wcs(x0, y0)
    assert np.isclose(ra0, 10.0) and np.isclose(dec0, 20.0)
    ra1, dec1 = wcs(x0, y0 + 1)
    dra = (ra1 - ra0) * np.cos(np.radians(dec0)) * 3600
    ddec = (dec1 - dec0) * 3600
    assert np.isclose(np.hypot(dra, ddec), 0.031, rtol=1e-6)
    # +y points at position angle == roll (East of North)
    assert np.isclose(np.degrees(np.arctan2(dra, ddec)), 30.0, atol=1e-4)
    # distortion moves the corners but not the centre
    dist = make_detector_wcs(10.0, 20.0, roll_deg=30.0, distortion=1e-5)
    assert np.allclose(dist(x0, y0), (ra0, dec0))
    shift = np.subtract(dist(0, 0), wcs(0, 0)) * 3600 / 0.031
    assert np.max(np.abs(shift)) > 0.1


# --------------------------------------------------------------------------- jwst files
def test_jwst_files_reopen(small_jwst):
    assert len(small_jwst.paths) == 4
    names = [p.name for p in small_jwst.paths]
    assert names[0] == "jw01234001001_02101_00001_nrca1_cal.fits"
    assert names[3] == "jw01234001001_02101_00002_nrca2_cal.fits"
    rnoise_levels = []
    for path in small_jwst.paths:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model = datamodels.ImageModel(path)
            model.validate()
        with model:
            assert model.data.shape == (128, 128)
            assert (model.dq.dtype.kind, model.dq.dtype.itemsize) == ("u", 4)
            for name in ("data", "err", "var_rnoise", "var_poisson", "var_flat"):
                dtype = getattr(model, name).dtype
                assert (dtype.kind, dtype.itemsize) == ("f", 4)
            bad = (model.dq & 1).astype(bool)
            assert bad.any() and np.isnan(model.data[bad]).all()
            good = ~bad
            assert np.isfinite(model.data[good]).all()
            assert (model.var_rnoise[good] > 0).all() and (model.var_poisson[good] > 0).all()
            assert (model.var_flat[good] > 0).all()
            var = model.var_rnoise + model.var_poisson + model.var_flat
            np.testing.assert_allclose(model.err[good], np.sqrt(var[good]), rtol=1e-6)
            assert 0.005 < (model.dq != 0).mean() < 0.02
            assert len(np.unique(model.dq)) > 4
            assert np.nanmax(model.data) > 1.0 and abs(np.nanmedian(model.data)) < 0.1
            rnoise_levels.append(float(np.nanmean(model.var_rnoise)))

            meta = model.meta
            assert meta.filename == path.name
            assert meta.telescope == "JWST"
            assert meta.instrument.name == "NIRCAM" and meta.instrument.channel == "SHORT"
            assert meta.instrument.detector in ("NRCA1", "NRCA2")
            assert meta.exposure.type == "NRC_IMAGE"
            assert meta.exposure.end_time > meta.exposure.start_time
            assert meta.bunit_data == "MJy/sr" and meta.bunit_err == "MJy/sr"
            area = meta.photometry.pixelarea_arcsecsq
            assert np.isclose(area, 0.031**2)
            assert np.isclose(meta.photometry.pixelarea_steradians, area * (np.pi / 180 / 3600) ** 2)
            assert meta.background.level == 0.0 and meta.background.subtracted is True
            assert meta.wcsinfo.s_region.startswith("POLYGON ICRS")
            assert meta.wcsinfo.vparity == -1 and meta.wcsinfo.roll_ref == 20.0
            ra_ref, dec_ref = model.meta.wcs(63.5, 63.5)
            assert np.isclose(meta.wcsinfo.ra_ref, ra_ref) and np.isclose(meta.wcsinfo.dec_ref, dec_ref)
            assert meta.cal_step.assign_wcs == "COMPLETE"
    assert len(set(np.round(rnoise_levels, 10))) == len(rnoise_levels)


def test_association(small_jwst):
    asn = json.loads(small_jwst.asn_path.read_text())
    assert small_jwst.asn_path.name == "synthetic_asn.json"
    assert asn["asn_type"] == "image3" and asn["asn_pool"] == "synthetic_pool"
    (product,) = asn["products"]
    assert product["name"] == "synthetic_mosaic"
    assert [m["expname"] for m in product["members"]] == [p.name for p in small_jwst.paths]
    assert {m["exptype"] for m in product["members"]} == {"science"}


@pytest.mark.parametrize("n_detectors", [1, 2, 3])
def test_group_ids(tmp_path, n_detectors):
    ds = write_dataset(tmp_path, n_dithers=3, n_detectors=n_detectors, shape=(32, 32), n_sources=5)
    library = jwst_datamodels.ModelLibrary(ds.asn_path, on_disk=True)
    groups = library.group_indices
    assert len(groups) == 3
    expected = [list(range(d * n_detectors, (d + 1) * n_detectors)) for d in range(3)]
    assert sorted(groups.values()) == expected
    for gid, indices in groups.items():
        assert all(ds.group_ids[i] == gid for i in indices)


def test_deterministic(tmp_path):
    kwargs = {"n_dithers": 2, "n_detectors": 2, "shape": (64, 48), "n_sources": 20, "seed": 7}
    a = write_dataset(tmp_path / "a", **kwargs)
    b = write_dataset(tmp_path / "b", **kwargs)
    c = write_dataset(tmp_path / "c", **{**kwargs, "seed": 8})
    for pa, pb, pc in zip(a.paths, b.paths, c.paths, strict=True):
        with datamodels.ImageModel(pa) as ma, datamodels.ImageModel(pb) as mb, datamodels.ImageModel(pc) as mc:
            for name in ("data", "err", "dq", "var_rnoise", "var_poisson", "var_flat"):
                assert getattr(ma, name).tobytes() == getattr(mb, name).tobytes()
            assert ma.meta.wcsinfo.s_region == mb.meta.wcsinfo.s_region
            assert not np.array_equal(ma.data, mc.data, equal_nan=True)


def test_sky_level(tmp_path):
    ds = write_dataset(tmp_path, n_dithers=1, n_detectors=1, shape=(64, 64), n_sources=0, sky_level=0.5)
    with datamodels.ImageModel(ds.paths[0]) as model:
        assert model.meta.background.level == 0.5 and model.meta.background.subtracted is False
        assert np.isclose(np.nanmedian(model.data), 0.5, atol=0.01)


# --------------------------------------------------------------------------- jwst resample
def _inside_any_input(out_wcs, shape, wcs_list, margin):
    yy, xx = np.indices(shape)
    ra, dec = out_wcs(xx.ravel().astype(float), yy.ravel().astype(float), with_bounding_box=False)
    inside = np.zeros(ra.size, bool)
    for wcs in wcs_list:
        x, y = wcs.invert(ra, dec, with_bounding_box=False)
        (x0, x1), (y0, y1) = wcs.bounding_box.bounding_box(order="F")
        inside |= (x > x0 + margin) & (x < x1 - margin) & (y > y0 + margin) & (y < y1 - margin)
    return inside.reshape(shape)


def test_jwst_resample_image(small_jwst, mosaic):
    data = mosaic.data
    wcs_list = []
    for path in small_jwst.paths:
        with datamodels.ImageModel(path) as model:
            wcs_list.append(model.meta.wcs)
    footprint = _inside_any_input(mosaic.meta.wcs, data.shape, wcs_list, margin=1.0)
    outside = ~_inside_any_input(mosaic.meta.wcs, data.shape, wcs_list, margin=-1.5)
    assert footprint.mean() > 0.8
    assert np.isfinite(data[footprint]).mean() > 0.99
    assert not np.isfinite(data[outside]).any()
    assert np.nanmax(data) > 1.0 and abs(np.nanmedian(data)) < 0.1
    # a square output pixel at the input pixel scale, aligned with the detectors
    assert np.isclose(mosaic.meta.photometry.pixelarea_arcsecsq, 0.031**2, rtol=1e-3)


def test_jwst_resample_sources_line_up(small_jwst, mosaic):
    """Resampling each dither separately onto the mosaic grid gives the same sky."""
    singles = []
    for gid in dict.fromkeys(small_jwst.group_ids):
        models = [
            datamodels.ImageModel(p) for p, g in zip(small_jwst.paths, small_jwst.group_ids, strict=True) if g == gid
        ]
        library = jwst_datamodels.ModelLibrary(models, on_disk=False)
        output_wcs = {"wcs": mosaic.meta.wcs, "pixel_scale": 0.031, "pixel_scale_ratio": 1.0}
        singles.append(resample.ResampleImage(library, output_wcs=output_wcs).resample_many_to_one().data)
    a, b = singles
    both = np.isfinite(a) & np.isfinite(b)
    assert both.sum() > 1000
    bright = both & (np.maximum(a, b) > 0.3)
    assert bright.sum() > 50
    assert np.corrcoef(a[bright], b[bright])[0, 1] > 0.95
    assert np.median(np.abs(a[bright] - b[bright])) < 0.1


def test_jwst_resample_model_list_matches_asn(small_jwst, mosaic):
    models = [datamodels.ImageModel(p) for p in small_jwst.paths]
    library = jwst_datamodels.ModelLibrary(models, on_disk=False)
    assert sorted(library.group_indices.values()) == [[0, 1], [2, 3]]
    out = resample.ResampleImage(library).resample_many_to_one()
    np.testing.assert_array_equal(out.data, mosaic.data)


# --------------------------------------------------------------------------- plain FITS
def test_fits_format(small_fits, small_jwst):
    assert [p.name for p in small_fits.paths][0] == "jw01234001001_02101_00001_nrca1.fits"
    assert small_fits.group_ids == small_jwst.group_ids
    asn = json.loads(small_fits.asn_path.read_text())
    assert [m["expname"] for m in asn["products"][0]["members"]] == [p.name for p in small_fits.paths]
    for fpath, jpath in zip(small_fits.paths, small_jwst.paths, strict=True):
        with fits.open(fpath) as hdul:
            names = [h.name for h in hdul]
            assert names == ["PRIMARY", "SCI", "ERR", "DQ", "VAR_RNOISE", "VAR_POISSON", "VAR_FLAT"]
            hdr, sci = hdul[0].header, hdul["SCI"].header
            for key in (
                "TELESCOP", "INSTRUME", "DETECTOR", "EXPTIME", "XPOSURE", "TMEASURE", "EXPSTART", "EXPEND",
                "DURATION", "BKGLEVEL", "BKGSUB", "PROGRAM", "OBSERVTN", "VISIT", "VISITGRP", "SEQ_ID",
                "ACT_ID", "EXPOSURE",
            ):  # fmt: skip
                assert key in hdr, key
            for key in ("S_REGION", "PIXAR_SR", "PIXAR_A2", "BUNIT"):
                assert key in sci, key
            assert hdul["DQ"].data.dtype.kind == "u" and hdul["DQ"].data.dtype.itemsize == 4
            awcs = WCS(sci)
            assert awcs.sip is not None
            assert awcs.wcs.ctype[0] == "RA---TAN-SIP"
            fits_data = hdul["SCI"].data.astype(np.float32)
        with datamodels.ImageModel(jpath) as model:
            gwcs = model.meta.wcs
            np.testing.assert_array_equal(fits_data, model.data)
            assert sci["S_REGION"] == model.meta.wcsinfo.s_region
        yy, xx = np.mgrid[-0.5:127.5:9j, -0.5:127.5:9j]
        ra_g, dec_g = gwcs(xx, yy)
        x_s, y_s = awcs.world_to_pixel_values(ra_g, dec_g)
        assert np.max(np.hypot(x_s - xx, y_s - yy)) < 0.05
        ra_s, dec_s = awcs.pixel_to_world_values(xx, yy)
        x_g, y_g = gwcs.invert(ra_s, dec_s, with_bounding_box=False)
        assert np.max(np.hypot(x_g - xx, y_g - yy)) < 0.05


def test_fits_sip_large_distortion(tmp_path):
    ds = write_dataset(
        tmp_path, fmt="fits", n_dithers=1, n_detectors=2, shape=(1024, 1024), n_sources=5, distortion=4e-6
    )
    wcs = make_detector_wcs(53.16, -27.78, roll_deg=20.0, shape=(1024, 1024), distortion=4e-6,
                            offset_pixels=(-(1024 + 64) / 2, 0.0))  # fmt: skip
    with fits.open(ds.paths[0]) as hdul:
        awcs = WCS(hdul["SCI"].header)
    yy, xx = np.mgrid[-0.5:1023.5:17j, -0.5:1023.5:17j]
    x_s, y_s = awcs.world_to_pixel_values(*wcs(xx, yy))
    assert np.max(np.hypot(x_s - xx, y_s - yy)) < 0.05


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="too large"):
        make_detector_wcs(0.0, 0.0, shape=(2048, 2048), distortion=1e-4)
    with pytest.raises(ValueError, match="fmt"):
        write_dataset(tmp_path, fmt="hdf5")
    with pytest.raises(ValueError, match="n_detectors"):
        write_dataset(tmp_path, n_detectors=9)
