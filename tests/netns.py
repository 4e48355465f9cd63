"""Two simulated hosts on one machine: network namespaces, processes in them, and a write audit.

:func:`make_pair` joins two fresh network namespaces with a veth pair and private
addresses that exist only inside them; :func:`delete_pair` removes them (and the
addresses with them). :func:`popen_in_netns` starts a command in a namespace in its
own process group and :func:`stop_group` ends that group. :class:`NetnsWeed` runs a
SeaweedFS S3 server (``weed mini``, with the flags of :class:`tests.s3_server.S3Server`)
bound to an address of a namespace.

The write audit runs a command under ``strace`` (:func:`strace_prefix`), then
:func:`parse_strace` reads back every file-system change the process tree made
(write-mode opens, creations, directories made or removed, renames, unlinks, links)
and :func:`writes_outside` keeps those that landed anywhere but the allowed
directories. Only these operations are recorded, through seccomp-bpf, so tracing
costs little; with ``-y`` strace prints the path behind every file descriptor
(``AT_FDCWD</cwd>``, ``3</dir>``, and the file an ``openat`` opened), so relative
paths are resolved against the directory the kernel used.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "NetnsError",
    "NetnsPair",
    "NetnsWeed",
    "TracedDirs",
    "WriteOp",
    "clean_env",
    "delete_pair",
    "delete_stale_pairs",
    "make_pair",
    "netns_inode",
    "parse_strace",
    "popen_in_netns",
    "stop_group",
    "strace_prefix",
    "wait_exit",
    "writes_outside",
]

#: System calls that change the file system (plus chdir/fchdir, to follow the working directory).
TRACED_SYSCALLS = (
    "open",
    "openat",
    "creat",
    "mkdir",
    "mkdirat",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "rmdir",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "truncate",
    "chdir",
    "fchdir",
)
#: ``open`` flags that make an open a write.
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND", "O_TMPFILE")
#: Paths any process may write: the null device, POSIX shared memory, its own ``/proc`` entries.
ALWAYS_ALLOWED = ("/dev/null", "/dev/shm")
_NS_DIR = Path("/run/netns")


class NetnsError(RuntimeError):
    """Network namespaces cannot be made or used here; the message is one line with the reason."""


# ----------------------------------------------------------------------------------------------
# namespaces
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NetnsPair:
    """Two network namespaces joined by a veth pair.

    Attributes
    ----------
    a, b : str
        Namespace names (``ip netns`` names).
    addr_a, addr_b : str
        The address of each end (no prefix length); they exist only inside the namespaces.
    prefix_len : int
        Prefix length of the link's subnet.
    """

    a: str
    b: str
    addr_a: str
    addr_b: str
    prefix_len: int = 24


def _ip(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run ``ip ARGS``; raise :class:`NetnsError` with ip's own message when it fails."""
    ip = shutil.which("ip")
    if ip is None:
        raise NetnsError("the 'ip' command (iproute2) is not installed")
    proc = subprocess.run([ip, *args], check=False, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        message = " ".join((proc.stderr or proc.stdout).split()) or f"exit code {proc.returncode}"
        raise NetnsError(f"'ip {' '.join(args)}' failed: {message}")
    return proc


def make_pair(tag: str | None = None, *, subnet: int | None = None) -> NetnsPair:
    """Create namespaces ``drA-<tag>`` and ``drB-<tag>`` joined by a veth pair.

    Each namespace gets ``lo`` up and one end of the pair, with ``10.251.<subnet>.1/24``
    in A and ``10.251.<subnet>.2/24`` in B. The veth pair is created inside A and its
    peer moved to B, so no interface or address ever appears in the caller's namespace.

    Parameters
    ----------
    tag : str, optional
        Suffix of the names; default this process's id.
    subnet : int, optional
        Third octet of the addresses (1-254); default derived from ``tag``.

    Returns
    -------
    NetnsPair

    Raises
    ------
    NetnsError
        When not root, ``ip`` is missing, or any step fails (what was made is removed).
    """
    if os.geteuid() != 0:
        raise NetnsError(f"network namespaces need root (running as uid {os.geteuid()})")
    tag = tag or str(os.getpid())
    if subnet is None:
        subnet = sum(tag.encode()) % 254 + 1
    pair = NetnsPair(a=f"drA-{tag}", b=f"drB-{tag}", addr_a=f"10.251.{subnet}.1", addr_b=f"10.251.{subnet}.2")
    made: list[str] = []
    try:
        for ns in (pair.a, pair.b):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", pair.a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", pair.b)
        for ns, addr, dev in ((pair.a, pair.addr_a, "veth0"), (pair.b, pair.addr_b, "veth1")):
            _ip("-n", ns, "addr", "add", f"{addr}/{pair.prefix_len}", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
    except BaseException:
        for ns in made:
            _delete_netns(ns)
        raise
    return pair


def _delete_netns(name: str) -> None:
    """Delete namespace ``name`` if it exists (errors ignored)."""
    if (_NS_DIR / name).exists():
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True, timeout=20)


