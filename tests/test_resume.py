"""Resume: runs killed with SIGKILL at different moments finish bit-identical to a clean run."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dask_resample import ResampleParams, open_mosaic, resample
from dask_resample.drizzle.reduce import empty_pixel_values
from dask_resample.store import (
    create_store,
    gwcs_from_text,
    is_mosaic,
    layout_problems,
    read_metadata,
    tiles_done,
)

TILE = (32, 32)

#: A run in a process of its own, as a user or a batch job would start it.
RUN_SCRIPT = """
import sys
from dask_resample import resample
resample(sys.argv[1], sys.argv[2], tile_shape=(32, 32), scheduler=sys.argv[3], resume=True, progress=False)
"""


def _groups(path: Path) -> list[str | None]:
    meta = read_metadata(path)
    return list(meta["groups"]) if meta.get("mode") == "many_to_many" else [None]


def assert_same_mosaic(ours: Path, ref: Path) -> None:
    """Every array of two mosaics is bit-identical (NaNs in the same places), metadata equal."""
    assert is_mosaic(ours), f"{ours}: not a mosaic"
    assert _groups(ours) == _groups(ref)
    for group in _groups(ref):
        a = open_mosaic(ours, group=group)
        b = open_mosaic(ref, group=group)
        assert sorted(a.data_vars) == sorted(b.data_vars)
        for name in b.data_vars:
            va, vb = a[name].values, b[name].values
            assert va.dtype == vb.dtype and va.shape == vb.shape, name
            same = (va == vb) | (np.isnan(va) & np.isnan(vb)) if va.dtype.kind == "f" else va == vb
            assert np.array_equal(va, vb, equal_nan=va.dtype.kind == "f"), (
                f"{group or ''}/{name}: differs at {np.count_nonzero(~same)} pixels"
            )
        meta_a, meta_b = read_metadata(ours, group), read_metadata(ref, group)
        # the serialised gwcs carries the writer's ASDF history: compare what it computes
        wcs_a, wcs_b = gwcs_from_text(meta_a.pop("wcs_asdf")), gwcs_from_text(meta_b.pop("wcs_asdf"))
        assert meta_a == meta_b
        ny, nx = b["data"].shape
        yy, xx = np.mgrid[0 : ny : max(1, ny // 4), 0 : nx : max(1, nx // 4)]
        assert np.array_equal(np.array(wcs_a(xx, yy)), np.array(wcs_b(xx, yy)))


def _markers(out: Path) -> int:
    d = out / "_progress"
    return sum(1 for p in d.glob("*_*.json")) if d.is_dir() else 0


def _staging(out: Path) -> list[Path]:
    return list(out.parent.glob(f".{out.name}.staging-*"))


def _process_group_alive(pgid: int) -> list[int]:
    """PIDs (not zombies) still in process group ``pgid``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def _run_and_kill(
    asn: Path, out: Path, scheduler: str, when: Callable[[], bool], env: dict | None = None, timeout: float = 120
) -> dict:
    """Start a run in a new session; SIGKILL its whole process group once ``when()`` holds."""
    log_path = out.parent / f"{out.name}.stderr"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN_SCRIPT, str(asn), str(out), scheduler],
            start_new_session=True,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and not when():
            if time.monotonic() > deadline:
                raise TimeoutError("the run did not reach the kill point")
            time.sleep(0.001)
        state = {
            "finished": proc.poll() is not None,
            "markers": _markers(out),
            "staging": bool(_staging(out)),
            "exists": out.exists(),
        }
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    if state["finished"]:
        assert proc.returncode == 0, log_path.read_text(errors="replace")[-2000:]
    deadline = time.monotonic() + 10
    while _process_group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    state["left_alive"] = _process_group_alive(proc.pid)
    return state


@pytest.fixture(scope="module")
def reference(small_dataset, tmp_path_factory) -> Path:
    """An uninterrupted run (same parameters as the killed ones)."""
    out = tmp_path_factory.mktemp("resume_ref") / "clean.zarr"
    resample(small_dataset.asn_path, out, tile_shape=TILE, scheduler="serial", progress=False)
    return out


@pytest.fixture(scope="module")
def n_tiles(reference) -> int:
    return _markers(reference)


def _resume_logged(caplog) -> tuple[int, int] | None:
    for rec in caplog.records:
        m = re.search(r"Resuming .*: (\d+) of (\d+) tiles already complete", rec.getMessage())
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


