"""Mosaics on a real single-node SLURM cluster started by the test session.

The cluster comes from :func:`tests.slurm_fixture.slurm`; every run here is
compared bit for bit with a LocalCluster run of the same command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .slurm_fixture import SlurmInstance, slurm  # noqa: F401 - session fixture
from .test_resume import assert_same_mosaic

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("dask-resample"))
TILE = ("--tile-shape", "32", "32")


def _cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"dask-resample {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def api_reference(small_dataset, client, tmp_path_factory) -> Path:
    """The mosaic made by :func:`dask_resample.resample` (API defaults) on the session LocalCluster."""
    from dask_resample import resample

    out = tmp_path_factory.mktemp("slurm_api_ref") / "local.zarr"
    resample(small_dataset.asn_path, out, tile_shape=(32, 32), client=client, progress=False)
    return out


@pytest.fixture(scope="module")
def local_reference(small_dataset, tmp_path_factory) -> Path:
    """The mosaic made by ``dask-resample run`` on a two-worker LocalCluster."""
    d = tmp_path_factory.mktemp("slurm_ref")
    out = d / "local.zarr"
    _cli(
        "run",
        str(small_dataset.asn_path),
        "-o",
        str(out),
        *TILE,
        "--cluster",
        "local",
        "--workers",
        "2",
        "--quiet",
        env=dict(os.environ),
        cwd=d,
    )
    return out


def _jobqueue_config(directory: Path, work: Path) -> Path:
    """A user's Dask config directory: jobqueue.yaml for this node, and resample.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    (work / "worker-space").mkdir(parents=True, exist_ok=True)
    (work / "job-logs").mkdir(parents=True, exist_ok=True)
    (directory / "jobqueue.yaml").write_text(
        yaml.safe_dump(
            {
                "jobqueue": {
                    "slurm": {
                        "name": "dask-resample-test",
                        "cores": 1,
                        "processes": 1,
                        "memory": "2GB",
                        "walltime": "00:15:00",
                        "python": sys.executable,
                        "interface": "lo",
                        "local-directory": str(work / "worker-space"),
                        "log-directory": str(work / "job-logs"),
                        "death-timeout": 60,
                    }
                }
            }
        )
    )
    # wait for every worker, so that both jobs take part in the run
    (directory / "resample.yaml").write_text(
        yaml.safe_dump({"resample": {"jobqueue": {"wait-for-workers": None, "wait-timeout": 180}}})
    )
    return directory


def test_slurm_node_is_up(slurm: SlurmInstance) -> None:
    """The private SLURM knows one idle node with this machine's CPUs and runs a job step."""
    out = slurm.run("sinfo", "-h", "-N", "-o", "%N %c %m %T").stdout.split()
    assert out[0] == slurm.node
    assert int(out[1]) == slurm.cpus and slurm.cpus in {os.cpu_count(), len(os.sched_getaffinity(0))}
    assert int(out[2]) == slurm.real_memory_mb
    assert out[3] == "idle"
    step = slurm.run("srun", "-n", "1", "-t", "1", "hostname", timeout=60)
    assert step.stdout.strip().split(".")[0] == slurm.node
    assert slurm.startup_seconds > 0
    print(f"SLURM fixture start: {slurm.startup_seconds:.1f} s (install {slurm.install_seconds:.1f} s)")


def test_cli_cluster_slurm_two_jobs_matches_local(
    slurm: SlurmInstance, small_dataset, local_reference, tmp_path: Path
) -> None:
    """``dask-resample run --cluster slurm --jobs 2`` (settings from the user's jobqueue.yaml)."""
    conf_dir = _jobqueue_config(tmp_path / "dask-config", tmp_path)
    env = {**slurm.env, "DASK_CONFIG": str(conf_dir)}
    out = tmp_path / "slurm.zarr"
    _cli(
        "run",
        str(small_dataset.asn_path),
        "-o",
        str(out),
        *TILE,
        "--cluster",
        "slurm",
        "--jobs",
        "2",
        "--quiet",
        env=env,
        cwd=tmp_path,
    )
    assert_same_mosaic(out, local_reference)
    # two batch jobs ran a worker each (dask-jobqueue names the logs dask-worker-<jobid>.err)
    logs = sorted((tmp_path / "job-logs").glob("*.err"))
    started = [p for p in logs if "Starting Worker plugin" in p.read_text() or "Start worker" in p.read_text()]
    assert len(started) == 2, [p.name for p in logs]
    assert not slurm.queue(), "worker jobs left behind"