def delete_pair(pair: NetnsPair) -> None:
    """Delete both namespaces of ``pair`` (their veth pair and addresses go with them).

    Processes still running in a namespace keep it alive; stop them first.

    Parameters
    ----------
    pair : NetnsPair
    """
    for ns in (pair.a, pair.b):
        _delete_netns(ns)


def delete_stale_pairs() -> list[str]:
    """Delete ``drA-<pid>`` / ``drB-<pid>`` namespaces whose creating process is gone.

    Returns
    -------
    list of str
        The names deleted.
    """
    gone = []
    try:
        names = [p.name for p in _NS_DIR.iterdir()]
    except OSError:
        return gone
    for name in names:
        m = re.fullmatch(r"dr[AB]-(\d+)", name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            _delete_netns(name)
            gone.append(name)
    return gone


def netns_inode(name: str) -> int:
    """Inode of namespace ``name``: equals ``os.stat(f"/proc/{pid}/ns/net").st_ino`` of its processes.

    Parameters
    ----------
    name : str

    Returns
    -------
    int
    """
    return os.stat(_NS_DIR / name).st_ino


# ----------------------------------------------------------------------------------------------
# processes
# ----------------------------------------------------------------------------------------------
def popen_in_netns(
    ns: str, argv: Sequence[str], *, cwd: str | os.PathLike, env: Mapping[str, str], log: IO[bytes] | None = None
) -> subprocess.Popen:
    """Start ``argv`` in namespace ``ns`` (``ip netns exec``) as the leader of a new process group.

    Parameters
    ----------
    ns : str
        Namespace name.
    argv : sequence of str
        The command (``ip netns exec`` replaces itself with it, so the Popen's pid is the command's).
    cwd : path-like
        Working directory.
    env : mapping
        The whole environment.
    log : binary file, optional
        Receives stdout and stderr (default: discarded).

    Returns
    -------
    subprocess.Popen
    """
    out = log if log is not None else subprocess.DEVNULL
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, *argv],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_group(proc: subprocess.Popen, timeout: float = 20.0) -> int | None:
    """SIGTERM the process group led by ``proc``, SIGKILL it after ``timeout`` seconds.

    Parameters
    ----------
    proc : subprocess.Popen
        Started with ``start_new_session=True``.
    timeout : float

    Returns
    -------
    int or None
        The leader's exit code (None if it could not be reaped).
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        # the leader may be gone while others of its group remain
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        return None


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without AWS credentials or proxies, plus ``extra``.

    Parameters
    ----------
    extra : mapping, optional

    Returns
    -------
    dict of str to str
    """
    drop = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k.lower() not in drop}
    env.update(extra or {})
    return env


# ----------------------------------------------------------------------------------------------
# SeaweedFS in a namespace
# ----------------------------------------------------------------------------------------------
_WEED_SERVICES = ("master", "volume", "filer", "s3", "admin")
_GRPC_OFFSET = 10000
_REGION = "us-east-1"


