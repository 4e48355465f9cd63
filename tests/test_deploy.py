"""The deploy/ configurations: batch scripts, jobqueue YAML, Dockerfile, Kubernetes manifest.

What cannot run here is checked against the real tools that consume it: the
jobqueue YAML is loaded into dask.config and turned into job scripts by the
dask-jobqueue classes, the shell scripts pass ``bash -n``, the container
commands are checked against the ``dask`` command line installed here.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import dask.config
import pytest
import yaml

from dask_resample.execution import hpc

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
IMAGE = "dask-resample:0.1.0"


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: how dask.config merges a user's file."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _directives(script: str, prefix: str) -> list[str]:
    return [line[len(prefix) :].strip() for line in script.splitlines() if line.startswith(prefix)]


# --------------------------------------------------------------------------- jobqueue


def test_every_jobqueue_class_is_reachable_by_name():
    import dask_jobqueue

    names = hpc.jobqueue_names()
    assert {"slurm", "pbs", "sge", "lsf", "oar", "htcondor", "moab"} <= set(names)
    assert hpc.jobqueue_class("slurm") is dask_jobqueue.SLURMCluster
    assert hpc.jobqueue_class("PBSCluster") is dask_jobqueue.PBSCluster
    with pytest.raises(ValueError, match="cluster: unknown cluster 'kube'"):
        hpc.jobqueue_class("kube")


def test_slurm_job_script_has_the_directives():
    cluster = hpc.make_jobqueue_cluster(
        "slurm",
        cores=4,
        memory="16GB",
        walltime="01:30:00",
        processes=2,
        queue="compute",
        account="astro42",
        job_extra_directives=["--constraint=haswell"],
    )
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    d = _directives(script, "#SBATCH")
    assert "-J dask-worker" in d
    assert "-p compute" in d and "-A astro42" in d
    assert "-n 1" in d and "--cpus-per-task=4" in d
    assert "--mem=15G" in d  # 16 GB = 14.9 GiB, rounded as dask-jobqueue does
    assert "-t 01:30:00" in d
    assert "--constraint=haswell" in d
    assert "--nworkers 2" in script and "--nthreads 2" in script


def test_pbs_job_script_has_the_directives():
    cluster = hpc.make_jobqueue_cluster(
        "pbs", cores=8, memory="32GB", walltime="04:00:00", queue="workq", account="astro42"
    )
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    d = _directives(script, "#PBS")
    assert "-q workq" in d and "-A astro42" in d
    assert any(re.fullmatch(r"-l select=1:ncpus=8:mem=\d+[GM]B", x) for x in d), d
    assert "-l walltime=04:00:00" in d


def test_account_maps_to_project_where_the_batch_system_calls_it_so():
    cluster = hpc.make_jobqueue_cluster("sge", cores=1, memory="2GB", account="astro42")
    try:
        assert "#$ -P astro42" in cluster.job_script()
    finally:
        cluster.close()
    with pytest.raises(ValueError, match="account: HTCondorCluster has no account"):
        hpc.jobqueue_kwargs("htcondor", cores=1, memory="1GB", account="x")
    with pytest.raises(ValueError, match="queue_name: not a setting of SLURMCluster"):
        hpc.jobqueue_kwargs("slurm", cores=1, memory="1GB", queue_name="x")


def test_users_jobqueue_yaml_is_respected():
    """Keys the caller leaves unset keep the user's values; passed ones override."""
    user = {
        "jobqueue.slurm.queue": "long",
        "jobqueue.slurm.account": "astro42",
        "jobqueue.slurm.cores": 2,
        "jobqueue.slurm.memory": "8GB",
        "jobqueue.slurm.walltime": "12:00:00",
    }
    with dask.config.set(user):
        cls, kw = hpc.jobqueue_kwargs("slurm", walltime="00:20:00")
        assert kw == {"walltime": "00:20:00"}
        cluster = hpc.make_jobqueue_cluster("slurm", walltime="00:20:00")
        try:
            d = _directives(cluster.job_script(), "#SBATCH")
        finally:
            cluster.close()
    assert "-p long" in d and "-A astro42" in d and "--cpus-per-task=2" in d and "--mem=8G" in d
    assert "-t 00:20:00" in d
    with pytest.raises(ValueError, match=r"cores: no value for SLURMCluster; .*jobqueue\.slurm\.cores"):
        hpc.jobqueue_kwargs("slurm", memory="1GB")


