"""The compiled fast pixel map: head programs against astropy, the sky part, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.modeling import models
from gwcs import wcs as gwcs_wcs
from stcal.resample.utils import calc_pixmap

from dask_resample.geometry import pixmap as fp
from dask_resample.geometry.exposure_pixmap import _full_values, compute_pixmap
from dask_resample.geometry.pixmap_program import compile_head
from dask_resample.testing.synthetic import make_detector_wcs

from .test_pixmap import TOL, _fits_wcs, _frames, _jwst_wcs, _output_wcs, _simple_in, _tolerance

pc = pytest.importorskip("dask_resample.geometry.pixmap_compiled")  # needs numba

pytestmark = pytest.mark.filterwarnings("ignore")

#: Agreement required between the compiled and the numpy fast maps (output pixels).
SAME_MAP_PX = 1e-10


def _points(n=5000, seed=0, lo=-700.0, hi=2800.0):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(lo, hi, n), rng.uniform(lo, hi, n)
    x[:4] = [0.0, -0.0, 1023.5, 2047.0]
    y[:4] = [0.0, 5.0, -0.5, 2047.0]
    return x, y


def _head_values(model, x, y):
    program = compile_head([model])
    assert program is not None
    a, b = pc.evaluate_head(program, x, y)
    ra, rb = (np.asarray(v, float) for v in model(x, y))
    return (a, b), (ra, rb)


def _poly2d(degree, seed, **kwargs):
    rng = np.random.default_rng(seed)
    p = models.Polynomial2D(degree, **kwargs)
    p.parameters = rng.normal(0, 1, p.parameters.size) * 10.0 ** -rng.integers(0, 9, p.parameters.size)
    return p


# --------------------------------------------------------------------------- head programs
@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4, 5, 6, 9])
def test_polynomial2d_bit_identical(degree):
    """Degrees 1-6 take the unrolled per-pixel Horner evaluation, the others the step-wise one."""
    from dask_resample.geometry.pixmap_program import MAX_UNROLLED_DEGREE, V

    model = models.Mapping((0, 1, 0, 1)) | (_poly2d(degree, degree) & _poly2d(degree, degree + 100))
    variants = compile_head([model]).ops[:, V]
    assert list(variants) == [degree if 1 <= degree <= MAX_UNROLLED_DEGREE else 0] * 2
    (a, b), (ra, rb) = _head_values(model, *_points())
    assert np.array_equal(a, ra) and np.array_equal(b, rb)


def test_jwst_distortion_chain_bit_identical():
    """The structure of jwst's imaging distortion and velocity-aberration models."""
    sci2idl = _poly2d(5, 1, name="sci2idl_x") & _poly2d(5, 2, name="sci2idl_y")
    idl2v23 = (
        models.Mapping((0, 1, 0, 1)) | (_poly2d(1, 3) & _poly2d(1, 4)) | (models.Shift(86.1) & models.Shift(-493.2))
    )
    dva = (
        (models.Shift(-86.1) & models.Shift(493.2))
        | (models.Scale(1.00002) & models.Scale(1.00002))
        | (models.Shift(86.1) & models.Shift(-493.2))
    )
    model = (
        (models.Shift(-1023.5) & models.Shift(-1023.5))
        | models.Mapping((0, 1, 0, 1))
        | sci2idl
        | idl2v23
        | dva
        | (models.Scale(1 / 3600) & models.Multiply(1 / 3600))
    )
    (a, b), (ra, rb) = _head_values(model, *_points())
    assert np.array_equal(a, ra) and np.array_equal(b, rb)


