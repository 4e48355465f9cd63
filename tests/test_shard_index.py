"""Shard indexes of a finished mosaic kept in one object: one ranged request per tile.

Small sharded Zarr v3 arrays laid out like a mosaic (``data`` float32 with NaN
fill, ``con`` int32 planes with one plane per chunk, ``wht`` with its shard index
at the start) are written on a local disk and on a real S3 server (SeaweedFS),
read through :class:`IndexedStore` and compared bit for bit with the plain zarr
read, tile by tile and in windows across tiles and shards. On S3 the server's
request counter shows the cost of each tile: one GET through the index object,
two without it.
"""

from __future__ import annotations

import pickle
import time
from typing import Any

import numpy as np
import pytest
import zarr

from dask_resample.store import shard_index as si
from dask_resample.store.location import Location

TY, TX = 8, 10  # one tile = one inner chunk
SHAPE = (75, 90)  # 10 x 9 tiles; 3 x 3 shards of 4 x 4 tiles, the last row and column partial
N_PLANES = 3
ARRAYS = ("con", "data", "wht")
FILL = {"data": np.float32(np.nan), "con": np.int32(0), "wht": np.float32(0)}


def _tiles() -> list[tuple[int, int]]:
    return [(ty, tx) for ty in range(-(-SHAPE[0] // TY)) for tx in range(-(-SHAPE[1] // TX))]


def _tile_slice(ty: int, tx: int) -> tuple[slice, slice]:
    return slice(ty * TY, min((ty + 1) * TY, SHAPE[0])), slice(tx * TX, min((tx + 1) * TX, SHAPE[1]))


def _content(version: int = 1) -> dict[str, tuple[np.ndarray, list[tuple[Any, ...]]]]:
    """Each array's full values and the regions written (everything else stays unwritten)."""
    rng = np.random.default_rng(version)
    data = rng.normal(size=SHAPE).astype(np.float32)
    data[rng.random(SHAPE) < 0.1] = np.nan  # NaN inside written chunks
    data[_tile_slice(1, 2)] = np.nan  # a whole tile of fill: its chunk is not written
    wht = rng.random(SHAPE).astype(np.float32)
    wht[_tile_slice(0, 1)] = 0.0
    con = rng.integers(1, 2**20, size=(N_PLANES, *SHAPE), dtype=np.int32)
    regions = {
        # shard (0, 0) whole but one fill tile; shard (0, 1) a few tiles; edge shard (2, 2) a corner;
        # shards (1, *) and (2, 0), (2, 1), (0, 2) never written
        "data": [(slice(0, 32), slice(0, 40)), (slice(3, 13), slice(45, 57)), (slice(66, 75), slice(83, 90))],
        "con": [
            (slice(0, 1), slice(0, 32), slice(0, 40)),
            (slice(0, 1), slice(40, 50), slice(80, 90)),
            (slice(1, 2), slice(64, 75), slice(80, 90)),
        ],  # plane 2 never written
        "wht": [(slice(0, 40), slice(0, 50)), (slice(70, 75), slice(0, 5))],
    }
    full = {"data": data, "wht": wht, "con": con}
    expected = {}
    for name, regs in regions.items():
        out = np.full(full[name].shape, FILL[name], full[name].dtype)
        for r in regs:
            out[r] = full[name][r]
        expected[name] = (out, regs)
    if version == 2:
        expected["data"] = (expected["data"][0], expected["data"][1] + [(slice(40, 50), slice(0, 20))])
        expected["data"][0][40:50, 0:20] = full["data"][40:50, 0:20]
    return expected


def _write(
    location: Location, version: int = 1, recorder: si.ShardIndexRecorder | None = None
) -> dict[str, np.ndarray]:
    """Create (or rewrite) the arrays at ``location``; the expected values of each."""
    store = location.zarr_store() if recorder is None else recorder
    group = zarr.open_group(store, mode="a", zarr_format=3)
    group.require_group("_progress")  # where a mosaic keeps its markers and the index object
    expected = {}
    for name, (values, regions) in _content(version).items():
        if name not in group:
            if name == "con":
                shape, chunks, shards = (N_PLANES, *SHAPE), (1, TY, TX), (1, 4 * TY, 4 * TX)
            else:
                shape, chunks, shards = SHAPE, (TY, TX), (4 * TY, 4 * TX)
            if name == "wht":
                shards = {"shape": shards, "index_location": "start"}
            group.create_array(
                name,
                shape=shape,
                chunks=chunks,
                shards=shards,
                dtype=values.dtype,
                fill_value=FILL[name].item(),
                compressors=[zarr.codecs.BloscCodec(cname="lz4")],
                dimension_names=("plane", "y", "x") if name == "con" else ("y", "x"),
                config={"write_empty_chunks": False},
            )
        arr = group[name]
        if recorder is not None:
            recorder.watch(arr)
        for r in regions:
            arr[r] = values[r]
        expected[name] = values
    return expected


def _build_index(location: Location) -> str:
    group = zarr.open_group(location.zarr_store(read_only=True), mode="r")
    indexes = {name: si.read_shard_indexes(group[name]) for name in ARRAYS}
    layouts = {name: si.shard_layout(group[name]) for name in ARRAYS}
    return si.write_index_object(location, indexes, layouts)


def _windows(name: str) -> list[tuple[Any, ...]]:
    """Every tile, and windows inside a tile, across tiles, across shards, the whole array."""
    wins: list[tuple[Any, ...]] = [_tile_slice(ty, tx) for ty, tx in _tiles()]
    wins += [
        (slice(2, 5), slice(3, 4)),
        (slice(5, 20), slice(7, 33)),
        (slice(20, 50), slice(30, 70)),
        (slice(60, 75), slice(75, 90)),
        (slice(None), slice(None)),
        (slice(70, 71), slice(85, 86)),
    ]
    if name == "con":
        return [(slice(p, p + 1), *w) for p in range(N_PLANES) for w in wins] + [(slice(None),) * 3]
    return wins


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _assert_reads_match(
    store: Any, plain: Any, expected: dict[str, np.ndarray], names: tuple[str, ...] = ARRAYS
) -> None:
    for name in names:
        ours = zarr.open_array(store, path=name, mode="r")
        ref = zarr.open_array(plain, path=name, mode="r")
        for w in _windows(name):
            got, want = ours[w], ref[w]
            assert _same_bits(got, want), f"{name}{w}: differs from the plain zarr read"
            assert _same_bits(want, expected[name][w]), f"{name}{w}: plain read differs from what was written"


def _s3_location(bucket: str, options: dict[str, Any], name: str = "m.zarr") -> Location:
    return Location(f"s3://{bucket}/{name}", options)


@pytest.fixture
def local_mosaic(tmp_path) -> tuple[Location, dict[str, np.ndarray], str]:
    location = Location(str(tmp_path / "m.zarr"))
    expected = _write(location)
    return location, expected, _build_index(location)


# -- the layout and the object ---------------------------------------------------------------------
@pytest.mark.core
def test_layout_and_index_bytes_from_zarr_codecs(local_mosaic):
    location, _, _ = local_mosaic
    group = zarr.open_group(location.zarr_store(read_only=True), mode="r")
    data, con, wht = (si.shard_layout(group[n]) for n in ("data", "con", "wht"))
    # default index codecs (bytes + crc32c): 16 bytes per inner chunk and a 4-byte checksum
    assert data.index_size == con.index_size == wht.index_size == 16 * 16 + 4
    assert (data.index_location, wht.index_location) == ("end", "start")
    assert data.shard_grid == (3, 3) and con.shard_grid == (N_PLANES, 3, 3)
    assert con.chunk_key((2, 1, 0)) == "c/2/1/0"
    assert si.read_shard_index(group["data"], (1, 1)) == b""  # never written
    raw = (location.join("data", "c", "0", "0").read_bytes(), location.join("wht", "c", "0", "0").read_bytes())
    assert si.read_shard_index(group["data"], (0, 0)) == raw[0][-data.index_size :]
    assert si.read_shard_index(group["wht"], (0, 0)) == raw[1][: wht.index_size]
    with pytest.raises(ValueError, match="not sharded"):
        si.shard_layout(zarr.create_array({}, shape=(4,), chunks=(2,), dtype="i4"))


@pytest.mark.core
def test_index_object_is_deterministic_and_round_trips(local_mosaic):
    location, _, digest = local_mosaic
    group = zarr.open_group(location.zarr_store(read_only=True), mode="r")
    indexes = {n: si.read_shard_indexes(group[n]) for n in ARRAYS}
    layouts = {n: si.shard_layout(group[n]) for n in ARRAYS}
    data = si.encode_index_object(indexes, layouts)
    shuffled = {n: dict(reversed(list(indexes[n].items()))) for n in reversed(ARRAYS)}
    assert si.encode_index_object(shuffled, layouts) == data
    obj = si.load_index_object(location)
    assert obj is not None and obj.digest == digest
    assert obj.indexes == indexes and obj.layouts == layouts
    assert len(obj) == 9 + 9 + N_PLANES * 9
    assert obj.store_entries("g")["g/con/c/1/2/2"][0] == indexes["con"][(1, 2, 2)]
    assert obj.store_entries()["data/c/1/1"][0] is None  # recorded as absent
    with np.load(location.join("_progress", "shard_index.npz").url) as z:  # what numpy reads
        assert sorted(z.files) == sorted(
            ["header", *(f"{k}.{m}" for k in range(3) for m in ("coords", "present", "index"))]
        )
    with pytest.raises(ValueError, match="expected 260"):
        si.encode_index_object({"data": {(0, 0): b"short"}}, layouts)
    with pytest.raises(ValueError, match="outside the grid"):
        si.encode_index_object({"data": {(3, 0): b""}}, layouts)


def _check_recorder(location: Location, counts: Any = None) -> None:
    recorder = si.ShardIndexRecorder(location.zarr_store())
    n0 = counts() if counts else 0
    expected = _write(location, recorder=recorder)
    n1 = counts() if counts else 0
    group = zarr.open_group(location.zarr_store(read_only=True), mode="r")
    for name in ARRAYS:
        stored = si.read_shard_indexes(group[name])
        assert recorder.recorded[name], name
        for coords, index in recorder.recorded[name].items():
            assert index == stored[coords], (name, coords)
        # the shards never written are not recorded (unknown: read as usual)
        assert {c for c, v in stored.items() if v} <= set(recorder.recorded[name])
    # an index object from what the writer recorded serves the same values
    layouts = {name: si.shard_layout(group[name]) for name in ARRAYS}
    digest = si.write_index_object(location, recorder.recorded, layouts)
    store = si.open_indexed(location.zarr_store(read_only=True), location, expected_digest=digest)
    _assert_reads_match(store, location.zarr_store(read_only=True), expected)
    if counts:
        # no request of its own: the same requests as the same write without the recorder
        n2 = counts()
        _write(location.sibling("plain.zarr"))
        n3 = counts()
        assert n1 - n0 == n3 - n2


@pytest.mark.core
def test_recorder_local(tmp_path):
    _check_recorder(Location(str(tmp_path / "m.zarr")))


def test_recorder_s3(s3_server, s3_bucket):
    bucket, options = s3_bucket
    _check_recorder(_s3_location(bucket, options), counts=lambda: sum(s3_server.request_counts(bucket).values()))


# -- values: bit-identical to the plain read -------------------------------------------------------
@pytest.mark.core
def test_local_values_match_plain_read(local_mosaic):
    location, expected, digest = local_mosaic
    plain = location.zarr_store(read_only=True)
    store = si.open_indexed(location.zarr_store(read_only=True), location, expected_digest=digest)
    assert store.index is not None and store.index.digest == digest
    _assert_reads_match(store, plain, expected)
    assert store.served > 0


@pytest.mark.core
def test_group_prefix(tmp_path):
    """A group below the root (many-to-many): keys carry the group's path."""
    root = Location(str(tmp_path / "mm.zarr"))
    zarr.open_group(root.zarr_store(), mode="w", zarr_format=3).create_group("g1")
    expected = _write(root.join("g1"))
    digest = _build_index(root.join("g1"))
    store = si.open_indexed(root.zarr_store(read_only=True), root.join("g1"), prefix="g1", expected_digest=digest)
    for name in ARRAYS:
        ours = zarr.open_array(store, path=f"g1/{name}", mode="r")
        for w in _windows(name)[:90]:
            assert _same_bits(ours[w], expected[name][w]), (name, w)
    assert store.served >= 90


# -- requests on S3 --------------------------------------------------------------------------------
def _gets(server: Any, bucket: str) -> int:
    """GETs served so far; the server counts a request just after answering it, so wait until the count settles."""
    last = -1
    while (now := server.request_counts(bucket).get("GET", 0)) != last:
        last = now
        time.sleep(0.1)
    return now


def test_s3_one_get_per_tile(s3_server, s3_bucket):
    bucket, options = s3_bucket
    location = _s3_location(bucket, options)
    expected = _write(location)
    digest = _build_index(location)

    before = _gets(s3_server, bucket)
    store = si.open_indexed(location.zarr_store(read_only=True), location, expected_digest=digest)
    assert store.index is not None
    assert _gets(s3_server, bucket) - before == 1  # the index object, once

    plain_store = location.zarr_store(read_only=True)
    group = zarr.open_group(plain_store, mode="r")
    indexes = {n: si.read_shard_indexes(group[n]) for n in ARRAYS}
    for name in ARRAYS:
        plain = zarr.open_array(plain_store, path=name, mode="r")
        ours = zarr.open_array(store, path=name, mode="r")
        layout = si.shard_layout(plain)
        planes = range(N_PLANES) if name == "con" else [None]
        cost_plain = cost_ours = 0
        want_plain = want_ours = 0
        n2 = _gets(s3_server, bucket)  # after opening the arrays (their metadata)
        for plane in planes:
            for ty, tx in _tiles():
                w = _tile_slice(ty, tx) if plane is None else (slice(plane, plane + 1), *_tile_slice(ty, tx))
                n0 = n2  # the count after the previous tile's reads: nothing reads in between
                a = plain[w]
                n1 = _gets(s3_server, bucket)
                b = ours[w]
                n2 = _gets(s3_server, bucket)
                assert _same_bits(a, b) and _same_bits(a, expected[name][w]), (name, w)
                cost_plain, cost_ours = cost_plain + n1 - n0, cost_ours + n2 - n1
                # what the tile costs: is its chunk in its shard's index?
                shard = (ty // 4, tx // 4) if plane is None else (plane, ty // 4, tx // 4)
                index = indexes[name][shard]
                chunk = (ty % 4) * 4 + tx % 4
                if index:
                    table = index[4:] if layout.index_location == "start" else index[:-4]
                    has_chunk = np.frombuffer(table, "<u8").reshape(16, 2)[chunk, 0] != 2**64 - 1
                else:
                    has_chunk = False
                want_plain += 1 + has_chunk  # the shard index (404 if no shard), then the chunk
                want_ours += int(has_chunk)
                assert n1 - n0 == 1 + has_chunk, (name, w, "plain")
                assert n2 - n1 == int(has_chunk), (name, w, "indexed")
        assert (cost_plain, cost_ours) == (want_plain, want_ours)
        assert want_ours > 0 and want_plain > want_ours
        print(
            f"{name}: {cost_ours} GETs through the index object for {len(_tiles()) * len(planes)} tiles, "
            f"{cost_plain} without"
        )

    # one written tile of each array: 1 GET through the index object, 2 without
    for name, w in (
        ("data", _tile_slice(0, 0)),
        ("con", (slice(0, 1), *_tile_slice(2, 3))),
        ("wht", _tile_slice(3, 2)),
    ):
        plain = zarr.open_array(plain_store, path=name, mode="r")
        ours = zarr.open_array(store, path=name, mode="r")
        n0 = _gets(s3_server, bucket)
        plain[w]
        n1 = _gets(s3_server, bucket)
        ours[w]
        n2 = _gets(s3_server, bucket)
        assert (n1 - n0, n2 - n1) == (2, 1), name


def test_s3_values_match_plain_read(s3_server, s3_bucket):
    bucket, options = s3_bucket
    location = _s3_location(bucket, options)
    expected = _write(location)
    digest = _build_index(location)
    store = si.open_indexed(location.zarr_store(read_only=True), location, expected_digest=digest)
    _assert_reads_match(store, location.zarr_store(read_only=True), expected)


# -- pickling ----------------------------------------------------------------------------------------
def _pickle_round_trip(location: Location, digest: str, expected: dict[str, np.ndarray]) -> None:
    store = si.open_indexed(location.zarr_store(read_only=True), location, expected_digest=digest)
    blob = pickle.dumps(store)
    # by reference: the location and digest travel, not the indexes
    some_index = next(v for v in store.index.indexes["data"].values() if v)
    assert some_index not in blob and digest.encode() in blob
    si._LOADED.clear()  # as in a fresh worker process
    again = pickle.loads(blob)
    assert again.index is not None and again.index.digest == digest and again == store
    arr = zarr.open_array(again, path="data", mode="r")
    assert _same_bits(arr[_tile_slice(0, 0)], expected["data"][_tile_slice(0, 0)])
    assert again.served == 1
    # a zarr array (what dask and xarray put in tasks) carries its store along
    arr2 = pickle.loads(pickle.dumps(zarr.open_array(store, path="con", mode="r")))
    w = (slice(1, 2), *_tile_slice(9, 8))
    assert _same_bits(arr2[w], expected["con"][w]) and isinstance(arr2.store, si.IndexedStore)
    # an index held only in memory travels with the store
    mem = si.IndexedStore(location.zarr_store(read_only=True), store.index)
    assert pickle.loads(pickle.dumps(mem)).index.indexes == store.index.indexes
    # without an index, a plain pass-through store
    bare = pickle.loads(pickle.dumps(si.IndexedStore(location.zarr_store(read_only=True))))
    assert bare.index is None and _same_bits(zarr.open_array(bare, path="wht", mode="r")[:], expected["wht"])


@pytest.mark.core
def test_pickle_local(local_mosaic):
    location, expected, digest = local_mosaic
    _pickle_round_trip(location, digest, expected)


def test_pickle_s3(s3_server, s3_bucket):
    bucket, options = s3_bucket
    location = _s3_location(bucket, options)
    expected = _write(location)
    digest = _build_index(location)
    _pickle_round_trip(location, digest, expected)
    # unpickling in a new process reads the index object once, then one GET per tile
    store = si.open_indexed(location.zarr_store(read_only=True), location, expected_digest=digest)
    blob = pickle.dumps(zarr.open_array(store, path="data", mode="r"))
    si._LOADED.clear()
    n0 = _gets(s3_server, bucket)
    arr = pickle.loads(blob)
    n1 = _gets(s3_server, bucket)
    arr[_tile_slice(0, 1)]
    n2 = _gets(s3_server, bucket)
    assert (n1 - n0, n2 - n1) == (1, 1)


def test_xarray_dask_through_indexed_store(local_mosaic):
    """xarray and dask (which pickle the store into tasks) read the same values."""
    import dask
    import dask.array
    import xarray as xr

    location, expected, digest = local_mosaic
    store = si.open_indexed(location.zarr_store(read_only=True), location, expected_digest=digest)
    ds = xr.open_zarr(store, consolidated=False, chunks={})
    assert isinstance(ds["data"].data, dask.array.Array)
    ds = pickle.loads(pickle.dumps(ds))
    graph = pickle.loads(pickle.dumps(ds["con"].data))  # the tasks' store travels by reference
    with dask.config.set(scheduler="synchronous"):
        for name in ARRAYS:
            assert _same_bits(ds[name].values, expected[name]), name
        assert _same_bits(graph.compute(), expected["con"])
        tile = ds["data"].isel(y=slice(8, 16), x=slice(10, 20)).compute().values
    assert _same_bits(tile, expected["data"][8:16, 10:20])


# -- stale or absent index objects -------------------------------------------------------------------
def _stale_checks(location: Location, digest_v1: str, counts: Any = None) -> None:
    """Rewrite the mosaic (v2) with the v1 index object left in place; readers must notice."""
    expected_v2 = _write(location, version=2)
    v1_object = location.join("_progress", "shard_index.npz").read_bytes()
    digest_v2 = _build_index(location)  # what the v2 completion record holds ...
    location.join("_progress", "shard_index.npz").write_bytes(v1_object)  # ... but the object is v1's
    plain = location.zarr_store(read_only=True)
    store = si.open_indexed(location.zarr_store(read_only=True), location, expected_digest=digest_v2)
    assert store.index is None
    _assert_reads_match(store, plain, expected_v2)
    assert store.served == 0
    if counts is not None:
        arr = zarr.open_array(store, path="data", mode="r")
        n0 = counts()
        arr[_tile_slice(0, 0)]
        assert counts() - n0 == 2  # plain behaviour
    # the check matters: trusted without it, the v1 object says shard (1, 0) does not exist
    trusting = si.open_indexed(location.zarr_store(read_only=True), location)
    assert trusting.index is not None and trusting.index.digest == digest_v1 != digest_v2
    w = (slice(40, 48), slice(0, 10))
    assert np.isnan(zarr.open_array(trusting, path="data", mode="r")[w]).all()
    assert not np.isnan(expected_v2["data"][w]).all()

    # an absent object, or one that is not an index object: plain behaviour
    for content in (None, b"not a zip", si.encode_index_object({}, {})[:-7]):
        obj = location.join("_progress", "shard_index.npz")
        if content is None:
            obj.remove()
        else:
            obj.write_bytes(content)
        assert si.load_index_object(location) is None
        store = si.open_indexed(location.zarr_store(read_only=True), location)
        assert store.index is None
        _assert_reads_match(store, plain, expected_v2, names=("data",))


@pytest.mark.core
def test_stale_or_absent_local(local_mosaic):
    location, _, digest = local_mosaic
    _stale_checks(location, digest)


def test_stale_or_absent_s3(s3_server, s3_bucket):
    bucket, options = s3_bucket
    location = _s3_location(bucket, options)
    _write(location)
    digest = _build_index(location)
    _stale_checks(location, digest, counts=lambda: _gets(s3_server, bucket))


@pytest.mark.core
def test_writes_through_the_store_forget_the_index(local_mosaic):
    location, expected, digest = local_mosaic
    index = si.load_index_object(location, digest)
    store = si.IndexedStore(location.zarr_store(), index)
    arr = zarr.open_array(store, path="data", mode="r+")
    new = np.full((TY, TX), 7.0, np.float32)
    arr[_tile_slice(5, 5)] = new  # creates shard (1, 1), recorded as absent
    arr[_tile_slice(0, 0)] = new  # rewrites shard (0, 0)
    assert "data/c/1/1" not in store._entries and "data/c/0/0" not in store._entries
    assert _same_bits(arr[_tile_slice(5, 5)], new) and _same_bits(arr[_tile_slice(0, 0)], new)
    assert _same_bits(arr[_tile_slice(0, 1)], expected["data"][_tile_slice(0, 1)])
    # a fresh reader through the store sees the writes too
    again = zarr.open_array(store.with_read_only(True), path="data", mode="r")
    assert _same_bits(again[_tile_slice(5, 5)], new)
    copy = pickle.loads(pickle.dumps(store))
    assert "data/c/0/0" not in copy._entries and "data/c/0/1" in copy._entries
    assert _same_bits(zarr.open_array(copy, path="data", mode="r")[_tile_slice(0, 0)], new)
