"""Plain FITS as people have it: SCI layout, a single primary-HDU image, a first image extension.

These tests need only the core dependencies (no jwst/stdatamodels): they also run
in the core-only environment of ``make test`` (marker ``core``).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

import dask_resample
from dask_resample.inputs.io import InputError, collect_exposures
from dask_resample.testing import synthetic

pytestmark = pytest.mark.core

#: Parameters under which the three layouts must agree bit for bit: no variance or DQ arrays
#: in a single-image file, so weights come from the exposure time and DQ is ignored.
SAME = {"weight_type": "exptime", "good_bits": None, "enable_var": False}


@pytest.fixture(scope="module")
def sci_layout(tmp_path_factory) -> synthetic.SyntheticDataset:
    """Plain FITS with SCI/ERR/DQ/VAR_* extensions and a TAN-SIP WCS."""
    return synthetic.write_dataset(
        tmp_path_factory.mktemp("sci"), n_dithers=3, n_detectors=1, shape=(72, 80), seed=21, fmt="fits"
    )


def _single_image_files(ds, directory, *, extension: bool, exptime_key: str = "EXPTIME") -> list:
    """The same images as one 2-D HDU: the primary one, or the first extension after an empty primary."""
    out = []
    directory.mkdir(exist_ok=True)
    for path in ds.paths:
        with fits.open(path) as hdul:
            sci = hdul["SCI"].header.copy()
            primary = hdul[0].header
            data = hdul["SCI"].data.copy()
            texp = primary["XPOSURE"]
            for card in primary.cards:  # measurement time, sky level, observation keywords
                if (
                    card.keyword not in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XPOSURE", "")
                    and card.keyword not in sci
                ):
                    sci[card.keyword] = card.value
        for key in ("EXTNAME", "XTENSION", "PCOUNT", "GCOUNT", "S_REGION"):
            sci.remove(key, ignore_missing=True)
        sci[exptime_key] = texp
        target = directory / path.name
        if extension:
            hdus = [fits.PrimaryHDU(), fits.ImageHDU(data, sci, name="IMAGE")]
        else:
            hdus = [fits.PrimaryHDU(data, sci)]
        fits.HDUList(hdus).writeto(target)
        out.append(target)
    return out


@pytest.mark.parametrize("extension", [False, True], ids=["primary_hdu", "first_extension"])
def test_single_image_layouts_equal_the_sci_layout(sci_layout, tmp_path, extension):
    files = _single_image_files(sci_layout, tmp_path / "single", extension=extension)
    a = dask_resample.resample(
        [str(p) for p in sci_layout.paths], tmp_path / "a.zarr", scheduler="serial", tile_shape=(40, 48), **SAME
    )
    b = dask_resample.resample(
        [str(p) for p in files], tmp_path / "b.zarr", scheduler="serial", tile_shape=(40, 48), **SAME
    )
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert np.isfinite(b["data"].values).mean() > 0.5


@pytest.mark.parametrize("key", ["XPOSURE", "EXPTIME", "EXPOSURE", "TEXPTIME"])
def test_exposure_time_keywords(sci_layout, tmp_path, key):
    files = _single_image_files(sci_layout, tmp_path / key, extension=False, exptime_key=key)
    refs = collect_exposures([str(p) for p in files])
    assert [r.kind for r in refs] == ["fits"] * len(files)
    assert all(r.exposure_time == pytest.approx(1000.0) for r in refs)  # the synthetic XPOSURE
    assert all(r.pixelarea_steradians and r.pixelarea_steradians > 0 for r in refs)


def test_image_without_celestial_wcs_is_refused_naming_it(tmp_path):
    path = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(np.ones((16, 16), np.float32)).writeto(path)
    with pytest.raises(InputError, match="nowcs.fits: no celestial FITS WCS"):
        collect_exposures([str(path)])


def test_file_without_any_image_is_refused_naming_it(tmp_path):
    path = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])]).writeto(path)
    with pytest.raises(InputError, match="table.fits: no 2-D image"):
        collect_exposures([str(path)])


def test_jwst_inputs_need_the_extra_or_work(tmp_path, sci_layout):
    """A JWST datamodel file (DATAMODL in its primary header) is refused in one line without the extra."""
    try:
        import stdatamodels.jwst.datamodels  # noqa: F401

        have_jwst = True
    except ImportError:
        have_jwst = False
    if have_jwst:
        jw = synthetic.write_dataset(tmp_path / "jw", n_dithers=1, n_detectors=1, shape=(40, 40), seed=2)
        refs = collect_exposures([str(jw.paths[0]), str(sci_layout.paths[0])])
        assert [r.kind for r in refs] == ["jwst", "fits"]  # mixed inputs work
    else:
        path = tmp_path / "jw_cal.fits"
        fits.HDUList(
            [
                fits.PrimaryHDU(header=fits.Header([("DATAMODL", "ImageModel")])),
                fits.ImageHDU(np.zeros((8, 8), np.float32), name="SCI"),
            ]
        ).writeto(path)
        with pytest.raises(InputError, match=r"jw_cal.fits: .*pip install 'dask-resample\[jwst\]'"):
            collect_exposures([str(path)])


def test_dq_mnemonics_without_stdatamodels():
    params = dask_resample.ResampleParams(good_bits="~DO_NOT_USE+NON_SCIENCE")
    assert params.good_bits_mask == ~(1 | 512)


def test_dq_table_equals_stdatamodels_when_installed():
    from dask_resample.dqflags import PIXEL

    try:
        from stdatamodels.jwst.datamodels.dqflags import pixel
    except ImportError:
        assert PIXEL["DO_NOT_USE"] == 1 and PIXEL["OUTLIER"] == 16 and PIXEL["REFERENCE_PIXEL"] == 1 << 31
        return
    assert dict(PIXEL) == dict(pixel)


def test_group_id_formula_equals_jwst_when_installed():
    from dask_resample.inputs.io import group_id_from_observation

    obs = {
        "program_number": "01234",
        "observation_number": "001",
        "visit_number": "002",
        "visit_group": "03",
        "sequence_id": "1",
        "activity_id": "05",
        "exposure_number": "7",
    }
    assert group_id_from_observation(obs) == "jw01234001002_03105_7"
    assert group_id_from_observation({**obs, "visit_group": None}) is None
    try:
        from jwst.datamodels.utils import attrs_to_group_id
    except ImportError:
        return
    assert attrs_to_group_id(obs) == group_id_from_observation(obs)
