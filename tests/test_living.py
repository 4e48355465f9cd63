"""Living mosaics: updates bit-identical to runs from scratch, versions, transactions, on disk and on S3."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dask_resample import GridSpec, InputError, history, living, living_output_wcs, open_mosaic, resample, update
from dask_resample.living import attempt
from dask_resample.store.living import LivingStoreError, is_living
from dask_resample.testing import synthetic

TILE = (32, 32)
GRID = GridSpec(crval=(53.16, -27.78), pixel_scale=0.031, shape_yx=(256, 256))


@pytest.fixture(scope="module")
def six(tmp_path_factory) -> list[str]:
    """3 dithers x 2 detectors of 64 x 64 pixels (plain FITS: quick to read), as paths in input order."""
    ds = synthetic.write_dataset(
        tmp_path_factory.mktemp("living6"),
        n_dithers=3,
        n_detectors=2,
        shape=(64, 64),
        seed=11,
        sky_level=0.25,
        n_sources=20,
        fmt="fits",
    )
    return [str(p) for p in ds.paths]


@pytest.fixture(scope="module")
def six_jwst(tmp_path_factory) -> list[str]:
    """The same layout as JWST ``*_cal.fits`` files (gwcs, datamodels)."""
    ds = synthetic.write_dataset(
        tmp_path_factory.mktemp("living6j"),
        n_dithers=3,
        n_detectors=2,
        shape=(64, 64),
        seed=11,
        sky_level=0.25,
        n_sources=20,
    )
    return [str(p) for p in ds.paths]


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> list[str]:
    """34 single-detector dithers of 24 x 24 pixels: more than 32 inputs, so two context planes."""
    ds = synthetic.write_dataset(
        tmp_path_factory.mktemp("living34"),
        n_dithers=34,
        n_detectors=1,
        shape=(24, 24),
        seed=12,
        n_sources=4,
        dither_arcsec=0.3,
        fmt="fits",
    )
    return [str(p) for p in ds.paths]


def scratch_run(
    paths: list[str], mosaic: Path | str, out: Path, storage_options: dict | None = None, **params: Any
) -> Path:
    """A run from scratch over ``paths`` on the living mosaic's grid."""
    resample(
        paths,
        out,
        output_wcs=living_output_wcs(mosaic, storage_options),
        tile_shape=TILE,
        scheduler="serial",
        progress=False,
        **params,
    )
    return out


def assert_identical(
    mosaic: Any, reference: Path, version: int | str | None = None, storage_options: dict | None = None
) -> None:
    """Every array of the living mosaic equals, bit for bit, those of the run from scratch."""
    a = open_mosaic(mosaic, version=version, storage_options=storage_options)
    b = open_mosaic(reference)
    assert sorted(a.data_vars) == sorted(b.data_vars)
    for name in b.data_vars:
        va, vb = a[name].values, b[name].values
        assert va.dtype == vb.dtype and va.shape == vb.shape, (name, va.shape, vb.shape)
        assert np.array_equal(va, vb, equal_nan=va.dtype.kind == "f"), f"{name} differs"
    ma, mb = a.attrs["dask_resample"], b.attrs["dask_resample"]
    assert [r["filename"] for r in ma["inputs"]] == [r["filename"] for r in mb["inputs"]]
    assert [r["context_bit"] for r in ma["inputs"]] == [r["context_bit"] for r in mb["inputs"]]
    assert ma["totals"] == mb["totals"]


def _snapshot(mosaic: Any, version: Any = None) -> dict[str, np.ndarray]:
    ds = open_mosaic(mosaic, version=version)
    return {name: ds[name].values for name in ds.data_vars}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[n].shape == b[n].shape and np.array_equal(a[n], b[n], equal_nan=a[n].dtype.kind == "f") for n in a
    )


