"""The benchmarks of docs/benchmarks.md, each against a fresh server process.

- ``notify``: request → pharmacy notification latency at fixed offered rates (open loop);
- ``cycle``: full request → notify → WS answer → patient cycles per second (closed loop) and
  the server's own CPU time per cycle; with ``pharmacies`` > 1, then the same with every request
  asked of that many pharmacies and a choice (`group`), on the same server, and the ratio;
- ``webhook``: the deliverer's throughput to a local receiver, and each event's latency;
- ``idle``: idle authenticated WebSockets held by one server, or by several over PostgreSQL and
  Redis: RSS per connection, heartbeat, delivery latency to one of them, a burst delivered
  exactly once, and what Redis and PostgreSQL cost meanwhile — with WebSocket compression off and on.

Each starts ``python -m medreq serve`` on a free loopback port with a temporary data dir,
rate limits off and warning-level logs, and stops it afterwards.
Run them with `medreq bench` or ``python loadtests/bench.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..server import ServerProcess, raise_fd_limit, tree_cpu_seconds
from .cycle import bench_cycle
from .fleet import Fleet, log_problems
from .group import bench_group_cycle
from .idle import bench_idle
from .notify import bench_notify
from .webhook import WEBHOOK_ENV, bench_webhook

__all__ = [
    "BENCHMARKS",
    "WEBHOOK_ENV",
    "IdleFleet",
    "bench_webhook",
    "environment",
    "run_cycle",
    "run_idle",
    "run_notify",
    "run_webhook",
]

BENCHMARKS = ("notify", "cycle", "idle", "webhook")


def environment() -> dict[str, Any]:
    """Where the numbers were measured."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def run_notify(rates: tuple[float, ...], seconds: float) -> dict[str, Any]:
    with ServerProcess() as server:
        results = asyncio.run(bench_notify(server.url, server.pid, rates=rates, seconds=seconds))
    return {"benchmark": "notify", "results": results}


def run_cycle(
    workers: int,
    processes: int,
    seconds: float,
    *,
    webhook: bool = False,
    image: bool = False,
    meter: Callable[[int], float] = tree_cpu_seconds,
    pharmacies: int = 1,
) -> dict[str, Any]:
    """`meter(pid)`: the server's cumulative cost, read at both ends of the measured window
    (the CPU seconds of it and its workers); loadtests/ pass their own to sample more over the
    same window. ``pharmacies`` > 1: after the single-pharmacy cycles, group cycles (each request
    asked of that many, all accept, the patient chooses) on the same server, and
    ``group_vs_single_cpu``: a group cycle's server CPU over a single one's."""
    with ServerProcess(env=WEBHOOK_ENV if webhook else None) as server:
        result = bench_cycle(
            server.url,
            server.pid,
            workers=workers,
            processes=processes,
            seconds=seconds,
            webhook=webhook,
            image=image,
            meter=meter,
        )
        if pharmacies <= 1:
            return {"benchmark": "cycle", "results": [result]}
        group = bench_group_cycle(
            server.url,
            server.pid,
            pharmacies=pharmacies,
            workers=workers,
            processes=processes,
            seconds=seconds,
            meter=meter,
        )
    single_ms, group_ms = result["server_cpu_ms_per_cycle"], group["server_cpu_ms_per_cycle"]
    ratio = round(group_ms / single_ms, 2) if single_ms else None
    return {"benchmark": "cycle", "results": [result, group], "group_vs_single_cpu": ratio}


def run_webhook(events: int, concurrency: int) -> dict[str, Any]:
    with ServerProcess(env=WEBHOOK_ENV) as server:
        result = asyncio.run(bench_webhook(server.url, server.pid, events=events, concurrency=concurrency))
    return {"benchmark": "webhook", "results": [result]}


@dataclass(frozen=True)
class IdleFleet:
    """Where `run_idle` holds its sockets: ``servers`` `medreq serve` processes over PostgreSQL and
    Redis (fleet.py), each under ``fd_limit`` descriptors if given; one server on SQLite without
    ``postgres_url``. ``sources``: the load generators' loopback source addresses."""

    servers: int = 1
    postgres_url: str | None = None
    redis_url: str | None = None
    sources: tuple[str, ...] = ()  # one a generator process: 127.0.0.1, .2, …
    fd_limit: int | None = None


def run_idle(
    connections: int,
    per_account: int,
    processes: int,
    hold: float,
    compression: tuple[bool, ...],
    *,
    fleet: IdleFleet = IdleFleet(),
    burst: int = 0,
    ping_interval: float = 5.0,
    probes: int = 200,
) -> dict[str, Any]:
    limit = raise_fd_limit(connections + 2048)  # a single server inherits it
    if fleet.servers > 1 and not (fleet.postgres_url and fleet.redis_url):
        raise ValueError("several servers share PostgreSQL and Redis: give both URLs")
    if -(-connections // processes) > limit - 256:
        raise ValueError(
            f"{connections} sockets over {processes} generator processes is over {limit - 256} each"
        )
    results = []
    for compress in compression:
        env = {
            "MEDREQ_WS_COMPRESSION": "true" if compress else "false",
            # pings every few seconds so a short hold sees several heartbeats on every socket
            "MEDREQ_WS_PING_INTERVAL": f"{ping_interval:g}",
            "MEDREQ_WS_PING_TIMEOUT": "20",
        }
        with contextlib.ExitStack() as stack:
            if fleet.postgres_url and fleet.redis_url:
                servers = stack.enter_context(
                    Fleet(
                        fleet.servers, fleet.postgres_url, fleet.redis_url, env=env, fd_limit=fleet.fd_limit
                    )
                )
                launched, meter = servers.servers, servers.meter()
            else:
                launched, meter = [stack.enter_context(ServerProcess(env=env))], None
            result = bench_idle(
                [server.url for server in launched],
                [server.pid for server in launched],
                connections=connections,
                per_account=per_account,
                processes=processes,
                sources=fleet.sources or tuple(f"127.0.0.{i + 1}" for i in range(processes)),
                hold=hold,
                burst=burst,
                ping_interval=ping_interval,
                probes=probes,
                meter=meter,
            )
            result["server_log"] = log_problems([server.log() for server in launched])
        results.append({"compression": compress, "ping_interval_setting_s": ping_interval, **result})
    return {"benchmark": "idle", "results": results}

