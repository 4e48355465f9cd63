"""Shared fixtures: a small LocalCluster, synthetic datasets and the jwst oracle."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from dask_resample import synthetic


@pytest.fixture(scope="session")
def client():
    """A real two-worker LocalCluster shared by the session."""
    from distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                               memory_limit="4GiB")
        c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> synthetic.SyntheticDataset:
    """3 dithers x 2 detectors of 96x96 pixels, with sky to subtract."""
    d = tmp_path_factory.mktemp("small")
    return synthetic.write_dataset(d, n_dithers=3, n_detectors=2, shape=(96, 96), seed=3, sky_level=0.25)


@pytest.fixture(scope="session")
def single_detector_dataset(tmp_path_factory) -> synthetic.SyntheticDataset:
    """4 single-detector dithers of 80x80 pixels (four groups)."""
    d = tmp_path_factory.mktemp("single")
    return synthetic.write_dataset(d, n_dithers=4, n_detectors=1, shape=(80, 80), seed=5)


def reference_resample(asn_path: Path | str, **kwargs):
    """Run the real ``jwst.resample.resample.ResampleImage`` many-to-one."""
    from jwst.datamodels import ModelLibrary
    from jwst.resample.resample import ResampleImage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = ModelLibrary(str(asn_path), on_disk=False)
        return ResampleImage(lib, **kwargs).resample_many_to_one()


def compare_arrays(ours, ref, name: str, rtol: float = 1e-5) -> float:
    """Assert parity of one array; return the largest difference relative to the array's maximum."""
    a = np.asarray(ours)
    b = np.asarray(ref)
    assert a.shape == b.shape, f"{name}: shape {a.shape} != {b.shape}"
    if a.dtype.kind in "iu" or b.dtype.kind in "iu":
        assert np.array_equal(a, b), f"{name}: integer arrays differ at {np.count_nonzero(a != b)} pixels"
        return 0.0
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    assert np.array_equal(nan_a, nan_b), f"{name}: NaN pattern differs at {np.count_nonzero(nan_a != nan_b)} pixels"
    if nan_b.all():
        return 0.0
    scale = float(np.nanmax(np.abs(b))) or 1.0
    diff = float(np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64)))) / scale
    assert diff <= rtol, f"{name}: max |diff| / max = {diff:.3g} > {rtol}"
    return diff
