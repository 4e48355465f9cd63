"""Shared fixtures: a small LocalCluster, synthetic datasets and the jwst oracle."""

from __future__ import annotations

import contextlib
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dask_resample.testing import synthetic

from .s3_server import S3Server


@pytest.fixture(scope="session")
def client():
    """A real two-worker LocalCluster shared by the session."""
    from distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="4GiB"
        )
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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The S3 server of the ``DASK_RESAMPLE_TEST_S3_*`` variables, else a private SeaweedFS for the session."""
    server, error = None, ""
    try:
        server = S3Server.from_env() or S3Server()
    except (OSError, RuntimeError) as err:
        error = _one_line(err)
    if server is None:
        pytest.fail(f"S3 server unavailable: {error}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh bucket for one test: ``(bucket_name, storage_options)``; deleted afterwards."""
    name, error = f"test-{uuid.uuid4().hex[:16]}", ""
    try:
        s3_server.new_bucket(name)
    except (OSError, RuntimeError) as err:
        error = _one_line(err)
    if error:
        pytest.fail(f"S3 server at {s3_server.endpoint_url} unusable: {error}", pytrace=False)
    yield name, s3_server.storage_options
    with contextlib.suppress(OSError, RuntimeError):
        s3_server.delete_bucket(name)


def _one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(err).splitlines()) or type(err).__name__


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