def test_sbatch_driver_script(slurm: SlurmInstance, small_dataset, local_reference, tmp_path: Path) -> None:
    """deploy/sbatch_driver.sh submitted with sbatch: a driver job starting one worker job."""
    conf_dir = _jobqueue_config(tmp_path / "dask-config", tmp_path)
    out = tmp_path / "driver.zarr"
    env = {
        **slurm.env,
        "DASK_CONFIG": str(conf_dir),
        "DASK_RESAMPLE_JOBS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    # the node has few CPUs: the driver takes one, the worker job another
    sub = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--mem=2G",
            "--time=00:10:00",
            f"--chdir={tmp_path}",
            f"--output={tmp_path}/driver-%j.out",
            str(REPO / "deploy" / "sbatch_driver.sh"),
            str(small_dataset.asn_path),
            "-o",
            str(out),
            *TILE,
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    job_id = sub.stdout.strip().split(";")[0]
    state = slurm.wait_for_job(job_id, timeout=300)
    log_text = (tmp_path / f"driver-{job_id}.out").read_text(errors="replace")
    assert state == "COMPLETED", f"driver job {state}:\n{log_text[-3000:]}"
    assert "1 worker jobs" in log_text
    assert_same_mosaic(out, local_reference)


def test_in_allocation_runner(slurm: SlurmInstance, small_dataset, api_reference, tmp_path: Path) -> None:
    """deploy/in_allocation/sbatch_runner.sh: scheduler, client and worker in one allocation (SLURMRunner)."""
    out = tmp_path / "runner.zarr"
    env = {**slurm.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # 3 tasks (scheduler, client, worker) on a node with fewer CPUs: --overcommit
    sub = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--ntasks=3",
            "--overcommit",
            "--mem-per-cpu=2G",
            "--time=00:10:00",
            f"--chdir={REPO}",
            f"--output={tmp_path}/runner-%j.out",
            str(REPO / "deploy" / "in_allocation" / "sbatch_runner.sh"),
            str(small_dataset.asn_path),
            "-o",
            str(out),
            "--tile-shape",
            "32",
            "32",
        ],
        env={**env, "DASK_RESAMPLE_SCHEDULER_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    job_id = sub.stdout.strip().split(";")[0]
    state = slurm.wait_for_job(job_id, timeout=300)
    log_text = (tmp_path / f"runner-{job_id}.out").read_text(errors="replace")
    assert state == "COMPLETED", f"runner job {state}:\n{log_text[-3000:]}"
    # the client task ran the mosaic against the scheduler task, found through the shared file
    assert "Mosaic done: " in log_text and str(out) in log_text
    assert_same_mosaic(out, api_reference)


def test_jobs_that_never_start_time_out_and_are_cancelled(slurm: SlurmInstance, tmp_path: Path) -> None:
    """Waiting for workers gives up with a one-line error and leaves no job behind."""
    import time

    from dask_resample.execution.hpc import start_jobqueue_cluster

    with pytest.raises(TimeoutError, match=r"^cluster: 1 worker\(s\) of SLURMCluster did not start within 5 s"):
        start_jobqueue_cluster(
            "slurm",
            jobs=1,
            cores=1,
            memory="1GB",
            walltime="00:05:00",
            python=sys.executable,
            interface="lo",
            log_directory=str(tmp_path),
            job_extra_directives=["--begin=now+1hour"],
            timeout=5,
            job_name="never-starts",
        )
    deadline = time.monotonic() + 30
    while slurm.queue() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not slurm.queue()
    # the job was submitted, held by its begin time, and cancelled on the way out
    jobs = [
        line
        for line in slurm.run("scontrol", "-o", "show", "job").stdout.splitlines()
        if "JobName=never-starts" in line
    ]
    assert len(jobs) == 1 and "JobState=CANCELLED" in jobs[0]
