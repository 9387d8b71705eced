"""Benchmark 3: many idle authenticated WebSockets held by one or several server processes.

Measures the servers' resident memory per connection (``VmRSS`` of every server pid, summed,
before and after opening them), whether heartbeat pings arrive on schedule on every socket
(holders record each ping frame's arrival: `holders.py`), how long `GET /health` takes on a fresh
connection while they are held (10 a second through the hold, over the servers in turn), the
delivery latency of requests sent to random idle pharmacies while all of them are held (the
patient's send time travels in ``note``; senders and receivers share this machine's clock), and,
with ``burst``, that a burst of requests to random pharmacies reaches every socket of each exactly
once (each event id counted per socket).

Connections are spread over ``processes`` generator processes, each from its own source address
of ``sources``; each idle account (a pharmacy) holds ``per_account`` of them, as a pharmacy with
several screens would, and with several servers an account's sockets are spread over them (slot
``i`` goes to server ``i mod n``), so every event crosses Redis to reach some of them. With
`meter`, the CPU and memory of the servers (and Redis and PostgreSQL) are read at each phase's end.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import socket
import threading
import time
from collections import Counter
from typing import Any

from ...client import TransportError
from ...protocol.errors import MedreqError
from ..accounts import Account, create_accounts
from ..server import rss_bytes
from ..stats import summary
from .common import RawHTTP, host_port, post_request
from .fleet import Meter
from .holders import SLACK, Slot, holder

BURST_CONCURRENCY = 6  # requests of a burst in flight at once (1 a server of 6: see holders.OPENING)
PATIENTS = 10  # senders of the probes and the burst
ACCOUNT_CHUNK = 250
ACCOUNT_CONCURRENCY = 2  # per server: PostgreSQL's connections again (holders.OPENING)


def bench_idle(
    urls: list[str],
    server_pids: list[int],
    *,
    connections: int = 10_000,
    per_account: int = 10,
    processes: int = 2,
    sources: tuple[str, ...] = ("127.0.0.1",),
    hold: float = 25.0,
    probes: int = 200,
    probe_rate: float = 20.0,
    burst: int = 0,
    ping_interval: float = 5.0,
    meter: Meter | None = None,
) -> dict[str, Any]:
    pharmacies, patients = asyncio.run(_accounts(urls, -(-connections // per_account)))
    slots = [Slot(pharmacies[i // per_account], urls[i % len(urls)]) for i in range(connections)]
    ctx = multiprocessing.get_context("spawn")
    reports, stop = ctx.Queue(), ctx.Event()
    time.sleep(1.0)
    rss_before = sum(rss_bytes(pid) for pid in server_pids)
    opened_at = time.monotonic()
    meter = meter or Meter({"servers": lambda: server_pids})
    meter.start(opened_at)
    procs = [
        ctx.Process(
            target=holder,
            args=(slots[i::processes], sources[i % len(sources)], ping_interval, reports, stop),
            daemon=True,
        )
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    ready = [reports.get(timeout=1800) for _ in procs]
    open_seconds = time.monotonic() - opened_at
    meter.mark("open", time.monotonic())
    opened = sum(r["open"] for r in ready)
    health: list[float] = []
    probing = threading.Event()
    prober = threading.Thread(target=_probe_health, args=(urls, health, probing), daemon=True)
    prober.start()
    time.sleep(2.0)
    rss_after = sum(rss_bytes(pid) for pid in server_pids)
    time.sleep(max(0.0, hold - 2.0))
    probing.set()
    prober.join(10)
    meter.mark("hold", time.monotonic())
    probe = asyncio.run(_probe(urls, patients, pharmacies, probes, probe_rate))
    meter.mark("probe", time.monotonic())
    sent = asyncio.run(_burst(urls, patients, pharmacies, burst)) if burst else {}
    rss_end = sum(rss_bytes(pid) for pid in server_pids)
    stop.set()
    finals = [reports.get(timeout=300) for _ in procs]
    meter.mark("burst" if burst else "settle", time.monotonic())
    for proc in procs:
        proc.join(30)
    intervals = [x for f in finals for x in f["ping_intervals"]]
    return {
        "connections": connections,
        "servers": len(urls),
        "generator_processes": processes,
        "sources": list(sources),
        "opened": opened,
        "refused": sum(r["refused"] for r in ready),
        "open_errors": sum(sum(r["errors"].values()) for r in ready),
        "open_error_kinds": dict(sum((Counter(r["errors"]) for r in ready), Counter())),
        "open_seconds": round(open_seconds, 1),
        "per_account": per_account,
        "server_rss_before_mb": round(rss_before / 2**20, 1),
        "server_rss_after_mb": round(rss_after / 2**20, 1),
        "server_rss_end_mb": round(rss_end / 2**20, 1),
        "rss_per_connection_kb": round((rss_after - rss_before) / max(1, opened) / 1024, 2),
        "closed_during_hold": sum(f["closed"] for f in finals),
        "sockets_with_2_pings": sum(f["with_two_pings"] for f in finals),
        "sockets_off_schedule": sum(f["off_schedule"] for f in finals),
        "ping_interval_s": _seconds(intervals),
        "ping_intervals_late": sum(1 for x in intervals if x > ping_interval + SLACK),
        "health_ms": summary(health),
        "health_over_50ms": sum(1 for x in health if x > 0.050),
        "probe": probe,
        "probe_deliveries": sum(len(f["probe_latencies"]) for f in finals),
        "probe_deliveries_expected": probe["created"] * per_account,
        "probe_latency_ms": summary([x for f in finals for x in f["probe_latencies"]]),
        **({"burst": _burst_account(sent, finals)} if burst else {}),
        "usage": meter.phases,
    }


async def _accounts(urls: list[str], count: int) -> tuple[list[Account], list[Account]]:
    """`count` pharmacies, registered over all the servers at once, and the patients."""
    shares = [count // len(urls) + (1 if i < count % len(urls) else 0) for i in range(len(urls))]
    made = await asyncio.gather(*(_pharmacies(url, n) for url, n in zip(urls, shares, strict=True) if n))
    patients = await create_accounts(urls[0], "patient", PATIENTS)
    return [a for part in made for a in part], patients


async def _pharmacies(url: str, count: int) -> list[Account]:
    """`count` pharmacies on one server, `ACCOUNT_CHUNK` at a time; a chunk that meets a dropped
    keep-alive connection (httpx's ReadError) or an internal error (PostgreSQL's "too many clients"
    on a shared server) is made again after 2 s (its accounts made before the error are left unused)."""
    made: list[Account] = []
    while len(made) < count:
        n = min(ACCOUNT_CHUNK, count - len(made))
        for attempt in range(3):
            try:
                made += await create_accounts(url, "pharmacy", n, concurrency=ACCOUNT_CONCURRENCY)
                break
            except (TransportError, MedreqError):  # a 500 under load too: the server log has it
                if attempt == 2:
                    raise
                await asyncio.sleep(2.0)
    return made


def _burst_account(sent: dict[int, int], finals: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether each created request's event reached every socket of its pharmacy that was still
    open, exactly once (`sent`: request id → pharmacy id)."""
    seen: Counter[int] = Counter()
    sockets: Counter[int] = Counter()
    for f in finals:
        seen.update(f["burst_seen"])
        sockets.update(f["open_per_account"])
    expected = {request: sockets[pharmacy] for request, pharmacy in sent.items()}
    missing = sum(max(0, n - seen[r]) for r, n in expected.items())
    extra = sum(max(0, seen[r] - expected.get(r, 0)) for r in seen)
    duplicates = sum(f["burst_duplicates"] for f in finals)
    return {
        "created": len(sent),
        "deliveries": sum(seen.values()),
        "deliveries_expected": sum(expected.values()),
        "missing": missing,
        "unexpected": extra,
        "duplicates": duplicates,
        "exactly_once": missing == extra == duplicates == 0,
        "latency_ms": summary([x for f in finals for x in f["burst_latencies"]]),
    }


