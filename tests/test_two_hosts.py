"""Two hosts: a cluster across two network namespaces reading and writing S3 gives the local serial result.

Namespace A holds the S3 server (SeaweedFS), the Dask scheduler, worker 1 and the
client; namespace B holds worker 2. The only way between them is a veth pair with
private addresses that exist only inside the namespaces, so worker 2 reaches the
inputs, the scheduler and the store over the network or not at all. Each worker,
the scheduler and the client start in an empty working directory of their own,
with their own ``TMPDIR``, under ``strace``: afterwards every file-system change
any of their processes made must lie in that process's own temporary directory
(the mosaic and the ``*_crf.fits`` files go to the store, never to a disk).

strace rather than a read-only mount namespace: a write refused by a read-only
mount surfaces only if the code does not catch it (caches and optional files
fall back silently), while the trace names every path written, including the
ones that would have failed.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

import dask_resample
from dask_resample.testing import synthetic

from .netns import (
    NetnsError,
    NetnsWeed,
    TracedDirs,
    clean_env,
    delete_pair,
    delete_stale_pairs,
    make_pair,
    netns_inode,
    parse_strace,
    popen_in_netns,
    stop_group,
    strace_prefix,
    wait_exit,
    writes_outside,
)

REPO = Path(__file__).resolve().parent.parent
TILE = (32, 32)
SCHEDULER_PORT = 8786
BUCKET = "two-hosts"
#: seconds the staging step and the client may take; each worker starts with an empty numba cache
#: of its own and compiles, under strace, the fused kernel's passes for resampling and outlier
#: detection before its first tasks finish (most of the client's time)
STAGE_TIMEOUT, CLIENT_TIMEOUT = 90.0, 300.0


# ----------------------------------------------------------------------------------------------
# what runs inside the namespaces (``python -c`` with the repository on PYTHONPATH)
# ----------------------------------------------------------------------------------------------
def _run_role(role: str, args_path: str) -> None:
    """Entry point of the processes started in a namespace: ``stage`` or ``client``."""
    args = json.loads(Path(args_path).read_text())
    {"stage": _stage, "client": _client}[role](args)


def _stage(args: dict[str, Any]) -> None:
    """Wait for the S3 API (creating the bucket), then upload the inputs."""
    import s3fs

    deadline = time.monotonic() + args["timeout"]
    while True:
        probe = s3fs.S3FileSystem(
            skip_instance_cache=True,
            **args["storage_options"],
            config_kwargs={"connect_timeout": 2, "read_timeout": 5, "retries": {"max_attempts": 1}},
        )
        try:
            probe.mkdir(args["bucket"])
            break
        except Exception as err:  # not up yet: connection refused, 5xx while the filer starts
            exists = False
            with contextlib.suppress(Exception):
                exists = probe.exists(args["bucket"])  # made by an attempt whose answer was lost
            if exists:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"S3 API at {args['storage_options']['client_kwargs']['endpoint_url']} "
                    f"did not create bucket {args['bucket']!r}: {err}"
                ) from err
            time.sleep(0.3)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **args["storage_options"])
    for local, url in args["uploads"]:
        fs.put_file(local, url)


def _client(args: dict[str, Any]) -> None:
    """Run resample and detect_outliers on the two-host cluster; save what the test compares."""
    import s3fs
    from distributed import Client, get_task_stream

    so, out = args["storage_options"], Path(args["out_dir"])
    with Client(args["scheduler"], timeout=60) as client:
        client.wait_for_workers(2, timeout=90)
        pids = client.run(os.getpid)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # a task stream's records arrive when its block ends
            with get_task_stream(client) as mosaic_stream:
                dask_resample.resample(
                    args["asn"], args["mosaic"], storage_options=so, client=client, tile_shape=TILE, progress=False
                )
            with get_task_stream(client) as outlier_stream:
                crf = dask_resample.detect_outliers(
                    args["asn"], args["od"], storage_options=so, client=client, tile_shape=TILE, progress=False
                )
    mosaic_tasks = collections.Counter(t["worker"] for t in mosaic_stream.data)
    outlier_tasks = collections.Counter(t["worker"] for t in outlier_stream.data)
    ds = dask_resample.open_mosaic(args["mosaic"], storage_options=so)
    np.savez(out / "mosaic.npz", **{name: np.asarray(ds[name].values) for name in ds.variables})
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **so)
    names = []
    for url in crf:
        name = str(url).rsplit("/", 1)[-1]
        fs.get_file(str(url), str(out / name))
        names.append(name)
    (out / "result.json").write_text(
        json.dumps(
            {
                "worker_pids": pids,
                "mosaic_tasks": mosaic_tasks,
                "outlier_tasks": outlier_tasks,
                "crf_urls": [str(u) for u in crf],
                "crf_names": names,
            }
        )
    )


def _python_role(role: str, args_path: Path) -> list[str]:
    code = f"from tests.test_two_hosts import _run_role; _run_role({role!r}, {str(args_path)!r})"
    return [sys.executable, "-c", code]


# ----------------------------------------------------------------------------------------------
# the test
# ----------------------------------------------------------------------------------------------
def _descendants(pid: int) -> set[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(p.name))
    found, todo = set(), [pid]
    while todo:
        q = todo.pop()
        found.add(q)
        todo += children[q]
    return found


def _net_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _without_write_time(asdf_tree: bytes) -> np.ndarray:
    """An ASDF HDU's bytes with the write time blanked: ``meta.date`` and ``_fits_hash`` (a hash of the headers,
    which hold the date too)."""
    out = re.sub(rb"(?m)^  date: '[^'\n]*'$", b"  date: <written>", asdf_tree, count=1)
    out = re.sub(rb"(?m)^_fits_hash: [0-9a-f]+$", b"_fits_hash: <of the headers>", out, count=1)
    return np.frombuffer(out, np.uint8)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def test_write_audit_finds_every_kind_of_write_outside_the_allowed_directory(tmp_path):
    """The audit's control: what a process writes outside its directory is named, however it is written."""
    own, other = tmp_path / "own", tmp_path / "other"
    for d in (own, other, own / "cwd"):
        d.mkdir()
    (other / "old").write_text("x")
    code = f"""
import os, threading
os.mkdir("made")                                   # relative: resolved against the working directory
open("made/a", "w").close()
os.rename("made/a", "made/b")
os.unlink("made/b")
os.rmdir("made")
open(os.devnull, "w").close()
open({str(other / "written")!r}, "w").close()    # outside, by path
fd = os.open({str(other)!r}, os.O_RDONLY)
os.mkdir("sub", dir_fd=fd)                         # outside, relative to a directory descriptor
os.chdir({str(other)!r})
os.rename("old", "renamed")                         # outside, relative after chdir
t = threading.Thread(target=lambda: open("from_thread", "a").close())
t.start(); t.join()                                 # outside, from another thread
os.chdir({str(own / "cwd")!r})
os.symlink("target", "link")
open({str(other / "renamed")!r}).read()             # reading outside is no write
"""
    why, prefix = "", []
    try:
        prefix = strace_prefix(tmp_path / "control.strace")
    except NetnsError as err:
        why = f"writes cannot be audited: {_one_line(err)}"
    if not prefix:
        pytest.fail(why, pytrace=False)
    subprocess.run(
        [*prefix, sys.executable, "-c", code],
        cwd=own / "cwd",
        check=True,
        timeout=60,
        env=clean_env({"PYTHONDONTWRITEBYTECODE": "1"}),
    )
    ops = parse_strace(tmp_path / "control.strace", own / "cwd")
    bad = writes_outside(ops, [own])
    inside = {(op.syscall, op.path) for op in ops if op not in bad}
    outside = {(op.syscall, op.path) for op in bad}
    made = str(own / "cwd" / "made")
    assert {
        ("mkdir", made),
        ("openat", f"{made}/a"),
        ("rename", f"{made}/a"),
        ("rename", f"{made}/b"),
        ("unlink", f"{made}/b"),
        ("rmdir", made),
        ("openat", "/dev/null"),
        ("symlink", str(own / "cwd" / "link")),
    } <= inside
    assert outside == {
        ("openat", str(other / "written")),
        ("mkdirat", str(other / "sub")),
        ("rename", str(other / "old")),
        ("rename", str(other / "renamed")),
        ("openat", str(other / "from_thread")),
    }


