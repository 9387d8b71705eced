"""`medreq bench idle` over several servers on PostgreSQL + Redis (issue 28), at a small scale:
every socket is accounted for, heartbeats and the burst are checked per socket, servers at their
descriptor limit answer 503 while their open sockets keep working, and the database is dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from medreq.simulate.bench import IdleFleet, run_idle
from medreq.simulate.bench.fleet import listening_pid

from .conftest import POSTGRES_URL, REDIS_URL, require_service

pytestmark = pytest.mark.timeout(120)

SOCKETS = 300


async def bench_databases() -> set[str]:
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        rows = await admin.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'medreq_bench_%'")
    finally:
        await admin.close()
    return {row["datname"] for row in rows}


def idle_run(fd_limit: int | None, **options: Any) -> dict[str, Any]:
    """One `run_idle` of `SOCKETS` over 2 servers and 2 generators (1 s pings, 3 s hold); it must
    leave no database behind."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    before = asyncio.run(bench_databases())
    fleet = IdleFleet(2, POSTGRES_URL, REDIS_URL, ("127.0.0.2", "127.0.0.3"), fd_limit=fd_limit)
    (result,) = run_idle(SOCKETS, 10, 2, 3.0, (False,), fleet=fleet, ping_interval=1.0, **options)["results"]
    assert asyncio.run(bench_databases()) == before
    assert result["open_errors"] == result["closed_during_hold"] == 0, result
    assert result["sockets_with_2_pings"] == result["opened"] and result["sockets_off_schedule"] == 0, result
    return result


def test_idle_bench_over_two_servers_delivers_the_burst_once_to_every_socket() -> None:
    result = idle_run(None, burst=60, probes=10)
    assert result["opened"] == SOCKETS and result["refused"] == 0, result
    assert result["probe_deliveries"] == result["probe_deliveries_expected"] == 100, result
    burst = result["burst"]
    assert burst["created"] == 60 and burst["exactly_once"], burst
    assert burst["deliveries"] == burst["deliveries_expected"] == 600, burst  # 10 sockets a pharmacy
    assert result["rss_per_connection_kb"] > 0
    usage = result["usage"]
    assert set(usage) == {"open", "hold", "probe", "burst"}
    assert usage["open"]["servers"]["processes"] == 2 and usage["open"]["servers"]["cpu_s"] > 0
    if listening_pid(5432) is not None:  # PostgreSQL runs on this machine, not in another container
        assert usage["burst"]["postgres_run"]["cpu_s"] > 0


def test_servers_at_their_descriptor_limit_refuse_the_rest_with_503() -> None:
    # 400 descriptors less the 256 reserved (MEDREQ_FD_RESERVE): 144 sockets a server
    result = idle_run(400, probes=0)
    assert result["opened"] == 288 and result["refused"] == SOCKETS - 288, result
