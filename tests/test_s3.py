"""Mosaics, outlier detection and products on a real S3 server (SeaweedFS on 127.0.0.1).

Every array written to the object store must be bit-identical to the same run
on a local disk; the store is sharded there (one object per shard and array,
written whole by one task), and an overwrite never leaves the user without a
mosaic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from dask_resample import detect_outliers, open_mosaic, resample, write_pyramid
from dask_resample.products.export import export_fits
from dask_resample.store import (
    MosaicExistsError,
    StorageError,
    as_location,
    is_complete,
    is_mosaic,
    read_metadata,
    tiles_done,
)

TILE = (32, 32)


def _url(bucket: str, name: str) -> str:
    return f"s3://{bucket}/{name}"


def _groups(meta: dict[str, Any]) -> list[str | None]:
    return list(meta["groups"]) if meta.get("mode") == "many_to_many" else [None]


def assert_same_arrays(ours: Any, ref: Any, storage_options: dict[str, Any] | None = None) -> None:
    """Every array of two mosaics (any stores) is bit-identical; metadata equal but for the sharding."""
    loc_a, loc_b = as_location(str(ours), storage_options), as_location(str(ref))
    meta_a, meta_b = read_metadata(loc_a), read_metadata(loc_b)
    for group in _groups(meta_b):
        a, b = open_mosaic(loc_a, group=group), open_mosaic(loc_b, group=group)
        assert sorted(a.data_vars) == sorted(b.data_vars)
        for name in b.data_vars:
            va, vb = a[name].values, b[name].values
            assert va.dtype == vb.dtype and va.shape == vb.shape, name
            assert np.array_equal(va, vb, equal_nan=va.dtype.kind == "f"), f"{group or ''}/{name} differs"
    strip = ("wcs_asdf", "grid", "fingerprint")
    assert {k: v for k, v in meta_a.items() if k not in strip} == {k: v for k, v in meta_b.items() if k not in strip}
    grid_a = {k: v for k, v in meta_a["grid"].items() if k != "shard_tiles"}
    grid_b = {k: v for k, v in meta_b["grid"].items() if k != "shard_tiles"}
    assert grid_a == grid_b


def _objects(fs: Any, url: str) -> list[str]:
    fs.invalidate_cache()
    try:
        return fs.find(url)
    except FileNotFoundError:
        return []


@pytest.fixture(scope="module")
def local_reference(small_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("s3_ref") / "local.zarr"
    resample(small_dataset.asn_path, out, tile_shape=TILE, scheduler="serial", progress=False)
    return out


def test_many_to_one_on_s3_is_bit_identical_and_sharded(small_dataset, local_reference, s3_bucket, client):
    bucket, opts = s3_bucket
    url = _url(bucket, "m.zarr")
    ds = resample(small_dataset.asn_path, url, storage_options=opts, tile_shape=TILE, client=client, progress=False)
    assert ds["data"].shape == open_mosaic(local_reference)["data"].shape
    assert_same_arrays(url, local_reference, opts)
    loc = as_location(url, opts)
    assert is_mosaic(loc) and is_complete(loc)
    meta = read_metadata(loc)
    assert meta["grid"]["shard_tiles"] == [4, 4]
    # every tile is accounted for by the shard markers
    assert set(tiles_done(loc)) == set(tiles_done(local_reference))
    # fewer objects than local files: one per shard and array instead of one per tile and array
    n_objects = len([p for p in _objects(loc.fs, loc.path) if "/c/" in p])
    n_files = sum(1 for p in Path(local_reference).rglob("*") if p.is_file() and "/c/" in str(p))
    assert n_objects * 4 <= n_files, (n_objects, n_files)
    # no scratch, staging or probe object is left beside the mosaic (SeaweedFS may keep empty folders)
    assert all(p.startswith(f"{bucket}/m.zarr/") for p in _objects(loc.fs, bucket))


def test_reading_one_tile_is_one_ranged_request(small_dataset, local_reference, s3_server, s3_bucket):
    """A finished sharded mosaic records its shard indexes: a tile costs one GET, not two."""
    bucket, opts = s3_bucket
    url = _url(bucket, "one.zarr")
    resample(small_dataset.asn_path, url, storage_options=opts, tile_shape=TILE, scheduler="serial", progress=False)
    complete = as_location(url, opts).join("zarr.json").read_json()["attributes"]["dask_resample_complete"]
    assert set(complete["shard_index"]) == {""}
    ds = open_mosaic(url, storage_options=opts)
    ref = open_mosaic(local_reference)
    ty, tx = (n // 2 // t for n, t in zip(ds["data"].shape, TILE, strict=True))  # a tile with data
    box = (slice(ty * TILE[0], (ty + 1) * TILE[0]), slice(tx * TILE[1], (tx + 1) * TILE[1]))

    def gets() -> int:  # the server counts a request just after answering it: wait until the count settles
        last = -1
        while (now := s3_server.request_counts(bucket).get("GET", 0)) != last:
            last = now
            time.sleep(0.3)
        return now

    for name in ("data", "wht"):
        before = gets()
        # in this process (a Dask worker loads the index object once, one GET, then the same)
        tile = ds[name][box].compute(scheduler="synchronous").values
        n_gets = gets() - before
        assert np.array_equal(tile, ref[name][box].values, equal_nan=True)
        assert np.isfinite(tile).any() and n_gets == 1, (name, n_gets)
    # without the index object zarr asks for the shard's index first: two requests
    import xarray as xr

    plain = xr.open_zarr(as_location(url, opts).zarr_store(read_only=True), consolidated=False, chunks={})
    before = gets()
    tile = plain["data"][box].compute(scheduler="synchronous").values
    assert np.array_equal(tile, ref["data"][box].values, equal_nan=True)
    assert gets() - before == 2


def test_many_to_many_on_s3(small_dataset, tmp_path, s3_bucket, client):
    bucket, opts = s3_bucket
    local = tmp_path / "m2m.zarr"
    resample(small_dataset.asn_path, local, mode="many_to_many", tile_shape=TILE, scheduler="serial", progress=False)
    url = _url(bucket, "m2m.zarr")
    import dask

    # the scratch on the store too, as on a cluster whose workers share no disk
    with dask.config.set({"resample.scratch-dir": _url(bucket, "scratch")}):
        out = resample(
            small_dataset.asn_path,
            url,
            storage_options=opts,
            mode="many_to_many",
            tile_shape=TILE,
            client=client,
            progress=False,
        )
    # removed after the run (SeaweedFS may keep an empty folder entry)
    scratch = _objects(as_location(url, opts).fs, f"{bucket}/scratch")
    assert [p for p in scratch if p.startswith(f"{bucket}/scratch/")] == []
    assert isinstance(out, dict) and len(out) == len(read_metadata(local)["groups"])
    assert_same_arrays(url, local, opts)


def test_products_on_s3(small_dataset, local_reference, tmp_path, s3_bucket, client):
    """open_mosaic, FITS export (to a URL) and the pyramid read and write the object store."""
    bucket, opts = s3_bucket
    url = _url(bucket, "p.zarr")
    resample(small_dataset.asn_path, url, storage_options=opts, tile_shape=TILE, client=client, progress=False)
    local = tmp_path / "p.zarr"
    resample(small_dataset.asn_path, local, tile_shape=TILE, scheduler="serial", progress=False)
    # export to the store and locally, then compare every HDU
    remote_fits = export_fits(url, _url(bucket, "p_i2d.fits"), fmt="fits", storage_options=opts)
    local_fits = export_fits(local, tmp_path / "p_i2d.fits", fmt="fits")
    copy = tmp_path / "from_s3_i2d.fits"
    copy.write_bytes(as_location(remote_fits, opts).read_bytes())
    with fits.open(copy) as a, fits.open(local_fits) as b:
        assert [h.name for h in a] == [h.name for h in b]
        for ha, hb in zip(a, b, strict=True):
            if hb.data is not None:
                assert np.array_equal(ha.data, hb.data, equal_nan=True), hb.name
    # ds.mosaic.to_fits to a URL: the same file as export_fits's plain FITS, uploaded whole
    written = open_mosaic(url, storage_options=opts).mosaic.to_fits(_url(bucket, "acc_i2d.fits"), storage_options=opts)
    assert written == _url(bucket, "acc_i2d.fits")
    assert as_location(written, opts).read_bytes() == copy.read_bytes()
    with pytest.raises(FileExistsError, match="acc_i2d.fits: exists"):
        open_mosaic(url, storage_options=opts).mosaic.to_fits(written, storage_options=opts)
    # pyramid
    levels = write_pyramid(url, storage_options=opts, min_size=32, client=client)
    assert levels == write_pyramid(local, min_size=32)
    for k in levels:
        a = open_mosaic(url, level=k, storage_options=opts)
        b = open_mosaic(local, level=k)
        for name in b.data_vars:
            assert np.array_equal(a[name].values, b[name].values, equal_nan=b[name].dtype.kind == "f"), (k, name)


def test_outlier_detection_on_s3(small_dataset, tmp_path, s3_bucket, client):
    bucket, opts = s3_bucket
    local = detect_outliers(
        small_dataset.asn_path, tmp_path / "od", tile_shape=TILE, scheduler="serial", progress=False
    )
    remote = detect_outliers(
        small_dataset.asn_path, _url(bucket, "od"), storage_options=opts, tile_shape=TILE, client=client, progress=False
    )
    assert [as_location(u).name for u in remote] == [Path(p).name for p in local]
    for url, path in zip(remote, local, strict=True):
        copy = tmp_path / ("s3-" + Path(path).name)
        copy.write_bytes(as_location(url, opts).read_bytes())
        with fits.open(copy) as a, fits.open(path) as b:
            for ha, hb in zip(a, b, strict=True):
                if hb.data is not None and hb.is_image:
                    assert np.array_equal(ha.data, hb.data, equal_nan=True), (path, hb.name)
    # nothing but the crf files is left under the output prefix
    fs = as_location(_url(bucket, "od"), opts).fs
    names = sorted(p.rsplit("/", 1)[1] for p in _objects(fs, f"{bucket}/od"))
    assert names == sorted(Path(p).name for p in local)


RUN_SCRIPT = """
import json, sys
from dask_resample import resample
opts = json.loads(sys.argv[3])
resample(sys.argv[1], sys.argv[2], storage_options=opts, tile_shape=(32, 32), scheduler="serial",
         resume=sys.argv[4] == "resume", overwrite=sys.argv[4] == "overwrite", progress=False)
