"""`medreq bench cycle` on PostgreSQL + Redis, with PostgreSQL's and Redis's own CPU over the
same measured window (issue 13, "Fast PostgreSQL path").

The benchmark reads the server's CPU at the start and end of its measured window (its `meter`,
`tree_cpu_seconds`); this script passes a meter that wraps it, so that over the same window a
thread samples, every 50 ms, utime+stime of each PostgreSQL backend serving the benchmark's
database (its command line names it) and of every redis-server process (Redis is shared: its
figure includes whatever else used it meanwhile). A backend's CPU counts from the window's start,
or from 0 if it connected during the window (a pool's overflow connections come and go); one that
exits loses at most its last 50 ms.

    MEDREQ_DATABASE_URL=postgresql://postgres@127.0.0.1/medreq_bench \\
    MEDREQ_REDIS_URL=redis://127.0.0.1:6379/0 python loadtests/pg_cycle_cpu.py --seconds 10 [--image]

The server's CPU is that of the server process and its live descendants (`--workers N` starts
N worker processes). `--pin-generator 1 --pin-server 0` runs the load generators on CPU 1 and,
from the measured window's start, every thread of the server's processes on CPU 0 (PostgreSQL and
Redis are not pinned): on a 2-core machine the only split that keeps the generators off the
server's core, at the price of two workers sharing one core.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

from medreq.simulate import bench, server
from medreq.simulate.server import process_tree

_server_cpu = server.tree_cpu_seconds  # the server and its workers
_process_cpu = server.cpu_seconds


def _cpu(pid: int) -> float | None:
    try:
        return _process_cpu(pid)  # utime + stime from /proc/<pid>/stat
    except (OSError, IndexError, ValueError):
        return None  # gone meanwhile


def _processes() -> list[tuple[int, str]]:
    """(pid, command line) of every process we may read."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found.append((int(entry.name), cmdline.strip()))
    return found


class Sampler:
    """CPU seconds used over the window by the database's backends and by Redis, per pid."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.first: dict[str, dict[int, float]] = {"postgres": {}, "redis": {}}
        self.last: dict[str, dict[int, float]] = {"postgres": {}, "redis": {}}
        self.backends: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _procs(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {"postgres": [], "redis": []}
        for pid, cmdline in _processes():
            if cmdline.startswith("postgres:") and f" {self.database} " in f"{cmdline} ":
                found["postgres"].append(pid)
            elif cmdline.startswith("redis-server") or "/redis-server" in cmdline.split(" ")[0]:
                found["redis"].append(pid)
        return found

    def sample(self, *, first: bool = False) -> None:
        for kind, pids in self._procs().items():
            for pid in pids:
                cpu = _cpu(pid)
                if cpu is None:
                    continue
                if kind == "postgres":
                    self.backends.add(pid)
                self.first[kind].setdefault(pid, cpu if first else 0.0)
                self.last[kind][pid] = cpu

    def start(self) -> None:
        self.sample(first=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def used(self, kind: str) -> float:
        return sum(self.last[kind][pid] - self.first[kind][pid] for pid in self.last[kind])


def _cpus(text: str | None) -> set[int] | None:
    return {int(cpu) for cpu in text.split(",")} if text else None


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of a process and of its descendants onto `cpus`."""
    for member in process_tree(pid):
        for task in Path(f"/proc/{member}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except OSError:
                continue  # ended meanwhile


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--server-workers", type=int, default=1, help="the server's --workers")
    parser.add_argument("--image", action="store_true", help="a 32 KB PNG with every request")
    parser.add_argument("--pin-server", help="CPUs for the server's processes, e.g. 0")
    parser.add_argument("--pin-generator", help="CPUs for the load generators, e.g. 1")
    args = parser.parse_args()
    os.environ["MEDREQ_WORKERS"] = str(args.server_workers)
    server_cpus, generator_cpus = _cpus(args.pin_server), _cpus(args.pin_generator)
    if generator_cpus:
        os.sched_setaffinity(0, generator_cpus)  # the generator processes inherit it
    sampler = Sampler(urlsplit(os.environ["MEDREQ_DATABASE_URL"]).path.lstrip("/"))
    calls = 0

    def cpu_seconds(pid: int) -> float:
        nonlocal calls
        calls += 1
        if calls == 1:
            if server_cpus:
                pin(pid, server_cpus)
            sampler.start()
        else:
            sampler.stop()
        return _server_cpu(pid)

    # passed, not patched into `cycle`: `bench_cycle` binds its default meter when it is defined,
    # so a patched module attribute was never read and PostgreSQL and Redis showed 0.0 ms
    out = bench.run_cycle(args.workers, args.processes, args.seconds, image=args.image, meter=cpu_seconds)
    result = out["results"][0]
    cycles = max(1, result["cycles"])
    result["server_workers"] = args.server_workers
    result["pinned"] = {"server": args.pin_server, "generator": args.pin_generator}
    result["postgres_backends_seen"] = len(sampler.backends)
    result["postgres_cpu_ms_per_cycle"] = round(sampler.used("postgres") / cycles * 1000, 3)
    result["redis_cpu_ms_per_cycle"] = round(sampler.used("redis") / cycles * 1000, 3)
    print(json.dumps({"environment": bench.environment(), **out}, indent=1))


if __name__ == "__main__":
    main()
