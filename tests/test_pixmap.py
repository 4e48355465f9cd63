"""The fast pixel map: recognised structures, refusals, self-check and agreement with calc_pixmap."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs
from stcal.alignment.util import wcs_from_sregions
from stcal.resample.utils import calc_pixmap

from dask_resample.geometry import pixmap as fp
from dask_resample.geometry.exposure_pixmap import compute_pixmap
from dask_resample.geometry.wcs_adapter import FitsImagingWCS
from dask_resample.testing.synthetic import make_detector_wcs

#: Agreement required with calc_pixmap (output pixels).
TOL = 1e-8


def _tolerance(ra: float, dec: float, scale_arcsec: float = 0.031) -> float:
    """TOL plus two units of the reference's own rounding of RA (deg) at this position.

    calc_pixmap carries RA in degrees: near RA = 360 one unit in the last place is
    5.7e-14 deg, 6.6e-9 output pixel of 0.031 arcsec on the equator, and its
    arctan2 + 360 wrap rounds by a unit or two (measured against an extended
    precision evaluation: the fast map is within 2e-10 pixel of it there).
    """
    return TOL + 2 * float(np.spacing(ra + 360.0 * (ra < 0))) * np.cos(np.radians(dec)) * 3600.0 / scale_arcsec


pytestmark = pytest.mark.filterwarnings("ignore")


# --------------------------------------------------------------------------- WCS builders
def _output_wcs(wcs_in, ra, dec, roll, extra=()):
    info = {"roll_ref": roll, "v3yangle": 0.0, "vparity": -1, "ra_ref": ra, "dec_ref": dec}
    footprints = [w.footprint() for w in (wcs_in, *extra)]
    return wcs_from_sregions(footprints, wcs_in, info)


def _frames():
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    world = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world", unit=(u.deg, u.deg))
    return detector, world


def _jwst_wcs(ra, dec, roll, shape=(96, 128), va_scale=1.00012):
    """detector -> v2v3 (polynomial) -> v2v3vacorr (jwst's DVA model) -> world (jwst's v23tosky)."""
    from jwst.assign_wcs.pointing import dva_corr_model, v23tosky
    from stdatamodels.jwst.datamodels import ImageModel

    ny, nx = shape
    v2_ref, v3_ref = 86.1, -493.2
    scale = 0.031
    poly_x = models.Polynomial2D(2, c0_0=v2_ref, c1_0=-scale, c0_1=2e-5, c2_0=1e-8, c1_1=-2e-8, c0_2=3e-9)
    poly_y = models.Polynomial2D(2, c0_0=v3_ref, c1_0=1e-5, c0_1=scale, c2_0=-2e-9, c1_1=1e-8, c0_2=1e-8)
    det2v23 = (
        (models.Shift(-(nx - 1) / 2) & models.Shift(-(ny - 1) / 2)) | models.Mapping((0, 1, 0, 1)) | (poly_x & poly_y)
    )
    model = ImageModel((2, 2))
    model.meta.wcsinfo.v2_ref = v2_ref
    model.meta.wcsinfo.v3_ref = v3_ref
    model.meta.wcsinfo.roll_ref = roll
    model.meta.wcsinfo.ra_ref = ra
    model.meta.wcsinfo.dec_ref = dec
    tel2sky = v23tosky(model)
    dva = dva_corr_model(va_scale, v2_ref, v3_ref)
    detector, world = _frames()
    v2v3 = cf.Frame2D(name="v2v3", axes_order=(0, 1), unit=(u.arcsec, u.arcsec))
    v2v3vacorr = cf.Frame2D(name="v2v3vacorr", axes_order=(0, 1), unit=(u.arcsec, u.arcsec))
    w = gwcs_wcs.WCS([(detector, det2v23), (v2v3, dva), (v2v3vacorr, tel2sky), (world, None)])
    w.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    w.array_shape = shape
    return w


def _fits_wcs(ra, dec, roll, shape=(96, 128), sip=True):
    """A FitsImagingWCS: TAN-SIP fitted to the synthetic WCS, or plain TAN."""
    from astropy.wcs import WCS

    g = make_detector_wcs(ra, dec, roll_deg=roll, shape=shape, distortion=1e-5 if sip else 0.0)
    header = (
        g.to_fits_sip(degree=3, max_inv_pix_error=0.01, inv_degree=range(3, 7))
        if sip
        else g.to_fits_sip(degree=1, max_inv_pix_error=None)
    )
    if not sip:
        header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
        for key in [k for k in header if k.startswith(("A_", "B_", "AP_", "BP_"))]:
            del header[key]
    return FitsImagingWCS(WCS(header), shape)


def _agreement(wcs_in, wcs_out, shape):
    plan = fp.plan_fast_pixmap(wcs_in, wcs_out)
    assert plan is not None
    fast = fp.fast_pixmap(plan, shape)
    ref = calc_pixmap(wcs_in, wcs_out, shape)
    assert np.array_equal(np.isnan(fast), np.isnan(ref))
    return float(np.nanmax(np.abs(fast - ref)))


# --------------------------------------------------------------------------- agreement
@pytest.mark.parametrize(
    ("ra", "dec", "roll"),
    [
        (10.0, 20.0, 30.0),
        (359.9995, 0.3, 100.0),
        (0.0004, -89.9, 250.0),
        (180.0, 89.9, 10.0),
        (0.0, 89.95, 300.0),
        (359.99, -45.0, 181.0),
    ],
)
def test_synthetic_agrees_with_calc_pixmap(ra, dec, roll):
    shape = (160, 200)
    wcs_in = make_detector_wcs(ra, dec, roll_deg=roll, shape=shape, offset_pixels=(40.0, -30.0))
    other = make_detector_wcs(ra, dec, roll_deg=roll + 7.0, shape=shape, offset_pixels=(-60.0, 20.0))
    wcs_out = _output_wcs(other, ra, dec, roll + 11.0, extra=(wcs_in,))
    assert _agreement(wcs_in, wcs_out, shape) < _tolerance(ra, dec)


@pytest.mark.parametrize(("ra", "dec", "roll"), [(53.1, -27.8, 45.0), (0.0003, 89.9, 120.0), (359.9997, -89.9, 5.0)])
def test_jwst_v23tosky_agrees_with_calc_pixmap(ra, dec, roll):
    shape = (96, 128)
    wcs_in = _jwst_wcs(ra, dec, roll, shape)
    src = fp.recognise_input(wcs_in)
    assert src is not None and src.kind == "lonlat"
    grid_ref = make_detector_wcs(ra, dec, roll_deg=roll, shape=shape)
    wcs_out = _output_wcs(grid_ref, ra, dec, roll + 3.0, extra=(wcs_in,))
    assert _agreement(wcs_in, wcs_out, shape) < _tolerance(ra, dec)


@pytest.mark.parametrize("sip", [True, False])
@pytest.mark.parametrize(("ra", "dec", "roll"), [(150.1, 2.2, 60.0), (359.9998, 89.9, 200.0)])
def test_fits_inputs_agree_with_calc_pixmap(sip, ra, dec, roll):
    shape = (96, 128)
    wcs_in = _fits_wcs(ra, dec, roll, shape, sip=sip)
    assert fp.recognise_input(wcs_in) is not None
    wcs_out = _output_wcs(make_detector_wcs(ra, dec, roll_deg=roll, shape=shape), ra, dec, roll - 20.0)
    assert _agreement(wcs_in, wcs_out, shape) < _tolerance(ra, dec)


def test_astropy_chain_output_and_sin_input():
    """An output built as affine | Pix2Sky_TAN | RotateNative2Celestial, and a SIN input."""
    ra, dec, shape = 210.0, -60.0, (64, 80)
    detector, world = _frames()
    pc = np.array([[-0.9, 0.3], [0.3, 0.9]]) / np.hypot(0.9, 0.3)
    scale = 0.04 / 3600
    out_tr = (
        (models.Shift(-40.2) & models.Shift(-31.7))
        | models.AffineTransformation2D(matrix=pc)
        | (models.Scale(scale) & models.Scale(scale))
        | models.Pix2Sky_TAN()
        | models.RotateNative2Celestial(ra + 0.001, dec - 0.001, 180.0)
    )
    wcs_out = gwcs_wcs.WCS([(detector, out_tr), (world, None)])
    in_tr = (
        (models.Shift(-(shape[1] - 1) / 2) & models.Shift(-(shape[0] - 1) / 2))
        | models.AffineTransformation2D(matrix=[[scale, 1e-7 * scale], [0.0, scale]])
        | models.Pix2Sky_SIN()
        | models.RotateNative2Celestial(ra, dec, 180.0)
    )
    wcs_in = gwcs_wcs.WCS([(detector, in_tr), (world, None)])
    assert fp.recognise_output(wcs_out) is not None
    assert fp.recognise_input(wcs_in).kind == "sin"
    assert _agreement(wcs_in, wcs_out, shape) < TOL


# --------------------------------------------------------------------------- refusals
def _simple_in(ra=30.0, dec=40.0, projection=None, after=None, shape=(32, 48)):
    detector, world = _frames()
    scale = 0.05 / 3600
    tr = (
        (models.Shift(-20.0) & models.Shift(-15.0))
        | (models.Scale(scale) & models.Scale(scale))
        | (projection if projection is not None else models.Pix2Sky_TAN())
        | models.RotateNative2Celestial(ra, dec, 180.0)
    )
    if after is not None:
        tr = tr | after
    w = gwcs_wcs.WCS([(detector, tr), (world, None)])
    w.bounding_box = ((-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5))
    return w


def test_refuses_non_zenithal_projection():
    assert fp.recognise_input(_simple_in(projection=models.Pix2Sky_CAR())) is None
    assert fp.recognise_input(_simple_in(projection=models.Pix2Sky_ZEA())) is None  # zenithal, not supported
    assert fp.recognise_input(_simple_in()) is not None


def test_refuses_step_after_rotation():
    after = models.Shift(1e-4) & models.Identity(1)
    wcs_in = _simple_in(after=after)
    assert fp.recognise_input(wcs_in) is None
    wcs_out = _output_wcs(_simple_in(), 30.0, 40.0, 0.0)
    shape = (32, 48)
    # the kernel then uses the full evaluation: identical to calc_pixmap bit for bit
    got = compute_pixmap(wcs_in, wcs_out, shape, fast=True)
    assert np.array_equal(got, calc_pixmap(wcs_in, wcs_out, shape), equal_nan=True)


def test_refuses_non_tan_output():
    detector, world = _frames()
    scale = 0.05 / 3600
    for proj in (models.Pix2Sky_SIN(), models.Pix2Sky_CAR()):
        tr = (
            (models.Shift(-5.0) & models.Shift(-5.0))
            | (models.Scale(scale) & models.Scale(scale))
            | proj
            | (models.RotateNative2Celestial(30.0, 40.0, 180.0))
        )
        assert fp.recognise_output(gwcs_wcs.WCS([(detector, tr), (world, None)])) is None
    # an output with a user-defined inverse is refused (the reference would use that inverse)
    tr = (
        (models.Shift(-5.0) & models.Shift(-5.0))
        | (models.Scale(scale) & models.Scale(scale))
        | (models.Pix2Sky_TAN() | models.RotateNative2Celestial(30.0, 40.0, 180.0))
    )
    custom = tr.inverse
    tr.inverse = custom
    assert fp.recognise_output(gwcs_wcs.WCS([(detector, tr), (world, None)])) is None
    # a non-linear model before the output projection is refused
    tr = models.Polynomial2D(1, c1_0=scale) & models.Polynomial2D(1, c0_1=scale)
    tr = models.Mapping((0, 1, 0, 1)) | tr | models.Pix2Sky_TAN() | models.RotateNative2Celestial(30.0, 40.0, 180.0)
    assert fp.recognise_output(gwcs_wcs.WCS([(detector, tr), (world, None)])) is None
    # FITS outputs are left to the full path
    assert fp.recognise_output(_fits_wcs(30.0, 40.0, 0.0, sip=False)) is None


# --------------------------------------------------------------------------- self-check
class _SkewedRotation(models.RotateNative2Celestial):
    """A rotation subclass that is not a pure rotation: the type walk accepts it, the check must not."""

    def evaluate(self, phi_N, theta_N, lon, lat, lon_pole):
        alpha, delta = super().evaluate(phi_N, theta_N, lon, lat, lon_pole)
        return alpha, delta + 1e-6 * np.reshape(90.0 - theta_N, np.shape(delta))


def test_self_check_catches_a_subclass_that_is_not_a_rotation():
    shape = (32, 48)
    detector, world = _frames()
    scale = 0.05 / 3600
    tr = (
        (models.Shift(-20.0) & models.Shift(-15.0))
        | (models.Scale(scale) & models.Scale(scale))
        | (models.Pix2Sky_TAN())
        | _SkewedRotation(30.0, 40.0, 180.0)
    )
    wcs_in = gwcs_wcs.WCS([(detector, tr), (world, None)])
    wcs_out = _output_wcs(_simple_in(), 30.0, 40.0, 0.0)
    plan = fp.plan_fast_pixmap(wcs_in, wcs_out)
    assert plan is not None  # recognised by type ...
    fast = fp.fast_pixmap(plan, shape)
    ref = calc_pixmap(wcs_in, wcs_out, shape)
    assert np.nanmax(np.abs(fast - ref)) > 1e-6  # ... but wrong
    got = compute_pixmap(wcs_in, wcs_out, shape, fast=True)
    assert np.array_equal(got, ref, equal_nan=True)  # the check fell back to the full evaluation


def test_check_function_with_a_perturbed_matrix():
    shape = (40, 50)
    wcs_in = make_detector_wcs(30.0, 40.0, shape=shape)
    wcs_out = _output_wcs(wcs_in, 30.0, 40.0, 0.0)
    plan = fp.plan_fast_pixmap(wcs_in, wcs_out)
    y, x = fp.sample_pixels(shape)
    ref = calc_pixmap(wcs_in, wcs_out, shape)
    ref_xy = (ref[y, x, 0], ref[y, x, 1])
    good = fp.fast_pixmap(plan, shape)
    assert fp.check_against_reference(good, ref_xy, y, x) is not None
    shifted = plan.homography.copy()
    shifted[0] += 2e-7 * shifted[2]  # output x moved by 2e-7 pixel
    bad_plan = fp.FastPixmapPlan(source=plan.source, homography=shifted)
    bad = fp.fast_pixmap(bad_plan, shape)
    assert fp.check_against_reference(bad, ref_xy, y, x) is None
    # a NaN where the reference has a value is caught too
    holed = good.copy()
    holed[y[3], x[3], 0] = np.nan
    assert fp.check_against_reference(holed, ref_xy, y, x) is None


def test_samples_cover_corners_edges_and_bbox_edges():
    y, x = fp.sample_pixels((100, 70), ((10.3, 60.5), (-0.5, 80.2)))
    pts = set(zip(y.tolist(), x.tolist(), strict=True))
    assert {(0, 0), (0, 69), (99, 0), (99, 69)} <= pts
    assert {int(v) for v in x} >= {10, 11, 60, 61}
    assert {int(v) for v in y} >= {80, 81}


# --------------------------------------------------------------------------- bounding boxes
def test_nan_pattern_with_a_smaller_input_bounding_box():
    shape = (60, 80)
    wcs_in = make_detector_wcs(100.0, -20.0, roll_deg=33.0, shape=shape)
    wcs_out = _output_wcs(wcs_in, 100.0, -20.0, 40.0)
    wcs_in.bounding_box = ((7.5, 63.2), (-3.0, 41.0))
    out_bbox = wcs_out.bounding_box.bounding_box(order="F")
    ref = calc_pixmap(wcs_in, wcs_out, shape)
    got = compute_pixmap(wcs_in, wcs_out, shape, fast=True)
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    assert np.isnan(ref).any() and np.isfinite(ref).any()
    assert np.nanmax(np.abs(got - ref)) < TOL
    assert not np.array_equal(got, ref)  # the fast path was taken
    # both bounding boxes are as they were
    assert wcs_in.bounding_box.bounding_box(order="F") == ((7.5, 63.2), (-3.0, 41.0))
    assert wcs_out.bounding_box.bounding_box(order="F") == out_bbox


def test_switch_off_is_bit_identical_and_stepsize_uses_calc_pixmap():
    shape = (50, 60)
    wcs_in = make_detector_wcs(10.0, 5.0, roll_deg=12.0, shape=shape)
    wcs_out = _output_wcs(wcs_in, 10.0, 5.0, 15.0)
    ref = calc_pixmap(wcs_in, wcs_out, shape)
    assert np.array_equal(compute_pixmap(wcs_in, wcs_out, shape, fast=False), ref, equal_nan=True)
    sparse = calc_pixmap(wcs_in, wcs_out, shape, stepsize=10, order=1)
    assert np.array_equal(compute_pixmap(wcs_in, wcs_out, shape, stepsize=10, fast=True), sparse, equal_nan=True)


# --------------------------------------------------------------------------- end to end
def test_resample_fast_on_and_off(tmp_path):
    import dask

    from dask_resample import resample
    from dask_resample.testing.synthetic import write_dataset

    ds = write_dataset(tmp_path / "in", n_dithers=2, n_detectors=1, shape=(256, 256), fmt="jwst", seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on = resample(ds.asn_path, tmp_path / "on.zarr", scheduler="serial", fast_pixmap=True, progress=False)
        with dask.config.set({"resample.fast-pixmap": False}):
            off = resample(ds.asn_path, tmp_path / "off.zarr", scheduler="serial", progress=False)
    for name in ("data", "wht"):
        a, b = on[name].values, off[name].values
        assert np.array_equal(np.isnan(a), np.isnan(b))
        ok = np.isfinite(a)
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-6, atol=1e-6 * np.abs(b[ok]).max())
    assert np.array_equal(on["con"].values, off["con"].values)


def test_truncating_kernels_keep_the_reference_pixel_map(tmp_path_factory, tmp_path):
    """Kernels that truncate positions (point, gaussian, lanczos) use calc_pixmap's map: bit-identical either way."""
    import dask_resample
    from dask_resample.geometry.exposure_pixmap import FAST_PIXMAP_KERNELS
    from dask_resample.testing import synthetic

    assert set(FAST_PIXMAP_KERNELS) == {"square", "turbo"}
    ds = synthetic.write_dataset(
        tmp_path_factory.mktemp("k"), n_dithers=2, n_detectors=1, shape=(256, 256), seed=9, n_sources=20
    )
    for kernel in ("lanczos2", "point", "square"):
        runs = [
            dask_resample.resample(
                ds.asn_path, tmp_path / f"{kernel}{fast}.zarr", scheduler="serial", kernel=kernel, fast_pixmap=fast
            )["data"].values
            for fast in (False, True)
        ]
        if kernel == "square":  # the fast map: the same to float rounding
            both = np.isfinite(runs[0])
            assert np.array_equal(both, np.isfinite(runs[1]))
            assert np.max(np.abs(runs[0][both] - runs[1][both])) <= 1e-6 * np.max(np.abs(runs[0][both]))
        else:
            assert np.array_equal(runs[0], runs[1], equal_nan=True), kernel
