"""Numerical parity with the real ``jwst.resample.resample.ResampleImage``.

Every case runs the reference (jwst from PyPI) and ``dask_resample.resample`` on
the same synthetic inputs and compares every output array: floating arrays to
within 1e-5 of the array's maximum, the context image and the NaN pattern exactly.
No border strip is excluded.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

import dask_resample
from dask_resample.testing import synthetic

from .conftest import compare_arrays, reference_resample

ARRAYS = ("data", "wht", "con", "err", "var_rnoise", "var_poisson", "var_flat", "dq")

CASES: dict[str, dict] = {
    # kernels
    "square": {},
    "gaussian": {"kernel": "gaussian"},
    "point": {"kernel": "point"},
    "turbo": {"kernel": "turbo"},
    "lanczos2": {"kernel": "lanczos2"},
    "lanczos3": {"kernel": "lanczos3"},
    "pixfrac0.6": {"pixfrac": 0.6},
    "turbo_pixfrac0.5": {"kernel": "turbo", "pixfrac": 0.5},
    # fill values
    "fillval_0": {"fillval": "0"},
    "fillval_-2.5": {"fillval": "-2.5"},
    "fillval_INDEF": {"fillval": "INDEF"},
    "fillval_float": {"fillval": 7.0},
    "fillval_empty": {"fillval": ""},
    # weights
    "exptime": {"weight_type": "exptime"},
    # good bits
    "good_bits_int": {"good_bits": 6},
    "good_bits_plus": {"good_bits": "4+8"},
    "good_bits_comma": {"good_bits": "4,8"},
    "good_bits_mnemonics": {"good_bits": "JUMP_DET, DROPOUT"},
    "good_bits_inverted": {"good_bits": "~DO_NOT_USE+NON_SCIENCE"},
    "good_bits_none": {"good_bits": None},
    # output grid
    "psr_0.7": {"wcs_pars": {"pixel_scale_ratio": 0.7}},
    "psr_1.6": {"wcs_pars": {"pixel_scale_ratio": 1.6}},
    "pixel_scale": {"wcs_pars": {"pixel_scale": 0.045}},
    "rotation": {"wcs_pars": {"rotation": 30.0}},
    "output_shape": {"wcs_pars": {"output_shape": (150, 170)}},
    "crpix_crval": {"wcs_pars": {"crpix": (60.0, 80.0), "crval": (53.1605, -27.7801), "output_shape": (140, 160)}},
    # outputs
    "no_ctx": {"enable_ctx": False},
    "no_var": {"enable_var": False},
    "no_report_var": {"report_var": False, "compute_err": "from_var"},
    "from_var": {"compute_err": "from_var"},
    "from_var_without_var": {"compute_err": "from_var", "enable_var": False},
    "driz_err": {"compute_err": "driz_err"},
    "driz_err_psr": {"compute_err": "driz_err", "wcs_pars": {"pixel_scale_ratio": 0.8}},
    "propagate_dq": {"propagate_dq": True, "good_bits": "~DO_NOT_USE"},
    # pixel map
    "stepsize4_order1": {"pixmap_stepsize": 4},
    "stepsize5_order3": {"pixmap_stepsize": 5, "pixmap_order": 3},
    "stepsize1_order_ignored": {"pixmap_order": 2},
    "stepsize_below_1": {"pixmap_stepsize": 0.5, "pixmap_order": 3},
    "combined": {
        "kernel": "gaussian",
        "pixfrac": 0.8,
        "weight_type": "exptime",
        "compute_err": "driz_err",
        "propagate_dq": True,
        "good_bits": "~4",
        "wcs_pars": {"pixel_scale_ratio": 1.3, "rotation": 10.0},
    },
}


def _reference_arrays(model) -> dict[str, np.ndarray]:
    out = {}
    for name in ARRAYS:
        if not model.hasattr(name) if hasattr(model, "hasattr") else not hasattr(model, name):
            continue
        try:
            value = getattr(model, name)
        except AttributeError:
            continue
        if value is None or np.size(value) == 0:
            continue
        out[name] = np.asarray(value)
    return out


def _check(ours, ref_model, pars: dict) -> dict[str, float]:
    ref = _reference_arrays(ref_model)
    diffs = {}
    expected = set(
        dask_resample.drizzle.reduce.output_arrays(
            dask_resample.ResampleParams(**{k: v for k, v in pars.items() if k not in ("wcs_pars", "output_wcs")})
        )
    )
    assert set(ours.data_vars) == expected
    missing = set(ref) - expected - {"dq"}
    assert not missing, f"the reference has {sorted(missing)} and we do not"
    for name in sorted(expected):
        assert name in ref or name == "dq", f"{name} missing from the reference output"
        if name not in ref:
            continue
        diffs[name] = compare_arrays(ours[name].values, ref[name], name)
    return diffs


@pytest.mark.parametrize("case", list(CASES))
def test_parity_with_jwst(case, small_dataset, client, tmp_path):
    pars = copy.deepcopy(CASES[case])
    ref_model = reference_resample(small_dataset.asn_path, **pars)
    ours = dask_resample.resample(
        small_dataset.asn_path, tmp_path / "m.zarr", client=client, tile_shape=(48, 64), **pars
    )
    diffs = _check(ours, ref_model, pars)
    assert ours["data"].shape == ref_model.data.shape
    assert np.isfinite(ours["data"].values).sum() > 0.3 * ours["data"].size
    print(case, {k: f"{v:.1e}" for k, v in diffs.items()})


def test_parity_output_wcs(small_dataset, client, tmp_path):
    """A user-supplied output WCS (with and without pixel_scale)."""
    base = reference_resample(small_dataset.asn_path, wcs_pars={"pixel_scale_ratio": 0.9, "rotation": 5.0})
    wcs = copy.deepcopy(base.meta.wcs)
    for output_wcs in ({"wcs": wcs}, {"wcs": wcs, "pixel_scale": 0.05}):
        ref_model = reference_resample(small_dataset.asn_path, output_wcs=copy.deepcopy(output_wcs))
        ours = dask_resample.resample(
            small_dataset.asn_path,
            tmp_path / f"m{len(output_wcs)}.zarr",
            client=client,
            tile_shape=(40, 40),
            output_wcs=copy.deepcopy(output_wcs),
        )
        _check(ours, ref_model, {})


def test_parity_more_than_32_inputs(tmp_path_factory, client, tmp_path):
    """34 inputs: two context planes, bits numbered in input order."""
    ds = synthetic.write_dataset(
        tmp_path_factory.mktemp("many"),
        n_dithers=34,
        n_detectors=1,
        shape=(40, 40),
        seed=11,
        dither_arcsec=0.6,
        n_sources=10,
    )
    ref_model = reference_resample(ds.asn_path)
    ours = dask_resample.resample(ds.asn_path, tmp_path / "m.zarr", client=client, tile_shape=(32, 32))
    assert ours["con"].shape[0] == 2 == ref_model.con.shape[0]
    _check(ours, ref_model, {})
    # every input left its bit somewhere
    con = ours["con"].values
    bits = [np.any(con[k // 32] & np.int32(np.uint32(1 << (k % 32)).view(np.int32))) for k in range(34)]
    assert all(bits)


def test_parity_serial_path(small_dataset, tmp_path):
    """The serial (no Dask) path runs the same tasks."""
    pars = {"compute_err": "from_var", "kernel": "turbo"}
    ref_model = reference_resample(small_dataset.asn_path, **pars)
    ours = dask_resample.resample(
        small_dataset.asn_path, tmp_path / "m.zarr", scheduler="serial", tile_shape=(50, 50), **pars
    )
    _check(ours, ref_model, pars)


def test_parity_in_memory_models(small_dataset, client, tmp_path):
    """A ModelLibrary held in memory is accepted as input."""
    from jwst.datamodels import ModelLibrary

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = ModelLibrary(str(small_dataset.asn_path), on_disk=False)
    ref_model = reference_resample(small_dataset.asn_path)
    ours = dask_resample.resample(lib, tmp_path / "m.zarr", client=client, tile_shape=(64, 64))
    _check(ours, ref_model, {})


#: Parameter sets for grids with whole tiles that no input reaches (every fillval form,
#: both error modes, every output switch).
EMPTY_TILE_CASES: dict[str, dict] = {
    "nan": {},
    "zero_driz_err_psr": {"fillval": "0", "compute_err": "driz_err", "psr": 0.8},
    "negative_from_var": {"fillval": "-2.5", "compute_err": "from_var"},
    "indef_driz_err": {"fillval": "INDEF", "compute_err": "driz_err"},
    "float_driz_err_dq_no_ctx": {
        "fillval": 7.0,
        "compute_err": "driz_err",
        "propagate_dq": True,
        "good_bits": "~DO_NOT_USE",
        "enable_ctx": False,
        "psr": 1.25,
    },
    "empty_from_var_without_var": {"fillval": "", "compute_err": "from_var", "enable_var": False},
    "three_no_report_var": {"fillval": "3", "compute_err": "from_var", "report_var": False},
    "driz_err_without_var": {"fillval": "1.5", "compute_err": "driz_err", "enable_var": False, "kernel": "gaussian"},
}


@pytest.mark.parametrize("case", list(EMPTY_TILE_CASES))
def test_parity_empty_tiles(case, small_dataset, client, tmp_path):
    """Tiles no input reaches hold exactly the reference's values, in every array."""
    pars = copy.deepcopy(EMPTY_TILE_CASES[case])
    psr = pars.pop("psr", 1.0)
    pars["wcs_pars"] = {"output_shape": (260, 330), "pixel_scale_ratio": psr}
    ref_model = reference_resample(small_dataset.asn_path, **pars)
    ours = dask_resample.resample(
        small_dataset.asn_path, tmp_path / "m.zarr", client=client, tile_shape=(32, 40), **pars
    )
    wht = ours["wht"].values
    blocks = wht.reshape(260 // 20, 20, 330 // 30, 30).any(axis=(1, 3))
    assert not blocks.all(), "the grid must leave whole tiles empty"
    _check(ours, ref_model, pars)
    for name in ours.data_vars:  # the empty corner itself, value for value
        ref = _reference_arrays(ref_model).get(name)
        if ref is not None:
            np.testing.assert_array_equal(ours[name].values[..., :16, :16], ref[..., :16, :16], err_msg=name)
