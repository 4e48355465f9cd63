"""The fused kernels (square, turbo, lanczos2, lanczos3) against drizzle's C ``Drizzle`` and stcal's
variance sums, on the same pixel map.

Each case drizzles the same inputs with ``drizzle.resample.Drizzle`` (data, then one
fresh ``Drizzle`` per variance, as ``stcal.resample.Resample`` does, whose own
``resample_variance_arrays`` accumulates the variance sums) and with
:class:`dask_resample.drizzle.fused_kernel.FusedDrizzle` (one pass per input). Every
accumulated array must agree to 1e-6 relative, with identical context, NaN
pattern, coverage (weight > 0) and drizzle's nmiss/nskip counts.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from drizzle.resample import Drizzle  # noqa: E402 - after the numba skip
from stcal.resample import Resample  # noqa: E402 - after the numba skip

from dask_resample.drizzle.fused_kernel import FusedDrizzle, drizzle_once  # noqa: E402 - after the numba skip

pytestmark = pytest.mark.filterwarnings("ignore")

#: Relative agreement required with drizzle's C and stcal.
RTOL = 1e-6

VARIANCES = ("var_rnoise", "var_flat", "var_poisson")

#: The kernels every case runs (lanczos2 differs from lanczos3 only in its table and reach:
#: its own cases below, fewer compiled specialisations).
KERNELS = ("square", "turbo", "lanczos3")


# --------------------------------------------------------------------------- inputs


def affine_map(
    shape_yx: tuple[int, int],
    *,
    angle_deg: float = 0.0,
    scale: float = 1.0,
    shift_xy: tuple[float, float] = (0.0, 0.0),
    distortion: float = 0.0,
) -> np.ndarray:
    """Pixel map ``(ny, nx, 2)`` of a rotation, scale, shift and quadratic distortion about the centre."""
    ny, nx = shape_yx
    y, x = np.indices((ny, nx), dtype=np.float64)
    u = x - (nx - 1) / 2.0
    v = y - (ny - 1) / 2.0
    u, v = u + distortion * (u * u - v * v), v + distortion * (2.0 * u * v)
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    x_out = scale * (c * u - s * v) + shift_xy[0]
    y_out = scale * (s * u + c * v) + shift_xy[1]
    return np.dstack([x_out, y_out])


def make_input(shape_yx: tuple[int, int], seed: int, *, nan_data: bool = True, flagged: bool = True) -> dict[str, Any]:
    """Data, weights (0 where flagged), DQ and three variances, with NaN and bad pixels."""
    rng = np.random.default_rng(seed)
    ny, nx = shape_yx
    data = (rng.normal(1.0, 0.3, (ny, nx)) + 5.0 * (rng.random((ny, nx)) > 0.995)).astype(np.float32)
    weight = rng.uniform(0.5, 2.0, (ny, nx)).astype(np.float32)
    dq = np.zeros((ny, nx), np.uint32)
    if flagged:
        bad = rng.random((ny, nx)) < 0.03
        weight[bad] = 0.0
        dq[bad] = 1 | (1 << int(rng.integers(2, 20)))
    if nan_data:
        data[rng.random((ny, nx)) < 0.01] = np.nan  # NaN with a weight: drizzle spreads it
        both = rng.random((ny, nx)) < 0.01
        data[both] = np.nan
        weight[both] = 0.0
    rn = rng.uniform(0.5, 1.5, (ny, nx)).astype(np.float32)
    flat = rng.uniform(0.0, 0.2, (ny, nx)).astype(np.float32)
    poisson = np.abs(data).astype(np.float32) * 0.1
    rn[rng.random((ny, nx)) < 0.005] = 0.0
    flat[rng.random((ny, nx)) < 0.005] = np.nan
    poisson[rng.random((ny, nx)) < 0.005] = -0.1  # sqrt gives NaN
    return {
        "data": data,
        "weight": weight,
        "dq": dq,
        "var_rnoise": rn,
        "var_flat": flat,
        "var_poisson": poisson,
        "exposure_time": 100.0 + seed,
        "measurement_time": 90.0 + seed,
    }


# --------------------------------------------------------------------------- the two implementations


def reference(
    kernel: str,
    out_shape: tuple[int, int],
    inputs: Sequence[dict[str, Any]],
    add_kwargs: Sequence[dict[str, Any]],
    *,
    begin_ctx_id: int = 0,
    weight_type: str = "ivm",
    variances: bool = True,
    dq: bool = True,
    fillval: Any = None,
) -> dict[str, Any]:
    """drizzle's C for the data (one ``Drizzle``), stcal's own code for the variances."""
    driz = Drizzle(kernel=kernel, fillval=fillval, out_shape=out_shape, begin_ctx_id=begin_ctx_id)
    err = Drizzle(kernel=kernel, fillval=0, out_shape=out_shape, disable_ctx=True)
    res = object.__new__(Resample)  # only the variance machinery of stcal's Resample
    res.kernel = kernel
    res.weight_type = weight_type
    res._output_array_shape = out_shape
    res.init_variance_arrays()
    counts = []
    for model, kw in zip(inputs, add_kwargs, strict=True):
        kw = dict(kw)
        res.pixfrac = kw.get("pixfrac", 1.0)
        counts.append(
            driz.add_image(
                model["data"], model["exposure_time"], weight_map=model["weight"], dq=model["dq"] if dq else None, **kw
            )
        )
        err.add_image(model["data"] * 0.5, model["exposure_time"], weight_map=model["weight"], **kw)
        if variances:
            res.resample_variance_arrays(
                model=model,
                pixmap=kw["pixmap"],
                pixel_scale_ratio=kw.get("pixel_scale_ratio", 1.0),
                iscale=kw.get("iscale", 1.0),
                weight_map=model["weight"],
                xmin=kw.get("xmin"),
                xmax=kw.get("xmax"),
                ymin=kw.get("ymin"),
                ymax=kw.get("ymax"),
            )
    out = {
        "img": driz.out_img,
        "wht": driz.out_wht,
        "ctx": driz.out_ctx,
        "dq": driz.out_dq,
        "err": err.out_img,
        "counts": counts,
    }
    if variances:
        for name in VARIANCES:
            out[f"wsum_{name}"] = res._variance_info[name]["wsum"].copy()
            out[f"wt_{name}"] = res._variance_info[name]["wt"].copy()
        res._pixel_scale_ratio = 0.8
        res._output_wcs = types.SimpleNamespace(output_frame=types.SimpleNamespace(axes_type=("SPATIAL", "SPATIAL")))
        final: dict[str, Any] = {}
        res.finalize_resample_variance(final)
        for name in VARIANCES:
            out[f"var_{name}"] = final[name]
    return out


def fused(
    kernel: str,
    out_shape: tuple[int, int],
    inputs: Sequence[dict[str, Any]],
    add_kwargs: Sequence[dict[str, Any]],
    *,
    begin_ctx_id: int = 0,
    weight_type: str = "ivm",
    variances: bool = True,
    dq: bool = True,
    fillval: Any = None,
) -> dict[str, Any]:
    """The same inputs through :class:`FusedDrizzle`, one pass each."""
    fd = FusedDrizzle(
        out_shape,
        kernel=kernel,
        fillval=fillval,
        begin_ctx_id=begin_ctx_id,
        plane_names=("err",),
        plane_fillval=0,
        variance_names=VARIANCES if variances else (),
        variance_weight=weight_type,
    )
    counts = []
    for model, kw in zip(inputs, add_kwargs, strict=True):
        var = {n: model[n] for n in VARIANCES} if variances else None
        tmeasure = model.get("measurement_time") or model["exposure_time"]
        counts.append(
            fd.add_image(
                model["data"],
                model["exposure_time"],
                weight_map=model["weight"],
                dq=model["dq"] if dq else None,
                planes={"err": model["data"] * 0.5},
                variances=var,
                tmeasure=tmeasure,
                **kw,
            )
        )
    out = {
        "img": fd.out_img,
        "wht": fd.out_wht,
        "ctx": fd.out_ctx,
        "dq": fd.out_dq,
        "err": fd.out_planes["err"],
        "counts": counts,
    }
    if variances:
        for k, name in enumerate(VARIANCES):
            out[f"wsum_{name}"] = fd.var_wsum[k]
            out[f"wt_{name}"] = fd.var_wt[k]
        for name, v in fd.variances(0.8).items():
            out[f"var_{name}"] = v
    return out


def compare(ref: dict[str, Any], got: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Assert agreement; return per array (max relative difference, fraction bit-identical)."""
    stats = {}
    assert got["counts"] == ref["counts"], "nmiss/nskip differ"
    np.testing.assert_array_equal(got["wht"] > 0, ref["wht"] > 0, err_msg="coverage differs")
    if ref["ctx"] is not None:
        assert got["ctx"].shape == ref["ctx"].shape
        np.testing.assert_array_equal(got["ctx"], ref["ctx"], err_msg="context differs")
    if ref["dq"] is not None:
        np.testing.assert_array_equal(got["dq"], ref["dq"], err_msg="dq differs")
    for key, r in ref.items():
        if key in ("counts", "ctx", "dq"):
            continue
        g = got[key]
        assert g.dtype == r.dtype and g.shape == r.shape, key
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r), err_msg=f"{key}: NaN pattern differs")
        np.testing.assert_allclose(g, r, rtol=RTOL, atol=0, equal_nan=True, err_msg=key)
        fin = np.isfinite(r)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(g[fin].astype(np.float64) - r[fin]) / np.abs(r[fin].astype(np.float64))
        rel = rel[np.isfinite(rel)]
        same = np.array_equal(g, r, equal_nan=True)
        stats[key] = (float(rel.max()) if rel.size else 0.0, float(same))
    return stats