def test_other_models_and_operators_bit_identical():
    p1 = models.Polynomial1D(4, c0=0.3, c1=1.1, c2=-2e-4, c3=3e-7, c4=-1e-10)
    p1_dom = models.Polynomial1D(3, c0=1.0, c1=0.5, c2=1e-3, c3=-1e-5, domain=(-10.0, 2000.0), window=(-1.0, 1.0))
    p2_dom = _poly2d(3, 7, x_domain=(0.0, 2047.0), y_domain=(-5.0, 3000.0))
    cases = [
        models.Identity(2),
        models.Mapping((1, 0)),
        models.Mapping((0, 1, 1))
        | (models.Identity(1) & (models.Shift(2.0) & models.Scale(3.0)))
        | models.Mapping((2, 0), n_inputs=3),
        p1 & p1_dom,
        models.Mapping((0, 1, 0, 1)) | (p2_dom & _poly2d(2, 8)),
        (models.Shift(1.5) & models.Scale(-2.0)) + (models.Scale(0.25) & models.Shift(-7.0)),
        (models.Shift(1.5) & models.Scale(-2.0)) - (models.Scale(0.25) & models.Shift(-7.0)),
        (models.Shift(1.5) & models.Scale(-2.0)) * (models.Scale(0.25) & models.Shift(-7.0)),
        (models.Shift(1.5) & models.Scale(-2.0)) / (models.Scale(0.25) & models.Shift(-7.0)),
        models.Mapping((0, 1, 0, 1)) | ((_poly2d(2, 9) + _poly2d(3, 10)) & (_poly2d(2, 11) * _poly2d(1, 12))),
    ]
    x, y = _points()
    for model in cases:
        (a, b), (ra, rb) = _head_values(model, x, y)
        assert np.array_equal(a, ra, equal_nan=True) and np.array_equal(b, rb, equal_nan=True), model


def test_affine_and_rotation_within_an_ulp():
    """astropy forms these with numpy.dot (BLAS): the one place where the last bit may differ.

    The bound is a few units in the last place of the largest term of the sum.
    """
    x, y = _points()
    for model in (
        models.AffineTransformation2D(matrix=[[-8.6e-6, 1.3e-9], [2.1e-9, 8.6e-6]], translation=[3e-4, -2e-4]),
        models.Rotation2D(33.3),
        (models.Shift(-5.0) & models.Shift(2.0)) | models.Rotation2D(-120.0),
    ):
        program = compile_head([model])
        m = program.coeffs[-6:]  # the affine operation's m00, m01, m10, m11, t0, t1
        xs, ys = pc.evaluate_head(compile_head([model.left]), x, y) if hasattr(model, "op") else (x, y)
        (a, b), (ra, rb) = _head_values(model, x, y)
        for got, ref, (mx, my, t) in ((a, ra, m[[0, 1, 4]]), (b, rb, m[[2, 3, 5]])):
            largest = np.maximum(np.maximum(np.abs(mx * xs), np.abs(my * ys)), abs(t))
            assert np.all(np.abs(got - ref) <= 4 * np.spacing(largest))


@pytest.mark.parametrize(
    "model",
    [
        models.Gaussian2D(),
        models.Tabular2D(lookup_table=np.ones((3, 3))),
        models.Shift([1.0, 2.0], n_models=2) & models.Shift([1.0, 2.0], n_models=2),
        models.Shift(1.0 * u.pix) & models.Shift(1.0 * u.pix),
        models.fix_inputs(models.Mapping((0, 1, 0)) | (models.Identity(2) & models.Shift(1.0)), {0: 1.0})
        & models.Identity(1),
    ],
    ids=["Gaussian2D", "Tabular2D", "model set", "units", "fix_inputs"],
)
def test_unknown_models_are_refused(model):
    assert compile_head([model]) is None


def test_a_subclass_is_refused():
    class MyShift(models.Shift):
        pass

    assert compile_head([MyShift(1.0) & models.Shift(1.0)]) is None
    assert compile_head([models.Shift(1.0) & models.Shift(1.0)]) is not None


