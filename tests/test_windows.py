"""Large frames drizzled a block of tiles at a time (``drizzle.windows``): the same bits as the whole frame."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from dask_resample import GridSpec, plan_mosaic
from dask_resample.drizzle import windows
from dask_resample.drizzle.kernel import WINDOWS_PER_FRAME_LIMIT, DrizzleSpec, drizzle_exposure
from dask_resample.params import ResampleParams
from dask_resample.testing import synthetic

from .test_living_crop import _same_partial

TILE = (24, 24)
GRID = GridSpec(crval=(53.16, -27.78), pixel_scale=0.031, shape_yx=(384, 384))


def _spec(plan: Any) -> DrizzleSpec:
    """The drizzle spec a graph of ``plan`` gives its tasks (whole frames: no windows)."""
    return DrizzleSpec(
        out_wcs=plan.grid.wcs,
        shape_yx=plan.grid.shape_yx,
        tile_shape_yx=TILE,
        halo=plan.halo,
        params=plan.params,
        pixel_scale_ratio=plan.grid.pixel_scale_ratio,
    )


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> list[str]:
    """2 dithers x 2 detectors of 96 x 96 pixels (JWST files: gwcs, variances, DQ)."""
    ds = synthetic.write_dataset(
        tmp_path_factory.mktemp("windows"), n_dithers=2, n_detectors=2, shape=(96, 96), seed=5, n_sources=25
    )
    return [str(p) for p in ds.paths]


_PARAMS: dict[str, dict[str, Any]] = {
    "square": {"kernel": "square"},
    "square-pixfrac0.6-err-dq-ctx": {
        "kernel": "square",
        "pixfrac": 0.6,
        "compute_err": "driz_err",
        "propagate_dq": True,
    },
    "turbo-exptime": {"kernel": "turbo", "pixfrac": 0.8, "weight_type": "exptime"},
    "square-pixfrac0.9-stepsize4": {"kernel": "square", "pixfrac": 0.9, "pixmap_stepsize": 4},
    "square-exptime-image": {"kernel": "square", "compute_exptime": True, "good_bits": "~DO_NOT_USE"},
    "turbo-exptime-image": {"kernel": "turbo", "compute_exptime": True, "pixfrac": 0.7},
}


@pytest.mark.parametrize("case", sorted(_PARAMS))
@pytest.mark.parametrize("where", ["inside", "clipped", "finer"])
@pytest.mark.parametrize("window_pixels", [1, 24 * 24 * 4 * 4])
def test_windows_give_each_tile_the_bits_of_the_whole_frame(frames, case, where, window_pixels):
    """Every tile partial is bit-identical drizzled window by window or in one frame.

    ``inside``: a grid larger than the data; ``clipped``: the grid fitted to the inputs
    (its edges clip the frames); ``finer``: half the input pixel scale (the frame four
    times the input). Windows of one tile and of 2 x 2 tiles.
    """
    params = _PARAMS[case]
    grid: dict[str, Any] = {}
    if where == "inside":
        grid = {"wcs_pars": GRID.wcs_pars()}
    elif where == "finer":
        grid = {"wcs_pars": {"pixel_scale_ratio": 0.5}}
    plan = plan_mosaic(frames, tile_shape=TILE, **grid, **params)
    spec = _spec(plan)
    calls = []
    real = windows.drizzle_windows

    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["max_pixels"])
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("dask_resample.drizzle.kernel.drizzle_windows", recorded)
        for index in range(len(plan.refs)):
            ref = plan.refs[index]
            tiles = plan.exposure_tiles[index]
            whole = drizzle_exposure(ref, spec, tiles)
            assert any(p is not None for p in whole.values())
            for first in (frozenset(), frozenset({ref.index})):  # arrays read first, or the pixel map first
                split = drizzle_exposure(ref, replace(spec, window_pixels=window_pixels, map_first=first), tiles)
                assert sorted(split) == sorted(tiles)
                for key in tiles:
                    assert _same_partial(split[key], whole[key]), (ref.filename, key, params, first)
    assert calls == [window_pixels // WINDOWS_PER_FRAME_LIMIT] * 2 * len(plan.refs)


def test_windows_are_blocks_of_whole_tiles():
    """Windows are square blocks of tiles of at most the pixels asked (one tile at least), covering each tile once."""
    boxes = {
        (ty, tx): (0, 0, (slice(ty * 10, ty * 10 + 10), slice(tx * 10, tx * 10 + 10)))
        for ty in range(5)
        for tx in range(3)
    }
    for max_pixels, side in ((1, 1), (399, 1), (400, 2), (900, 3), (10**6, 5)):
        ws = windows.plan_windows(boxes, (10, 10), max_pixels)
        keys = [k for w in ws for k in w.keys]
        assert sorted(keys) == sorted(boxes) and len(keys) == len(boxes)
        for w in ws:
            assert {k[0] // side for k in w.keys} == {w.keys[0][0] // side}
            assert w.shape_yx[0] * w.shape_yx[1] <= max(max_pixels, 100) or side == 5
            assert (w.y0, w.x0) == (min(k[0] for k in w.keys) * 10, min(k[1] for k in w.keys) * 10)


def test_window_visits_hold_every_pixel_that_reaches_the_window():
    """The visited box of a window holds every input pixel whose centre maps within reach of it, and little more."""
    ny, nx = 300, 200
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    angle = np.deg2rad(30.0)
    pixmap = np.dstack([50 + xx * np.cos(angle) - yy * np.sin(angle), 20 + xx * np.sin(angle) + yy * np.cos(angle)])
    pixmap[:5] = np.nan
    ws = [
        windows.Window(0, 64, 0, 64, ((0, 0),)),
        windows.Window(128, 192, 64, 128, ((2, 1),)),
        windows.Window(900, 964, 0, 64, ((9, 0),)),
    ]
    params = ResampleParams(kernel="square")
    visits = windows.window_visits(pixmap, (0, nx - 1, 0, ny - 1), ws, (0, 0), params=params, pixel_scale_ratio=1.0)
    assert visits[2] is None
    reach = 1.0 * 1.0 + 2.0  # square: 1 input pixel at a step of 1 output pixel, plus 2
    x, y = pixmap[..., 0], pixmap[..., 1]
    for w, v in zip(ws[:2], visits[:2], strict=True):
        assert v is not None
        with np.errstate(invalid="ignore"):
            near = (
                (x > w.x0 - 0.5 - reach)
                & (x < w.x1 - 0.5 + reach)
                & (y > w.y0 - 0.5 - reach)
                & (y < w.y1 - 0.5 + reach)
            )
        rows, cols = np.flatnonzero(near.any(axis=1)), np.flatnonzero(near.any(axis=0))
        assert (v[0], v[1], v[2], v[3]) == (
            max(0, rows[0] - 2),
            min(ny - 1, rows[-1] + 2) + 1,
            max(0, cols[0] - 2),
            min(nx - 1, cols[-1] + 2) + 1,
        )


def _same_drizzles(paths: list[str], window_pixels: int, **plan_kwargs: Any) -> int:
    """Drizzle every input whole and in windows; assert the partials are identical; return how many were windowed."""
    plan = plan_mosaic(paths, tile_shape=TILE, **plan_kwargs)
    spec = _spec(plan)
    calls = []
    real = windows.drizzle_windows

    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("dask_resample.drizzle.kernel.drizzle_windows", recorded)
        for index, ref in enumerate(plan.refs):
            tiles = plan.exposure_tiles[index]
            whole = drizzle_exposure(ref, spec, tiles)
            for first in (frozenset(), frozenset({ref.index})):
                split = drizzle_exposure(ref, replace(spec, window_pixels=window_pixels, map_first=first), tiles)
                assert sorted(split) == sorted(whole)
                for key in tiles:
                    assert _same_partial(split[key], whole[key]), (ref.filename, key, first)
    return len(calls) // 2


@pytest.mark.parametrize("weight_type", ["ivm", "exptime", "ivm-sky"])
def test_roman_windows_give_the_bits_of_the_whole_frame(tmp_path, weight_type):
    """Roman WFI images (float16 variances, exposure-time image, romancal's defaults) on a finer grid."""
    pytest.importorskip("romancal")
    from dask_resample.roman import roman_step_defaults
    from dask_resample.testing import synthetic_roman

    ds = synthetic_roman.write_roman_dataset(
        tmp_path, n_exposures=2, detectors=(1, 2), shape=(40, 40), binning=102, dither_arcsec=30.0, seed=3
    )
    params = {**roman_step_defaults(), "weight_type": weight_type}
    n = _same_drizzles([str(p) for p in ds.paths], 24 * 24, wcs_pars={"pixel_scale_ratio": 0.5}, **params)
    assert n == len(ds.paths)


def test_plain_fits_windows_give_the_bits_of_the_whole_frame(tmp_path):
    """Plain FITS images with SCI/ERR/DQ/VAR_* extensions and a TAN-SIP WCS."""
    ds = synthetic.write_dataset(tmp_path, n_dithers=2, n_detectors=1, shape=(72, 80), seed=7, fmt="fits")
    n = _same_drizzles([str(p) for p in ds.paths], 1, compute_err="driz_err", propagate_dq=True)
    assert n == len(ds.paths)


def test_a_windowed_run_on_a_cluster_writes_the_same_mosaic(frames, client, tmp_path):
    """``resample.window-pixels`` on a LocalCluster: every array of the mosaic bit-identical to whole frames."""
    import dask

    from dask_resample import open_mosaic, resample

    kwargs = {"tile_shape": TILE, "client": client, "progress": False, "wcs_pars": {"pixel_scale_ratio": 0.5}}
    with dask.config.set({"resample.window-pixels": 0}):
        resample(frames, tmp_path / "whole.zarr", compute_err="driz_err", **kwargs)
    with dask.config.set({"resample.window-pixels": 24 * 24}):
        resample(frames, tmp_path / "windows.zarr", compute_err="driz_err", **kwargs)
    a, b = open_mosaic(tmp_path / "whole.zarr"), open_mosaic(tmp_path / "windows.zarr")
    assert sorted(a.data_vars) == sorted(b.data_vars)
    for name in a.data_vars:
        va, vb = a[name].values, b[name].values
        assert np.array_equal(va, vb, equal_nan=va.dtype.kind == "f"), name
    assert np.isfinite(a["data"].values).mean() > 0.3


def test_the_plan_names_the_exposures_whose_map_comes_first(frames):
    """``map_first``: the exposures whose planned footprint exceeds ``window-pixels`` (none when it is 0)."""
    from dask_resample.execution.graph import _large_frames

    plan = plan_mosaic(frames, tile_shape=TILE, wcs_pars={"pixel_scale_ratio": 0.5})
    indices = {r.index for r in plan.refs}
    assert _large_frames(plan, 1) == indices
    assert _large_frames(plan, 0) == frozenset()
    assert _large_frames(plan, 10**9) == frozenset()
    # a footprint of about 190 x 190 output pixels (96 x 96 inputs at half their scale)
    assert _large_frames(plan, 150 * 150) == indices
    assert _large_frames(plan, 260 * 260) == frozenset()