def check(kernel: str, out_shape: tuple[int, int], inputs: list, add_kwargs: list, **kw: Any) -> dict:
    """Run both, compare, and require that something landed."""
    ref = reference(kernel, out_shape, inputs, add_kwargs, **kw)
    got = fused(kernel, out_shape, inputs, add_kwargs, **kw)
    assert (ref["wht"] > 0).sum() > 50, "the case drizzles almost nothing"
    return compare(ref, got)


# --------------------------------------------------------------------------- cases


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("pixfrac", [1.0, 0.7, 0.3])
def test_rotated_scaled_distorted(kernel: str, pixfrac: float) -> None:
    """Rotated, scaled, distorted map; NaN and flagged inputs; every array, one input."""
    shape = (96, 112)
    pixmap = affine_map(shape, angle_deg=23.0, scale=1.25, shift_xy=(80.0, 75.0), distortion=2e-4)
    kw = {"pixmap": pixmap, "pixfrac": pixfrac, "pixel_scale_ratio": 1.25}
    check(kernel, (160, 170), [make_input(shape, 1)], [kw])


@pytest.mark.parametrize("kernel", KERNELS)
def test_bounding_box_smaller_than_image(kernel: str) -> None:
    """Only the input box ``xmin..xmax, ymin..ymax`` is drizzled."""
    shape = (80, 90)
    pixmap = affine_map(shape, angle_deg=-12.0, scale=0.9, shift_xy=(60.0, 55.0))
    kw = {"pixmap": pixmap, "pixfrac": 0.8, "pixel_scale_ratio": 0.9, "xmin": 7, "xmax": 70, "ymin": 11, "ymax": 61}
    check(kernel, (120, 120), [make_input(shape, 2)], [kw])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.5, 0.5), (-20.0, 30.5), (35.25, -25.0)])