# --------------------------------------------------------------------------- maps
def _maps(wcs_in, wcs_out, shape):
    plan = fp.plan_fast_pixmap(wcs_in, wcs_out)
    assert plan is not None and plan.source.program is not None
    compiled = fp.fast_pixmap(plan, shape)
    with fp.compiled_head(False):
        numpy_map = fp.fast_pixmap(plan, shape)
    assert np.array_equal(np.isnan(compiled), np.isnan(numpy_map))
    return plan, compiled, numpy_map


@pytest.mark.parametrize(("ra", "dec", "roll"), [(10.0, 20.0, 30.0), (359.9995, 0.3, 100.0), (0.0, 89.95, 300.0)])
def test_synthetic_compiled_equals_numpy_and_calc_pixmap(ra, dec, roll):
    shape = (160, 200)
    wcs_in = make_detector_wcs(ra, dec, roll_deg=roll, shape=shape, offset_pixels=(40.0, -30.0))
    wcs_out = _output_wcs(
        make_detector_wcs(ra, dec, roll_deg=roll + 7.0, shape=shape), ra, dec, roll + 11.0, extra=(wcs_in,)
    )
    _, compiled, numpy_map = _maps(wcs_in, wcs_out, shape)
    assert np.nanmax(np.abs(compiled - numpy_map)) < SAME_MAP_PX
    assert np.nanmax(np.abs(compiled - calc_pixmap(wcs_in, wcs_out, shape))) < _tolerance(ra, dec)


@pytest.mark.parametrize(("ra", "dec", "roll"), [(53.1, -27.8, 45.0), (359.9997, -89.9, 5.0)])
def test_jwst_v23tosky_compiled_equals_numpy_and_calc_pixmap(ra, dec, roll):
    shape = (96, 128)
    wcs_in = _jwst_wcs(ra, dec, roll, shape)
    wcs_out = _output_wcs(make_detector_wcs(ra, dec, roll_deg=roll, shape=shape), ra, dec, roll + 3.0, extra=(wcs_in,))
    plan, compiled, numpy_map = _maps(wcs_in, wcs_out, shape)
    assert plan.source.kind == "lonlat"
    assert np.nanmax(np.abs(compiled - numpy_map)) < SAME_MAP_PX
    assert np.nanmax(np.abs(compiled - calc_pixmap(wcs_in, wcs_out, shape))) < _tolerance(ra, dec)


@pytest.mark.parametrize(("ra", "dec", "roll"), [(150.1, 2.2, 60.0), (359.9998, 89.9, 200.0)])
def test_fits_tan_without_distortion_compiled_equals_numpy_and_calc_pixmap(ra, dec, roll):
    """A plain FITS TAN input (no SIP): its head is translated, bit-identical to astropy's on the pixels."""
    shape = (96, 128)
    wcs_in = _fits_wcs(ra, dec, roll, shape, sip=False)
    wcs_out = _output_wcs(make_detector_wcs(ra, dec, roll_deg=roll, shape=shape), ra, dec, roll - 20.0)
    plan, compiled, numpy_map = _maps(wcs_in, wcs_out, shape)
    assert plan.source.kind == "tan"
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    compiled_head = pc.evaluate_head(plan.source.program, x, y)
    numpy_head = plan.source.head(x, y)
    assert all(np.array_equal(c.reshape(shape), n) for c, n in zip(compiled_head, numpy_head, strict=True))
    assert np.nanmax(np.abs(compiled - numpy_map)) < SAME_MAP_PX
    assert np.nanmax(np.abs(compiled - calc_pixmap(wcs_in, wcs_out, shape))) < _tolerance(ra, dec)


def test_fits_tan_sip_keeps_the_numpy_head():
    """pix2foc of a TAN-SIP input is evaluated by astropy: no program, the numpy path runs."""
    shape = (96, 128)
    wcs_in = _fits_wcs(150.1, 2.2, 60.0, shape, sip=True)
    src = fp.recognise_input(wcs_in)
    assert src is not None and src.kind == "tan" and src.program is None


