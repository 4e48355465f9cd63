"""Determinism: tile shape, worker count and the serial path give identical output."""

from __future__ import annotations

import numpy as np
import pytest

import dask_resample

PARS = {"compute_err": "from_var", "propagate_dq": True, "good_bits": "~DO_NOT_USE"}


def _arrays(ds) -> dict[str, np.ndarray]:
    return {name: ds[name].values for name in ds.data_vars}


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind == "f"), f"{name} differs"


@pytest.mark.parametrize("kernel", ["square", "lanczos3"])
def test_tile_shape_invariance(small_dataset, client, tmp_path, kernel):
    """Several tile shapes (including one tile for the whole frame) give identical arrays."""
    results = []
    for k, tile_shape in enumerate([(4096, 4096), (64, 64), (37, 91), (20, 20)]):
        ds = dask_resample.resample(
            small_dataset.asn_path, tmp_path / f"t{k}.zarr", client=client, tile_shape=tile_shape, kernel=kernel, **PARS
        )
        results.append(_arrays(ds))
    for other in results[1:]:
        _assert_identical(results[0], other)


def test_worker_count_invariance(small_dataset, client, tmp_path):
    """One worker, two workers and the serial path give bit-identical output."""
    from distributed import Client, LocalCluster

    two = _arrays(
        dask_resample.resample(
            small_dataset.asn_path, tmp_path / "two.zarr", client=client, tile_shape=(40, 40), **PARS
        )
    )
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as one_client,
    ):
        one = _arrays(
            dask_resample.resample(
                small_dataset.asn_path, tmp_path / "one.zarr", client=one_client, tile_shape=(40, 40), **PARS
            )
        )
    serial = _arrays(
        dask_resample.resample(
            small_dataset.asn_path, tmp_path / "serial.zarr", scheduler="serial", tile_shape=(40, 40), **PARS
        )
    )
    _assert_identical(two, one)
    _assert_identical(two, serial)


def test_rerun_is_bit_identical(single_detector_dataset, client, tmp_path):
    """The same call twice (overwrite) writes the same arrays."""
    a = _arrays(
        dask_resample.resample(
            single_detector_dataset.asn_path, tmp_path / "m.zarr", client=client, tile_shape=(32, 48)
        )
    )
    b = _arrays(
        dask_resample.resample(
            single_detector_dataset.asn_path, tmp_path / "m.zarr", client=client, tile_shape=(32, 48), overwrite=True
        )
    )
    _assert_identical(a, b)


def test_empty_chunks_not_written(single_detector_dataset, client, tmp_path):
    """Chunks that hold only the fill value are not stored; tiles with data are."""
    out = tmp_path / "m.zarr"
    ds = dask_resample.resample(
        single_detector_dataset.asn_path, out, client=client, tile_shape=(16, 16), wcs_pars={"rotation": 45.0}
    )
    chunk_dir = out / "data" / "c"
    stored = {p.relative_to(chunk_dir).parts for p in chunk_dir.rglob("*") if p.is_file()}
    data = ds["data"].values
    ny, nx = data.shape
    for ty in range(-(-ny // 16)):
        for tx in range(-(-nx // 16)):
            block = data[ty * 16 : (ty + 1) * 16, tx * 16 : (tx + 1) * 16]
            has_data = np.isfinite(block).any()
            assert ((str(ty), str(tx)) in stored) == has_data
