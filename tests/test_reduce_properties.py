"""Property tests of the reduction algebra (sums of partials, OR of bits)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dask_resample.drizzle.kernel import VARIANCE_NAMES, TilePartial
from dask_resample.drizzle.reduce import AccumulatorSpec, TileAccumulator, accumulate, finalize_tile, merge
from dask_resample.params import ResampleParams

SHAPE = (6, 7)
PARAMS = ResampleParams(compute_err="driz_err", propagate_dq=True, weight_type="exptime")  # unit weights: exact sums


def _spec(n_inputs: int) -> AccumulatorSpec:
    return AccumulatorSpec(
        y0=0, x0=0, shape_yx=SHAPE, ctx_bit={i: i for i in range(n_inputs)}, params=PARAMS, pixel_scale_ratio=1.0
    )


@st.composite
def partials(draw, index: int):
    y0 = draw(st.integers(0, SHAPE[0] - 1))
    x0 = draw(st.integers(0, SHAPE[1] - 1))
    ny = draw(st.integers(1, SHAPE[0] - y0))
    nx = draw(st.integers(1, SHAPE[1] - x0))
    # small integers (and halves) make float sums exact, so associativity is exact
    ints = st.integers(-8, 8).map(lambda v: v / 2)

    def arr(elements, dtype):
        return np.array(draw(st.lists(elements, min_size=ny * nx, max_size=ny * nx)), dtype).reshape(ny, nx)

    wht = np.abs(arr(ints, np.float32))
    img = np.where(wht != 0, arr(ints, np.float32), 0).astype(np.float32)
    var = {
        n: np.where(wht != 0, np.abs(arr(ints, np.float32)) + 0.5, np.nan).astype(np.float32) for n in VARIANCE_NAMES
    }
    return TilePartial(
        index=index,
        y0=y0,
        x0=x0,
        img=img,
        wht=wht,
        ctx=wht != 0,
        dq=arr(st.integers(0, 255), np.uint32),
        err=img.copy(),
        var=var,
        tmeasure=1.0,
    )


def _acc(parts: list, n: int) -> TileAccumulator:
    acc = TileAccumulator.empty(_spec(n))
    for p in parts:
        accumulate(acc, p)
    return acc


def _same(a: TileAccumulator, b: TileAccumulator) -> None:
    np.testing.assert_array_equal(a.s_wd, b.s_wd)
    np.testing.assert_array_equal(a.s_w, b.s_w)
    np.testing.assert_array_equal(a.s_err, b.s_err)
    np.testing.assert_array_equal(a.ctx, b.ctx)
    np.testing.assert_array_equal(a.dq, b.dq)
    for n in VARIANCE_NAMES:
        np.testing.assert_array_equal(a.var_s[n], b.var_s[n])
        np.testing.assert_array_equal(a.var_w[n], b.var_w[n])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_merge_is_associative(data):
    n = 3
    p = [data.draw(partials(i)) for i in range(n)]
    a, b, c = (_acc([p[i]], n) for i in range(n))
    _same(merge(merge(a, b), c), merge(a, merge(b, c)))
    # and equal to folding the three partials one after the other
    _same(merge(merge(a, b), c), _acc(p, n))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_empty_partial_is_neutral(data):
    n = 2
    p = [data.draw(partials(i)) for i in range(n)]
    acc = _acc(p, n)
    _same(merge(acc, TileAccumulator.empty(_spec(n))), acc)
    _same(accumulate(acc.copy(), None), acc)
    out = finalize_tile(acc)
    again = finalize_tile(merge(TileAccumulator.empty(_spec(n)), acc))
    for k in out:
        np.testing.assert_array_equal(out[k], again[k])


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_context_bits_record_contributors(data):
    n = 40  # two planes
    idx = sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=6)))
    parts = [data.draw(partials(i)) for i in idx]
    acc = _acc(parts, n)
    con = finalize_tile(acc)["con"]
    assert con.shape == (2, *SHAPE)
    for p in parts:
        bit = np.int32(np.uint32(1 << (p.index % 32)).view(np.int32))
        plane = con[p.index // 32, p.y0 : p.y0 + p.shape_yx[0], p.x0 : p.x0 + p.shape_yx[1]]
        np.testing.assert_array_equal((plane & bit) != 0, p.ctx)


def test_data_is_weighted_mean():
    """Two full-tile partials give (I1 W1 + I2 W2) / (W1 + W2), fill where W = 0."""
    w1 = np.full(SHAPE, 2.0, np.float32)
    w2 = np.full(SHAPE, 6.0, np.float32)
    w2[0, 0] = 0
    w1[0, 0] = 0
    i1 = np.full(SHAPE, 1.0, np.float32)
    i2 = np.full(SHAPE, 3.0, np.float32)
    i1[0, 0] = i2[0, 0] = 0
    var = {n: np.full(SHAPE, np.nan, np.float32) for n in VARIANCE_NAMES}
    p1 = TilePartial(0, 0, 0, i1, w1, w1 != 0, np.zeros(SHAPE, np.uint32), i1, var, 1.0)
    p2 = TilePartial(1, 0, 0, i2, w2, w2 != 0, np.zeros(SHAPE, np.uint32), i2, var, 1.0)
    out = finalize_tile(_acc([p1, p2], 2))
    assert np.isnan(out["data"][0, 0])
    np.testing.assert_allclose(out["data"][1:, 1:], 2.5)
    np.testing.assert_allclose(out["wht"][1:, 1:], 8.0)
    assert np.all(np.isnan(out["var_rnoise"]))
