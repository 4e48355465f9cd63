"""Multiscale pyramid: levels open in xarray, halve, conserve flux, carry OME-NGFF metadata."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import xarray as xr

import dask_resample
from dask_resample.products.pyramid import level_shape, n_levels_for


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory, small_dataset, client):
    path = tmp_path_factory.mktemp("pyramid") / "m.zarr"
    dask_resample.resample(
        small_dataset.asn_path,
        path,
        tile_shape=(64, 64),
        client=client,
        compute_err="from_var",
        propagate_dq=True,
        progress=False,
    )
    levels = dask_resample.write_pyramid(path, min_size=32, client=client)
    return path, levels


def _f64(ds, name):
    return ds[name].values.astype(np.float64)


def _weighted_flux(ds):
    d, w = _f64(ds, "data"), _f64(ds, "wht")
    return float(np.sum(np.where(w != 0, d * w, 0.0)))


def test_levels_open_and_halve(pyramid):
    path, levels = pyramid
    base = dask_resample.open_mosaic(path)
    shape0 = (base.sizes["y"], base.sizes["x"])
    assert levels == list(range(1, n_levels_for(shape0, 32) + 1))
    assert len(levels) >= 2
    for k in levels:
        lv = dask_resample.open_mosaic(path, level=k)
        expected = shape0
        for _ in range(k):
            expected = ((expected[0] + 1) // 2, (expected[1] + 1) // 2)
        assert (lv.sizes["y"], lv.sizes["x"]) == expected == level_shape(shape0, k)
        assert set(lv.data_vars) == set(base.data_vars)
        assert lv["con"].dims == ("plane", "y", "x") and lv["data"].dims == ("y", "x")
        assert lv.sizes["plane"] == base.sizes["plane"]
        assert lv.attrs["dask_resample"]["level"] == k
    assert max(level_shape(shape0, levels[-1])) <= 32 < max(level_shape(shape0, levels[-2]))


def test_flux_and_weight_conserved(pyramid):
    path, levels = pyramid
    base = dask_resample.open_mosaic(path)
    flux0 = _weighted_flux(base)
    wsum0 = float(_f64(base, "wht").sum())
    assert flux0 != 0
    for k in levels:
        lv = dask_resample.open_mosaic(path, level=k)
        assert _weighted_flux(lv) == pytest.approx(flux0, rel=1e-5)
        assert float(_f64(lv, "wht").sum()) == pytest.approx(wsum0, rel=1e-5)


def _reference_level(base, factor, fill=np.nan):
    """Level of block size ``factor`` straight from level 0, one block at a time."""
    d, w = _f64(base, "data"), _f64(base, "wht")
    err = _f64(base, "err")
    var = _f64(base, "var_rnoise")
    con = base["con"].values
    dq = base["dq"].values
    ny, nx = d.shape
    my, mx = -(-ny // factor), -(-nx // factor)
    out = {n: np.full((my, mx), np.nan) for n in ("data", "wht", "err", "var_rnoise")}
    out["con"] = np.zeros((con.shape[0], my, mx), dtype=con.dtype)
    out["dq"] = np.zeros((my, mx), dtype=dq.dtype)
    for j in range(my):
        for i in range(mx):
            sl = (slice(j * factor, (j + 1) * factor), slice(i * factor, (i + 1) * factor))
            bw, bd = w[sl], d[sl]
            good = (bw != 0) & np.isfinite(bd)
            sw = bw[good].sum()
            out["wht"][j, i] = bw.sum()
            out["data"][j, i] = (bd[good] * bw[good]).sum() / sw if sw != 0 else fill
            ge = (bw != 0) & np.isfinite(err[sl])
            swe = bw[ge].sum()
            if swe != 0:
                out["err"][j, i] = np.sqrt(((bw[ge] * err[sl][ge]) ** 2).sum()) / swe
            gv = (bw != 0) & np.isfinite(var[sl])
            swv = bw[gv].sum()
            if swv != 0:
                out["var_rnoise"][j, i] = (bw[gv] ** 2 * var[sl][gv]).sum() / swv**2
            out["con"][:, j, i] = np.bitwise_or.reduce(con[(slice(None), *sl)].reshape(con.shape[0], -1), axis=1)
            out["dq"][j, i] = np.bitwise_or.reduce(dq[sl].ravel())
    return out


@pytest.mark.parametrize("level", [1, 2])
def test_block_rules_match_direct_computation(pyramid, level):
    """Level k equals the rules applied once to 2**k blocks of level 0 (odd edges included)."""
    path, _ = pyramid
    base = dask_resample.open_mosaic(path)
    assert base.sizes["x"] % 2 == 1 or base.sizes["y"] % 2 == 1  # the edge case is exercised
    ref = _reference_level(base, 2**level)
    lv = dask_resample.open_mosaic(path, level=level)
    for name in ("data", "wht", "err", "var_rnoise"):
        # level 2 is built from the float32 level 1: allow float32 rounding relative to the array's scale
        atol = 1e-6 * float(np.nanmax(np.abs(ref[name])))
        np.testing.assert_allclose(_f64(lv, name), ref[name], rtol=2e-6, atol=atol, equal_nan=True, err_msg=name)
    np.testing.assert_array_equal(lv["con"].values, ref["con"])
    np.testing.assert_array_equal(lv["dq"].values, ref["dq"])
    assert np.count_nonzero(ref["con"]) > 0


def test_multiscales_metadata(pyramid):
    path, levels = pyramid
    attrs = json.loads((path / "zarr.json").read_text())["attributes"]
    entries = {e["name"]: e for e in attrs["multiscales"]}
    assert attrs["multiscales"][0]["name"] == "data"
    assert {"data", "wht", "con", "err", "var_rnoise", "var_poisson", "var_flat", "dq"} <= set(entries)
    data = entries["data"]
    assert data["version"] == "0.4"
    assert data["axes"] == [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    assert [d["path"] for d in data["datasets"]] == ["data"] + [f"levels/{k}/data" for k in levels]
    for k, d in enumerate(data["datasets"]):
        f = 2.0**k
        transforms = {t["type"]: t for t in d["coordinateTransformations"]}
        assert transforms["scale"]["scale"] == [f, f]
        if k:
            assert transforms["translation"]["translation"] == [(f - 1) / 2, (f - 1) / 2]
        assert (path / d["path"] / "zarr.json").is_file()
    assert [d["path"] for d in entries["con"]["datasets"]][-1] == f"levels/{levels[-1]}/con"
    assert attrs["ome"]["version"] == "0.5"
    assert len(attrs["ome"]["multiscales"]) == len(attrs["multiscales"])
    assert attrs["dask_resample"]["pyramid"]["levels"] == levels


def test_level_wcs_is_block_centre(pyramid):
    path, levels = pyramid
    base = dask_resample.open_mosaic(path)
    for k in levels:
        f = 2**k
        lv = dask_resample.open_mosaic(path, level=k)
        ra, dec = lv.mosaic.world([0, 3], [0, 5])
        ra0, dec0 = base.mosaic.world([(f - 1) / 2, 3 * f + (f - 1) / 2], [(f - 1) / 2, 5 * f + (f - 1) / 2])
        assert np.max(np.abs(ra - ra0)) <= 1e-9 and np.max(np.abs(dec - dec0)) <= 1e-9
        ra_f, dec_f = lv.mosaic.fits_wcs.pixel_to_world_values(5, 3)
        assert abs(ra_f - ra[1]) <= 1e-9 and abs(dec_f - dec[1]) <= 1e-9
        assert lv.mosaic.pixel_scale == pytest.approx(base.mosaic.pixel_scale * f)


def test_plain_open_zarr_level(pyramid):
    path, levels = pyramid
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lv = xr.open_zarr(path, group=f"levels/{levels[0]}")
    assert lv["data"].dims == ("y", "x")
    ref = dask_resample.open_mosaic(path, level=levels[0])
    np.testing.assert_array_equal(lv["wht"].values, ref["wht"].values)
    assert lv.mosaic.world(1, 1) == ref.mosaic.world(1, 1)


def test_missing_level_and_bad_arguments(pyramid, tmp_path):
    path, levels = pyramid
    with pytest.raises(ValueError, match="no pyramid level"):
        dask_resample.open_mosaic(path, level=levels[-1] + 5)
    with pytest.raises(ValueError, match="levels"):
        dask_resample.write_pyramid(path, levels=-1)
    with pytest.raises(ValueError, match="min_size"):
        dask_resample.write_pyramid(path, min_size=0)
    with pytest.raises(ValueError, match="group"):
        dask_resample.write_pyramid(path, group="nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not a dask-resample mosaic"):
        dask_resample.write_pyramid(tmp_path / "plain")


def test_rewrite_replaces_levels(pyramid, tmp_path, client):
    path, levels = pyramid
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    assert dask_resample.write_pyramid(copy, levels=1, client=client) == [1]
    assert not (copy / "levels" / "2").exists()
    attrs = json.loads((copy / "zarr.json").read_text())["attributes"]
    assert [d["path"] for d in attrs["multiscales"][0]["datasets"]] == ["data", "levels/1/data"]
    a = dask_resample.open_mosaic(copy, level=1)
    b = dask_resample.open_mosaic(path, level=1)
    np.testing.assert_array_equal(a["data"].values, b["data"].values)


def test_many_to_many_levels(tmp_path, single_detector_dataset, client):
    path = tmp_path / "mm.zarr"
    out = dask_resample.resample(
        single_detector_dataset.asn_path, path, mode="many_to_many", tile_shape=(64, 64), client=client, progress=False
    )
    assert dask_resample.write_pyramid(path, levels=2, client=client) == [1, 2]
    for group, gds in out.items():
        flux0 = _weighted_flux(gds)
        for k in (1, 2):
            lv = dask_resample.open_mosaic(path, group=group, level=k)
            assert (lv.sizes["y"], lv.sizes["x"]) == level_shape((gds.sizes["y"], gds.sizes["x"]), k)
            assert _weighted_flux(lv) == pytest.approx(flux0, rel=1e-5)
        attrs = json.loads((path / group / "zarr.json").read_text())["attributes"]
        assert [d["path"] for d in attrs["multiscales"][0]["datasets"]][-1] == "levels/2/data"
