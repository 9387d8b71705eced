"""A medreq server to load: started as a separate process on a free loopback port.

A subprocess rather than a task in the load generator's event loop, so the two do not share
a core, the server's CPU time and memory can be read from ``/proc/<pid>`` alone, and the
server runs exactly as `medreq serve` does in production.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol
from urllib.parse import urlsplit

import httpx

#: Settings for a server under load: no rate limits, fast password hashes, quiet logs, and no
#: per-address connection cap (every simulated client connects from 127.0.0.1).
LOAD_ENV = {
    "MEDREQ_RATE_LIMIT_ENABLED": "false",
    "MEDREQ_MAX_CONNECTIONS_PER_CLIENT": "0",
    "MEDREQ_SCRYPT_N": "1024",
    "MEDREQ_LOG_LEVEL": "warning",
    # simulated pharmacies register themselves; on a server of its own nobody approves them
    "MEDREQ_PHARMACY_REGISTRATION": "open",
}


class TargetRefused(ValueError):
    """A target URL that is not on this machine, without ``--allow-remote``."""


def check_target(url: str, *, allow_remote: bool = False) -> str:
    """``url`` without a trailing slash, if it is http(s) on loopback (or remote is allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"{url!r} is not an http:// or https:// URL")
    if not allow_remote and not is_loopback(parts.hostname):
        raise TargetRefused(
            f"refusing to load {parts.hostname}: only 127.0.0.1 and ::1 by default "
            "(pass --allow-remote to load a server you own elsewhere)"
        )
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host != "localhost":
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file soft limit towards ``wanted`` (children inherit it);
    the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # fields 14 and 15 of proc(5)


def tree_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` of a process and of its live descendants (a server's `--workers`)."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError):  # exited meanwhile
            total += cpu_seconds(member)
    return total


def process_tree(pid: int) -> list[int]:
    """A process and its live descendants, parents first (from ``/proc/<pid>/task/*/children``)."""
    tree = [pid]
    for member in tree:
        for task in Path(f"/proc/{member}/task").glob("*/children"):
            try:
                tree.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue  # exited meanwhile
    return tree


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from ``/proc/<pid>/status``."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Launched(Protocol):
    """What `ServerProcess` needs of the started process: the part of `subprocess.Popen` it uses
    (the tests start servers another way, tests/forked.py)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


class ServerProcess:
    """``python -m medreq serve`` on 127.0.0.1 with a temporary data dir; use as a context manager.

    The tests use it too (`tests/conftest.py`), with their own default environment: it can be
    stopped, killed and started again on the same port and data, as restart tests need.
    """

    default_env: dict[str, str] = LOAD_ENV

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        port: int | None = None,
        data_dir: Path | None = None,
        log_path: Path | None = None,
        wrapper: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.env = {**self.default_env, **(env or {})}
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="medreq-sim-"))
        self.log_path = log_path or self.data_dir / "server.log"
        self.proc: Launched | None = None
        self.wrapper = wrapper or []  # a command the server runs under (`valgrind …`)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not started"
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> ServerProcess:
        # -P: the working directory is not put on sys.path, so a folder named `medreq` there (the
        # checkout, seen from the folder above it) cannot shadow the installed package
        command = [*self.wrapper, sys.executable, "-P", "-m", "medreq", "serve"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir)]
        with open(self.log_path, "ab") as log:
            self.proc = self._launch(command, {**os.environ, **self.env}, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{self.log()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=0.5).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not start within {timeout:g}s:\n{self.log()[-3000:]}")

    def _launch(self, command: list[str], env: dict[str, str], log: IO[bytes]) -> Launched:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int | None:
        """Stop the server (gracefully by default) and return its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