@pytest.mark.parametrize(("name", "filename"), [("slurm", "jobqueue-slurm.yaml"), ("pbs", "jobqueue-pbs.yaml")])
def test_deploy_jobqueue_yaml_is_accepted(name, filename):
    """The example files parse, hold only keys dask-jobqueue knows, and make a job script."""
    doc = yaml.safe_load((DEPLOY / filename).read_text())
    assert list(doc) == ["jobqueue"] and list(doc["jobqueue"]) == [name]
    known = set(dask.config.get(f"jobqueue.{name}"))
    unknown = set(doc["jobqueue"][name]) - known
    assert not unknown, f"{filename}: keys dask-jobqueue does not know: {unknown}"
    with dask.config.set(_flatten(doc)):
        cluster = hpc.make_jobqueue_cluster(name)
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
    if name == "slurm":
        d = _directives(script, "#SBATCH")
        assert {"-J dask-resample", "--cpus-per-task=1", "--mem=6G", "-t 02:00:00", "--signal=SIGTERM@60"} <= set(d)
    else:
        d = _directives(script, "#PBS")
        assert "-N dask-resample" in d and "-l walltime=02:00:00" in d and "-j oe" in d
        assert any(x.startswith("-l select=1:ncpus=1:mem=") for x in d)
    assert "source ~/dask-resample-env/bin/activate" in script
    assert "--lifetime 115m" in script and "--local-directory $TMPDIR" in script
    # the worker command line is one that `dask worker` accepts here
    worker_cmd = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    flags = [tok for tok in shlex.split(worker_cmd, posix=False) if tok.startswith("--")]
    help_text = subprocess.run(
        [sys.executable, "-m", "distributed.cli.dask_worker", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in flags:
        assert flag in help_text, f"{flag} unknown to dask worker"


# --------------------------------------------------------------------------- scripts


def _shell_scripts() -> list[Path]:
    return sorted(DEPLOY.rglob("*.sh"))


def test_shell_scripts_pass_bash_n():
    scripts = _shell_scripts()
    assert {p.name for p in scripts} >= {"sbatch_driver.sh", "sbatch_runner.sh", "srun_scheduler_file.sh"}
    for script in scripts:
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{script.name}: {proc.stderr}"
        assert script.read_text().startswith("#!/usr/bin/env bash\n"), script.name
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"


def test_sbatch_scripts_directives_are_accepted_by_sbatch_syntax():
    """#SBATCH lines use long options sbatch knows and come before the first command."""
    known = {
        "job-name",
        "ntasks",
        "cpus-per-task",
        "mem",
        "mem-per-cpu",
        "time",
        "output",
        "nodes",
        "ntasks-per-node",
        "partition",
        "account",
    }
    for script in (DEPLOY / "sbatch_driver.sh", DEPLOY / "in_allocation" / "sbatch_runner.sh"):
        lines = script.read_text().splitlines()
        first_cmd = next(i for i, line in enumerate(lines[1:], 1) if line.strip() and not line.startswith("#"))
        directives = [(i, line) for i, line in enumerate(lines) if line.startswith("#SBATCH")]
        assert directives, script.name
        for i, line in directives:
            assert i < first_cmd, f"{script.name}: #SBATCH after the first command is ignored by sbatch"
            opt = line.split()[1]
            assert opt.startswith("--") and opt[2:].split("=")[0] in known, line


def test_sbatch_driver_runs_the_cli_on_a_slurm_cluster():
    text = (DEPLOY / "sbatch_driver.sh").read_text()
    assert re.search(r'exec dask-resample run "\$@" --cluster slurm --jobs "\$\{jobs\}"', text)


def test_in_allocation_runner_script():
    path = DEPLOY / "in_allocation" / "run_mosaic.py"
    source = path.read_text()
    compile(source, str(path), "exec")
    assert "from dask_jobqueue.slurm import SLURMRunner" in source
    from dask_jobqueue.slurm import SLURMRunner  # the class the script uses exists here

    assert callable(SLURMRunner)
    proc = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--scheduler-file" in proc.stdout


def test_every_deploy_piece_has_a_readme():
    assert (DEPLOY / "README.md").is_file()
    for sub in ("in_allocation", "kubernetes"):
        assert (DEPLOY / sub / "README.md").is_file(), sub
    text = (DEPLOY / "README.md").read_text()
    for name in (
        "jobqueue-slurm.yaml",
        "jobqueue-pbs.yaml",
        "sbatch_driver.sh",
        "in_allocation",
        "Dockerfile",
        "kubernetes",
    ):
        assert name in text, name


# --------------------------------------------------------------------------- containers


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, args = buf.partition(" ")
        out.append((word.upper(), args.strip()))
        buf = ""
    assert not buf, "dangling line continuation"
    return out


def test_dockerfile_is_well_formed():
    instructions = _dockerfile_instructions((DEPLOY / "Dockerfile").read_text())
    known = {
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
    }
    assert all(word in known for word, _ in instructions), [w for w, _ in instructions if w not in known]
    assert instructions[0] == ("FROM", "python:3.12-slim")
    # every COPY source exists in the repository (the build context is its root)
    for word, args in instructions:
        if word == "COPY":
            *sources, _dest = args.split()
            for src in sources:
                assert (REPO / src).exists(), f"COPY {src}: not in the repository"
    # the package is installed with extras that pyproject.toml defines
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    pip = [args for word, args in instructions if word == "RUN" and "pip install" in args]
    assert pip
    wanted = re.search(r'"\.\[([a-z0-9,]+)\]"', pip[0])
    assert wanted and set(wanted.group(1).split(",")) <= extras and {"jwst", "hpc"} <= set(wanted.group(1).split(","))
    for word in ("ENTRYPOINT", "CMD"):
        args = dict(instructions)[word]
        assert isinstance(json.loads(args), list), f"{word} should be exec form"
    assert json.loads(dict(instructions)["CMD"])[0] == "dask-resample"
    exposed = {int(p) for p in dict(instructions)["EXPOSE"].split()}
    assert {8786, 8787} <= exposed
    from dask_resample._version import __version__ as version

    assert "version" in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dynamic"]
    assert IMAGE == f"dask-resample:{version}"
    assert IMAGE in (DEPLOY / "Dockerfile").read_text()


def _manifest() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "kubernetes" / "daskcluster.yaml").read_text())