@pytest.mark.parametrize("moment", ["creating", "first_tile", "half"])
def test_sigkill_then_resume_is_bit_identical(moment, small_dataset, reference, n_tiles, tmp_path, caplog):
    """Kill a serial run while the store is created, after the first tile, half way; resume."""
    assert n_tiles >= 20, "the case needs many tiles"
    out = tmp_path / "killed.zarr"
    when = {
        "creating": lambda: bool(_staging(out)) or out.exists(),
        "first_tile": lambda: _markers(out) >= 1,
        "half": lambda: _markers(out) >= n_tiles // 2,
    }[moment]
    state = _run_and_kill(small_dataset.asn_path, out, "serial", when)
    print(moment, state)
    assert not state["finished"], "the run ended before the kill"
    assert not state["left_alive"]
    # what a killed run leaves: no mosaic at all, or a mosaic with some complete tiles
    assert not out.exists() or is_mosaic(out)
    n_before = _markers(out)
    assert n_before < n_tiles
    existed = out.exists()
    if existed:
        assert open_mosaic(out)["data"].shape == open_mosaic(reference)["data"].shape  # readable as is
    if moment == "creating":
        assert n_before == 0
    with caplog.at_level(logging.INFO, logger="dask_resample"):
        resample(small_dataset.asn_path, out, tile_shape=TILE, scheduler="serial", resume=True, progress=False)
    if existed:
        assert _resume_logged(caplog) == (n_before, n_tiles)
    else:
        assert any("nothing to resume" in r.getMessage() for r in caplog.records)
    assert_same_mosaic(out, reference)
    assert _markers(out) == n_tiles
    assert not _staging(out), "half-created copies left behind"


def test_sigkill_of_whole_local_cluster_then_resume(small_dataset, reference, n_tiles, tmp_path, client, caplog):
    """Kill a distributed run (driver, scheduler, nannies, workers) mid-way; resume on another cluster."""
    out = tmp_path / "killed.zarr"
    state = _run_and_kill(
        small_dataset.asn_path,
        out,
        "distributed",
        lambda: _markers(out) >= 3,
        env={"DASK_RESAMPLE__LOCAL__N_WORKERS": "2"},
        timeout=180,
    )
    assert not state["finished"], "the run ended before the kill"
    assert not state["left_alive"], f"processes survived the kill: {state['left_alive']}"
    n_before = _markers(out)
    assert 3 <= n_before < n_tiles
    with caplog.at_level(logging.INFO, logger="dask_resample"):
        resample(small_dataset.asn_path, out, tile_shape=TILE, client=client, resume=True, progress=False)
    done, total = _resume_logged(caplog)
    assert done == n_before and total == n_tiles
    assert_same_mosaic(out, reference)