def test_two_hosts_cluster_on_s3_equals_local_serial_and_writes_only_its_own_dirs(tmp_path):
    """Scheduler, S3, worker 1 and client in namespace A, worker 2 in B: both work, the results are the
    serial ones bit for bit, and no process writes outside its own directory."""
    t0 = time.monotonic()
    why, pair = "", None
    try:
        strace_prefix(tmp_path / "probe")
    except NetnsError as err:
        why = f"writes cannot be audited: {_one_line(err)}"
    if not why:
        delete_stale_pairs()
        try:
            pair = make_pair()
        except (NetnsError, OSError, subprocess.SubprocessError) as err:
            why = f"two network namespaces could not be made: {_one_line(err)}"
    if pair is None:
        pytest.fail(why, pytrace=False)

    traced: dict[str, TracedDirs] = {}
    procs: dict[str, subprocess.Popen] = {}
    weed: NetnsWeed | None = None
    py_env = {"PYTHONPATH": str(REPO)}
    try:
        # -- services: S3 and the scheduler in A, one worker in A and one in B --------------------------
        (tmp_path / "s3").mkdir()
        weed = NetnsWeed(pair.a, pair.addr_a, tmp_path / "s3")
        scheduler_url = f"tcp://{pair.addr_a}:{SCHEDULER_PORT}"
        d = traced["scheduler"] = TracedDirs.under(tmp_path, "scheduler")
        with open(d.log, "wb") as log:
            procs["scheduler"] = popen_in_netns(
                pair.a,
                [
                    *strace_prefix(d.trace),
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_scheduler",
                    "--host",
                    pair.addr_a,
                    "--port",
                    str(SCHEDULER_PORT),
                    "--no-dashboard",
                ],
                cwd=d.cwd,
                env=d.env(py_env),
                log=log,
            )
        for name, ns, host in (("workerA", pair.a, pair.addr_a), ("workerB", pair.b, pair.addr_b)):
            d = traced[name] = TracedDirs.under(tmp_path, name, "local")
            with open(d.log, "wb") as log:
                procs[name] = popen_in_netns(
                    ns,
                    [
                        *strace_prefix(d.trace),
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        scheduler_url,
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--host",
                        host,
                        "--no-dashboard",
                        "--local-directory",
                        str(d.extra["local"]),
                        "--death-timeout",
                        "120",
                    ],
                    cwd=d.cwd,
                    env=d.env(py_env),
                    log=log,
                )

        # -- meanwhile: the inputs and the local serial reference -------------------------------------
        data = synthetic.write_dataset(
            tmp_path / "inputs", n_dithers=3, n_detectors=2, shape=(96, 96), seed=3, sky_level=0.25
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dask_resample.resample(
                str(data.asn_path), str(tmp_path / "local.zarr"), scheduler="serial", tile_shape=TILE
            )
            local_crf = dask_resample.detect_outliers(
                str(data.asn_path), str(tmp_path / "od"), scheduler="serial", tile_shape=TILE
            )
        t_local = time.monotonic()

        # -- upload the inputs to S3 (from A: the server is reachable nowhere else) ----------------------
        prefix = f"s3://{BUCKET}/visit"
        stage_args = tmp_path / "stage.json"
        stage_args.write_text(
            json.dumps(
                {
                    "storage_options": weed.storage_options,
                    "bucket": BUCKET,
                    "timeout": STAGE_TIMEOUT,
                    "uploads": [(str(p), f"{prefix}/{p.name}") for p in (*data.paths, data.asn_path)],
                }
            )
        )
        stage = subprocess.run(
            ["ip", "netns", "exec", pair.a, *_python_role("stage", stage_args)],
            check=False,
            cwd=tmp_path,
            env=clean_env({"PYTHONDONTWRITEBYTECODE": "1", **py_env}),
            capture_output=True,
            text=True,
            timeout=STAGE_TIMEOUT + 60,
        )
        assert stage.returncode == 0, f"upload to S3 failed:\n{stage.stderr[-3000:]}\nweed: {weed.log_tail()}"
        t_stage = time.monotonic()

        # -- the client, in A --------------------------------------------------------------------------
        d = traced["client"] = TracedDirs.under(tmp_path, "client", "results")
        client_args = tmp_path / "client.json"
        client_args.write_text(
            json.dumps(
                {
                    "storage_options": weed.storage_options,
                    "scheduler": scheduler_url,
                    "asn": f"{prefix}/{data.asn_path.name}",
                    "mosaic": f"s3://{BUCKET}/m.zarr",
                    "od": f"s3://{BUCKET}/od",
                    "out_dir": str(d.extra["results"]),
                }
            )
        )
        with open(d.log, "wb") as log:
            procs["client"] = popen_in_netns(
                pair.a,
                [*strace_prefix(d.trace), *_python_role("client", client_args)],
                cwd=d.cwd,
                env=d.env(py_env),
                log=log,
            )
        code = wait_exit(procs["client"], CLIENT_TIMEOUT)
        if code != 0:
            crashed = [
                f"{n} exited {p.returncode}:\n{traced[n].log_tail(8)}"
                for n, p in procs.items()
                if n != "client" and p.poll() is not None
            ]
            pytest.fail(
                f"client {'timed out' if code is None else f'exited {code}'}:\n{d.log_tail(40)}\n" + "\n".join(crashed),
                pytrace=False,
            )
        t_client = time.monotonic()
        result = json.loads((d.extra["results"] / "result.json").read_text())

        # -- two hosts, both working -------------------------------------------------------------------
        pids = {addr: int(pid) for addr, pid in result["worker_pids"].items()}
        assert len(pids) == 2, f"expected 2 workers, the scheduler had {sorted(pids)}"
        for name, ns, host in (("workerA", pair.a, pair.addr_a), ("workerB", pair.b, pair.addr_b)):
            ((addr, pid),) = [(a, p) for a, p in pids.items() if a.startswith(f"tcp://{host}:")]
            assert pid in _descendants(procs[name].pid), f"{addr}: pid {pid} is not a process of {name}"
            assert _net_inode(pid) == netns_inode(ns), f"{name} (pid {pid}) does not run in namespace {ns}"
            for stage_name in ("mosaic_tasks", "outlier_tasks"):
                assert result[stage_name].get(addr, 0) > 0, (
                    f"{name} ({addr}) ran no task of {stage_name.split('_')[0]}: {result[stage_name]}"
                )
        assert set(result["mosaic_tasks"]) | set(result["outlier_tasks"]) == set(pids), result

        # -- bit-identical to the local serial run -----------------------------------------------------
        remote = np.load(d.extra["results"] / "mosaic.npz")
        local = dask_resample.open_mosaic(str(tmp_path / "local.zarr"))
        assert sorted(remote.files) == sorted(map(str, local.variables)), (remote.files, list(local.variables))
        assert "data" in remote.files and "wht" in remote.files
        for name in remote.files:
            a, b = remote[name], np.asarray(local[name].values)
            assert a.dtype == b.dtype and a.shape == b.shape, f"mosaic {name}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
            assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), f"mosaic {name} differs from the local run"
        assert all(u.startswith(f"s3://{BUCKET}/od/") for u in result["crf_urls"]), result["crf_urls"]
        assert result["crf_names"] == [Path(p).name for p in local_crf]
        for name, loc in zip(result["crf_names"], local_crf, strict=True):
            with fits.open(d.extra["results"] / name) as r, fits.open(loc) as lo:
                assert [h.name for h in r] == [h.name for h in lo], f"{name}: HDUs differ"
                for hr, hl in zip(r, lo, strict=True):
                    if hl.data is None:
                        assert hr.data is None, f"{name}[{hl.name}]: data where the local file has none"
                        continue
                    a, b = np.asarray(hr.data), np.asarray(hl.data)
                    assert a.dtype == b.dtype and a.shape == b.shape, f"{name}[{hl.name}]: {a.dtype}{a.shape}"
                    if hl.name == "ASDF":
                        # the metadata tree: equal but for when the file was written
                        a, b = (_without_write_time(x.tobytes()) for x in (a, b))
                    assert a.tobytes() == b.tobytes(), f"{name}[{hl.name}]: data differ from the local run"

        # -- stop everything traced, then audit its writes ---------------------------------------------
        for name in ("workerA", "workerB", "scheduler"):
            stop_group(procs[name])
        violations = []
        for name, d in traced.items():
            ops = parse_strace(d.trace, d.cwd)
            assert any(op.path.startswith(str(d.root)) for op in ops) or name == "scheduler", (
                f"{name}: the trace records no write at all, not even in its own directory"
            )
            bad = writes_outside(ops, [d.root])
            violations += [f"{name} (tid {op.tid}) {op.syscall} {op.path}" for op in bad]
        assert not violations, f"{len(violations)} write(s) outside each process's own directory:\n" + "\n".join(
            violations[:40]
        )
        t_end = time.monotonic()
        print(
            f"two hosts: local serial {t_local - t0:.1f} s, upload {t_stage - t_local:.1f} s, "
            f"client {t_client - t_stage:.1f} s, stop+audit {t_end - t_client:.1f} s; tasks "
            f"{result['mosaic_tasks']} / {result['outlier_tasks']}"
        )
    finally:
        for proc in procs.values():
            stop_group(proc)
        if weed is not None:
            weed.stop()
        delete_pair(pair)