"""


def _run_and_kill(asn: Path, url: str, opts: dict, how: str, when: Any, tmp_path: Path, timeout: float = 180) -> bool:
    """Run in a process of its own; SIGKILL it once ``when()`` holds. True if it finished first."""
    import json

    log = tmp_path / f"run-{time.monotonic_ns()}.log"
    machine_tmp = tmp_path / "machine-tmp"  # the run's temporary directory: its scratch (one node, object store)
    machine_tmp.mkdir(exist_ok=True)
    env = {**os.environ, "DASK_RESAMPLE__SHARD_TILES": "[2, 2]", "TMPDIR": str(machine_tmp)}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN_SCRIPT, str(asn), url, json.dumps(opts), how],
            start_new_session=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=fh,
        )
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and not when():
            assert time.monotonic() < deadline, "the run did not reach the kill point"
            time.sleep(0.05)
        finished = proc.poll() is not None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    if finished:
        assert proc.returncode == 0, log.read_text(errors="replace")[-2000:]
    return finished


def _shard_markers(loc: Any) -> int:
    return sum(1 for n in loc.join("_progress").listdir() if n.startswith("shard_"))


def test_resume_after_kill_on_s3(small_dataset, tmp_path, s3_bucket):
    bucket, opts = s3_bucket
    url = _url(bucket, "r.zarr")
    loc = as_location(url, opts)
    ref = tmp_path / "ref.zarr"
    import dask

    with dask.config.set({"resample.shard-tiles": [2, 2]}):
        resample(small_dataset.asn_path, ref, tile_shape=TILE, scheduler="serial", progress=False)
    finished = _run_and_kill(small_dataset.asn_path, url, opts, "resume", lambda: _shard_markers(loc) >= 1, tmp_path)
    assert finished or not is_complete(loc)
    # the same command again finishes the mosaic, and removes the partials the killed run left on this machine
    _run_and_kill(small_dataset.asn_path, url, opts, "resume", lambda: False, tmp_path)
    assert is_complete(loc)
    assert not [n for n in os.listdir(tmp_path / "machine-tmp") if n.startswith("dask-resample-")]
    assert_same_arrays(url, ref, opts)
    assert read_metadata(loc)["grid"]["shard_tiles"] == [2, 2]


def test_overwrite_never_leaves_no_mosaic(small_dataset, tmp_path, s3_bucket):
    """A killed --overwrite leaves the old mosaic as it was; running it again replaces it."""
    bucket, opts = s3_bucket
    url = _url(bucket, "o.zarr")
    loc = as_location(url, opts)
    old = tmp_path / "old.zarr"
    import dask

    # the "old" mosaic: other parameters (pixfrac) than the replacement
    resample(small_dataset.asn_path, old, tile_shape=TILE, scheduler="serial", progress=False, pixfrac=0.5)
    with dask.config.set({"resample.shard-tiles": [2, 2]}):
        resample(
            small_dataset.asn_path,
            url,
            storage_options=opts,
            tile_shape=TILE,
            scheduler="serial",
            progress=False,
            pixfrac=0.5,
        )
        new = tmp_path / "new.zarr"
        resample(small_dataset.asn_path, new, tile_shape=TILE, scheduler="serial", progress=False)

    def siblings() -> list[str]:  # replacements holding objects (SeaweedFS may list empty folders)
        return [n for n in loc.parent.listdir() if ".replacing-" in n and _objects(loc.fs, f"{bucket}/{n}")]

    def some_replacement_shards() -> bool:
        names = siblings()
        return bool(names) and _shard_markers(loc.sibling(names[0])) >= 1

    finished = _run_and_kill(small_dataset.asn_path, url, opts, "overwrite", some_replacement_shards, tmp_path)
    swapping = [n for n in siblings() if is_complete(loc.sibling(n))]
    if not finished and not swapping:
        assert_same_arrays(url, old, opts)  # the old mosaic, untouched
    elif swapping:  # killed during the swap: the new mosaic is complete beside it until a rerun finishes it
        assert_same_arrays(loc.sibling(swapping[0]).url, new, opts)
    if not swapping:
        with pytest.raises(MosaicExistsError, match="mosaic exists"):
            resample(small_dataset.asn_path, url, storage_options=opts, tile_shape=TILE, scheduler="serial")
    _run_and_kill(small_dataset.asn_path, url, opts, "overwrite", lambda: False, tmp_path)
    assert_same_arrays(url, new, opts)
    assert siblings() == []


def test_unservable_urls_fail_in_one_line_before_any_work(small_dataset, s3_server, tmp_path):
    opts = s3_server.storage_options
    message = r"s3://no-such-bucket-here/m\.zarr: no such bucket 'no-such-bucket-here'"
    with pytest.raises(StorageError, match=message) as err:
        resample(small_dataset.asn_path, "s3://no-such-bucket-here/m.zarr", storage_options=opts)
    assert "\n" not in str(err.value)
    bad = {**opts, "secret": "wrong-secret"}
    with pytest.raises(StorageError, match="check the URL, the bucket and storage_options"):
        resample(small_dataset.asn_path, "s3://anything/m.zarr", storage_options=bad)
    with pytest.raises(StorageError, match="nosuchscheme://"):
        resample(small_dataset.asn_path, "nosuchscheme://x/m.zarr")
    with pytest.raises(StorageError, match="memory:// is private to each process"):
        resample(small_dataset.asn_path, "memory://x/m.zarr")
    # no URL ever becomes a local folder
    assert not Path("s3:").exists() and not Path("nosuchscheme:").exists() and not Path("memory:").exists()


def test_a_retried_task_rewrites_identical_bytes(small_dataset, s3_bucket):
    """Partials, finished tiles, shards and markers: a second run of the same task writes the same bytes."""
    import dask

    from dask_resample.api import plan_mosaic
    from dask_resample.execution.graph import build_graph, drizzle_task

    bucket, opts = s3_bucket
    plan = plan_mosaic(small_dataset.asn_path, tile_shape=TILE)
    store, scratch = as_location(_url(bucket, "t.zarr"), opts), as_location(_url(bucket, "scratch"), opts)
    from dask_resample.drizzle.reduce import empty_pixel_values, output_arrays
    from dask_resample.planning.mosaic import create_plan_store

    arrays = tuple(output_arrays(plan.params))
    create_plan_store(
        plan,
        store,
        mode="many_to_one",
        arrays=arrays,
        fill_values=empty_pixel_values(plan.params, plan.grid.pixel_scale_ratio),
        shard_tiles_yx=(4, 4),
    )
    graph = build_graph(plan, store_path=store, arrays=arrays, token="t", scratch_root=scratch, shard_tiles_yx=(4, 4))

    def snapshot() -> dict[str, bytes]:
        fs = store.fs
        fs.invalidate_cache()
        return {p: fs.cat_file(p) for p in fs.find(bucket)}

    first_key = graph.keys.exposure(0)
    fn, *args = graph.dsk[first_key]
    resolved = [graph.dsk[a] if isinstance(a, str) and a in graph.dsk else a for a in args]
    drizzle_task(*resolved)
    once = snapshot()
    drizzle_task(*resolved)  # a retry
    assert snapshot() == once
    # a finished tile (reduced and encoded for its shard), then its task again: the same object, read back
    tile_key = next(key for key in graph.dsk if graph.keys.tile_of(key) is not None)
    with dask.config.set(scheduler="sync"):
        record = dask.get(graph.dsk, tile_key)
        encoded = {p: b for p, b in snapshot().items() if p.endswith(".tile")}
        assert len(encoded) == 1 and record["chunks"]
        assert dask.get(graph.dsk, tile_key) == record
        assert {p: b for p, b in snapshot().items() if p.endswith(".tile")} == encoded
    # the whole graph, then the shard tasks again: identical objects, the marker is honoured
    with dask.config.set(scheduler="sync"):
        dask.get(graph.dsk, graph.tile_keys)

    def mosaic_objects() -> dict[str, bytes]:
        return {p: b for p, b in snapshot().items() if p.startswith(f"{bucket}/t.zarr/")}

    done = mosaic_objects()
    assert any("/c/" in p for p in done)  # shards were written
    # a retried shard finds its marker and writes nothing; its inputs' retries rewrite the same partials
    dask.get(graph.dsk, graph.tile_keys[:1])
    assert mosaic_objects() == done


def test_jwst_facade_on_s3(small_dataset, s3_bucket, client):
    """ResampleImage with its store on S3, or its temporary store under a scratch-dir URL: the same arrays."""
    import dask

    jwst_datamodels = pytest.importorskip("jwst.datamodels")
    from dask_resample.jwst import ResampleImage

    bucket, opts = s3_bucket

    def run(**kwargs: Any) -> Any:
        library = jwst_datamodels.ModelLibrary(str(small_dataset.asn_path), on_disk=True)
        resampler = ResampleImage(library, client=client, tile_shape=TILE, **kwargs)
        return resampler, resampler.resample_many_to_one()

    _, local = run()
    kept, on_s3 = run(store=_url(bucket, "facade.zarr"), storage_options=opts)
    assert kept.store == _url(bucket, "facade.zarr") and is_mosaic(as_location(kept.store, opts))
    with dask.config.set({"resample.scratch-dir": _url(bucket, "scratch"), "resample.storage-options": opts}):
        temporary, in_scratch = run()
        assert str(temporary.store).startswith(_url(bucket, "scratch/resample-image-"))
        assert not as_location(temporary.store, opts).exists()  # removed once the arrays are loaded
        del temporary
    for name in ("data", "wht", "con", "var_rnoise", "var_poisson", "var_flat"):
        ref = getattr(local, name)
        assert ref is not None, name
        for other in (on_s3, in_scratch):
            assert np.array_equal(getattr(other, name), ref, equal_nan=ref.dtype.kind == "f"), name


def test_scratch_goes_where_every_worker_reaches_it(tmp_path, client):
    """Object-store products: scratch on this machine only when every process runs on it."""
    import tempfile

    from distributed import Client

    from dask_resample.drizzle.scratch import runs_on_one_node, scratch_root

    beside = as_location("s3://bucket/.m.zarr.scratch-x", {"anon": True})
    assert runs_on_one_node(None) and runs_on_one_node(client)  # serial; a LocalCluster of this process
    with Client(client.scheduler.address) as remote:  # a scheduler given by address: workers may be anywhere
        assert not runs_on_one_node(remote)
    local = scratch_root(beside, "m.zarr-x", one_node=True)
    assert local.is_local and local.url.startswith(os.path.abspath(tempfile.gettempdir()))
    assert scratch_root(beside, "m.zarr-x", one_node=False) == beside
    disk = as_location(str(tmp_path / ".m.zarr.scratch-x"))
    assert scratch_root(disk, "m.zarr-x", one_node=True) == disk  # a local mosaic keeps its sibling
    # a run's space on this machine is named after its mosaic: what a killed run for it left is removed
    mosaic = as_location("s3://bucket/m.zarr", {"anon": True})
    first = scratch_root(beside, "m.zarr-x", one_node=True, owner=mosaic)
    other = scratch_root(beside, "m.zarr-x", one_node=True, owner=as_location("s3://bucket/n.zarr", {"anon": True}))
    try:
        first.join("_", "0_0", "3.part").write_bytes(b"left by a killed run")
        other.join("_", "0_0", "3.part").write_bytes(b"another mosaic's run")
        second = scratch_root(beside, "m.zarr-y", one_node=True, owner=mosaic)
        assert second.is_local and second != first
        assert not first.exists() and other.exists()
    finally:
        other.remove()
