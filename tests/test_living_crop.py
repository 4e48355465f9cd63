"""Updates of living mosaics: earlier inputs drizzled only where they land on the recomputed tiles, and
planned from the descriptions the mosaic keeps (a changed file is described again, never reused stale)."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dask_resample import GridSpec, living_output_wcs, open_mosaic, plan_mosaic, resample, update
from dask_resample.drizzle import kernel
from dask_resample.drizzle.kernel import DrizzleSpec, TilePartial, drizzle_exposure
from dask_resample.testing import synthetic

TILE = (32, 32)
GRID = GridSpec(crval=(53.16, -27.78), pixel_scale=0.031, shape_yx=(384, 384))


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> list[str]:
    """3 dithers x 2 detectors of 96 x 96 pixels (JWST files: gwcs, variances): three tiles across each."""
    ds = synthetic.write_dataset(
        tmp_path_factory.mktemp("crop6"),
        n_dithers=3,
        n_detectors=2,
        shape=(96, 96),
        seed=21,
        sky_level=0.25,
        n_sources=20,
    )
    return [str(p) for p in ds.paths]


def _same_partial(a: TilePartial | None, b: TilePartial | None) -> bool:
    if a is None or b is None:
        return a is b
    planes = ("img", "wht", "ctx", "dq", "err", "exptime")
    same = (a.index, a.y0, a.x0, a.tmeasure, sorted(a.var)) == (b.index, b.y0, b.x0, b.tmeasure, sorted(b.var))
    for name in planes:
        pa, pb = getattr(a, name), getattr(b, name)
        same = same and (
            (pa is None and pb is None)
            or (
                pa is not None
                and pb is not None
                and pa.dtype == pb.dtype
                and np.array_equal(pa, pb, equal_nan=pa.dtype.kind == "f")
            )
        )
    return same and all(np.array_equal(a.var[n], b.var[n], equal_nan=True) for n in a.var)


_CROP_PARAMS: dict[str, dict[str, Any]] = {
    "square": {"kernel": "square"},
    "square-pixfrac0.6-err-dq": {"kernel": "square", "pixfrac": 0.6, "compute_err": "driz_err", "propagate_dq": True},
    "turbo-pixfrac0.8": {"kernel": "turbo", "pixfrac": 0.8, "weight_type": "exptime"},
    "lanczos3": {"kernel": "lanczos3"},
    "gaussian-pixfrac0.7": {"kernel": "gaussian", "pixfrac": 0.7},
    "point": {"kernel": "point"},
    "square-stepsize4": {"kernel": "square", "pixmap_stepsize": 4},
}
# the fused kernel exists for square and turbo; the other kernels run drizzle's C either way
_CROP_CASES = [
    (name, fused)
    for name, params in _CROP_PARAMS.items()
    for fused in ((True, False) if params["kernel"] in ("square", "turbo") else (True,))
]


@pytest.mark.parametrize(
    ("case", "fused"), _CROP_CASES, ids=[f"{name}-{'fused' if fused else 'c'}" for name, fused in _CROP_CASES]
)
@pytest.mark.parametrize("where", ["inside", "clipped"])
def test_a_cropped_drizzle_gives_each_tile_the_bits_of_the_whole_input(wide, case, fused, where, monkeypatch):
    """Each requested tile's partial is bit-identical whether the input is cropped to those tiles or not.

    ``inside``: a grid larger than the data; ``clipped``: the grid fitted to the inputs, whose
    edges clip the frames (the crop is then refused near those edges).
    """
    params = _CROP_PARAMS[case]
    grid = {"wcs_pars": GRID.wcs_pars()} if where == "inside" else {}
    plan = plan_mosaic(wide, tile_shape=TILE, **grid, **params)
    spec = DrizzleSpec(
        out_wcs=plan.grid.wcs,
        shape_yx=plan.grid.shape_yx,
        tile_shape_yx=TILE,
        halo=plan.halo,
        params=plan.params,
        pixel_scale_ratio=plan.grid.pixel_scale_ratio,
        fused_kernel=fused,
    )
    ranges: list[tuple[Any, Any]] = []
    real = kernel.input_crop

    def recorded(pixmap: np.ndarray, rng: tuple[int, int, int, int], *args: Any, **kwargs: Any) -> Any:
        out = real(pixmap, rng, *args, **kwargs)
        ranges.append((tuple(rng), out))
        return out

    monkeypatch.setattr(kernel, "input_crop", recorded)
    for index in (0, 3):
        ref = plan.refs[index]
        tiles = plan.exposure_tiles[index]
        whole = drizzle_exposure(ref, spec, tiles)
        assert any(p is not None for p in whole.values())
        for subset in (tiles[:1], tiles[len(tiles) // 2 : len(tiles) // 2 + 2], tiles[-1:]):
            cropped = drizzle_exposure(ref, replace(spec, crop_input=True), subset)
            for key in subset:
                assert _same_partial(cropped[key], whole[key]), (ref.filename, key, params)
    cut = [(rng, out) for rng, out in ranges if out is not None and out != rng]
    assert cut, "no input was cropped"
    for rng, out in cut:
        xmin, xmax, ymin, ymax = rng
        cx0, cx1, cy0, cy1 = out
        assert xmin <= cx0 <= cx1 <= xmax and ymin <= cy0 <= cy1 <= ymax
        assert (cx1 - cx0 + 1) * (cy1 - cy0 + 1) < (xmax - xmin + 1) * (ymax - ymin + 1)


def _scratch(paths: list[str], mosaic: Path, out: Path, **params: Any) -> Path:
    resample(
        paths, out, output_wcs=living_output_wcs(mosaic), tile_shape=TILE, scheduler="serial", progress=False, **params
    )
    return out


def _assert_identical(mosaic: Path, reference: Path) -> None:
    a, b = open_mosaic(mosaic), open_mosaic(reference)
    assert sorted(a.data_vars) == sorted(b.data_vars)
    for name in b.data_vars:
        va, vb = a[name].values, b[name].values
        assert va.dtype == vb.dtype and va.shape == vb.shape, name
        assert np.array_equal(va, vb, equal_nan=va.dtype.kind == "f"), f"{name} differs"
    assert a.attrs["dask_resample"]["totals"] == b.attrs["dask_resample"]["totals"]


@pytest.mark.parametrize(
    "params",
    [
        {"kernel": "square", "pixfrac": 0.6},
        {"kernel": "turbo"},
        {"kernel": "lanczos3"},
    ],
    ids=["square-pixfrac0.6", "turbo", "lanczos3"],
)
@pytest.mark.parametrize("keep_sums", [False, True], ids=["cropped", "extended"])
def test_a_cropped_update_equals_the_full_run(wide, params, keep_sums, tmp_path):
    """Without kept sums the earlier inputs are drizzled again, cropped; with them the tiles are extended."""
    import dask

    mosaic = tmp_path / "live"
    with dask.config.set({"resample.living.keep-sums": keep_sums}):
        update(mosaic, add=wide[:4], grid=GRID, tile_shape=TILE, scheduler="serial", **params)
    result = update(mosaic, add=wide[4:5], scheduler="serial")
    assert 0 < result.n_recomputed and result.n_described == 1
    if keep_sums:
        assert result.n_extended > 0 and result.n_drizzled == 1
    else:
        assert result.n_extended == 0 and result.n_drizzled > 1
    _assert_identical(mosaic, _scratch(wide[:5], mosaic, tmp_path / "ref.zarr", **params))


def test_descriptions_are_kept_and_a_changed_file_is_described_again(wide, tmp_path):
    files = []
    for p in wide:
        files.append(str(shutil.copy(p, tmp_path / Path(p).name)))
    mosaic = tmp_path / "live"
    first = update(mosaic, add=files[:3], grid=GRID, tile_shape=TILE, scheduler="serial")
    assert first.n_described == 3
    # only the added input is read for planning
    second = update(mosaic, add=files[3:4], scheduler="serial")
    assert second.n_described == 1 and not second.version.changed
    # a file touched (same bytes): fingerprinted again, its description kept
    os.utime(files[0], ns=(1, 1))
    third = update(mosaic, add=files[4:5], scheduler="serial")
    assert third.n_described == 1 and not third.version.changed
    _assert_identical(mosaic, _scratch(files[:5], mosaic, tmp_path / "ref5.zarr"))
    # a file whose content changed (another pointing, same name): described again, its old and new tiles recomputed
    other = synthetic.write_dataset(
        tmp_path / "other",
        n_dithers=1,
        n_detectors=1,
        shape=(96, 96),
        seed=5,
        ra_deg=53.16 + 1.2 / 3600,
        dec_deg=-27.78 - 0.8 / 3600,
        n_sources=7,
    )
    shutil.copyfile(other.paths[0], files[1])
    fourth = update(mosaic, add=files[5:6], scheduler="serial")
    assert [c["filename"] for c in fourth.version.changed] == [Path(files[1]).name]
    assert fourth.n_described == 2
    _assert_identical(mosaic, _scratch(files, mosaic, tmp_path / "ref6.zarr"))
    # a missing earlier input is refused, unless the update removes it
    os.remove(files[2])
    with pytest.raises(Exception, match="is missing"):
        update(mosaic, remove=[Path(files[0]).name], scheduler="serial")
    update(mosaic, remove=[Path(files[2]).name], scheduler="serial")
    _assert_identical(mosaic, _scratch([f for k, f in enumerate(files) if k != 2], mosaic, tmp_path / "ref5b.zarr"))


def test_inputs_on_s3_keep_their_descriptions_and_a_rewritten_object_is_described_again(wide, tmp_path, s3_bucket):
    import fsspec

    bucket, opts = s3_bucket
    fs = fsspec.filesystem("s3", **opts)
    urls = [f"s3://{bucket}/inputs/{Path(p).name}" for p in wide[:4]]
    for path, url in zip(wide, urls, strict=False):
        fs.put(path, url)
    mosaic = tmp_path / "live"
    update(mosaic, add=urls[:2], grid=GRID, tile_shape=TILE, storage_options=opts, scheduler="serial")
    second = update(mosaic, add=urls[2:3], storage_options=opts, scheduler="serial")
    assert second.n_described == 1 and not second.version.changed
    fs.put(wide[4], urls[0])  # another exposure's bytes under an earlier input's name
    third = update(mosaic, add=urls[3:4], storage_options=opts, scheduler="serial")
    assert [c["filename"] for c in third.version.changed] == [Path(urls[0]).name] and third.n_described == 2
    out = tmp_path / "ref.zarr"
    resample(
        urls,
        out,
        output_wcs=living_output_wcs(mosaic),
        tile_shape=TILE,
        scheduler="serial",
        progress=False,
        storage_options=opts,
    )
    _assert_identical(mosaic, out)