def test_resume_rewrites_tiles_without_marker(reference, small_dataset, n_tiles, tmp_path, caplog):
    """Chunks written without a marker (killed mid-tile) are rewritten; stray partial files go."""
    import zarr

    out = tmp_path / "partial.zarr"
    shutil.copytree(reference, out)
    done = sorted(tiles_done(out))
    victims = done[:: max(1, len(done) // 4)][:4]
    root = zarr.open_group(str(out), mode="r+")
    ty_n, tx_n = TILE
    for ty, tx in victims:
        (out / "_progress" / f"{ty}_{tx}.json").unlink()
        for name in ("data", "wht"):
            arr = root[name]
            region = arr[ty * ty_n : (ty + 1) * ty_n, tx * tx_n : (tx + 1) * tx_n]
            arr[ty * ty_n : (ty + 1) * ty_n, tx * tx_n : (tx + 1) * tx_n] = np.full_like(region, 7.0)
    # temporary files of interrupted chunk and marker writes
    (out / "data" / "c" / "0" / "0.deadbeef.partial").write_bytes(b"junk")
    (out / "_progress" / ".tmp-abc").write_text("{")
    # consolidated metadata is only written at the end: drop it
    doc = json.loads((out / "zarr.json").read_text())
    doc.pop("consolidated_metadata", None)
    (out / "zarr.json").write_text(json.dumps(doc))
    assert open_mosaic(out)["data"].shape == open_mosaic(reference)["data"].shape
    with caplog.at_level(logging.INFO, logger="dask_resample"):
        resample(small_dataset.asn_path, out, tile_shape=TILE, scheduler="serial", resume=True, progress=False)
    assert _resume_logged(caplog) == (n_tiles - len(victims), n_tiles)
    assert_same_mosaic(out, reference)
    assert not list(out.rglob("*.partial")) and not list(out.rglob(".tmp-*"))


def test_resume_refuses_other_parameters(reference, small_dataset, tmp_path):
    """Different parameters: refused with a one-line error, the store untouched."""
    out = tmp_path / "other.zarr"
    shutil.copytree(reference, out)
    before = sorted(p.name for p in (out / "_progress").iterdir())
    with pytest.raises(ValueError, match=r"cannot resume: inputs, parameters or grid differ") as err:
        resample(small_dataset.asn_path, out, tile_shape=TILE, scheduler="serial", resume=True, pixfrac=0.5)
    assert "\n" not in str(err.value) and str(out) in str(err.value)
    with pytest.raises(ValueError, match="cannot resume"):
        resample(small_dataset.asn_path, out, tile_shape=(48, 48), scheduler="serial", resume=True)
    assert sorted(p.name for p in (out / "_progress").iterdir()) == before
    assert_same_mosaic(out, reference)


def test_resume_refuses_changed_input(small_dataset, tmp_path):
    """An input rewritten since the first run (size/mtime) is refused."""
    data = tmp_path / "data"
    shutil.copytree(small_dataset.directory, data)
    asn = data / small_dataset.asn_path.name
    out = tmp_path / "m.zarr"
    resample(asn, out, tile_shape=(64, 64), scheduler="serial", progress=False)
    first = sorted(data.glob("*_cal.fits"))[0]
    st = first.stat()
    os.utime(first, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(ValueError, match="cannot resume"):
        resample(asn, out, tile_shape=(64, 64), scheduler="serial", resume=True)


def _half_created(out: Path, reference: Path) -> None:
    """The layout an interrupted in-place creation leaves: metadata, some arrays missing."""
    meta = read_metadata(reference)
    ref = open_mosaic(reference)
    create_store(
        out,
        groups={"": {"attrs": {}, "n_ctx_planes": ref["con"].shape[0]}},
        root_attrs=meta,
        shape_yx=ref["data"].shape,
        tile_shape_yx=TILE,
        arrays=tuple(meta["arrays"]),
        fill_values=empty_pixel_values(ResampleParams(**meta["params"]), meta["grid"]["pixel_scale_ratio"]),
        many_to_many=False,
    )
    shutil.rmtree(out / "var_flat")
    shutil.rmtree(out / "_progress")


def test_half_created_store_is_started_over(reference, small_dataset, tmp_path, caplog):
    out = tmp_path / "half.zarr"
    _half_created(out, reference)
    assert layout_problems(out, [""], read_metadata(reference)["arrays"])
    with caplog.at_level(logging.WARNING, logger="dask_resample"):
        resample(small_dataset.asn_path, out, tile_shape=TILE, scheduler="serial", resume=True, progress=False)
    assert any("starting over" in r.getMessage() for r in caplog.records)
    assert_same_mosaic(out, reference)


def test_damaged_store_with_finished_tiles_is_refused(reference, small_dataset, tmp_path):
    out = tmp_path / "damaged.zarr"
    shutil.copytree(reference, out)
    shutil.rmtree(out / "var_flat")
    with pytest.raises(ValueError, match=r"cannot resume: the store is damaged \(array var_flat missing\)"):
        resample(small_dataset.asn_path, out, tile_shape=TILE, scheduler="serial", resume=True)


def test_leftover_copies_are_removed_and_output_is_never_half_made(reference, small_dataset, tmp_path):
    out = tmp_path / "m.zarr"
    stale = [tmp_path / f".m.zarr.staging-{'a' * 12}", tmp_path / f".m.zarr.trash-{'b' * 12}"]
    for d in stale:
        (d / "data").mkdir(parents=True)
    unrelated = tmp_path / ".other.zarr.staging-cccccccccccc"
    unrelated.mkdir()
    resample(small_dataset.asn_path, out, tile_shape=TILE, scheduler="serial", resume=True, progress=False)
    assert not any(d.exists() for d in stale)
    assert unrelated.exists()
    assert_same_mosaic(out, reference)
    # overwrite replaces the mosaic through a rename: no trash is left
    resample(small_dataset.asn_path, out, tile_shape=TILE, scheduler="serial", overwrite=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".other.zarr.staging-cccccccccccc", "m.zarr"])
    assert_same_mosaic(out, reference)


def test_progress_of_unfinished_mosaic_is_readable(reference, small_dataset, tmp_path):
    """What ``info`` reads: planned tiles in the metadata and the markers, before the run ends."""
    out = tmp_path / "p.zarr"
    shutil.copytree(reference, out)
    for marker in sorted((out / "_progress").glob("*_*.json"))[::2]:
        marker.unlink()
    meta = read_metadata(out)
    planned = meta["n_tiles_planned"][""]
    done = tiles_done(out)
    assert 0 < len(done) < planned
    assert all({"tile", "n_inputs"} <= set(rec) for rec in done.values())


def test_many_to_many_resume_recomputes_only_missing_tiles(single_detector_dataset, tmp_path, caplog):
    """One group's tiles lost their markers (and hold wrong data): only those are recomputed."""
    import zarr

    asn = single_detector_dataset.asn_path
    ref = tmp_path / "ref.zarr"
    resample(asn, ref, mode="many_to_many", tile_shape=TILE, scheduler="serial", progress=False)
    out = tmp_path / "m.zarr"
    shutil.copytree(ref, out)
    group = read_metadata(ref)["groups"][1]
    lost = sorted(tiles_done(out, group))[:3]
    arr = zarr.open_group(str(out), mode="r+")[f"{group}/data"]
    for ty, tx in lost:
        (out / group / "_progress" / f"{ty}_{tx}.json").unlink()
        sl = (slice(ty * TILE[0], (ty + 1) * TILE[0]), slice(tx * TILE[1], (tx + 1) * TILE[1]))
        arr[sl] = np.zeros_like(arr[sl])
    total = sum(len(tiles_done(ref, g)) for g in read_metadata(ref)["groups"])
    with caplog.at_level(logging.INFO, logger="dask_resample"):
        resample(asn, out, mode="many_to_many", tile_shape=TILE, scheduler="serial", resume=True, progress=False)
    assert _resume_logged(caplog) == (total - len(lost), total)
    assert_same_mosaic(out, ref)
