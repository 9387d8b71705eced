"""`medreq bench cycle` on PostgreSQL + Redis, with PostgreSQL's and Redis's own CPU over the
same measured window (issue 13, "Fast PostgreSQL path").

The benchmark reads the server's CPU at the start and end of its measured window
(`bench.cycle.cpu_seconds`); this script wraps that function so that at those two instants it
also sums utime+stime of the PostgreSQL backends serving the benchmark's database (their
command line names it) and of every redis-server process (Redis is shared: its figure includes
whatever else used it meanwhile).

    MEDREQ_DATABASE_URL=postgresql://postgres@127.0.0.1/medreq_bench \\
    MEDREQ_REDIS_URL=redis://127.0.0.1:6379/0 python loadtests/pg_cycle_cpu.py --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any
from urllib.parse import urlsplit

import psutil

from medreq.simulate import bench
from medreq.simulate.bench import cycle

_server_cpu = cycle.cpu_seconds
samples: list[dict[str, float]] = []


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _backends(database: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if cmdline.startswith("postgres:") and f" {database} " in f"{cmdline} ":
            found.append(proc)
    return found


def _redis() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis-server")]


def _sampling(database: str) -> Any:
    backends: list[psutil.Process] = []

    def cpu_seconds(pid: int) -> float:
        nonlocal backends
        if not backends:  # the server's pool is open by the measured window; keep the same set
            backends = _backends(database)
        samples.append({"postgres": _cpu(backends), "redis": _cpu(_redis()), "backends": len(backends)})
        return _server_cpu(pid)

    return cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    database = urlsplit(os.environ["MEDREQ_DATABASE_URL"]).path.lstrip("/")
    cycle.cpu_seconds = _sampling(database)  # type: ignore[assignment]
    out = bench.run_cycle(args.workers, args.processes, args.seconds)
    result = out["results"][0]
    first, last = samples[0], samples[-1]
    cycles = max(1, result["cycles"])
    result["postgres_backends"] = last["backends"]
    result["postgres_cpu_ms_per_cycle"] = round((last["postgres"] - first["postgres"]) / cycles * 1000, 3)
    result["redis_cpu_ms_per_cycle"] = round((last["redis"] - first["redis"]) / cycles * 1000, 3)
    print(json.dumps({"environment": bench.environment(), **out}, indent=1))


if __name__ == "__main__":
    main()
