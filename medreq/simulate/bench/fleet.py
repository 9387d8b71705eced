"""Several `medreq serve` processes over one PostgreSQL database and one Redis, and what the
servers, Redis and PostgreSQL cost while they are loaded.

Why separate processes on their own ports rather than ``--workers N`` on one socket: the idle
benchmark fills each process up to its descriptor limit (20,000 on this machine, not raisable),
and accepts on one shared listening socket are not balanced by the kernel (a woken worker takes
what is queued), so one worker can meet its limit while others are half empty. With a port per
process the load generator decides exactly how many sockets each holds, as a load balancer in
front of a deployment would (``least_conn``). A server that is full anyway answers 503 (the
admission gate, web/guard/admission.py); `Fleet` can start them under a lower descriptor limit
(``prlimit``) to show that.

Redis and PostgreSQL are found by the port they listen on (``/proc/net/tcp*`` → socket inode →
the process holding it); PostgreSQL is its postmaster and every child (backends, writers; other
users' too on a shared server), and separately the backends of the run's database; memory is given both as summed RSS (counts shared buffers in every backend) and as PSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from ..server import LOAD_ENV, ServerProcess, cpu_seconds, process_tree

TCP_LISTEN = "0A"  # the state column of /proc/net/tcp for LISTEN


class Fleet:
    """``count`` servers sharing a fresh database (created on `postgres_url`'s server, dropped on
    exit), `redis_url`, a JWT secret and a media directory; a context manager."""

    def __init__(
        self,
        count: int,
        postgres_url: str,
        redis_url: str,
        *,
        env: dict[str, str] | None = None,
        fd_limit: int | None = None,
    ) -> None:
        self.admin_url, self.redis_url = postgres_url, redis_url
        self.database = f"medreq_bench_{uuid.uuid4().hex[:10]}"
        self.root = Path(tempfile.mkdtemp(prefix="medreq-fleet-"))
        shared = {
            **LOAD_ENV,
            "MEDREQ_DATABASE_URL": postgres_url.rsplit("/", 1)[0] + "/" + self.database,
            "MEDREQ_REDIS_URL": redis_url,
            "MEDREQ_JWT_SECRET": "bench-" + uuid.uuid4().hex,
            "MEDREQ_MEDIA_DIR": str(self.root / "media"),
            **(env or {}),
        }
        wrapper = ["prlimit", f"--nofile={fd_limit}:{fd_limit}", "--"] if fd_limit else None
        self.servers = [
            ServerProcess(env=shared, data_dir=self.root / f"server-{i}", wrapper=wrapper)
            for i in range(count)
        ]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    @property
    def pids(self) -> list[int]:
        return [server.pid for server in self.servers]

    def meter(self) -> Meter:
        """A `Meter` of the servers, and of Redis and PostgreSQL if they run on this machine."""
        pids, redis = self.pids, service_pid(self.redis_url, 6379)
        return Meter(
            {"servers": lambda: pids}
            | ({"redis": lambda: [redis]} if redis else {})
            | postgres_groups(self.admin_url, self.database)
        )

    def __enter__(self) -> Fleet:
        asyncio.run(self._admin(f'CREATE DATABASE "{self.database}"'))
        try:
            for server in self.servers:  # one at a time: the first applies the migrations
                server.data_dir.mkdir(parents=True)
                server.start(timeout=60)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for server in self.servers:
            server.stop()
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        if exc_type is not None:  # what the servers logged is the first thing to read after a failure
            logs = Path(tempfile.gettempdir()) / f"{self.database}-logs"
            for server in self.servers:
                with contextlib.suppress(OSError):
                    shutil.copytree(server.data_dir, logs / server.data_dir.name, ignore=_not_logs)
        shutil.rmtree(self.root, ignore_errors=True)

    async def _admin(self, statement: str) -> None:
        import asyncpg  # the postgres extra; only a fleet needs it here

        admin = await asyncpg.connect(self.admin_url)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()


def _not_logs(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if not name.endswith(".log")]


def log_problems(logs: list[str], *, keep: int = 5) -> dict[str, object]:
    """How many lines of the servers' logs are warnings and errors, the first few distinct ones
    and what each traceback ended in (a run must not hide what went wrong on the server side)."""
    counts = {"errors": 0, "warnings": 0}
    first: list[str] = []
    exceptions: Counter[str] = Counter()
    for text in logs:
        in_traceback = False
        for line in text.splitlines():
            if line.startswith("Traceback"):
                in_traceback = True
            elif in_traceback and line and not line.startswith((" ", "During handling", "The above")):
                exceptions[line[:200]] += 1
                in_traceback = False
            kind = "errors" if "ERROR" in line else "warnings" if "WARNING" in line else None
            if kind is not None:
                counts[kind] += 1
                if len(first) < keep and line[:200] not in first:
                    first.append(line[:200])
    return {**counts, "first": first, "exceptions": dict(exceptions.most_common(keep))}


def listening_pid(port: int) -> int | None:
    """The process listening on TCP `port` (any address, IPv4 or IPv6), if this one can see it."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as fh:
            for line in list(fh)[1:]:
                cols = line.split()
                if cols[3] == TCP_LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(entry.name)
    return None