class NetnsWeed:
    """``weed mini`` in namespace ``ns``, every service bound to ``host``.

    The flags are :meth:`tests.s3_server.S3Server.mini_flags` with ``-ip``,
    ``-ip.bind`` and ``-metricsIp`` set to ``host``. The namespace has ports of its
    own, but ``weed`` names its local gRPC sockets ``/tmp/seaweedfs-<service>-grpc-<port>.sock``
    in the shared ``/tmp``, so the ports are drawn at random among those whose socket
    file does not exist. The server is not waited for: the first S3 request has to
    retry until it answers.

    Parameters
    ----------
    ns : str
        Namespace name.
    host : str
        Address (in ``ns``) to bind and advertise.
    data_dir : path-like
        Empty directory for the data, the identity file and the log.
    env : mapping, optional
        Environment (default :func:`clean_env`).

    Attributes
    ----------
    endpoint_url : str
        ``http://<host>:<s3 port>``.
    key, secret : str
        The only credentials the S3 API accepts.
    proc : subprocess.Popen
    """

    def __init__(self, ns: str, host: str, data_dir: str | os.PathLike, env: Mapping[str, str] | None = None) -> None:
        import secrets

        from .s3_server import S3Server, find_weed

        self.data_dir = Path(data_dir)
        self.ports = self._pick_ports()
        self.key, self.secret = "dr" + secrets.token_hex(8), secrets.token_hex(20)
        config = self.data_dir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "dask-resample-test",
                            "credentials": [{"accessKey": self.key, "secretKey": self.secret}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        config.chmod(0o600)
        overrides = {"ip": host, "ip.bind": host, "metricsIp": host}
        flags = [
            f
            for f in S3Server.mini_flags(str(self.data_dir), self.ports)
            if f.lstrip("-").split("=", 1)[0] not in overrides
        ]
        flags += [f"-{k}={v}" for k, v in overrides.items()]
        self.command = [find_weed(), "-logtostderr", "mini", *flags]
        self.endpoint_url = f"http://{host}:{self.ports['s3.port']}"
        self.log_path = self.data_dir / "weed.log"
        with open(self.log_path, "wb") as log:
            self.proc = popen_in_netns(ns, self.command, cwd=self.data_dir, env=env or clean_env(), log=log)

    @staticmethod
    def _pick_ports() -> dict[str, int]:
        """Random distinct ports (P, P + 10000) per service whose gRPC socket file is free, and a metrics port."""
        rng = random.SystemRandom()
        used: set[int] = set()
        ports: dict[str, int] = {}
        for name in _WEED_SERVICES:
            while True:
                p = rng.randrange(20000, 65536 - _GRPC_OFFSET)
                if {p, p + _GRPC_OFFSET} & used:
                    continue
                if any(Path(f"/tmp/seaweedfs-{s}-grpc-{p + _GRPC_OFFSET}.sock").exists() for s in _WEED_SERVICES):
                    continue
                break
            used |= {p, p + _GRPC_OFFSET}
            ports[f"{name}.port"], ports[f"{name}.port.grpc"] = p, p + _GRPC_OFFSET
        ports["metricsPort"] = next(p for p in iter(lambda: rng.randrange(20000, 65536), None) if p not in used)
        return ports

    @property
    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem``."""
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": _REGION},
        }

    def log_tail(self, lines: int = 5) -> str:
        """The last ``lines`` lines of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the server and remove its gRPC socket files from ``/tmp``."""
        stop_group(self.proc)
        for flag, port in self.ports.items():
            if flag.endswith(".grpc"):
                Path(f"/tmp/seaweedfs-{flag.split('.')[0]}-grpc-{port}.sock").unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------
# write audit
# ----------------------------------------------------------------------------------------------
def strace_prefix(log_prefix: str | os.PathLike) -> list[str]:
    """The ``strace`` words to put before a command to record its file-system changes.

    Every thread and child is followed (``-f``), each into its own file
    ``<log_prefix>.<tid>`` (``-ff``: no interleaved, unfinished lines); file
    descriptors are printed with their paths (``-y``); only :data:`TRACED_SYSCALLS`
    stop the tracee (``--seccomp-bpf``).

    Parameters
    ----------
    log_prefix : path-like
        Outside every directory the traced process may write.

    Returns
    -------
    list of str

    Raises
    ------
    NetnsError
        When ``strace`` is not installed.
    """
    strace = shutil.which("strace")
    if strace is None:
        raise NetnsError("the 'strace' command is not installed (apt-get install strace)")
    return [
        strace,
        "--seccomp-bpf",
        "-f",
        "-ff",
        "-y",
        "-qq",
        "-e",
        "trace=" + ",".join(TRACED_SYSCALLS),
        "-o",
        str(log_prefix),
        "--",
    ]


@dataclass(frozen=True)
class WriteOp:
    """One successful file-system change seen by strace.

    Attributes
    ----------
    tid : int
        Thread (or process) that made it.
    syscall : str
    path : str
        Absolute, normalised path changed (for a rename or link, each side is one WriteOp).
    line : str
        The strace line.
    """

    tid: int
    syscall: str
    path: str
    line: str


_LINE = re.compile(r"^(?P<name>[a-z0-9_]+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+)(?P<rest>.*)$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "a": "\a", "b": "\b", "\\": "\\", '"': '"'}


def _unescape(s: str) -> str:
    """Decode a strace C string body (``\\xNN``, octal ``\\NNN``, ``\\n``...) into a file name."""
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 == len(s):
            out += c.encode()
            i += 1
            continue
        nxt = s[i + 1]
        if nxt == "x":
            out.append(int(s[i + 2 : i + 4], 16))
            i += 4
        elif nxt in "01234567":
            j = i + 1
            while j < len(s) and j < i + 4 and s[j] in "01234567":
                j += 1
            out.append(int(s[i + 1 : j], 8))
            i = j
        else:
            out += _ESCAPES.get(nxt, nxt).encode()
            i += 2
    return out.decode(errors="surrogateescape")


def _split_args(args: str) -> list[str]:
    """Split a strace argument list at top-level commas (strings, ``<paths>`` and brackets kept whole)."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(args):
        c = args[i]
        if c == '"':
            j = i + 1
            while j < len(args) and args[j] != '"':
                j += 2 if args[j] == "\\" else 1
            cur.append(args[i : j + 1])
            i = j + 1
            continue
        if c in "([{<":
            depth += 1
        elif c in ")]}>":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur).strip())
    return parts