def _plain_tan(pv=()):
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [10.0, 20.0]
    w.wcs.crpix = [50.5, 49.25]
    w.wcs.cdelt = [-1e-4, 1e-4]
    if pv:
        w.wcs.set_pv(list(pv))
    w.wcs.set()
    return w


def test_fits_tan_with_pv_terms_or_lookup_tables_keeps_the_numpy_head():
    """PVi_m terms (applied by wcslib's projection) and CPDIS tables (by pix2foc) are not translated."""
    from astropy.wcs import DistortionLookupTable

    from dask_resample.geometry.wcs_adapter import FitsImagingWCS

    assert fp.recognise_input(FitsImagingWCS(_plain_tan(), (100, 100))).program is not None
    with_pv = _plain_tan(pv=[(2, 1, 1e-3)])
    assert fp.recognise_input(FitsImagingWCS(with_pv, (100, 100))).program is None
    table = _plain_tan()
    table.cpdis1 = DistortionLookupTable(np.full((10, 10), 0.5, np.float32), (5, 5), (50, 50), (10, 10))
    assert fp.recognise_input(FitsImagingWCS(table, (100, 100))).program is None


def test_a_pickled_fits_input_keeps_its_lookup_table_distortion():
    """A FITS WCS sent to a worker keeps SIP and CPDIS (a header alone would drop the tables)."""
    import pickle

    from astropy.wcs import DistortionLookupTable

    from dask_resample.geometry.wcs_adapter import FitsImagingWCS

    w = _plain_tan()
    for axis in (1, 2):
        setattr(
            w, f"cpdis{axis}", DistortionLookupTable(np.full((10, 10), 0.5, np.float32), (5, 5), (50, 50), (10, 10))
        )
    fw = FitsImagingWCS(w, (100, 100))
    back = pickle.loads(pickle.dumps(fw))
    x, y = np.array([0.0, 10.0, 99.0]), np.array([0.0, 40.0, 99.0])
    assert back.fits_wcs.cpdis1 is not None and back.fits_wcs.cpdis2 is not None
    assert all(np.array_equal(a, b) for a, b in zip(back(x, y), fw(x, y), strict=True))
    assert back.array_shape == fw.array_shape and back.bounding_box is None


def test_lonlat_beyond_the_small_angle_uses_libm():
    """A V2/V3-like head 20 degrees off axis: the chunks call libm's sin and cos."""
    from gwcs.geometry import CartesianToSpherical, SphericalToCartesian

    ra, dec, shape = 40.0, -10.0, (64, 80)
    scale = 0.05 / 3600
    head = (
        (models.Shift(-40.0) & models.Shift(-32.0))
        | (models.Scale(scale) & models.Scale(scale))
        | (models.Shift(20.0) & models.Shift(-3.0))
    )
    angles = [20.0, -3.0, 15.0, dec, -ra]
    tail = (
        SphericalToCartesian(wrap_lon_at=180)
        | models.RotationSequence3D(angles, "zyxyz")
        | CartesianToSpherical(wrap_lon_at=360)
    )
    detector, world = _frames()
    wcs_in = gwcs_wcs.WCS([(detector, head | tail), (world, None)])
    wcs_in.bounding_box = ((-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5))
    assert fp.recognise_input(wcs_in).kind == "lonlat"
    wcs_out = _output_wcs(_simple_in(ra=ra, dec=dec, shape=shape), ra, dec, 0.0, extra=(wcs_in,))
    _, compiled, numpy_map = _maps(wcs_in, wcs_out, shape)
    assert np.nanmax(np.abs(compiled - numpy_map)) < SAME_MAP_PX
    assert np.nanmax(np.abs(compiled - calc_pixmap(wcs_in, wcs_out, shape))) < TOL


