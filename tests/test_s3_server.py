"""The SeaweedFS S3 server of the test suite: s3fs, Zarr and obstore against it, and its sockets."""

from __future__ import annotations

import ipaddress
import uuid

import numpy as np
import obstore
import psutil
import pytest
import s3fs
import zarr
from obstore.store import S3Store

from .s3_server import S3Server


def test_s3fs_put_get_list(s3_bucket, tmp_path):
    bucket, options = s3_bucket
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
    payload = np.random.default_rng(0).bytes(5 * 2**20 + 17)  # more than one 4 MiB filer chunk
    fs.pipe(f"{bucket}/dir/blob.bin", payload)
    local = tmp_path / "small.txt"
    local.write_text("hello")
    fs.put(str(local), f"{bucket}/dir/small.txt")

    assert sorted(fs.ls(f"{bucket}/dir", detail=False, refresh=True)) == [
        f"{bucket}/dir/blob.bin",
        f"{bucket}/dir/small.txt",
    ]
    assert fs.cat(f"{bucket}/dir/blob.bin") == payload
    assert fs.info(f"{bucket}/dir/blob.bin")["size"] == len(payload)
    fs.get(f"{bucket}/dir/small.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "hello"
    fs.rm(f"{bucket}/dir/small.txt")
    assert fs.ls(f"{bucket}/dir", detail=False, refresh=True) == [f"{bucket}/dir/blob.bin"]


def test_zarr_v3_round_trip(s3_bucket):
    bucket, options = s3_bucket
    data = np.random.default_rng(1).normal(size=(300, 200)).astype(np.float32)
    data[::7, ::5] = np.nan
    url = f"s3://{bucket}/a.zarr"
    out = zarr.open_array(
        url, mode="w", shape=data.shape, chunks=(64, 64), dtype=data.dtype, fill_value=np.nan, storage_options=options
    )
    out[:] = data

    back = zarr.open_array(url, mode="r", storage_options=options)
    assert back.metadata.zarr_format == 3
    assert back.chunks == (64, 64)
    assert back[:].tobytes() == data.tobytes()


def test_obstore_put_get_list(s3_server, s3_bucket):
    bucket, _ = s3_bucket
    store = S3Store(bucket, **s3_server.obstore_config())
    obstore.put(store, "x/y.bin", b"\x00\x01payload")
    assert bytes(obstore.get(store, "x/y.bin").bytes()) == b"\x00\x01payload"
    listed = [meta["path"] for batch in obstore.list(store, prefix="x") for meta in batch]
    assert listed == ["x/y.bin"]


def test_wrong_secret_is_rejected(s3_bucket):
    bucket, options = s3_bucket
    bad = s3fs.S3FileSystem(skip_instance_cache=True, **{**options, "secret": "not-the-secret"})
    with pytest.raises(PermissionError):
        bad.ls(bucket, refresh=True)
    anonymous = s3fs.S3FileSystem(skip_instance_cache=True, anon=True, client_kwargs=options["client_kwargs"])
    with pytest.raises(PermissionError):
        anonymous.pipe(f"{bucket}/anon.bin", b"x")


def test_request_counts(s3_server, s3_bucket):
    if s3_server.metrics_url is None:
        pytest.skip("the attached server's metrics endpoint is unknown")
    bucket, _ = s3_bucket
    store = S3Store(bucket, **s3_server.obstore_config())  # one HTTP request per call
    before = s3_server.request_counts(bucket)
    obstore.put(store, "k", b"v")
    assert bytes(obstore.get(store, "k").bytes()) == b"v"
    assert obstore.head(store, "k")["size"] == 1
    assert len(obstore.list(store).collect()) == 1
    after = s3_server.request_counts(bucket)
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert delta == {"PUT": 1, "GET": 2, "LIST": 1}  # SeaweedFS counts HEAD as GET


def test_env_round_trip(s3_server):
    attached = S3Server.from_env(s3_server.env())
    assert attached is not None and not attached.owned
    assert (attached.endpoint_url, attached.storage_options) == (s3_server.endpoint_url, s3_server.storage_options)
    assert S3Server.from_env({}) is None
    attached.stop()  # an attached server keeps running
    name = attached.new_bucket(f"test-{uuid.uuid4().hex[:16]}")
    attached.delete_bucket(name)


def test_listens_on_loopback_only(s3_server):
    if s3_server.pid is None:
        pytest.skip("the attached server's process id is unknown")
    conns = psutil.Process(s3_server.pid).net_connections(kind="inet")
    listening = [c for c in conns if c.status == psutil.CONN_LISTEN or not c.raddr]
    assert listening, "the server listens on no socket"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}
    port = int(s3_server.endpoint_url.rsplit(":", 1)[1])
    assert port in {c.laddr.port for c in listening}
    # every connection it has (to itself: master, volume, filer, S3, admin) stays on the loopback interface
    peers = {c.raddr.ip for c in conns if c.raddr}
    assert all(ipaddress.ip_address(ip).is_loopback for ip in peers), peers