def service_pid(url: str, default_port: int) -> int | None:
    """`listening_pid` of a service URL's port, when the URL is on this machine."""
    parts = urlsplit(url.split(",", 1)[0])
    if parts.hostname not in ("127.0.0.1", "localhost", "::1", None):
        return None
    return listening_pid(parts.port or default_port)


def _status_kb(pid: int, field_name: str, path: str = "status") -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/{path}", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field_name):
                return int(line.split()[1])
    return 0


@dataclass
class Usage:
    """CPU seconds (per pid) and memory of a group of processes at one moment."""

    cpu_s: dict[int, float] = field(default_factory=dict)
    rss_kb: int = 0
    pss_kb: int = 0

    @classmethod
    def of(cls, pids: Iterable[int]) -> Usage:
        usage = cls()
        for pid in pids:
            with contextlib.suppress(OSError, IndexError):  # exited meanwhile
                usage.cpu_s[pid] = cpu_seconds(pid)
                usage.rss_kb += _status_kb(pid, "VmRSS:")
                usage.pss_kb += _status_kb(pid, "Pss:", "smaps_rollup")
        return usage

    def cpu_since(self, before: Usage) -> float:
        """CPU seconds spent since `before` by the processes alive now (one born since counts
        whole; one that exited since is not counted)."""
        return sum(cpu - before.cpu_s.get(pid, 0.0) for pid, cpu in self.cpu_s.items())


#: a group of processes to meter: who they are now
Group = Callable[[], Iterable[int]]


def postgres_groups(url: str, database: str) -> dict[str, Group]:
    """PostgreSQL on this machine as two groups: ``postgres``, the postmaster and all its children
    (it may serve others too), and ``postgres_run``, the backends connected to `database`."""
    postmaster = service_pid(url, 5432)
    if postmaster is None:
        return {}

    def backends() -> list[int]:
        return [pid for pid in process_tree(postmaster)[1:] if f" {database} " in _cmdline(pid)]

    return {"postgres": lambda: process_tree(postmaster), "postgres_run": backends}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace").replace("\0", " ")
    except OSError:
        return ""


@dataclass
class Meter:
    """Groups of processes (the servers, Redis, PostgreSQL) read at the ends of each phase of a
    run: `mark(phase)` closes the phase begun at the previous mark (or `start`)."""

    groups: dict[str, Group]
    phases: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    _last: dict[str, Usage] = field(default_factory=dict)
    _at: float = 0.0

    def _read(self) -> dict[str, Usage]:
        return {name: Usage.of(group()) for name, group in self.groups.items()}

    def start(self, now: float) -> None:
        self._last, self._at = self._read(), now

    def mark(self, phase: str, now: float) -> None:
        usage, wall = self._read(), max(1e-9, now - self._at)
        self.phases[phase] = {
            name: {
                "seconds": round(wall, 1),
                "cpu_s": round(u.cpu_since(self._last[name]), 2),
                "cpu_percent": round(100 * u.cpu_since(self._last[name]) / wall, 1),
                "rss_mb": round(u.rss_kb / 1024, 1),
                "pss_mb": round(u.pss_kb / 1024, 1),
                "processes": len(u.cpu_s),
            }
            for name, u in usage.items()
        }
        self._last, self._at = usage, now
