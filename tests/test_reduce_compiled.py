"""The compiled additions of the tile reduction equal numpy's bit for bit (numba installed, the ``fast`` extra)."""

from __future__ import annotations

import numpy as np
import pytest

from dask_resample.drizzle import reduce
from dask_resample.drizzle.kernel import VARIANCE_NAMES, TilePartial
from dask_resample.drizzle.reduce import AccumulatorSpec, TileAccumulator, accumulate
from dask_resample.params import ResampleParams

TILE = (40, 50)


def _awkward(rng: np.random.Generator, shape: tuple[int, int], dtype: type) -> np.ndarray:
    """Values over many magnitudes, with NaN, +-inf, zeros, negatives and subnormal-sized ones."""
    a = (rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 6, shape)).astype(dtype)
    pick = rng.random(shape)
    a[pick < 0.05] = np.nan
    a[(pick >= 0.05) & (pick < 0.07)] = np.inf
    a[(pick >= 0.07) & (pick < 0.09)] = -np.inf
    a[(pick >= 0.09) & (pick < 0.15)] = 0
    a[(pick >= 0.15) & (pick < 0.17)] = np.finfo(dtype).tiny / 4
    return a


def _partial(rng: np.random.Generator, index: int) -> TilePartial:
    ny, nx = int(rng.integers(1, TILE[0])), int(rng.integers(1, TILE[1]))
    y0, x0 = int(rng.integers(0, TILE[0] - ny + 1)), int(rng.integers(0, TILE[1] - nx + 1))
    shape = (ny, nx)
    wht = np.abs(_awkward(rng, shape, np.float32))
    return TilePartial(
        index=index,
        y0=y0,
        x0=x0,
        img=_awkward(rng, shape, np.float32),
        wht=wht,
        ctx=wht > 0,
        dq=rng.integers(0, 2**16, shape).astype(np.uint32),
        err=_awkward(rng, shape, np.float32),
        var={n: _awkward(rng, shape, np.float32) for n in VARIANCE_NAMES},
        tmeasure=float(rng.choice([0.0, 37.5, 1e-3])),
    )


def _reduced(params: ResampleParams, parts: list[TilePartial], compiled: object | None) -> TileAccumulator:
    spec = AccumulatorSpec(
        y0=0, x0=0, shape_yx=TILE, ctx_bit={p.index: p.index for p in parts}, params=params, pixel_scale_ratio=1.0
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reduce, "_compiled", lambda: compiled)
        acc = TileAccumulator.empty(spec)
        for p in parts:
            accumulate(acc, p)
    return acc


def _same_bits(a: np.ndarray, b: np.ndarray, name: str) -> None:
    """NaN at the same pixels, every other value the same bits (``-0.0`` too).

    A NaN made by an invalid operation (``inf * 0``) may carry either sign bit, as the
    processor and the compiled code make it; no step reads it.
    """
    assert a.dtype == b.dtype and a.shape == b.shape, name
    if a.dtype.kind != "f":
        np.testing.assert_array_equal(a, b, err_msg=name)
        return
    nan = np.isnan(a)
    np.testing.assert_array_equal(nan, np.isnan(b), err_msg=name)
    assert a[~nan].tobytes() == b[~nan].tobytes(), name


@pytest.mark.parametrize("weight_type", ["ivm", "exptime"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compiled_sums_equal_numpy_bit_for_bit(weight_type, seed):
    compiled = pytest.importorskip("dask_resample.drizzle.reduce_compiled", reason="numba (the fast extra)")
    rng = np.random.default_rng(seed)
    parts = [_partial(rng, i) for i in range(6)]
    params = ResampleParams(compute_err="driz_err", propagate_dq=True, weight_type=weight_type)
    a, b = _reduced(params, parts, compiled), _reduced(params, parts, None)
    for name in ("s_wd", "s_w", "s_err", "dq"):
        _same_bits(getattr(a, name), getattr(b, name), name)
    for n in VARIANCE_NAMES:
        _same_bits(a.var_s[n], b.var_s[n], n)
        _same_bits(a.var_w[n], b.var_w[n], n)
    assert np.count_nonzero(a.var_w["var_rnoise"]) > 0  # the variance branch was exercised
