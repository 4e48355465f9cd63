"""The pixel-map scans (drizzle.map_scan): compiled and numpy give numpy's own nan-reductions."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from dask_resample.drizzle import map_scan


@pytest.fixture(params=["compiled", "numpy"])
def scans(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """map_scan through numba (when installed) or through its numpy blocks."""
    if request.param == "compiled":
        pytest.importorskip("numba")  # the fast extra: installed by `make test`
    else:
        monkeypatch.setattr(map_scan, "_compiled", lambda: None)
        monkeypatch.setattr(map_scan, "BLOCK_ROWS", 7)  # blocks that cut the range unevenly
    return map_scan


def _pixmap(ny: int = 61, nx: int = 47, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    pm = np.stack([1.3 * xx + 0.2 * yy + 5.0, -0.1 * xx + 0.9 * yy - 3.0], axis=-1)
    pm += rng.normal(scale=0.05, size=pm.shape)
    pm[rng.random((ny, nx)) < 0.1] = np.nan  # unmapped pixels
    pm[3, 4, 0] = np.nan  # only x unmapped
    return pm


def _reference(pm: np.ndarray, rng: tuple[int, int, int, int], limits: np.ndarray):
    """The values by whole-range numpy, as input_crop computed them before map_scan."""
    xmin, xmax, ymin, ymax = rng
    sub = pm[ymin : ymax + 1, xmin : xmax + 1]
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        bounds = (np.nanmin(sub[..., 0]), np.nanmax(sub[..., 0]), np.nanmin(sub[..., 1]), np.nanmax(sub[..., 1]))
        steps = [np.nanmax(np.abs(np.diff(sub, axis=a))) for a in (0, 1) if sub.shape[a] > 1]
    found = []
    x, y = sub[..., 0], sub[..., 1]
    for lx0, lx1, ly0, ly1 in limits:
        with np.errstate(invalid="ignore"):
            hit = (x > lx0) & (x < lx1) & (y > ly0) & (y < ly1)
        rows, cols = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
        if rows.size == 0:
            found.append(None)
        else:
            found.append((ymin + rows[0], ymin + rows[-1], xmin + cols[0], xmin + cols[-1]))
    return bounds, float(np.nanmax(steps)), found


@pytest.mark.parametrize("rng", [(0, 46, 0, 60), (5, 30, 2, 50), (10, 10, 3, 40), (2, 40, 20, 20)])
def test_scans_equal_whole_range_numpy(scans, rng: tuple[int, int, int, int]) -> None:
    pm = _pixmap()
    limits = np.array(
        [(10.0, 30.5, 0.0, 20.0), (40.0, 60.0, 30.0, 45.0), (-50.0, -40.0, 0.0, 10.0), (0, 1e9, -1e9, 1e9)]
    )
    bounds, step, found = _reference(pm, rng, limits)
    assert scans.map_bounds(pm, rng) == tuple(float(v) for v in bounds)
    assert scans.map_step(pm, rng) == step
    got = scans.reaching_boxes(pm, rng, limits)
    for k, want in enumerate(found):
        if want is None:
            assert got[k, 1] < 0
        else:
            assert tuple(got[k]) == want


def test_unmapped_infinite_and_single_pixel_ranges(scans) -> None:
    pm = _pixmap()
    nan = np.full_like(pm, np.nan)
    assert scans.map_bounds(nan, (0, 46, 0, 60)) is None
    assert np.isnan(scans.map_step(nan, (0, 46, 0, 60)))
    assert (scans.reaching_boxes(nan, (0, 46, 0, 60), np.array([[-1e9, 1e9, -1e9, 1e9]]))[:, 1] < 0).all()
    inf = pm.copy()
    inf[30, 30, 1] = np.inf
    assert scans.map_bounds(inf, (0, 46, 0, 60)) is None  # a centre at infinity: no frame
    assert scans.map_step(inf, (0, 46, 0, 60)) == np.inf
    pm[7, 9] = (3.25, 4.5)
    assert scans.map_bounds(pm, (9, 9, 7, 7)) == (3.25, 3.25, 4.5, 4.5)
    assert scans.map_step(pm, (9, 9, 7, 7)) == 0.0


def test_memory_mapped_map(scans, tmp_path) -> None:
    pm = _pixmap(seed=3)
    np.save(tmp_path / "pm.npy", pm)
    mapped = np.load(tmp_path / "pm.npy", mmap_mode="r")
    rng = (1, 45, 1, 59)
    limits = np.array([(10.0, 30.5, 0.0, 20.0)])
    assert scans.map_bounds(mapped, rng) == scans.map_bounds(pm, rng)
    assert scans.map_step(mapped, rng) == scans.map_step(pm, rng)
    assert (scans.reaching_boxes(mapped, rng, limits) == scans.reaching_boxes(pm, rng, limits)).all()


def test_optional_module_is_none_where_its_import_fails() -> None:
    """A compiled module that cannot be imported is ``None`` (the callers use numpy), tried once."""
    from dask_resample.optional_module import OptionalModule

    missing = OptionalModule(".no_such_compiled_module", "dask_resample")
    assert missing.get() is None
    assert missing.get() is None
    present = OptionalModule(".optional_module", "dask_resample")
    assert present.get() is sys.modules["dask_resample.optional_module"]