def test_kubernetes_daskcluster_manifest():
    doc = _manifest()
    assert doc["apiVersion"] == "kubernetes.dask.org/v1" and doc["kind"] == "DaskCluster"
    name = doc["metadata"]["name"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63
    spec = doc["spec"]
    # fields the operator's CRD requires
    assert {"scheduler", "worker"} <= set(spec)
    assert "spec" in spec["worker"] and {"spec", "service"} <= set(spec["scheduler"])
    assert isinstance(spec["worker"]["replicas"], int) and spec["worker"]["replicas"] >= 1
    containers = spec["worker"]["spec"]["containers"] + spec["scheduler"]["spec"]["containers"]
    assert {c["image"] for c in containers} == {IMAGE}
    worker = spec["worker"]["spec"]["containers"][0]
    scheduler = spec["scheduler"]["spec"]["containers"][0]
    assert worker["args"][:2] == ["dask", "worker"] and scheduler["args"][:2] == ["dask", "scheduler"]
    # the service targets the scheduler's named ports and selects the operator's labels
    port_names = {p["name"] for p in scheduler["ports"]}
    service = spec["scheduler"]["service"]
    assert {p["targetPort"] for p in service["ports"]} <= port_names
    assert service["selector"] == {"dask.org/cluster-name": name, "dask.org/component": "scheduler"}
    # volumes mounted by the workers are declared
    declared = {v["name"] for v in spec["worker"]["spec"].get("volumes", [])}
    assert {m["name"] for m in worker.get("volumeMounts", [])} <= declared


@pytest.mark.parametrize("role", ["worker", "scheduler"])
def test_kubernetes_container_commands_are_valid_dask_cli(role):
    """Every option the manifest passes exists in the ``dask`` command line of this environment."""
    container = _manifest()["spec"][role]["spec"]["containers"][0]
    args = container["args"]
    help_text = subprocess.run(
        [str(Path(sys.executable).with_name("dask")), args[1], "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    for tok in args[2:]:
        if tok.startswith("--"):
            assert tok in help_text, f"dask {args[1]}: unknown option {tok}"
    if role == "worker":
        ports = {p["containerPort"] for p in container["ports"]}
        assert int(args[args.index("--dashboard-address") + 1]) in ports