# -- 1. the fixed grid --------------------------------------------------------------------------------
def test_grid_larger_than_the_data_stores_only_tiles_where_data_land(six, tmp_path):
    import zarr

    from dask_resample.store import as_location
    from dask_resample.store.living import BRANCH, open_repository

    mosaic = tmp_path / "live"
    sky = GridSpec(crval=(53.16, -27.78), pixel_scale=0.031, shape_yx=(1024, 1024), rotation=10.0)
    result = update(mosaic, add=six[:2], grid=sky, tile_shape=TILE, scheduler="serial")
    n_tiles = (sky.shape_yx[0] // TILE[0]) * (sky.shape_yx[1] // TILE[1])
    assert 0 < result.n_recomputed < n_tiles / 20
    repo = open_repository(as_location(mosaic))
    data = zarr.open_group(repo.readonly_session(branch=BRANCH).store, mode="r")["data"]
    assert data.shape == sky.shape_yx
    assert 0 < data.nchunks_initialized <= result.n_recomputed
    assert_identical(mosaic, scratch_run(six[:2], mosaic, tmp_path / "ref.zarr"))


def test_input_partly_off_the_grid_is_clipped_as_from_scratch_and_one_off_it_is_refused(six, tmp_path):
    mosaic = tmp_path / "live"
    small = GridSpec(crval=(53.16, -27.78), pixel_scale=0.031, shape_yx=(96, 96))
    with pytest.warns(UserWarning, match="extends beyond the grid"):
        update(mosaic, add=six[:2], grid=small, tile_shape=TILE, scheduler="serial")
    assert_identical(mosaic, scratch_run(six[:2], mosaic, tmp_path / "ref.zarr"))
    far = synthetic.write_dataset(
        tmp_path / "far", n_dithers=1, n_detectors=1, shape=(32, 32), ra_deg=60.0, dec_deg=10.0, seed=1, fmt="fits"
    )
    before = history(mosaic)
    with pytest.raises(InputError, match="does not land on the grid"):
        update(mosaic, add=[str(far.paths[0])], scheduler="serial")
    assert history(mosaic) == before


# -- 2. add and remove, bit-identical to runs from scratch ---------------------------------------------------
@pytest.mark.parametrize(
    "files, params",
    [
        ("six_jwst", {}),
        (
            "six",
            {
                "kernel": "turbo",
                "pixfrac": 0.8,
                "weight_type": "exptime",
                "fillval": "0",
                "compute_err": "driz_err",
                "propagate_dq": True,
                "enable_var": False,
            },
        ),
    ],
    ids=["jwst-defaults", "fits-turbo-exptime-err-dq"],
)
def test_add_then_remove_is_bit_identical_to_runs_from_scratch(files, params, tmp_path, client, request):
    six = request.getfixturevalue(files)
    mosaic = tmp_path / "live"
    first = update(mosaic, add=six[:3], grid=GRID, tile_shape=TILE, client=client, **params)
    assert first.version.number == 1
    second = update(mosaic, add=six[3:], client=client, **params)
    assert second.version.number == 2 and 0 < second.n_recomputed
    # every recomputed tile that held inputs is extended from its kept sums: only the added inputs are drizzled
    assert second.n_extended > 0 and second.n_drizzled == len(six[3:])
    assert_identical(mosaic, scratch_run(six, mosaic, tmp_path / "all.zarr", **params))
    # remove an early input: later inputs' context bits move down (relabelled tiles)
    third = update(mosaic, remove=[Path(six[1]).name], client=client)
    assert third.n_relabelled > 0
    kept = [p for k, p in enumerate(six) if k != 1]
    assert_identical(mosaic, scratch_run(kept, mosaic, tmp_path / "kept.zarr", **params))
    # by content fingerprint, the last input
    fp = next(a for a in second.version.added if a["source"] == six[-1])["fingerprint"]
    update(mosaic, remove=[fp[:12]], client=client)
    assert_identical(mosaic, scratch_run(kept[:-1], mosaic, tmp_path / "kept2.zarr", **params))
    # added back at the end: the sums the removals rewrote (and cleared) are extended again
    back = update(mosaic, add=[six[1]], client=client)
    assert back.n_extended > 0 and back.n_drizzled == 1
    assert_identical(mosaic, scratch_run([*kept[:-1], six[1]], mosaic, tmp_path / "back.zarr", **params))
    # the earlier versions are still there, whole
    assert_identical(mosaic, tmp_path / "all.zarr", version=2)


def test_without_kept_sums_updates_drizzle_earlier_inputs_again_with_the_same_bits(six, tmp_path, client):
    import dask
    import zarr

    from dask_resample.living.sums import SUMS_GROUP
    from dask_resample.store import as_location
    from dask_resample.store.living import BRANCH, open_repository

    mosaic = tmp_path / "live"
    with dask.config.set({"resample.living.keep-sums": False}):
        update(mosaic, add=six[:3], grid=GRID, tile_shape=TILE, client=client)
    # the choice is the mosaic's: later updates follow it whatever the configuration says
    second = update(mosaic, add=six[3:], client=client)
    assert second.n_extended == 0 and second.n_drizzled > len(six[3:])
    repo = open_repository(as_location(mosaic))
    assert SUMS_GROUP not in zarr.open_group(repo.readonly_session(branch=BRANCH).store, mode="r")
    assert_identical(mosaic, scratch_run(six, mosaic, tmp_path / "all.zarr"))


def test_added_inputs_add_a_context_plane_and_removal_takes_it_away(many, tmp_path, client):
    mosaic = tmp_path / "live"
    grid = GridSpec(crval=(53.16, -27.78), pixel_scale=0.031, shape_yx=(128, 128))
    update(mosaic, add=many[:30], grid=grid, tile_shape=TILE, client=client)
    assert open_mosaic(mosaic)["con"].shape[0] == 1
    added = update(mosaic, add=many[30:], client=client)
    assert added.n_extended > 0  # kept sums extended by inputs whose bits fall in a new plane
    assert open_mosaic(mosaic)["con"].shape[0] == 2
    assert_identical(mosaic, scratch_run(many, mosaic, tmp_path / "all.zarr"))
    result = update(mosaic, remove=[Path(many[0]).name, Path(many[5]).name], client=client)
    assert open_mosaic(mosaic)["con"].shape[0] == 1
    kept = [p for k, p in enumerate(many) if k not in (0, 5)]
    assert_identical(mosaic, scratch_run(kept, mosaic, tmp_path / "kept.zarr"))
    assert result.version.n_inputs == 32


def test_removing_every_input_of_a_tile_clears_it(six, tmp_path):
    mosaic = tmp_path / "live"
    update(mosaic, add=six[:2], grid=GRID, tile_shape=TILE, scheduler="serial")
    result = update(mosaic, remove=[Path(six[1]).name], scheduler="serial")
    assert result.n_cleared > 0
    assert_identical(mosaic, scratch_run(six[:1], mosaic, tmp_path / "ref.zarr"))


# -- 4. history and locked parameters ----------------------------------------------------------------------
def test_history_records_every_version_and_parameters_are_locked(six, tmp_path):
    mosaic = tmp_path / "live"
    update(mosaic, add=six[:2], grid=GRID, tile_shape=TILE, scheduler="serial", pixfrac=0.9)
    update(mosaic, add=six[2:3], scheduler="serial", pixfrac=0.9)
    update(mosaic, remove=[Path(six[0]).name], scheduler="serial")
    versions = history(mosaic)
    assert [v.number for v in versions] == [3, 2, 1]
    v3, v2, v1 = versions
    assert [a["filename"] for a in v1.added] == [Path(p).name for p in six[:2]]
    assert [a["filename"] for a in v2.added] == [Path(six[2]).name] and not v2.removed
    assert [r["filename"] for r in v3.removed] == [Path(six[0]).name] and not v3.added
    assert all(len(a["fingerprint"]) == 64 for v in versions for a in (*v.added, *v.removed))
    assert all(v.params["pixfrac"] == 0.9 and v.software.startswith("dask-resample ") and v.time for v in versions)
    assert v3.n_inputs == 2
    assert open_mosaic(mosaic, version=1)["data"].shape == GRID.shape_yx
    assert _same(_snapshot(mosaic, version=v2.snapshot), _snapshot(mosaic, version=2))
    with pytest.raises(LivingStoreError, match="no version 9"):
        open_mosaic(mosaic, version=9)
    with pytest.raises(ValueError, match="pixfrac: the living mosaic .* was made with pixfrac=0.9, got 0.5"):
        update(mosaic, add=six[3:4], scheduler="serial", pixfrac=0.5)
    with pytest.raises(ValueError, match="grid of a living mosaic is fixed"):
        update(mosaic, add=six[3:4], grid=GRID, scheduler="serial")
    with pytest.raises(ValueError, match="outliers"):
        update(mosaic, add=six[3:4], scheduler="serial", outliers=True)
    with pytest.raises(ValueError, match="already an input"):
        update(mosaic, add=six[1:2], scheduler="serial")
    with pytest.raises(ValueError, match="is not an input"):
        update(mosaic, remove=["nope_cal.fits"], scheduler="serial")
    assert len(history(mosaic)) == 3


def test_one_shot_resample_still_writes_plain_zarr_and_leaves_a_living_mosaic_alone(six, tmp_path):
    import zarr

    from dask_resample import MosaicExistsError

    out = tmp_path / "plain.zarr"
    resample(six[:2], out, tile_shape=TILE, scheduler="serial", progress=False)
    assert not is_living(out) and zarr.open_group(str(out), mode="r")["data"].shape
    mosaic = tmp_path / "live"
    update(mosaic, add=six[:2], grid=GRID, tile_shape=TILE, scheduler="serial")
    with pytest.raises(MosaicExistsError, match="not a dask-resample mosaic"):
        resample(six[:2], mosaic, tile_shape=TILE, scheduler="serial", progress=False, overwrite=True)


# -- 3. transactions -------------------------------------------------------------------------------------------
def test_a_reader_during_an_update_sees_the_old_or_the_new_version_never_a_mix(six, tmp_path, monkeypatch):
    mosaic = tmp_path / "live"
    update(mosaic, add=six[:3], grid=GRID, tile_shape=TILE, scheduler="serial")
    old = _snapshot(mosaic)
    new = _snapshot(scratch_run(six, mosaic, tmp_path / "new.zarr"))
    monkeypatch.setattr(attempt, "before_commit", lambda location: time.sleep(1.5))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            update(mosaic, add=six[3:], scheduler="serial")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    seen = []
    while worker.is_alive():
        now = _snapshot(mosaic)
        seen.append("old" if _same(now, old) else "new" if _same(now, new) else "mix")
    worker.join()
    assert not errors, errors
    seen.append("old" if _same(_snapshot(mosaic), old) else "new" if _same(_snapshot(mosaic), new) else "mix")
    assert "mix" not in seen and seen[0] == "old" and seen[-1] == "new", seen


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from dask_resample import update
    from dask_resample.living import attempt
    attempt.before_commit = lambda location: os.kill(os.getpid(), signal.SIGKILL)
    update(sys.argv[1], add=sys.argv[2:], scheduler="serial")
""")


def test_a_killed_update_leaves_the_previous_version_and_a_rerun_completes(six, tmp_path):
    mosaic = tmp_path / "live"
    update(mosaic, add=six[:3], grid=GRID, tile_shape=TILE, scheduler="serial")
    before, versions = _snapshot(mosaic), history(mosaic)
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(mosaic), *six[3:]],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert history(mosaic) == versions and _same(_snapshot(mosaic), before)
    update(mosaic, add=six[3:], scheduler="serial")
    assert [v.number for v in history(mosaic)] == [2, 1]
    assert_identical(mosaic, scratch_run(six, mosaic, tmp_path / "ref.zarr"))


def _env() -> dict[str, str]:
    import os

    import dask_resample

    root = str(Path(dask_resample.__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _race(monkeypatch, jobs: list[dict[str, Any]], mosaic: Path | str) -> list[Any]:
    """Run updates in threads that all reach their commit before any commits; results or exceptions."""
    barrier = threading.Barrier(len(jobs), timeout=120)
    first_pass = threading.local()

    def wait_for_the_others(location: Any) -> None:
        if not getattr(first_pass, "done", False):  # the planned-again attempts go straight on
            first_pass.done = True
            barrier.wait()

    monkeypatch.setattr(attempt, "before_commit", wait_for_the_others)
    out: list[Any] = [None] * len(jobs)

    def run(k: int) -> None:
        try:
            out[k] = update(mosaic, scheduler="serial", **jobs[k])
        except Exception as exc:  # noqa: BLE001 - returned to the test
            out[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_updates_on_disjoint_and_overlapping_tiles_both_land(six, tmp_path, monkeypatch):
    mosaic = tmp_path / "live"
    wide = GridSpec(crval=(53.16, -27.78), pixel_scale=0.031, shape_yx=(480, 480))  # room for a disjoint input
    update(mosaic, add=six[:2], grid=wide, tile_shape=TILE, scheduler="serial")
    far = synthetic.write_dataset(
        tmp_path / "far",
        n_dithers=1,
        n_detectors=1,
        shape=(48, 48),
        ra_deg=53.16 + 4.0 / 3600 / np.cos(np.radians(27.78)),
        dec_deg=-27.78 + 4.0 / 3600,
        seed=2,
        n_sources=3,
        fmt="fits",
    )
    # one update far from the data (disjoint tiles), one over it (overlapping tiles)
    results = _race(monkeypatch, [{"add": [str(far.paths[0])]}, {"add": six[2:4]}], mosaic)
    assert not any(isinstance(r, Exception) for r in results), results
    assert sorted(r.attempts for r in results) == [1, 2]
    order = [a["source"] for v in reversed(history(mosaic)) for a in v.added]
    assert sorted(order) == sorted([*six[:4], str(far.paths[0])]) and len(history(mosaic)) == 3
    assert_identical(mosaic, scratch_run(order, mosaic, tmp_path / "ref.zarr"))
    # two removals of the same input: one lands, the other fails clearly
    results = _race(monkeypatch, [{"remove": [six[0]]}, {"remove": [six[0]]}], mosaic)
    failed = [r for r in results if isinstance(r, Exception)]
    assert len(failed) == 1 and "is not an input" in str(failed[0])
    assert_identical(mosaic, scratch_run(order[1:], mosaic, tmp_path / "ref2.zarr"))


def test_an_update_that_keeps_losing_the_race_fails_clearly(six, tmp_path, monkeypatch):
    mosaic = tmp_path / "live"
    update(mosaic, add=six[:2], grid=GRID, tile_shape=TILE, scheduler="serial")
    real_before_commit = attempt.before_commit

    def another_update_lands_first(location: Any) -> None:
        monkeypatch.setattr(attempt, "before_commit", real_before_commit)
        update(mosaic, add=[six[len(history(mosaic)) + 1]], scheduler="serial")
        monkeypatch.setattr(attempt, "before_commit", another_update_lands_first)

    monkeypatch.setattr(attempt, "before_commit", another_update_lands_first)
    with pytest.raises(living.LivingConflictError, match="2 attempts"):
        update(mosaic, remove=[Path(six[0]).name], scheduler="serial", retries=1)
    assert [len(v.removed) for v in history(mosaic)] == [0, 0, 0]


# -- 6. on S3 -----------------------------------------------------------------------------------------------------
def test_living_mosaic_on_s3_is_bit_identical_and_transactional(six, tmp_path, s3_bucket, client):
    bucket, opts = s3_bucket
    url = f"s3://{bucket}/living"
    update(url, add=six[:3], grid=GRID, tile_shape=TILE, storage_options=opts, client=client)
    assert is_living(url, opts)
    before = {n: v.values for n, v in open_mosaic(url, storage_options=opts).data_vars.items()}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            KILL_SCRIPT.replace(
                'update(sys.argv[1], add=sys.argv[2:], scheduler="serial")',
                f'update(sys.argv[1], add=sys.argv[2:], scheduler="serial", storage_options={opts!r})',
            ),
            url,
            *six[3:],
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert len(history(url, opts)) == 1
    assert _same({n: v.values for n, v in open_mosaic(url, storage_options=opts).data_vars.items()}, before)
    update(url, add=six[3:], storage_options=opts, client=client)
    update(url, remove=[Path(six[2]).name], storage_options=opts, client=client)
    kept = [p for k, p in enumerate(six) if k != 2]
    assert_identical(url, scratch_run(kept, url, tmp_path / "ref.zarr", storage_options=opts), storage_options=opts)
    assert_identical(
        url, scratch_run(six, url, tmp_path / "all.zarr", storage_options=opts), version=2, storage_options=opts
    )
    assert [v.number for v in history(url, opts)] == [3, 2, 1]


# -- 5. the command line ----------------------------------------------------------------------------------
def test_command_line_add_remove_log(six, tmp_path, capsys):
    from dask_resample.cli import main

    mosaic = tmp_path / "live"
    grid = [
        "--crval",
        "53.16",
        "-27.78",
        "--pixel-scale",
        "0.031",
        "--output-shape",
        "256",
        "256",
        "--tile-shape",
        "32",
        "32",
        "--serial",
        "--quiet",
    ]
    assert main(["add", str(mosaic), *six[:3], *grid]) == 0
    assert main(["add", str(mosaic), *six[3:], "--serial", "--quiet", "--pixfrac", "1.0"]) == 0
    assert main(["remove", str(mosaic), Path(six[0]).name, "--serial", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["log", str(mosaic)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["v3", "v2", "v1"]
    assert f"-{Path(six[0]).name}" in lines[0] and f"+{Path(six[3]).name}" in lines[1]
    # the command line's defaults are jwst's ResampleStep's, as for 'run'
    from dask_resample.params import step_defaults

    assert_identical(mosaic, scratch_run(six[1:], mosaic, tmp_path / "ref.zarr", **step_defaults()))
    assert main(["add", str(mosaic), six[0], "--serial", "--pixfrac", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "pixfrac: the living mosaic" in err and "pixfrac=1.0, got 0.5" in err and len(err.splitlines()) == 1
    assert main(["add", str(tmp_path / "new"), six[0], "--serial"]) == 1
    assert "needs its fixed grid" in capsys.readouterr().err


def test_a_killed_creation_leaves_no_version_and_a_rerun_creates_the_mosaic(six, tmp_path):
    mosaic = tmp_path / "live"
    script = KILL_SCRIPT.replace(
        'update(sys.argv[1], add=sys.argv[2:], scheduler="serial")',
        "from dask_resample import GridSpec\n"
        'update(sys.argv[1], add=sys.argv[2:], scheduler="serial", tile_shape=(32, 32), '
        f"grid=GridSpec(crval=(53.16, -27.78), pixel_scale=0.031, shape_yx={GRID.shape_yx}))",
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(mosaic), *six[:2]],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert is_living(mosaic) and history(mosaic) == []
    with pytest.raises(LivingStoreError, match="no version yet"):
        open_mosaic(mosaic)
    update(mosaic, add=six[:2], grid=GRID, tile_shape=TILE, scheduler="serial")
    assert [v.number for v in history(mosaic)] == [1]
    assert_identical(mosaic, scratch_run(six[:2], mosaic, tmp_path / "ref.zarr"))


def test_concurrent_updates_on_s3_both_land(six, tmp_path, s3_bucket, monkeypatch):
    bucket, opts = s3_bucket
    url = f"s3://{bucket}/living"
    update(url, add=six[:2], grid=GRID, tile_shape=TILE, storage_options=opts, scheduler="serial")
    results = _race(
        monkeypatch, [{"add": six[2:4], "storage_options": opts}, {"add": six[4:], "storage_options": opts}], url
    )
    assert not any(isinstance(r, Exception) for r in results), results
    assert sorted(r.attempts for r in results) == [1, 2]
    order = [a["source"] for v in reversed(history(url, opts)) for a in v.added]
    assert sorted(order) == sorted(six) and len(history(url, opts)) == 3
    assert_identical(url, scratch_run(order, url, tmp_path / "ref.zarr", storage_options=opts), storage_options=opts)