def test_tile_edges_and_partly_off_frame(kernel: str, shift: tuple[float, float]) -> None:
    """Pixel edges and centres exactly on output pixel edges; inputs that partly leave the frame."""
    shape = (64, 64)
    y, x = np.indices(shape, dtype=np.float64)
    pixmap = np.dstack([x + shift[0], y + shift[1]])
    check(kernel, (64, 64), [make_input(shape, 3)], [{"pixmap": pixmap, "pixfrac": 1.0}])


@pytest.mark.parametrize("kernel", KERNELS)
def test_rotated_partly_off_frame(kernel: str) -> None:
    """A rotated input crossing two corners of a smaller output frame (the scanner clips it)."""
    shape = (100, 100)
    pixmap = affine_map(shape, angle_deg=37.0, scale=1.1, shift_xy=(20.0, 70.0), distortion=1e-4)
    check(kernel, (90, 80), [make_input(shape, 4)], [{"pixmap": pixmap, "pixfrac": 0.7, "pixel_scale_ratio": 1.1}])


@pytest.mark.parametrize("kernel", KERNELS)
def test_nan_pixel_map(kernel: str) -> None:
    """NaN in the map: whole edge rows/columns (shrunk away) and an inner patch (skipped pixels)."""
    shape = (72, 80)
    pixmap = affine_map(shape, angle_deg=8.0, scale=1.0, shift_xy=(60.0, 50.0))
    pixmap[:3] = np.nan
    pixmap[:, -4:] = np.nan
    pixmap[30:34, 20:27] = np.nan
    pixmap[50, 60, 1] = np.nan
    check(kernel, (110, 120), [make_input(shape, 5)], [{"pixmap": pixmap, "pixfrac": 0.9}])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("weight_type", ["ivm", "exptime"])