def test_sincos_small_within_an_ulp_of_the_exact_values():
    numba = pytest.importorskip("numba")

    @numba.njit
    def sincos(x, s, c):
        for i in range(x.size):
            s[i], c[i] = pc._sincos_small(x[i])

    x = np.random.default_rng(1).uniform(-pc.SMALL_ANGLE, pc.SMALL_ANGLE, 200_000)
    x[:4] = [0.0, pc.SMALL_ANGLE, -pc.SMALL_ANGLE, 1e-300]
    s, c = np.empty_like(x), np.empty_like(x)
    sincos(x, s, c)
    exact = x.astype(np.longdouble)
    assert np.all(np.abs(s - np.sin(exact)) <= 0.6 * np.spacing(np.abs(s)))
    assert np.all(np.abs(c - np.cos(exact)) <= 0.6 * np.spacing(np.abs(c)))


def test_sin_input_and_bounding_box():
    shape = (60, 80)
    wcs_in = make_detector_wcs(100.0, -20.0, roll_deg=33.0, shape=shape)
    wcs_out = _output_wcs(wcs_in, 100.0, -20.0, 40.0)
    wcs_in.bounding_box = ((7.5, 63.2), (-3.0, 41.0))
    _, compiled, numpy_map = _maps(wcs_in, wcs_out, shape)
    assert np.isnan(compiled[:, :8]).all() and np.isnan(compiled[42:]).all() and np.isnan(compiled[:, 64:]).all()
    assert np.isfinite(compiled[:42, 8:64]).all()
    assert np.nanmax(np.abs(compiled - numpy_map)) < SAME_MAP_PX


@pytest.mark.parametrize(
    ("lo", "hi", "n", "expected"),
    [
        (-0.5, 9.5, 10, (0, 9)),
        (2.0, 7.0, 10, (2, 7)),
        (2.1, 6.9, 10, (3, 6)),
        (-np.inf, np.inf, 10, (0, 9)),
        (np.nan, 4.5, 10, (0, 4)),
        (3.5, np.nan, 10, (4, 9)),
        (20.0, 30.0, 10, (0, -1)),
        (-5.0, -1.0, 10, (0, -1)),
        (np.inf, np.inf, 10, (0, -1)),
        (5.5, 5.6, 10, (0, -1)),
    ],
)
def test_bounding_box_columns(lo, hi, n, expected):
    """Integers v of [0, n) kept by astropy's rule (outside: v < lo or v > hi)."""
    assert tuple(pc._inside(lo, hi, n)) == expected
    v = np.arange(n, dtype=float)
    kept = v[~((v < lo) | (v > hi))]
    assert (tuple(kept[[0, -1]].astype(int)) if kept.size else (0, -1)) == expected


def test_far_hemisphere_gives_none_in_both_evaluations():
    shape = (32, 48)
    wcs_in = _simple_in(ra=30.0, dec=40.0, shape=shape)
    far = _simple_in(ra=210.0, dec=-40.0, shape=shape)
    wcs_out = _output_wcs(far, 210.0, -40.0, 0.0)
    plan = fp.plan_fast_pixmap(wcs_in, wcs_out)
    assert plan is not None and plan.source.program is not None
    assert fp.fast_pixmap(plan, shape) is None
    with fp.compiled_head(False):
        assert fp.fast_pixmap(plan, shape) is None


def test_unknown_head_keeps_the_numpy_path():
    """A head model the translation does not know: recognised, no program, the numpy evaluation."""
    shape = (32, 48)
    detector, world = _frames()
    scale = 0.05 / 3600
    table = models.Tabular1D(
        points=np.arange(100.0) - 50, lookup_table=(np.arange(100.0) - 50) * scale, bounds_error=False, fill_value=None
    )
    tr = (
        (models.Shift(-20.0) & models.Shift(-15.0))
        | (table & models.Scale(scale))
        | models.Pix2Sky_TAN()
        | models.RotateNative2Celestial(30.0, 40.0, 180.0)
    )
    wcs_in = gwcs_wcs.WCS([(detector, tr), (world, None)])
    source = fp.recognise_input(wcs_in)
    assert source is not None and source.program is None
    wcs_out = _output_wcs(_simple_in(shape=shape), 30.0, 40.0, 0.0)
    got = compute_pixmap(wcs_in, wcs_out, shape, fast=True)
    with fp.compiled_head(False):
        assert np.array_equal(got, compute_pixmap(wcs_in, wcs_out, shape, fast=True), equal_nan=True)