def _string(arg: str) -> str | None:
    """The value of a quoted string argument, else None."""
    m = re.fullmatch(r'"(.*)"(\.\.\.)?', arg, re.DOTALL)
    return _unescape(m.group(1)) if m else None


def _fd_path(arg: str) -> str | None:
    """The path of an fd argument decorated by ``-y`` (``AT_FDCWD</d>``, ``3</d>``), else None."""
    m = re.fullmatch(r"(?:AT_FDCWD|\d+)<(.*)>", arg, re.DOTALL)
    if not m:
        return None
    return m.group(1).removesuffix(" (deleted)")


def _join(base: str | None, path: str) -> str:
    if os.path.isabs(path) or base is None:
        return os.path.normpath(path)
    return os.path.normpath(os.path.join(base, path))


def parse_strace(log_prefix: str | os.PathLike, start_cwd: str | os.PathLike) -> list[WriteOp]:
    """Every successful file-system change in the files ``<log_prefix>.<tid>``.

    Counted: ``open``/``openat``/``creat`` with a write flag (:data:`WRITE_FLAGS`),
    ``mkdir*``, both paths of ``rename*`` and ``link*``, the new path of ``symlink*``,
    ``unlink*``, ``rmdir`` and ``truncate``. Relative paths are resolved against the
    descriptor strace printed (``AT_FDCWD</cwd>``, ``3</dir>``); for the calls without
    one (``mkdir``, ``rename``...) against the thread's working directory as last
    printed or set by ``chdir``, else ``start_cwd``. An ``open`` that succeeded is
    taken at the path strace printed for its new descriptor. Failed calls (``= -1``)
    and calls cut short by the thread's exit are not changes.

    Parameters
    ----------
    log_prefix : path-like
        What was given to :func:`strace_prefix`.
    start_cwd : path-like
        The traced command's working directory.

    Returns
    -------
    list of WriteOp

    Raises
    ------
    FileNotFoundError
        When no trace file exists (the command did not run under strace).
    """
    prefix = Path(log_prefix)
    files = sorted(prefix.parent.glob(prefix.name + ".*"))
    if not files:
        raise FileNotFoundError(f"no strace output {prefix}.<pid>")
    ops: list[WriteOp] = []
    for f in files:
        tid = int(f.name.rsplit(".", 1)[1])
        cwd = os.path.normpath(str(start_cwd))
        for line in f.read_text(errors="surrogateescape").splitlines():
            m = _LINE.match(line)
            if not m:
                continue
            name, args, ret, rest = m["name"], _split_args(m["args"]), int(m["ret"]), m["rest"].strip()
            for a in args:  # the kernel's view of the working directory, whenever strace printed it
                if a.startswith("AT_FDCWD<"):
                    cwd = _fd_path(a) or cwd
            if ret < 0:
                continue

            def at(dirfd: str, path_arg: str, cwd: str = cwd) -> str | None:
                p = _string(path_arg)
                return None if p is None else _join(_fd_path(dirfd) or cwd, p)

            def plain(path_arg: str, cwd: str = cwd) -> str | None:
                p = _string(path_arg)
                return None if p is None else _join(cwd, p)

            paths: list[str | None] = []
            if name in ("open", "openat", "creat"):
                flags = args[2] if name == "openat" else args[1] if name == "open" else "O_CREAT"
                if name != "creat" and not any(w in flags.split("|") for w in WRITE_FLAGS):
                    continue
                opened = re.match(r"<(.*)>", rest, re.DOTALL)
                if opened:
                    target = opened.group(1).removesuffix(" (deleted)")
                    # pipes, sockets and anonymous inodes print as "pipe:[123]" etc.: not files
                    paths.append(target if target.startswith("/") else None)
                else:
                    paths.append(at(args[0], args[1]) if name == "openat" else plain(args[0]))
            elif name == "chdir":
                cwd = plain(args[0]) or cwd
                continue
            elif name == "fchdir":
                cwd = _fd_path(args[0]) or cwd
                continue
            elif name in ("mkdir", "rmdir", "unlink", "truncate"):
                paths.append(plain(args[0]))
            elif name in ("mkdirat", "unlinkat"):
                paths.append(at(args[0], args[1]))
            elif name in ("rename", "link"):
                paths += [plain(args[0]), plain(args[1])]
            elif name in ("renameat", "renameat2", "linkat"):
                paths += [at(args[0], args[1]), at(args[2], args[3])]
            elif name == "symlink":
                paths.append(plain(args[1]))
            elif name == "symlinkat":
                paths.append(at(args[1], args[2]))
            ops += [WriteOp(tid, name, p, line) for p in paths if p is not None]
    return ops


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def writes_outside(
    ops: Iterable[WriteOp], allowed: Iterable[str | os.PathLike], pids: Iterable[int] = ()
) -> list[WriteOp]:
    """The operations whose path is not under an allowed directory.

    Always allowed besides ``allowed``: :data:`ALWAYS_ALLOWED` and ``/proc/self``,
    ``/proc/thread-self`` and ``/proc/<pid>`` of the traced processes.

    Parameters
    ----------
    ops : iterable of WriteOp
    allowed : iterable of path-like
        Directories (compared after resolving symbolic links).
    pids : iterable of int
        Process and thread ids of the traced tree (default: the ops' own ids).

    Returns
    -------
    list of WriteOp
    """
    ops = list(ops)
    roots = [os.path.realpath(a) for a in allowed] + [os.path.normpath(a) for a in allowed]
    roots += list(ALWAYS_ALLOWED) + ["/proc/self", "/proc/thread-self"]
    roots += [f"/proc/{p}" for p in {*pids, *(op.tid for op in ops)}]
    bad = []
    for op in ops:
        candidates = {op.path, os.path.join(os.path.realpath(os.path.dirname(op.path)), os.path.basename(op.path))}
        if not any(_under(c, r) for c in candidates for r in roots):
            bad.append(op)
    return bad