def test_sequence_context_planes(kernel: str, weight_type: str) -> None:
    """Five inputs in sequence, IDs 29..33: context bits 29-31 of plane 0 and 0-1 of plane 1."""
    inputs, kws = [], []
    for k in range(5):
        shape = (60 + 8 * k, 70)
        pixmap = affine_map(
            shape,
            angle_deg=10.0 * k - 15.0,
            scale=1.0 + 0.05 * k,
            shift_xy=(70.0 + 3.3 * k, 65.0 - 2.1 * k),
            distortion=1e-4 * k,
        )
        inputs.append(make_input(shape, 10 + k))
        kws.append({"pixmap": pixmap, "pixfrac": (1.0, 0.7, 0.5, 1.0, 0.8)[k], "pixel_scale_ratio": 1.0 + 0.05 * k})
    check(kernel, (140, 150), inputs, kws, begin_ctx_id=29, weight_type=weight_type)


@pytest.mark.parametrize("kernel", KERNELS)
def test_scales_and_units(kernel: str) -> None:
    """``in_units="counts"``, ``iscale``, ``wht_scale`` and a fill value, over two inputs."""
    shape = (64, 72)
    pm = affine_map(shape, angle_deg=5.0, scale=1.1, shift_xy=(50.0, 50.0))
    kw = {
        "pixmap": pm,
        "pixfrac": 0.6,
        "iscale": 0.77,
        "wht_scale": 2.5,
        "in_units": "counts",
        "pixel_scale_ratio": 1.1,
    }
    pm2 = affine_map(shape, angle_deg=-4.0, scale=1.1, shift_xy=(53.3, 47.9))
    kw2 = dict(kw, pixmap=pm2, iscale=1.3, in_units="cps")
    # stcal drizzles variances with in_units="cps" and wht_scale=1 whatever the data's: data and error only
    check(kernel, (100, 100), [make_input(shape, 20), make_input(shape, 21)], [kw, kw2], fillval=0.0, variances=False)


def test_turbo_estimated_pixel_scale_ratio() -> None:
    """``pixel_scale_ratio=None``: turbo estimates it from the map as drizzle does."""
    shape = (64, 64)
    pm = affine_map(shape, angle_deg=30.0, scale=1.37, shift_xy=(60.0, 60.0), distortion=3e-4)
    check("turbo", (120, 120), [make_input(shape, 22)], [{"pixmap": pm, "pixfrac": 0.8, "pixel_scale_ratio": None}])


