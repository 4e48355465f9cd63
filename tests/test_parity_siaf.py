"""Parity with ``jwst.resample.resample.ResampleImage`` on inputs whose WCS the pipeline built.

The inputs come from :func:`dask_resample.testing.synthetic_siaf.write_siaf_dataset`:
SIAF distortion (pysiaf) handed to ``jwst.assign_wcs`` (frames ``detector ->
v2v3 -> v2v3vacorr -> world``, velocity-aberration scale, ``v23tosky``,
subarray offsets and bounding boxes, ``S_REGION`` within the bounding box).
Four datasets: NIRCam short-wave crops of two detectors facing each other
across the gap, NIRCam long-wave, the MIRI imager full frame (its bounding box
excludes the Lyot coronagraph and the reference columns) and the MIRI SUB256
subarray. Every kernel runs on two datasets; every run compares all
output arrays (DQ included) with the tolerance of ``test_parity.py``, on tile
shapes that leave whole tiles empty and cut through the data.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import dask_resample

from .conftest import reference_resample
from .test_parity import _check

pysiaf = pytest.importorskip("pysiaf")
synthetic_siaf = pytest.importorskip("dask_resample.testing.synthetic_siaf")

#: dataset name -> (write_siaf_dataset arguments, tile shape (ny, nx), output wcs_pars)
DATASETS: dict[str, tuple[dict, tuple[int, int], dict]] = {
    # two detectors facing each other across the gap: whole rows of tiles in the gap are empty
    "nircam_sw": (
        {
            "instrument": "nircam_sw",
            "n_dithers": 3,
            "n_detectors": 2,
            "subarray": (128, 128),
            "seed": 1,
            "sky_level": 0.2,
        },
        (48, 40),
        {},
    ),
    # rotated output grids: the corners of the mosaic are empty
    "nircam_lw": (
        {
            "instrument": "nircam_lw",
            "n_dithers": 3,
            "n_detectors": 1,
            "subarray": (96, 96),
            "seed": 2,
            "dither_arcsec": 1.5,
            "roll_deg": 35.0,
        },
        (24, 20),
        {"rotation": 80.0},
    ),
    "miri_full": (
        {
            "instrument": "miri",
            "n_dithers": 2,
            "n_detectors": 1,
            "subarray": None,
            "seed": 3,
            "dither_arcsec": 3.0,
            "n_sources": 80,
        },
        (160, 112),
        {"rotation": 60.0},
    ),
    "miri_sub256": (
        {
            "instrument": "miri",
            "n_dithers": 3,
            "n_detectors": 1,
            "subarray": "SUB256",
            "seed": 4,
            "dither_arcsec": 4.0,
            "roll_deg": 250.0,
        },
        (40, 56),
        {"rotation": 45.0},
    ),
}

#: (dataset, kernel): every kernel runs on two datasets
RUNS = [
    ("nircam_sw", "square"), ("nircam_sw", "lanczos3"), ("nircam_sw", "turbo"),
    ("nircam_lw", "gaussian"), ("nircam_lw", "point"), ("nircam_lw", "lanczos2"),
    ("miri_full", "turbo"), ("miri_full", "lanczos2"),
    ("miri_sub256", "point"), ("miri_sub256", "lanczos3"), ("miri_sub256", "gaussian"), ("miri_sub256", "square"),
]  # fmt: skip


@pytest.fixture(scope="module")
def siaf_datasets(tmp_path_factory):
    """The four datasets, written once for the module."""
    out = {}
    for name, (kwargs, _, _) in DATASETS.items():
        out[name] = synthetic_siaf.write_siaf_dataset(tmp_path_factory.mktemp(f"siaf_{name}"), **kwargs)
    return out


def _open(path):
    from stdatamodels.jwst.datamodels import ImageModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ImageModel(str(path))


def _tile_coverage(wht: np.ndarray, tile_shape: tuple[int, int]) -> tuple[int, int]:
    """Number of tiles with no weight at all and of tiles partly covered (5%-95%)."""
    ny, nx = wht.shape
    empty = partial = 0
    for y0 in range(0, ny, tile_shape[0]):
        for x0 in range(0, nx, tile_shape[1]):
            frac = float(np.mean(wht[y0 : y0 + tile_shape[0], x0 : x0 + tile_shape[1]] > 0))
            empty += frac == 0.0
            partial += 0.05 < frac < 0.95
    return empty, partial


@pytest.mark.parametrize(("dataset", "kernel"), RUNS, ids=[f"{d}-{k}" for d, k in RUNS])
def test_parity_siaf(dataset, kernel, siaf_datasets, client, tmp_path):
    ds = siaf_datasets[dataset]
    _, tile_shape, wcs_pars = DATASETS[dataset]
    # alternate the error rule; DQ propagated with flagged pixels kept (except DO_NOT_USE)
    pars = {
        "kernel": kernel,
        "propagate_dq": True,
        "good_bits": "~DO_NOT_USE",
        "compute_err": "driz_err" if kernel in ("turbo", "point") else "from_var",
    }
    if wcs_pars:
        pars["wcs_pars"] = dict(wcs_pars)
    ref_model = reference_resample(ds.asn_path, **pars)
    ours = dask_resample.resample(ds.asn_path, tmp_path / "m.zarr", client=client, tile_shape=tile_shape, **pars)
    diffs = _check(ours, ref_model, pars)
    assert {"data", "wht", "con", "err", "var_rnoise", "var_poisson", "var_flat", "dq"} <= set(diffs)
    assert np.count_nonzero(ref_model.dq) > 0  # DQ flags really propagate
    empty, partial = _tile_coverage(ref_model.wht, tile_shape)
    assert empty > 0, "no tile is empty: choose a smaller tile shape"
    assert partial > 0, "no tile cuts through the data"
    print(dataset, kernel, {k: f"{v:.1e}" for k, v in diffs.items()}, f"empty={empty} partial={partial}")


def test_miri_bounding_box_excludes_lyot(siaf_datasets):
    """The MIRI full-frame bounding box is the illuminated region; the mosaic follows it."""
    ds = siaf_datasets["miri_full"]
    with _open(ds.paths[0]) as model:
        assert model.data.shape == (1024, 1032)
        (x_lo, x_hi), (y_lo, y_hi) = model.meta.wcs.bounding_box.bounding_box(order="F")
        assert (x_lo, x_hi, y_lo, y_hi) == (358.5, 1026.5, -0.5, 1023.5)
        assert np.isnan(model.meta.wcs(300.0, 500.0)).all()  # inside the Lyot region
        assert np.isfinite(model.meta.wcs(700.0, 500.0)).all()
        # S_REGION follows the bounding box: its corners map back onto the box edges
        from stcal.alignment.util import sregion_to_footprint

        verts = sregion_to_footprint(model.meta.wcsinfo.s_region)
        x, _ = model.meta.wcs.invert(verts[:, 0], verts[:, 1], with_bounding_box=False)
        assert np.allclose(np.sort(x), [358.5, 358.5, 1026.5, 1026.5], atol=0.3)
    ref_model = reference_resample(ds.asn_path)
    # 668 illuminated columns plus the dither, not the 1032 of the array
    assert ref_model.data.shape[1] < 760


def test_siaf_wcs_matches_pysiaf(siaf_datasets):
    """detector -> world equals pysiaf's sci -> tel -> sky (with the velocity-aberration scale)."""
    from pysiaf.utils import rotations

    for name in DATASETS:
        for path in siaf_datasets[name].paths[:2]:
            with _open(path) as model:
                wcs, info, sub = model.meta.wcs, model.meta.wcsinfo, model.meta.subarray
                assert wcs.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]
                inst = "MIRI" if model.meta.instrument.name == "MIRI" else "NIRCam"
                full = {"MIRIMAGE": "MIRIM_FULL", "NRCALONG": "NRCA5_FULL"}.get(
                    model.meta.instrument.detector, f"{model.meta.instrument.detector}_FULL"
                )
                ap = pysiaf.Siaf(inst)[full]
                ny, nx = model.data.shape
                x = np.array([10.0, nx / 2.0, nx - 11.0])
                y = np.array([ny - 11.0, ny / 3.0, 10.0])
                if name == "miri_full":
                    x = np.array([400.0, 700.0, 1000.0])  # inside the illuminated region
                v2, v3 = ap.sci_to_tel(x + sub.xstart, y + sub.ystart)
                s = model.meta.velocity_aberration.scale_factor
                assert s != 1.0
                v2 = s * v2 + (1.0 - s) * info.v2_ref
                v3 = s * v3 + (1.0 - s) * info.v3_ref
                att = rotations.attitude(info.v2_ref, info.v3_ref, info.ra_ref, info.dec_ref, info.roll_ref)
                ra, dec = rotations.pointing(att, v2, v3)
                wra, wdec = wcs(x, y)
                err = np.hypot((wra - ra) * np.cos(np.radians(dec)), wdec - dec) * 3.6e6  # mas
                assert err.max() < 0.01, f"{path.name}: {err.max():.3g} mas"