def _probe_health(urls: list[str], latencies: list[float], stop: threading.Event) -> None:
    """`GET /health` on a new connection every 0.1 s (the servers in turn) until `stop`: connect
    to last byte, in seconds (a failed one counts as 10 s)."""
    turn = 0
    while not stop.wait(0.1):
        host, port = host_port(urls[turn % len(urls)])
        turn += 1
        request = f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        t0 = time.perf_counter()
        try:
            with socket.create_connection((host, port), timeout=10) as sock:
                sock.sendall(request)
                reply = b""
                while chunk := sock.recv(4096):
                    reply += chunk
            ok = reply.startswith(b"HTTP/1.1 200")
        except OSError:
            ok = False
        latencies.append(time.perf_counter() - t0 if ok else 10.0)


def _seconds(values: list[float]) -> dict[str, Any]:
    stats = summary(values)
    return {k: (round(v / 1000, 3) if isinstance(v, float) else v) for k, v in stats.items()}


def _request(pharmacy: Account, note: str) -> dict[str, str]:
    return {"pharmacy": str(pharmacy.id), "quantity": "1", "medicine_name": "Probe", "note": note}


async def _probe(
    urls: list[str], patients: list[Account], pharmacies: list[Account], count: int, rate: float
) -> dict[str, Any]:
    """Requests to random idle pharmacies, ``rate`` per second, over the servers in turn."""
    https = [RawHTTP(*host_port(url)) for url in urls]
    created = 0
    post: list[float] = []
    rng = random.Random(5)
    start = time.perf_counter()
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        fields = _request(rng.choice(pharmacies), f"probe:{time.time():.6f}")
        t0 = time.perf_counter()
        status, _ = await post_request(https[i % len(https)], patients[i % len(patients)].access, fields)
        post.append(time.perf_counter() - t0)
        created += status == 201
    await asyncio.sleep(2.0)  # let the last deliveries land
    for http in https:
        http.close()
    return {"sent": count, "created": created, "post_ms": summary(post)}


async def _burst(
    urls: list[str], patients: list[Account], pharmacies: list[Account], count: int
) -> dict[int, int]:
    """`count` requests to random pharmacies, `BURST_CONCURRENCY` at a time over the servers;
    request id → pharmacy id of each created one."""
    rng = random.Random(7)
    targets = [rng.choice(pharmacies) for _ in range(count)]
    sent: dict[int, int] = {}
    queue = iter(enumerate(targets))

    async def lane(lane_no: int) -> None:
        http = RawHTTP(*host_port(urls[lane_no % len(urls)]))
        patient = patients[lane_no % len(patients)]
        try:
            for n, pharmacy in queue:
                status, body = await post_request(
                    http, patient.access, _request(pharmacy, f"burst:{n}:{time.time():.6f}")
                )
                if status == 201:
                    sent[int(json.loads(body)["request_id"])] = pharmacy.id
        finally:
            http.close()

    await asyncio.gather(*(lane(i) for i in range(BURST_CONCURRENCY)))
    return sent
