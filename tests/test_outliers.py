"""Imaging outlier detection: :func:`dask_resample.detect_outliers` and ``resample(outliers=...)``.

The reference is the real ``jwst.outlier_detection.OutlierDetectionStep``
(jwst 3.0 from PyPI), run on the same association of synthetic exposures with
cosmic rays. For every parameter case the ``*_crf.fits`` files must equal the
step's result models: DQ bit for bit, data, error and variance arrays (values
and NaN pattern) and ``cal_step.outlier_detection``; the median written with
``save_intermediate_results`` must agree with the step's ``*_median.fits``
(and the blotted images with its ``*_blot.fits``).

Also covered: plain FITS inputs (their own layout, plus a DQ extension where
they had none), ``resample(outliers=True)`` against resampling the
``*_crf.fits`` files, independence of the result from the tile shape and the
scheduler, the step skipped for a single input, bad input refused before any
work, and the intermediate products.

Images are small (40x40 to 72x72 pixels) so the module runs in a few minutes
on two cores; most cases use the serial scheduler, a few a real two-worker
``LocalCluster`` (the ``client`` fixture).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import dask_resample
from dask_resample.inputs.io import InputError
from dask_resample.outliers.products import output_name
from dask_resample.testing import synthetic

datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
pytest.importorskip("jwst.outlier_detection")

#: Arrays whose values and NaN pattern must equal the reference's (DQ is compared apart).
FLOAT_ARRAYS = ("data", "err", "var_rnoise", "var_poisson", "var_flat")

#: DQ bits of a flagged pixel: DO_NOT_USE | OUTLIER.
OUTLIER_BITS = 1 | 16

#: Synthetic datasets (``write_dataset`` arguments); ``siaf`` is written by ``write_siaf_dataset``.
DATASETS: dict[str, dict] = {
    # 3 dithers x 2 detectors with sky to subtract (the background level is added back to the blot)
    "main": {"n_dithers": 3, "n_detectors": 2, "shape": (64, 64), "seed": 11, "sky_level": 0.2, "cosmic_rays": 0.01},
    # no sky (background subtracted, level 0): ``backg`` is used as given
    "nosky": {"n_dithers": 3, "n_detectors": 1, "shape": (72, 64), "seed": 12, "cosmic_rays": 0.01},
    # one exposure group of two detectors: the median is that group's image
    "one_group": {"n_dithers": 1, "n_detectors": 2, "shape": (64, 64), "seed": 13, "cosmic_rays": 0.01},
    # eight groups of one tiny detector
    "eight_groups": {
        "n_dithers": 8,
        "n_detectors": 1,
        "shape": (40, 40),
        "seed": 14,
        "dither_arcsec": 0.4,
        "cosmic_rays": 0.01,
    },
    # detectors of at least FAST_PIXMAP_MIN_PIXELS: the group drizzle and the blot use the fast pixel map
    "fast_map": {"n_dithers": 2, "n_detectors": 1, "shape": (288, 288), "seed": 15, "cosmic_rays": 0.01},
}

#: SIAF dataset: NIRCam short-wave, two detectors of one exposure, pipeline-built WCS.
SIAF_KWARGS = {
    "instrument": "nircam_sw",
    "n_dithers": 3,
    "n_detectors": 2,
    "subarray": (64, 64),
    "seed": 7,
    "sky_level": 0.2,
}

#: Cases whose group drizzle and blot use the fast pixel map (within 1e-9 pixel of calc_pixmap's): their
#: crf files must still equal the step's, the median and blots agree as the resampling parity does
#: (max |diff| within 1e-5 of the largest value; noise near zero differs in the last bits).
FAST_MAP_CASES = frozenset({"fast_pixel_map"})

#: case id -> (dataset, step parameters, tile shape, scheduler)
CASES: dict[str, tuple[str, dict, tuple[int, int] | None, str]] = {
    "defaults": ("main", {}, (40, 56), "serial"),
    "no_resample_data": ("main", {"resample_data": False}, None, "serial"),
    "kernel_point": ("main", {"kernel": "point"}, (40, 56), "distributed"),
    "turbo_pixfrac0.5": ("main", {"kernel": "turbo", "pixfrac": 0.5}, None, "serial"),
    "thresholds": ("nosky", {"snr": "3.0 2.0", "scale": "0.5 0.3", "maskpt": 0.3, "backg": 0.02}, (40, 56),
                   "serial"),
    "exptime": ("main", {"weight_type": "exptime"}, None, "serial"),
    "fillval0_maskpt0": ("nosky", {"fillval": "0", "maskpt": 0.0}, (32, 24), "serial"),
    "one_group": ("one_group", {}, (40, 56), "serial"),
    "eight_groups": ("eight_groups", {}, (32, 32), "distributed"),
    "pixmap_step4_order3": ("main", {"pixmap_stepsize": 4, "pixmap_order": 3}, (40, 56), "serial"),
    "fast_pixel_map": ("fast_map", {}, (128, 160), "serial"),
    "siaf_nircam_sw": ("siaf", {}, (40, 56), "serial"),
}  # fmt: skip


def _write_siaf(directory: Path) -> synthetic.SyntheticDataset:
    """The SIAF dataset with cosmic rays added to each file's data."""
    pytest.importorskip("pysiaf")
    ds = synthetic.write_siaf_dataset(directory, **SIAF_KWARGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, path in enumerate(ds.paths):
            with datamodels.open(path) as model:
                arrays = {"data": model.data, "err": model.err}
                synthetic.add_cosmic_rays(arrays, 0.01, np.random.default_rng([SIAF_KWARGS["seed"], 9, k]))
                model.data = arrays["data"]
                model.save(path)
    return ds


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """``name -> SyntheticDataset``, each written on first use."""
    cache: dict[str, synthetic.SyntheticDataset] = {}

    def get(name: str) -> synthetic.SyntheticDataset:
        if name not in cache:
            directory = tmp_path_factory.mktemp(f"outliers_{name}")
            cache[name] = (
                _write_siaf(directory) if name == "siaf" else synthetic.write_dataset(directory, **DATASETS[name])
            )
        return cache[name]

    return get


def run_reference(asn_path: Path, output_dir: Path, monkeypatch, **params) -> dict:
    """Run the real ``OutlierDetectionStep``; return its result per input and the median it wrote.

    Returns
    -------
    dict
        ``models``: one ``{"filename", "status", "dq", <FLOAT_ARRAYS>}`` per input, in
        association order; ``median``: the ``*_median.fits`` data (``None`` if not written);
        ``blots``: ``input root -> *_blot.fits`` data.
    """
    from jwst.outlier_detection import OutlierDetectionStep

    output_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(output_dir)  # the step's model library may write temporary files in cwd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step = OutlierDetectionStep(save_intermediate_results=True, output_dir=str(output_dir), **params)
        result = step.run(str(asn_path))
        models = []
        with result:
            for i in range(len(result)):
                m = result.borrow(i)
                rec = {"filename": m.meta.filename, "status": m.meta.cal_step.outlier_detection, "dq": np.array(m.dq)}
                rec.update({name: np.array(getattr(m, name)) for name in FLOAT_ARRAYS})
                models.append(rec)
                result.shelve(m, i, modify=False)
    medians = sorted(output_dir.glob("*_median.fits"))
    assert len(medians) <= 1, f"several medians written: {medians}"
    median = fits.getdata(medians[0], "SCI") if medians else None
    blots = {}
    for path in output_dir.glob("*_blot.fits"):
        root = next(m["filename"] for m in models if path.name.startswith(_root(m["filename"]) + "_"))
        blots[_root(root)] = fits.getdata(path, "SCI")
    return {"models": models, "median": median, "blots": blots}


def _root(filename: str) -> str:
    """``jw..._nrca1_cal.fits`` -> ``jw..._nrca1``."""
    return output_name(filename, "x")[: -len("_x.fits")]


def read_crf(path: Path) -> dict:
    """The arrays and step status of one ``*_crf.fits`` file in the JWST layout."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with datamodels.open(path) as m:
            rec = {"filename": m.meta.filename, "status": m.meta.cal_step.outlier_detection, "dq": np.array(m.dq)}
            rec.update({name: np.array(getattr(m, name)) for name in FLOAT_ARRAYS})
    return rec


def read_input(path: Path) -> dict:
    """The arrays of one input file in the JWST layout (as :func:`read_crf`)."""
    return read_crf(path)


def assert_models_equal(ours: dict, ref: dict, name: str) -> None:
    """DQ bit for bit, float arrays equal with the same NaN pattern, same step status."""
    assert ours["status"] == ref["status"], f"{name}: status {ours['status']!r} != {ref['status']!r}"
    dq_a, dq_b = ours["dq"], ref["dq"]
    assert dq_a.dtype == dq_b.dtype and dq_a.shape == dq_b.shape, f"{name}: DQ {dq_a.dtype}{dq_a.shape}"
    differ = dq_a != dq_b
    assert not differ.any(), (
        f"{name}: DQ differs at {int(differ.sum())} pixels (outliers: ours {int(((dq_a & 16) > 0).sum())}, "
        f"reference {int(((dq_b & 16) > 0).sum())}); first at {np.argwhere(differ)[:3].tolist()}"
    )
    for arr in FLOAT_ARRAYS:
        a, b = ours[arr], ref[arr]
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        assert np.array_equal(nan_a, nan_b), (
            f"{name} {arr}: NaN pattern differs at {int((nan_a != nan_b).sum())} pixels"
        )
        np.testing.assert_array_equal(a, b, err_msg=f"{name} {arr}")


def assert_close_with_nans(a: np.ndarray, b: np.ndarray, name: str, rtol: float = 1e-5, of_max: bool = False) -> None:
    """Same shape and NaN pattern, finite values within ``rtol`` (each value's, or ``of_max``: of the largest)."""
    assert a.shape == b.shape, f"{name}: shape {a.shape} != {b.shape}"
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    assert np.array_equal(nan_a, nan_b), f"{name}: NaN pattern differs at {int((nan_a != nan_b).sum())} pixels"
    diff = float(np.nanmax(np.abs(a.astype(np.float64) - b))) if (~nan_a).any() else 0.0
    if of_max:  # the resampling parity's measure: max |a - b| / max |b|
        scale = float(np.nanmax(np.abs(b.astype(np.float64)))) if (~nan_b).any() else 0.0
        assert diff <= rtol * scale, f"{name}: max |diff| {diff:.3g} = {diff / scale:.3g} of max |reference|"
        return
    assert np.allclose(a, b, rtol=rtol, atol=0.0, equal_nan=True), f"{name}: max |diff| {diff:.3g}"


def n_outliers(dq: np.ndarray) -> int:
    """Pixels carrying the OUTLIER bit."""
    return int(np.count_nonzero(dq & 16))


# --------------------------------------------------------------------------- 1. parity with the step
@pytest.mark.parametrize("case", list(CASES))
def test_parity_with_outlier_detection_step(case, datasets, tmp_path, monkeypatch, request):
    """The crf files, the median and the blots equal those of jwst's OutlierDetectionStep."""
    dataset, params, tile_shape, scheduler = CASES[case]
    ds = datasets(dataset)
    ref = run_reference(ds.asn_path, tmp_path / "reference", monkeypatch, **params)
    client = request.getfixturevalue("client") if scheduler == "distributed" else None
    out = tmp_path / "ours"
    paths = dask_resample.detect_outliers(
        ds.asn_path,
        out,
        client=client,
        scheduler=scheduler,
        tile_shape=tile_shape,
        save_intermediate_results=True,
        **params,
    )
    assert [p.name for p in paths] == [output_name(p.name) for p in ds.paths]
    assert len(paths) == len(ref["models"])
    total = 0
    for path, src, expected in zip(paths, ds.paths, ref["models"], strict=True):
        assert expected["filename"] == src.name
        ours = read_crf(path)
        assert ours["filename"] == path.name
        assert_models_equal(ours, expected, path.name)
        total += n_outliers(ours["dq"]) - n_outliers(read_input(src)["dq"])
    assert total > 0, f"{case}: no pixel flagged, the comparison says nothing"

    assert ref["median"] is not None, "the reference wrote no median"
    median = fits.getdata(out / "outlier_median.fits", "SCI")
    of_max = case in FAST_MAP_CASES
    assert_close_with_nans(median, ref["median"], f"{case} median", of_max=of_max)
    if params.get("resample_data", True):
        assert sorted(ref["blots"]) == sorted(_root(p.name) for p in ds.paths)
        for src in ds.paths:
            blot = fits.getdata(out / output_name(src.name, "blot"), "SCI")
            assert_close_with_nans(blot, ref["blots"][_root(src.name)], f"{case} blot {src.name}", of_max=of_max)


# --------------------------------------------------------------------------- 2. plain FITS inputs
def _primary_image_files(paths, directory: Path, with_err: bool = True) -> list[Path]:
    """The science images in the primary HDU with their headers, plus (``with_err``) an ERR extension."""
    directory.mkdir()
    out = []
    for path in paths:
        with fits.open(path) as hdul:
            header = hdul["SCI"].header.copy()
            for card in hdul[0].header.cards:
                if card.keyword not in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "") and card.keyword not in header:
                    header[card.keyword] = card.value
            data = hdul["SCI"].data.copy()
            err = hdul["ERR"].data.copy()
        for key in ("EXTNAME", "XTENSION", "PCOUNT", "GCOUNT"):
            header.remove(key, ignore_missing=True)
        target = directory / path.name
        hdus = [fits.PrimaryHDU(data, header)] + ([fits.ImageHDU(err, name="ERR")] if with_err else [])
        fits.HDUList(hdus).writeto(target)
        out.append(target)
    return out


def _check_plain_crf(src: Path, crf: Path) -> int:
    """A plain-FITS crf file: the input's layout and headers, flagged pixels NaN with DQ 1|16."""
    with fits.open(src) as a, fits.open(crf) as b:
        names_in = [h.name for h in a]
        names_out = [h.name for h in b]
        assert names_out[: len(names_in)] == names_in, f"{crf.name}: HDUs {names_out} from {names_in}"
        assert "DQ" in names_out
        assert b[0].header["S_OUTLIR"] == "COMPLETE"
        sci = "SCI" if "SCI" in names_in else 0
        data_in = np.asarray(a[sci].data, np.float32)
        data_out = b[sci].data
        assert data_out.dtype.newbyteorder("=") == np.float32 and data_out.shape == data_in.shape
        for key in ("CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "A_ORDER", "B_ORDER", "XPOSURE", "BKGLEVEL"):
            if key in a[sci].header:
                assert b[sci].header[key] == a[sci].header[key], f"{crf.name}: {key} changed"
        dq_in = a["DQ"].data if "DQ" in names_in else np.zeros(data_in.shape, np.uint32)
        dq_out = b["DQ"].data
        new = ((dq_out & 16) > 0) & ~((dq_in & 16) > 0)  # flagged here (some inputs carry bit 16 already)
        assert np.all((dq_out[new] & OUTLIER_BITS) == OUTLIER_BITS)
        assert np.all(np.isnan(data_out[new]))
        # DQ only gains bits (OUTLIER where flagged, DO_NOT_USE where NaN)
        assert np.array_equal(dq_out & dq_in, dq_in)
        assert not (dq_out & ~dq_in & ~np.uint32(OUTLIER_BITS)).any()
        # the other pixels keep their values
        keep = ~np.isnan(data_out)
        np.testing.assert_array_equal(data_out[keep], data_in[keep])
        assert np.array_equal(np.isnan(data_out), np.isnan(data_in) | new | ((dq_out & 1) > 0))
        for name in ("ERR", "VAR_RNOISE", "VAR_POISSON", "VAR_FLAT"):
            if name in names_in:
                assert np.all(np.isnan(b[name].data[new])), f"{crf.name} {name}"
                np.testing.assert_array_equal(b[name].data[keep], np.asarray(a[name].data, np.float32)[keep])
        return int(new.sum())


@pytest.fixture(scope="module")
def plain_fits(tmp_path_factory) -> synthetic.SyntheticDataset:
    """The ``main`` dataset written as plain FITS (SCI/ERR/DQ/VAR_* extensions, TAN-SIP WCS)."""
    return synthetic.write_dataset(tmp_path_factory.mktemp("outliers_plain"), fmt="fits", **DATASETS["main"])


def test_plain_fits_keep_their_layout(plain_fits, tmp_path):
    """Plain FITS inputs: crf files in the input's layout, outliers NaN with DQ 1|16, S_OUTLIR COMPLETE."""
    paths = dask_resample.detect_outliers(plain_fits.paths, tmp_path, scheduler="serial", tile_shape=(40, 56))
    assert [p.name for p in paths] == [output_name(p.name) for p in plain_fits.paths]
    assert all(p.name.endswith("_crf.fits") for p in paths)
    flagged = [_check_plain_crf(src, crf) for src, crf in zip(plain_fits.paths, paths, strict=True)]
    assert sum(flagged) > 0


def test_single_image_fits_gain_a_dq_extension(plain_fits, tmp_path):
    """Files holding only a primary-HDU image get a DQ extension that carries the outliers."""
    files = _primary_image_files(plain_fits.paths, tmp_path / "single")
    paths = dask_resample.detect_outliers(files, tmp_path / "out", scheduler="serial", weight_type="exptime")
    flagged = []
    for src, crf in zip(files, paths, strict=True):
        with fits.open(crf) as hdul:
            assert [h.name for h in hdul] == ["PRIMARY", "ERR", "DQ"]
            assert hdul["DQ"].data.dtype.kind == "u"
        flagged.append(_check_plain_crf(src, crf))
    assert sum(flagged) > 0


def test_plain_fits_without_error_array_is_refused(plain_fits, tmp_path):
    """Flags compare each pixel with its error: an input without ERR fails in one line naming it."""
    files = _primary_image_files(plain_fits.paths, tmp_path / "noerr", with_err=False)
    with pytest.raises(dask_resample.outliers.OutlierDetectionError, match=re.escape(files[0].name)):
        dask_resample.detect_outliers(files, tmp_path / "out", scheduler="serial", weight_type="exptime")
    assert not any((tmp_path / "out").glob("*_crf.fits"))


def test_in_memory_fits_wcs_exposures_are_written_readable(plain_fits, tmp_path):
    """Exposures in memory with an astropy WCS give SCI-layout crf files that read back with their WCS."""
    from astropy.wcs import WCS

    exposures = []
    for p, gid in zip(plain_fits.paths, plain_fits.group_ids, strict=True):
        with fits.open(p) as h:
            exposures.append(
                dask_resample.Exposure(
                    data=h["SCI"].data.astype(np.float32),
                    wcs=WCS(h["SCI"].header),
                    dq=h["DQ"].data,
                    err=h["ERR"].data,
                    var_rnoise=h["VAR_RNOISE"].data,
                    var_poisson=h["VAR_POISSON"].data,
                    var_flat=h["VAR_FLAT"].data,
                    exposure_time=h[0].header.get("XPOSURE", 1.0),
                    filename=p.name,
                    group_id=gid,
                )
            )
    paths = dask_resample.detect_outliers(exposures, tmp_path / "out", scheduler="serial")
    files = dask_resample.detect_outliers(list(plain_fits.paths), tmp_path / "files", scheduler="serial")
    for a, b in zip(paths, files, strict=True):
        with fits.open(a) as ha, fits.open(b) as hb:
            assert WCS(ha["SCI"].header).has_celestial
            np.testing.assert_array_equal(ha["DQ"].data, hb["DQ"].data)
    # and they are inputs again
    dask_resample.resample(paths, tmp_path / "again.zarr", scheduler="serial")


def test_resample_with_outliers_keeps_the_old_mosaic_when_planning_fails(plain_fits, tmp_path):
    """``overwrite=True`` with outliers: a failure found while planning leaves the existing mosaic alone."""
    out = tmp_path / "m.zarr"
    dask_resample.resample(list(plain_fits.paths), out, scheduler="serial")
    before = dask_resample.open_mosaic(out)["data"].values.copy()
    exposures = []
    for k, p in enumerate(plain_fits.paths[:2]):
        with fits.open(p) as h:
            from astropy.wcs import WCS

            exposures.append(
                dask_resample.Exposure(
                    data=h["SCI"].data.astype(np.float32),
                    wcs=WCS(h["SCI"].header),
                    err=h["ERR"].data,
                    filename=p.name,
                    group_id=f"visit {k}",
                )
            )  # not a safe group id for the group images
    with pytest.raises(InputError, match="visit"):
        dask_resample.resample(exposures, out, scheduler="serial", overwrite=True, outliers=True)
    np.testing.assert_array_equal(dask_resample.open_mosaic(out)["data"].values, before)
    assert not list(tmp_path.glob(".m.zarr.scratch-*"))


# --------------------------------------------------------------------------- 3. resample(outliers=...)
def _assert_mosaics_equal(a, b, name: str) -> None:
    assert set(a.data_vars) == set(b.data_vars), f"{name}: arrays {sorted(a.data_vars)} != {sorted(b.data_vars)}"
    for var in a.data_vars:
        x, y = a[var].values, b[var].values
        assert x.dtype == y.dtype and x.shape == y.shape, f"{name} {var}: {x.dtype}{x.shape} != {y.dtype}{y.shape}"
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f"{name} {var}: differs"


def test_resample_with_outliers_equals_resample_of_crf_files(datasets, tmp_path):
    """``resample(outliers=...)`` is bit for bit the mosaic of the crf files (serial, JWST files)."""
    ds = datasets("main")
    params = {"snr": "4.0 3.0"}
    crf = dask_resample.detect_outliers(
        ds.asn_path, tmp_path / "crf", scheduler="serial", tile_shape=(40, 56), **params
    )
    one = dask_resample.resample(
        ds.asn_path, tmp_path / "one.zarr", outliers=params, scheduler="serial", tile_shape=(40, 56)
    )
    two = dask_resample.resample(crf, tmp_path / "two.zarr", scheduler="serial", tile_shape=(40, 56))
    _assert_mosaics_equal(one, two, "outliers=... vs crf files")
    plain = dask_resample.resample(ds.asn_path, tmp_path / "plain.zarr", scheduler="serial", tile_shape=(40, 56))
    assert not np.array_equal(one["data"].values, plain["data"].values, equal_nan=True)
    assert one.attrs["dask_resample"]["outliers"]["snr"] == "4.0 3.0"
    assert "outliers" not in plain.attrs["dask_resample"]


def test_resample_with_outliers_on_plain_fits_distributed(plain_fits, client, tmp_path):
    """The same on plain FITS inputs, on a real LocalCluster."""
    crf = dask_resample.detect_outliers(plain_fits.paths, tmp_path / "crf", client=client)
    one = dask_resample.resample(plain_fits.paths, tmp_path / "one.zarr", outliers=True, client=client)
    two = dask_resample.resample(crf, tmp_path / "two.zarr", client=client)
    _assert_mosaics_equal(one, two, "outliers=True vs crf files")
    plain = dask_resample.resample(plain_fits.paths, tmp_path / "plain.zarr", client=client)
    assert not np.array_equal(one["data"].values, plain["data"].values, equal_nan=True)


# --------------------------------------------------------------------------- 4. determinism
def test_result_independent_of_tiles_and_scheduler(datasets, client, tmp_path):
    """DQ is the same for 32x32 and 1024x1024 tiles, serial and on the cluster."""
    ds = datasets("main")
    runs = {
        "serial_32": {"scheduler": "serial", "tile_shape": (32, 32)},
        "serial_1024": {"scheduler": "serial", "tile_shape": (1024, 1024)},
        "cluster_32": {"client": client, "tile_shape": (32, 32)},
    }
    dqs = {}
    for name, kwargs in runs.items():
        paths = dask_resample.detect_outliers(ds.asn_path, tmp_path / name, **kwargs)
        dqs[name] = [read_crf(p)["dq"] for p in paths]
    assert sum(n_outliers(dq) for dq in dqs["serial_32"]) > 0
    for name in ("serial_1024", "cluster_32"):
        for i, (a, b) in enumerate(zip(dqs["serial_32"], dqs[name], strict=True)):
            assert np.array_equal(a, b), f"{name}: input {i} DQ differs at {int((a != b).sum())} pixels"


# --------------------------------------------------------------------------- 5. fewer than two inputs
def test_single_input_is_skipped_as_the_step_does(tmp_path, monkeypatch):
    """One input: crf written unchanged with status FAILED, as jwst's step records it."""
    ds = synthetic.write_dataset(
        tmp_path / "one", n_dithers=1, n_detectors=1, shape=(48, 48), seed=15, cosmic_rays=0.01
    )
    ref = run_reference(ds.asn_path, tmp_path / "reference", monkeypatch)
    assert ref["models"][0]["status"] == "FAILED"
    [crf] = dask_resample.detect_outliers(ds.asn_path, tmp_path / "ours", scheduler="serial")
    assert crf.name == output_name(ds.paths[0].name)
    ours = read_crf(crf)
    assert ours["status"] == "FAILED"
    assert_models_equal(ours, ref["models"][0], crf.name)
    np.testing.assert_array_equal(ours["dq"], read_input(ds.paths[0])["dq"])
    assert not list((tmp_path / "ours").glob(".dask-resample-outliers-*"))


# --------------------------------------------------------------------------- 6. bad input
def test_existing_output_is_refused_and_untouched(datasets, tmp_path):
    """An existing crf file without ``overwrite``: InputError naming it, the file unchanged."""
    ds = datasets("main")
    out = tmp_path / "out"
    out.mkdir()
    existing = out / output_name(ds.paths[2].name)
    existing.write_bytes(b"not a FITS file")
    before = existing.stat().st_mtime_ns
    with pytest.raises(InputError, match=re.escape(str(existing))):
        dask_resample.detect_outliers(ds.asn_path, out, scheduler="serial")
    assert existing.read_bytes() == b"not a FITS file" and existing.stat().st_mtime_ns == before
    assert sorted(os.listdir(out)) == [existing.name]


def test_existing_intermediate_is_refused(datasets, tmp_path):
    """With ``save_intermediate_results`` an existing median file is refused the same way."""
    ds = datasets("main")
    (tmp_path / "outlier_median.fits").write_bytes(b"x")
    with pytest.raises(InputError, match="outlier_median.fits"):
        dask_resample.detect_outliers(ds.asn_path, tmp_path, scheduler="serial", save_intermediate_results=True)
    assert sorted(os.listdir(tmp_path)) == ["outlier_median.fits"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"nsigma": 3}, TypeError, "nsigma"),
        ({"kernel": "gaussian"}, ValueError, "^kernel:"),
        ({"snr": "5"}, ValueError, "^snr:"),
        ({"scale": "1.2 x"}, ValueError, "^scale:"),
        ({"maskpt": "high"}, ValueError, "^maskpt:"),
        ({"pixmap_order": 2, "pixmap_stepsize": 4}, ValueError, "^pixmap_order:"),
        ({"scheduler": "threads"}, ValueError, "^scheduler:"),
    ],
    ids=["unknown_name", "kernel", "snr", "scale", "maskpt", "pixmap_order", "scheduler"],
)
def test_bad_parameters_are_refused(datasets, tmp_path, kwargs, error, match):
    """Bad parameters raise before anything is written."""
    ds = datasets("main")
    kwargs = {"scheduler": "serial", **kwargs}
    with pytest.raises(error, match=match):
        dask_resample.detect_outliers(ds.asn_path, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_output_dir_that_is_a_file_is_refused(datasets, tmp_path):
    """``output_dir`` naming a file raises InputError and leaves the file alone."""
    ds = datasets("main")
    target = tmp_path / "a_file"
    target.write_text("keep me")
    with pytest.raises(InputError, match="not a directory"):
        dask_resample.detect_outliers(ds.asn_path, target, scheduler="serial")
    assert target.read_text() == "keep me"


def test_missing_input_is_refused(datasets, tmp_path):
    """A missing input raises InputError naming it, before any output."""
    ds = datasets("main")
    missing = tmp_path / "missing_cal.fits"
    with pytest.raises(InputError, match="missing_cal.fits"):
        dask_resample.detect_outliers([*ds.paths[:2], missing], tmp_path / "out", scheduler="serial")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- 7. intermediate products
def test_intermediate_products(datasets, tmp_path):
    """The median Zarr opens as a mosaic equal to the median FITS; group images and blots are kept."""
    ds = datasets("main")
    paths = dask_resample.detect_outliers(
        ds.asn_path, tmp_path, scheduler="serial", tile_shape=(40, 56), save_intermediate_results=True
    )
    median = dask_resample.open_mosaic(tmp_path / "outlier_median.zarr")
    median_fits = fits.getdata(tmp_path / "outlier_median.fits", "SCI")
    values = median["data"].values
    assert values.shape == median_fits.shape
    assert np.array_equal(values, median_fits, equal_nan=True)
    assert np.isfinite(values).any()
    assert (tmp_path / "outlier_i2d.zarr").is_dir()
    for src, crf in zip(ds.paths, paths, strict=True):
        blot = tmp_path / output_name(src.name, "blot")
        assert blot.is_file()
        with fits.open(blot) as hdul:
            assert hdul["SCI"].data.shape == read_input(src)["data"].shape
            assert hdul[0].header["INPUT"] == src.name
        assert crf.is_file()
    assert not list(tmp_path.glob(".dask-resample-outliers-*"))
    # a second run needs overwrite, then replaces everything
    with pytest.raises(InputError):
        dask_resample.detect_outliers(ds.asn_path, tmp_path, scheduler="serial", save_intermediate_results=True)
    again = dask_resample.detect_outliers(
        ds.asn_path,
        tmp_path,
        scheduler="serial",
        tile_shape=(1024, 1024),
        save_intermediate_results=True,
        overwrite=True,
    )
    assert again == paths
    np.testing.assert_array_equal(fits.getdata(tmp_path / "outlier_median.fits", "SCI"), median_fits)


def test_in_memory_library_gives_the_flags_of_its_files(datasets, tmp_path):
    """A ``ModelLibrary`` held in memory is flagged as its files are; its crf files are ImageModels with the gwcs."""
    from jwst.datamodels import ModelLibrary

    ds = datasets("nosky")
    files = dask_resample.detect_outliers(ds.asn_path, tmp_path / "files", scheduler="serial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = ModelLibrary(str(ds.asn_path), on_disk=False)
        with lib:
            for i in range(len(lib)):
                lib.shelve(lib.borrow(i), i, modify=False)
    memory = dask_resample.detect_outliers(lib, tmp_path / "memory", scheduler="serial")
    assert [p.name for p in memory] == [p.name for p in files]
    for a, b in zip(files, memory, strict=True):
        with datamodels.open(a) as ma, datamodels.open(b) as mb:
            np.testing.assert_array_equal(mb.dq, ma.dq)
            np.testing.assert_array_equal(np.isnan(mb.data), np.isnan(ma.data))
            assert mb.meta.cal_step.outlier_detection == "COMPLETE"
            assert mb.meta.wcs is not None
    assert sum(n_outliers(datamodels.open(p).dq) for p in memory) > 0


def test_command_line(datasets, tmp_path, capsys):
    """``dask-resample outliers`` writes the crf files of ``detect_outliers``; ``run --outliers`` the same mosaic."""
    from dask_resample.cli import main

    ds = datasets("nosky")
    api = dask_resample.detect_outliers(ds.asn_path, tmp_path / "api", scheduler="serial", snr="4.0 3.0")
    options = tmp_path / "od.yaml"
    options.write_text('snr: "4.0 3.0"\n')
    full = tmp_path / "outliers.yaml"
    full.write_text(f'inputs: {ds.asn_path}\nsnr: "4.0 3.0"\nserial: true\nquiet: true\n'.replace("quiet: true\n", ""))
    assert main(["outliers", "-o", str(tmp_path / "from_config"), "--config", str(full), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "from_config").glob("*_crf.fits")) == sorted(p.name for p in api)
    capsys.readouterr()
    assert (
        main(["outliers", str(ds.asn_path), "-o", str(tmp_path / "cli"), "--serial", "--snr", "4.0 3.0", "--quiet"])
        == 0
    )
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == [p.name for p in api]
    for a in api:
        with datamodels.open(a) as ma, datamodels.open(tmp_path / "cli" / a.name) as mb:
            np.testing.assert_array_equal(mb.dq, ma.dq)
    # existing outputs are refused in one line, nothing is touched
    before = (tmp_path / "cli" / api[0].name).stat().st_mtime_ns
    assert main(["outliers", str(ds.asn_path), "-o", str(tmp_path / "cli"), "--serial", "--quiet"]) == 1
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "cli" / api[0].name).stat().st_mtime_ns == before
    assert main(["outliers", str(ds.asn_path), "-o", str(tmp_path / "x"), "--kernel", "gaussian"]) == 2
    # the mosaic with outliers flagged from the command line equals the Python one
    assert (
        main(
            [
                "run",
                str(ds.asn_path),
                "-o",
                str(tmp_path / "cli.zarr"),
                "--serial",
                "--outliers",
                "--outlier-config",
                str(options),
                "--quiet",
            ]
        )
        == 0
    )
    crf_mosaic = dask_resample.resample(
        api, tmp_path / "api.zarr", scheduler="serial", good_bits="~DO_NOT_USE+NON_SCIENCE", compute_err="from_var"
    )
    cli_mosaic = dask_resample.open_mosaic(tmp_path / "cli.zarr")
    _assert_mosaics_equal(cli_mosaic, crf_mosaic, "command line")