def test_subarray_offset_enters_the_transform(siaf_datasets):
    """SUB256 pixel (0, 0) is full-frame pixel (SUBSTRT1 - 1, SUBSTRT2 - 1)."""
    ap = pysiaf.Siaf("MIRI")["MIRIM_SUB256"]
    full = synthetic_siaf.siaf_distortion("MIRI", "MIRIM_FULL")
    with _open(siaf_datasets["miri_sub256"].paths[0]) as model:
        sub = model.meta.subarray
        assert (sub.name, sub.xstart, sub.ystart, sub.xsize, sub.ysize) == ("SUB256", *ap.dms_corner(), 256, 256)
        assert model.data.shape == (256, 256)
        det2v2v3 = model.meta.wcs.get_transform("detector", "v2v3")
        xy = np.array([0.0, 100.0, 255.0]), np.array([0.0, 200.0, 255.0])
        expected = full(xy[0] + sub.xstart - 1, xy[1] + sub.ystart - 1)
        assert np.allclose(det2v2v3(*xy), expected, rtol=0, atol=1e-9)
        (x_lo, x_hi), (y_lo, y_hi) = model.meta.wcs.bounding_box.bounding_box(order="F")
        assert (x_lo, x_hi, y_lo, y_hi) == (-0.5, 255.5, -0.5, 255.5)


def test_core_imports_neither_jwst_nor_pysiaf():
    code = (
        "import sys, dask_resample, dask_resample.testing.synthetic; "
        "bad = [m for m in ('jwst', 'pysiaf') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