@pytest.mark.parametrize("kernel", KERNELS)
def test_float64_inputs_and_no_weight_map(kernel: str) -> None:
    """float64 data and variances (read as drizzle converts them) and no weight map."""
    shape = (50, 60)
    model = make_input(shape, 23)
    for name in ("data", *VARIANCES):
        model[name] = model[name].astype(np.float64) * (1 + 1e-9)
    pm = affine_map(shape, angle_deg=-33.0, scale=0.8, shift_xy=(40.0, 40.0))
    ref = Drizzle(kernel=kernel, out_shape=(80, 80))
    ref.add_image(model["data"], 1.0, pm, pixfrac=0.8, pixel_scale_ratio=0.8)
    fd = FusedDrizzle((80, 80), kernel=kernel, variance_names=VARIANCES, accumulate_variances=False)
    fd.add_image(model["data"], 1.0, pm, pixfrac=0.8, pixel_scale_ratio=0.8, variances={n: model[n] for n in VARIANCES})
    np.testing.assert_array_equal(fd.out_img, ref.out_img)
    np.testing.assert_array_equal(fd.out_wht, ref.out_wht)
    np.testing.assert_array_equal(fd.out_ctx, ref.out_ctx)
    for name in VARIANCES:
        dv = Drizzle(kernel=kernel, fillval=np.nan, out_shape=(80, 80), disable_ctx=True)
        dv.add_image(np.sqrt(model[name]), 1.0, pm, pixfrac=0.8, pixel_scale_ratio=0.8)
        np.testing.assert_array_equal(fd.input_variance(name), dv.out_img**2)


@pytest.mark.parametrize("kernel", KERNELS)
def test_per_input_variances_as_kernel_py(kernel: str) -> None:
    """``accumulate_variances=False``: each input's ``(drizzled sqrt(var))**2``, as kernel.py keeps it."""
    shape = (70, 70)
    fd = FusedDrizzle((110, 110), kernel=kernel, fillval="0", variance_names=VARIANCES, accumulate_variances=False)
    for k in range(3):
        model = make_input(shape, 30 + k)
        pm = affine_map(shape, angle_deg=7.0 * k, scale=1.05, shift_xy=(52.0 + 4.5 * k, 55.0 - 3.0 * k))
        kw = {"pixfrac": 0.75, "pixel_scale_ratio": 1.05, "weight_map": model["weight"]}
        fd.add_image(model["data"], 1.0, pm, variances={n: model[n] for n in VARIANCES}, **kw)
        for name in VARIANCES:
            dv = Drizzle(kernel=kernel, fillval=np.nan, out_shape=(110, 110), disable_ctx=True)
            dv.add_image(np.sqrt(model[name]), 1.0, pm, **kw)
            ref = dv.out_img**2
            got = fd.input_variance(name)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
            np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0, equal_nan=True)


@pytest.mark.parametrize("kernel", KERNELS)
def test_synthetic_gwcs_map(kernel: str) -> None:
    """A pixel map from the package's synthetic distorted gwcs onto a rotated, coarser grid."""
    from dask_resample.geometry.exposure_pixmap import compute_pixmap
    from dask_resample.testing.synthetic import make_detector_wcs

    shape = (96, 96)
    wcs_in = make_detector_wcs(150.1, 2.2, roll_deg=17.0, shape=shape, distortion=1e-5, offset_pixels=(6.0, -4.0))
    wcs_out = make_detector_wcs(150.1, 2.2, roll_deg=0.0, shape=(90, 90), distortion=0.0, pixel_scale_arcsec=0.04)
    pixmap = compute_pixmap(wcs_in, wcs_out, shape)
    ratio = 0.04 / 0.031
    kws = [{"pixmap": pixmap, "pixfrac": pf, "pixel_scale_ratio": ratio, "iscale": 1.0} for pf in (1.0, 0.6)]
    check(kernel, (90, 90), [make_input(shape, 40), make_input(shape, 41)], kws)