def test_without_numba_the_numpy_path_runs(monkeypatch):
    shape = (40, 50)
    wcs_in = make_detector_wcs(30.0, 40.0, shape=shape)
    wcs_out = _output_wcs(wcs_in, 30.0, 40.0, 0.0)
    plan = fp.plan_fast_pixmap(wcs_in, wcs_out)
    with fp.compiled_head(False):
        numpy_map = fp.fast_pixmap(plan, shape)
    monkeypatch.setattr(fp, "compiled_available", lambda: False)
    assert np.array_equal(fp.fast_pixmap(plan, shape), numpy_map)


def test_one_compiled_specialisation_serves_every_program():
    for shape, wcs_in in (
        ((30, 40), make_detector_wcs(10.0, 5.0, shape=(30, 40))),
        ((20, 24), _jwst_wcs(10.0, 5.0, 0.0, (20, 24))),
    ):
        wcs_out = _output_wcs(make_detector_wcs(10.0, 5.0, shape=shape), 10.0, 5.0, 0.0, extra=(wcs_in,))
        assert fp.fast_pixmap(fp.plan_fast_pixmap(wcs_in, wcs_out), shape) is not None
    assert len(pc._fast_map.signatures) == 1


# --------------------------------------------------------------------------- SIAF inputs
@pytest.fixture(scope="module")
def siaf_inputs():
    pytest.importorskip("jwst")
    pytest.importorskip("pysiaf")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from bench_pixmap import siaf_input
    finally:
        sys.path.pop(0)
    return {name: siaf_input(name) for name in ("nircam_sw", "miri")}


@pytest.mark.parametrize("instrument", ["nircam_sw", "miri"])
def test_siaf_head_bit_identical_and_map_within_tolerance(instrument, siaf_inputs):
    """The SIAF (jwst assign_wcs) heads to the last bit; the maps against the full evaluation on samples."""
    wcs_in, shape, info = siaf_inputs[instrument]
    from stcal.alignment.util import wcs_from_sregions

    wcs_out = wcs_from_sregions([wcs_in.footprint()], wcs_in, info)
    plan = fp.plan_fast_pixmap(wcs_in, wcs_out)
    assert plan is not None and plan.source.program is not None and plan.source.kind == "lonlat"
    x, y = _points(20000, seed=3, lo=-0.5, hi=max(shape) - 0.5)
    a, b = pc.evaluate_head(plan.source.program, x, y)
    ra, rb = plan.source.head(x, y)
    assert np.array_equal(a, ra) and np.array_equal(b, rb)
    # the whole frame (MIRI: its bounding box leaves the Lyot coronagraph and reference columns out)
    compiled = fp.fast_pixmap(plan, shape)
    with fp.compiled_head(False):
        numpy_map = fp.fast_pixmap(plan, shape)
    assert np.array_equal(np.isnan(compiled), np.isnan(numpy_map))
    assert np.nanmax(np.abs(compiled - numpy_map)) < SAME_MAP_PX
    if instrument == "miri":
        assert np.isnan(compiled[:, :358]).all() and np.isfinite(compiled[:, 400:1000]).all()
    rng = np.random.default_rng(4)
    ys, xs = rng.integers(0, shape[0], 3000), rng.integers(0, shape[1], 3000)
    ref = np.stack(_full_values(wcs_in, wcs_out, xs.astype(float), ys.astype(float)), axis=-1)
    assert np.array_equal(np.isnan(ref), np.isnan(compiled[ys, xs]))
    assert np.nanmax(np.abs(compiled[ys, xs] - ref)) < TOL
