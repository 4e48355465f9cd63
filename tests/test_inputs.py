"""Input forms: association, list of cal files, plain FITS, in-memory exposures."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import dask_resample
from dask_resample.inputs.io import Exposure, collect_exposures
from dask_resample.testing import synthetic


def _load_exposures(paths, group_ids) -> list[Exposure]:
    from stdatamodels.jwst import datamodels

    out = []
    for path, gid in zip(paths, group_ids, strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = datamodels.open(path)
        out.append(
            Exposure(
                data=m.data.copy(),
                wcs=m.meta.wcs,
                dq=m.dq.copy(),
                var_rnoise=m.var_rnoise.copy(),
                var_poisson=m.var_poisson.copy(),
                var_flat=m.var_flat.copy(),
                err=m.err.copy(),
                exposure_time=m.meta.exposure.exposure_time,
                measurement_time=m.meta.exposure.measurement_time,
                group_id=gid,
                filename=path.name,
                level=m.meta.background.level,
                subtracted=m.meta.background.subtracted,
                pixelarea_steradians=m.meta.photometry.pixelarea_steradians,
            )
        )
    return out


def test_association_and_file_list_agree(small_dataset, client, tmp_path):
    a = dask_resample.resample(small_dataset.asn_path, tmp_path / "a.zarr", client=client, tile_shape=(64, 64))
    b = dask_resample.resample(
        [str(p) for p in small_dataset.paths], tmp_path / "b.zarr", client=client, tile_shape=(64, 64)
    )
    for name in a.data_vars:
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True), name
    refs = collect_exposures(small_dataset.asn_path)
    assert [r.group_id for r in refs] == list(small_dataset.group_ids)


def test_in_memory_exposures_match_files(small_dataset, client, tmp_path):
    """Arrays + gwcs in memory give the same mosaic as the files (same output grid)."""
    from_files = dask_resample.resample(small_dataset.asn_path, tmp_path / "f.zarr", client=client, tile_shape=(64, 64))
    wcs = dask_resample.store.gwcs_from_attrs(from_files.attrs)
    exposures = _load_exposures(small_dataset.paths, small_dataset.group_ids)
    grid = from_files.attrs["dask_resample"]["grid"]
    mem = dask_resample.resample(
        exposures,
        tmp_path / "m.zarr",
        client=client,
        tile_shape=(64, 64),
        output_wcs={"wcs": wcs, "pixel_scale": grid["pixel_scale"], "pixel_scale_ratio": grid["pixel_scale_ratio"]},
    )
    for name in ("data", "wht", "con", "var_rnoise", "var_poisson", "var_flat"):
        assert np.array_equal(from_files[name].values, mem[name].values, equal_nan=True), name


def test_plain_fits_inputs(tmp_path_factory, client, tmp_path):
    """Plain FITS with SIP WCS: the same scene as the JWST files, to SIP accuracy."""
    d_jwst = synthetic.write_dataset(
        tmp_path_factory.mktemp("pj"), n_dithers=2, n_detectors=2, shape=(64, 64), seed=4, fmt="jwst"
    )
    d_fits = synthetic.write_dataset(
        tmp_path_factory.mktemp("pf"), n_dithers=2, n_detectors=2, shape=(64, 64), seed=4, fmt="fits"
    )
    a = dask_resample.resample(d_jwst.asn_path, tmp_path / "j.zarr", client=client, tile_shape=(64, 64))
    wcs = dask_resample.store.gwcs_from_attrs(a.attrs)
    b = dask_resample.resample(
        [str(p) for p in d_fits.paths], tmp_path / "f.zarr", client=client, tile_shape=(64, 64), output_wcs={"wcs": wcs}
    )
    refs = collect_exposures([str(p) for p in d_fits.paths])
    assert [r.kind for r in refs] == ["fits"] * 4
    assert [r.group_id for r in refs] == list(d_fits.group_ids)
    da, db = a["data"].values, b["data"].values
    both = np.isfinite(da) & np.isfinite(db)
    assert both.sum() > 0.9 * np.isfinite(da).sum()
    # SIP approximates the distortion to < 0.05 pix: the images agree closely where both have data
    assert np.corrcoef(da[both], db[both])[0, 1] > 0.97
    # plain FITS also builds its own grid from S_REGION
    c = dask_resample.resample([str(p) for p in d_fits.paths], tmp_path / "g.zarr", client=client)
    assert abs(c["data"].shape[0] - da.shape[0]) <= 3 and abs(c["data"].shape[1] - da.shape[1]) <= 3


def test_many_to_one_metadata(small_dataset, client, tmp_path):
    ds = dask_resample.resample(
        small_dataset.asn_path, tmp_path / "m.zarr", client=client, tile_shape=(64, 64), kernel="turbo", pixfrac=0.8
    )
    meta = ds.attrs["dask_resample"]
    assert meta["params"]["kernel"] == "turbo" and meta["params"]["pixfrac"] == 0.8
    assert [row["filename"] for row in meta["inputs"]] == [p.name for p in small_dataset.paths]
    assert [row["context_bit"] for row in meta["inputs"]] == list(range(len(small_dataset.paths)))
    assert meta["totals"]["pointings"] == len(set(small_dataset.group_ids))
    assert meta["wcs_fits"]["NAXIS1"] == ds.sizes["x"] and meta["wcs_fits"]["NAXIS2"] == ds.sizes["y"]
    assert ds["con"].dims == ("plane", "y", "x") and ds["data"].dims == ("y", "x")
    # the gwcs round-trips exactly
    wcs = dask_resample.store.gwcs_from_attrs(ds.attrs)
    ref = json.loads((tmp_path / "m.zarr" / "zarr.json").read_text())
    assert ref["attributes"]["dask_resample"]["grid"]["shape_yx"] == list(wcs.array_shape)
    x, y = np.array([0.0, 10.5, 50.0]), np.array([0.0, 20.0, 33.3])
    ra, dec = wcs(x, y)
    assert np.all(np.isfinite(ra))


def test_overwrite_rules(single_detector_dataset, client, tmp_path):
    out = tmp_path / "m.zarr"
    dask_resample.resample(single_detector_dataset.asn_path, out, client=client)
    with pytest.raises(dask_resample.MosaicExistsError, match="overwrite"):
        dask_resample.resample(single_detector_dataset.asn_path, out, client=client)
    not_mosaic = tmp_path / "precious"
    not_mosaic.mkdir()
    (not_mosaic / "keep.txt").write_text("data")
    with pytest.raises(dask_resample.MosaicExistsError, match="not a dask-resample mosaic"):
        dask_resample.resample(single_detector_dataset.asn_path, not_mosaic, client=client, overwrite=True)
    assert (not_mosaic / "keep.txt").read_text() == "data"


@pytest.mark.parametrize("roll", [20.0, 135.0])
def test_plain_fits_grid_keeps_the_sky_handedness(tmp_path, roll):
    """A plain-FITS dataset gets the grid of the same data as JWST files: East to the left, same rotation."""
    from dask_resample.geometry import wcs_to_fits_header
    from dask_resample.geometry.grid import make_output_grid
    from dask_resample.inputs.io import describe_resolved, resolve_inputs

    grids = {}
    for fmt in ("jwst", "fits"):
        ds = synthetic.write_dataset(
            tmp_path / fmt, n_dithers=2, n_detectors=2, shape=(48, 48), seed=1, fmt=fmt, roll_deg=roll
        )
        grid = make_output_grid(describe_resolved(resolve_inputs(list(ds.paths))))
        header = wcs_to_fits_header(grid.wcs)
        grids[fmt] = (grid.shape_yx, np.array([header[k] for k in ("PC1_1", "PC1_2", "PC2_1", "PC2_2")]))
        # East to the left of North (the sky as seen): the Jacobian (RA cos Dec, Dec) / (x, y) is negative
        ny, nx = grid.shape_yx
        ra0, dec0 = grid.wcs.pixel_to_world_values(nx / 2, ny / 2)
        ra_x, dec_x = grid.wcs.pixel_to_world_values(nx / 2 + 1, ny / 2)
        ra_y, dec_y = grid.wcs.pixel_to_world_values(nx / 2, ny / 2 + 1)
        assert (ra_x - ra0) * (dec_y - dec0) - (ra_y - ra0) * (dec_x - dec0) < 0, fmt
    assert grids["jwst"][0] == grids["fits"][0]
    np.testing.assert_allclose(grids["fits"][1], grids["jwst"][1], atol=1e-4)
