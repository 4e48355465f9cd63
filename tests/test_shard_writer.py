"""Shards assembled one inner chunk at a time: the same objects as zarr's own writes, read back exactly."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec

from dask_resample.store.shard_writer import ShardEncoder, encode_shard, shard_chunk_key


def _arrays(tmp_path, name, shape, chunks, shards, dtype, fill):
    kw = {
        "shape": shape,
        "chunks": chunks,
        "shards": shards,
        "dtype": dtype,
        "fill_value": fill,
        "compressors": [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")],
        "config": {"write_empty_chunks": False},
    }
    group = zarr.open_group(tmp_path / "g.zarr", mode="a")
    return group.create_array(name, **kw), group.create_array(f"{name}_zarr", **kw)


def _blocks(values, chunks, shards, shard_coords):
    per = [s // c for s, c in zip(shards, chunks, strict=True)]
    grid = [-(-n // c) for n, c in zip(values.shape, chunks, strict=True)]
    for local in np.ndindex(*per):
        cc = tuple(s * p + v for s, p, v in zip(shard_coords, per, local, strict=True))
        if any(c >= n for c, n in zip(cc, grid, strict=True)):
            continue
        box = tuple(slice(c * k, min((c + 1) * k, n)) for c, k, n in zip(cc, chunks, values.shape, strict=True))
        yield cc, values[box]


@pytest.mark.parametrize(
    ("name", "shape", "chunks", "shards", "dtype", "fill"),
    [
        ("data", (150, 170), (16, 20), (64, 80), "f4", np.nan),  # ragged edges, NaN fill
        ("con", (3, 150, 170), (1, 16, 20), (3, 64, 80), "i4", 0),  # every plane in one shard
        ("wht", (64, 80), (16, 20), (64, 80), "f4", 0.0),
    ],  # one shard
)
def test_shards_match_zarr_byte_for_byte(tmp_path, name, shape, chunks, shards, dtype, fill):
    rng = np.random.default_rng(7)
    ours, ref = _arrays(tmp_path, name, shape, chunks, shards, dtype, fill)
    values = (rng.normal(size=shape) if dtype == "f4" else rng.integers(0, 4, size=shape)).astype(dtype)
    if name == "data":
        values[:, 100:] = np.nan  # whole inner chunks and a whole shard of fill
        values[:40, :30] = 1.5
    elif name == "con":
        values[1] = 0  # an empty plane
    else:
        values[:] = 0.0  # nothing but fill: no object
    ref[...] = values
    n_shards = [-(-n // s) for n, s in zip(shape, shards, strict=True)]
    root = tmp_path / "g.zarr"
    for coords in np.ndindex(*n_shards):
        data = encode_shard(ours, coords, _blocks(values, chunks, shards, coords))
        ref_file = root / f"{name}_zarr" / shard_chunk_key(ref, coords)
        assert data == (ref_file.read_bytes() if ref_file.exists() else None), coords
        if data is not None:
            target = root / name / shard_chunk_key(ours, coords)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    back = zarr.open_array(root, path=name)[...]
    assert np.array_equal(back, values, equal_nan=dtype == "f4")


def test_chunks_outside_the_shard_are_refused(tmp_path):
    ours, _ = _arrays(tmp_path, "data", (64, 64), (16, 16), (32, 32), "f4", np.nan)
    with pytest.raises(ValueError, match=r"inner chunk \(2, 0\) is not in shard \(0, 0\)"):
        encode_shard(ours, (0, 0), [((2, 0), np.zeros((16, 16), "f4"))])


@pytest.mark.parametrize("memory_bytes", [0, 3000, 2**40])
def test_spilled_chunks_give_the_same_shard(tmp_path, memory_bytes):
    """Encoded chunks beyond the memory budget go to a temporary file; the shard's bytes do not change."""
    rng = np.random.default_rng(3)
    shape, chunks, shards = (3, 96, 100), (1, 16, 20), (3, 64, 80)
    ours, ref = _arrays(tmp_path, "con", shape, chunks, shards, "i4", 0)
    values = rng.integers(0, 1000, size=shape).astype("i4")
    ref[...] = values
    spill = tmp_path / "spill"
    spill.mkdir()
    for coords in np.ndindex(1, 2, 2):
        with ShardEncoder(ours, coords, memory_bytes=memory_bytes, spill_dir=str(spill)) as encoder:
            for chunk_coords, block in _blocks(values, chunks, shards, coords):
                encoder.add(chunk_coords, block)
            data = encoder.to_bytes()
            assert any(spill.iterdir()) is False  # an anonymous file: nothing visible, nothing left behind
        assert data == (tmp_path / "g.zarr" / "con_zarr" / shard_chunk_key(ref, coords)).read_bytes(), coords