@dataclass
class TracedDirs:
    """The directories of one traced process: everything it may write is under ``root``.

    Attributes
    ----------
    root : Path
        The process's own temporary directory.
    cwd, tmp : Path
        Its working directory and ``TMPDIR`` (both under ``root``, both empty at start).
    trace : Path
        The strace log prefix (outside ``root``).
    log : Path
        Its stdout/stderr (outside ``root``).
    extra : dict of str to Path
        More directories made under ``root`` (see :meth:`under`).
    """

    root: Path
    cwd: Path
    tmp: Path
    trace: Path
    log: Path
    extra: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def under(cls, base: Path, name: str, *subdirs: str) -> TracedDirs:
        """Make ``base/name/{cwd,tmp,*subdirs}``; the trace and log go to ``base/logs``.

        Parameters
        ----------
        base : Path
        name : str
        *subdirs : str
            More directories to make under the root (in ``extra``).

        Returns
        -------
        TracedDirs
        """
        root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
        logs = base / "logs"
        logs.mkdir(exist_ok=True)
        made = {}
        for d in ("cwd", "tmp", *subdirs):
            made[d] = root / d
            made[d].mkdir()
        return cls(
            root=root,
            cwd=made.pop("cwd"),
            tmp=made.pop("tmp"),
            trace=logs / f"{name}.strace",
            log=logs / f"{name}.log",
            extra=made,
        )

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """:func:`clean_env` with ``TMPDIR`` here, no bytecode written, numba's cache here too, and ``extra``."""
        return clean_env(
            {
                "TMPDIR": str(self.tmp),
                "PYTHONDONTWRITEBYTECODE": "1",
                "NUMBA_CACHE_DIR": str(self.tmp / "numba-cache"),
                **(extra or {}),
            }
        )

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of the process's output."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"


def wait_exit(proc: subprocess.Popen, timeout: float) -> int | None:
    """Wait up to ``timeout`` seconds for ``proc``; its exit code, or None if it still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc.returncode
        time.sleep(0.1)
    return None
