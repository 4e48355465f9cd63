"""A real single-node SLURM cluster on this machine, for the ``slurm`` tests.

The session fixture :func:`slurm` installs Debian's ``slurm-wlm`` and ``munge``
with apt-get when they are missing (as root), writes a ``slurm.conf`` for one
node with the machine's real CPUs and memory (from ``slurmd -C``), starts
``munged``, ``slurmctld`` and ``slurmd`` in the foreground as child processes
of the test session, with every state directory, socket and port private to
the session, and stops them by their PIDs at the end.

Outside CI the tests are skipped when SLURM cannot be installed (not root, no
apt-get); under CI (``CI`` set) that is an error instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["SlurmInstance", "slurm"]

#: Debian packages providing the daemons, the client commands and munge.
SLURM_PACKAGES = ("slurm-wlm", "munge")
_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_NEEDED = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")


@dataclass
class SlurmInstance:
    """A running single-node SLURM."""

    root: Path
    conf: Path
    node: str
    cpus: int
    real_memory_mb: int
    env: dict[str, str]
    startup_seconds: float
    install_seconds: float
    pids: dict[str, int] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this instance."""
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    def queue(self) -> list[str]:
        """Job ids still queued or running."""
        out = self.run("squeue", "-h", "-o", "%i", check=False).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def wait_for_job(self, job_id: str, timeout: float = 240) -> str:
        """Wait until ``job_id`` has left the queue; return its final state."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            out = self.run("scontrol", "-o", "show", "job", job_id, check=False).stdout
            for tok in out.split():
                if tok.startswith("JobState="):
                    state = tok.split("=", 1)[1]
            if state and state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED"):
                return state
            time.sleep(0.5)
        raise TimeoutError(f"SLURM job {job_id} still {state or 'unknown'} after {timeout:.0f} s")


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"SLURM test cluster unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"SLURM test cluster unavailable: {reason}")


def ensure_slurm_installed() -> float:
    """Install SLURM and munge with apt-get when missing; return the seconds spent."""
    missing = [n for n in _NEEDED if _which(n) is None]
    if not missing:
        return 0.0
    if os.geteuid() != 0:
        _unavailable(f"{', '.join(missing)} missing and not root to install {' '.join(SLURM_PACKAGES)}")
    if _which("apt-get") is None:
        _unavailable(f"{', '.join(missing)} missing and no apt-get")
    t0 = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *SLURM_PACKAGES],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            _unavailable(f"{' '.join(cmd)} failed: {tail[0]}")
    still = [n for n in _NEEDED if _which(n) is None]
    if still:
        _unavailable(f"{', '.join(still)} still missing after installing {' '.join(SLURM_PACKAGES)}")
    return time.monotonic() - t0


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def node_hardware() -> dict[str, int]:
    """CPUs, sockets, cores, threads and memory (MB) as ``slurmd -C`` reports them."""
    out = subprocess.run([_which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, timeout=60).stdout
    hw: dict[str, int] = {}
    for tok in out.split():
        key, _, value = tok.partition("=")
        if key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory"):
            hw[key] = int(value)
    if "CPUs" not in hw or "RealMemory" not in hw:  # fall back on /proc
        hw = {"CPUs": os.cpu_count() or 1, "RealMemory": _meminfo_mb()}
    return hw


def _meminfo_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal missing from /proc/meminfo")


def write_slurm_conf(root: Path, node: str, hw: dict[str, int], ports: list[int]) -> Path:
    """A slurm.conf for one node, every path under ``root``."""
    for d in ("state", "spool", "log", "run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    layout = " ".join(
        f"{k}={hw[k]}"
        for k in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
        if k in hw
    )
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName=dasktest
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/run/munge.socket
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={node} {layout} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
""")
    return conf


def _stop(procs: dict[str, subprocess.Popen]) -> None:
    for name in ("slurmd", "slurmctld", "munged"):
        proc = procs.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmInstance]:
    """Start a private single-node SLURM (munged + slurmctld + slurmd) for the session."""
    install_seconds = ensure_slurm_installed()
    t0 = time.monotonic()
    # short path: the munge socket path must fit in sockaddr_un
    root = Path(tmp_path_factory.mktemp("slurm", numbered=True))
    node = socket.gethostname().split(".")[0]
    hw = node_hardware()
    conf = write_slurm_conf(root, node, hw, _free_ports(2))
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    logs = root / "log"
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, *args: str) -> None:
        out = open(logs / f"{name}.out", "wb")  # noqa: SIM115 - closed with the process
        procs[name] = subprocess.Popen(
            [_which(name) or name, *args], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    try:
        start(
            "munged",
            "--foreground",
            "--force",
            f"--socket={root}/run/munge.socket",
            f"--key-file={key}",
            f"--pid-file={root}/run/munged.pid",
            f"--log-file={logs}/munged.log",
            f"--seed-file={root}/run/munged.seed",
        )
        _wait(lambda: (root / "run" / "munge.socket").exists(), 30, "munged socket", procs, logs)
        start("slurmctld", "-D", "-i", "-f", str(conf))
        start("slurmd", "-D", "-f", str(conf), "-N", node)

        def idle() -> bool:
            out = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30
            ).stdout
            return "idle" in out

        _wait(idle, 90, "node idle", procs, logs)
    except BaseException:
        _stop(procs)
        raise
    inst = SlurmInstance(
        root=root,
        conf=conf,
        node=node,
        cpus=hw["CPUs"],
        real_memory_mb=hw["RealMemory"],
        env=env,
        startup_seconds=time.monotonic() - t0,
        install_seconds=install_seconds,
        pids={name: p.pid for name, p in procs.items()},
    )
    print(
        f"\nSLURM test cluster: node {node}, {inst.cpus} CPUs, {inst.real_memory_mb} MB; "
        f"started in {inst.startup_seconds:.1f} s (install {install_seconds:.1f} s)"
    )
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)  # dask-jobqueue's sbatch/scancel calls inherit it
    try:
        yield inst
    finally:
        try:
            subprocess.run(["scancel", "--user", str(os.getuid())], env=env, capture_output=True, timeout=30)
            deadline = time.monotonic() + 30
            while inst.queue() and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old
            _stop(procs)


def _wait(cond, timeout: float, what: str, procs: dict[str, subprocess.Popen], logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, p in procs.items():
            if p.poll() is not None:
                text = (logs / f"{name}.out").read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"{name} exited with {p.returncode} while waiting for {what}: {' | '.join(text)}")
        if cond():
            return
        time.sleep(0.1)
    raise TimeoutError(f"SLURM test cluster: no {what} after {timeout:.0f} s")