@pytest.mark.parametrize("kernel", KERNELS)
def test_nothing_valid_raises_like_drizzle(kernel: str) -> None:
    """A map with fewer than two valid rows: the same ValueError as drizzle."""
    shape = (20, 20)
    pm = affine_map(shape, shift_xy=(10.0, 10.0))
    pm[1:] = np.nan
    data = np.ones(shape, np.float32)
    with pytest.raises(ValueError, match="valid pixels"):
        Drizzle(kernel=kernel, out_shape=(30, 30)).add_image(data, 1.0, pm)
    with pytest.raises(ValueError, match="valid pixels"):
        FusedDrizzle((30, 30), kernel=kernel).add_image(data, 1.0, pm)


@pytest.mark.parametrize("kernel", KERNELS)
def test_input_entirely_off_frame(kernel: str) -> None:
    """An input that misses the output: nothing changes, the same counts as drizzle."""
    shape = (30, 30)
    pm = affine_map(shape, shift_xy=(200.0, 15.0))
    data = np.ones(shape, np.float32)
    ref = Drizzle(kernel=kernel, out_shape=(40, 40))
    counts = ref.add_image(data, 1.0, pm)
    fd = FusedDrizzle((40, 40), kernel=kernel)
    assert fd.add_image(data, 1.0, pm) == counts
    np.testing.assert_array_equal(fd.out_wht, ref.out_wht)
    np.testing.assert_array_equal(np.isnan(fd.out_img), np.isnan(ref.out_img))


def test_low_level_call_reports_the_touched_box() -> None:
    """:func:`drizzle_once` returns the output box that received contributions."""
    shape = (20, 30)
    y, x = np.indices(shape, dtype=np.float64)
    pm = np.dstack([x + 10.0, y + 5.0])
    out = np.zeros((50, 60), np.float32)
    wht = np.zeros((50, 60), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nmiss, nskip, box = drizzle_once("square", pm, np.ones(shape, np.float32), out, wht)
    rows = np.flatnonzero(wht.any(axis=1))
    cols = np.flatnonzero(wht.any(axis=0))
    assert box == (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
    ref = Drizzle(kernel="square", out_shape=(50, 60))
    assert ref.add_image(np.ones(shape, np.float32), 1.0, pm) == (nmiss, nskip)
    np.testing.assert_array_equal(wht, ref.out_wht)


@pytest.mark.parametrize(
    "kw",
    [
        {"pixel_scale_ratio": 1.25},
        {"pixel_scale_ratio": 0.6, "xmin": 5, "xmax": 90, "ymin": 3, "ymax": 80},
        {"pixel_scale_ratio": None},
    ],
    ids=["psr1.25", "psr0.6-bbox", "psr-estimated"],
)
def test_lanczos2(kw: dict[str, Any]) -> None:
    """lanczos2: every array, a sequence of three inputs, scales above and below 1, an estimated ratio."""
    shape = (72, 96)
    inputs = [make_input(shape, 40 + k) for k in range(3)]
    maps = [
        affine_map(shape, angle_deg=17.0 + 9 * k, scale=1.2, shift_xy=(70.0 + 6 * k, 60.0 - 4 * k)) for k in range(3)
    ]
    check("lanczos2", (130, 140), inputs, [{"pixmap": m, **kw} for m in maps])


def test_lanczos_table_is_drizzles() -> None:
    """The table's size and values (``create_lanczos_lut``) at drizzle's 0.003 spacing."""
    from dask_resample.drizzle.fused_kernel.common import lanczos_lut

    for order in (2, 3):
        lut = lanczos_lut(order)
        assert len(lut) == int(np.ceil(order / 0.003)) + 1
        x = np.arange(1, len(lut)) * 0.003
        expected = np.where(x <= order, np.sinc(x) * np.sinc(x / order), 0.0)
        np.testing.assert_allclose(lut[1:], expected, atol=1e-15)
        assert lut[0] == 1.0


def test_other_kernels_are_refused() -> None:
    """The point and gaussian kernels stay with drizzle's C."""
    for kernel in ("point", "gaussian"):
        with pytest.raises(NotImplementedError):
            FusedDrizzle((10, 10), kernel=kernel)
