"""Benchmark 3: many idle authenticated WebSockets held by one server process.

Measures the server's resident memory per connection (``VmRSS`` of the server pid before and
after opening them), whether its heartbeat pings still arrive on time on every socket
(clients record each ping frame's arrival), how long `GET /health` takes on a fresh
connection while they are held (10 a second through the hold), and the delivery latency of a request sent to
one of the idle pharmacies while all of them are held (the patient's send time travels in
``note``; senders and receivers are processes on this machine, so they share the clock).

Connections are spread over ``processes`` generator processes; each idle account (a
pharmacy) holds ``per_account`` of them, as a pharmacy with several screens would.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import socket
import threading
import time
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import Opcode

from ..accounts import Account, create_accounts
from ..server import rss_bytes
from ..stats import summary
from .common import RawHTTP, host_port, multipart, open_ws


class PingRecorder(ClientConnection):
    """A client connection that notes when each server ping arrives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pings: list[float] = []

    def process_event(self, event: Any) -> None:
        if getattr(event, "opcode", None) is Opcode.PING:
            self.pings.append(time.monotonic())
        super().process_event(event)


def bench_idle(
    base_url: str,
    server_pid: int,
    *,
    connections: int = 10_000,
    per_account: int = 10,
    processes: int = 2,
    hold: float = 25.0,
    probes: int = 200,
    probe_rate: float = 20.0,
) -> dict[str, Any]:
    accounts = asyncio.run(
        create_accounts(base_url, "pharmacy", -(-connections // per_account), concurrency=16)
    )
    slots = [accounts[i // per_account] for i in range(connections)]
    ctx = multiprocessing.get_context("spawn")
    reports, stop = ctx.Queue(), ctx.Event()
    chunks = [slots[i::processes] for i in range(processes)]
    time.sleep(1.0)
    rss_before = rss_bytes(server_pid)
    opened_at = time.monotonic()
    procs = [
        ctx.Process(target=_holder, args=(base_url, chunk, reports, stop), daemon=True) for chunk in chunks
    ]
    for proc in procs:
        proc.start()
    ready = [reports.get(timeout=600) for _ in procs]
    open_seconds = time.monotonic() - opened_at
    opened = sum(r["open"] for r in ready)
    health: list[float] = []
    probing = threading.Event()
    prober = threading.Thread(target=_probe_health, args=(base_url, health, probing), daemon=True)
    prober.start()
    time.sleep(2.0)
    rss_after = rss_bytes(server_pid)
    time.sleep(max(0.0, hold - 2.0))
    probing.set()
    prober.join(10)
    probe = asyncio.run(_probe(base_url, accounts, probes, probe_rate))
    rss_end = rss_bytes(server_pid)
    stop.set()
    finals = [reports.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    intervals = [x for f in finals for x in f["ping_intervals"]]
    latencies = [x for f in finals for x in f["latencies"]]
    expected = probe["created"] * per_account
    return {
        "connections": connections,
        "opened": opened,
        "open_errors": sum(r["errors"] for r in ready),
        "open_seconds": round(open_seconds, 1),
        "per_account": per_account,
        "server_rss_before_mb": round(rss_before / 2**20, 1),
        "server_rss_after_mb": round(rss_after / 2**20, 1),
        "server_rss_end_mb": round(rss_end / 2**20, 1),
        "rss_per_connection_kb": round((rss_after - rss_before) / max(1, opened) / 1024, 2),
        "closed_during_hold": sum(f["closed"] for f in finals),
        "sockets_with_2_pings": sum(f["with_two_pings"] for f in finals),
        "ping_interval_s": _seconds(intervals),
        "health_ms": summary(health),
        "health_over_50ms": sum(1 for x in health if x > 0.050),
        "probe": probe,
        "probe_deliveries": len(latencies),
        "probe_deliveries_expected": expected,
        "probe_latency_ms": summary(latencies),
    }


def _probe_health(base_url: str, latencies: list[float], stop: threading.Event) -> None:
    """`GET /health` on a new connection every 0.1 s until `stop`: connect to last byte, in
    seconds (a failed one counts as 10 s)."""
    host, port = host_port(base_url)
    request = f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
    while not stop.wait(0.1):
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


def _holder(base_url: str, slots: list[Account], reports: Any, stop: Any) -> None:
    asyncio.run(_hold(base_url, slots, reports, stop))


async def _hold(base_url: str, slots: list[Account], reports: Any, stop: Any) -> None:
    limit = asyncio.Semaphore(64)
    sockets: list[PingRecorder] = []
    errors = 0
    latencies: list[float] = []

    async def one(account: Account) -> None:
        nonlocal errors
        async with limit:
            try:
                ws = await open_ws(
                    base_url,
                    account,
                    create_connection=PingRecorder,
                    ping_interval=None,
                    compression="deflate",
                )
            except Exception:
                errors += 1
                return
        assert isinstance(ws, PingRecorder)
        sockets.append(ws)
        try:
            async for frame in ws:
                event = json.loads(frame)
                note = event.get("note") or ""
                if event.get("type") == "new_request" and note.startswith("probe:"):
                    latencies.append(time.time() - float(note.removeprefix("probe:")))
        except Exception:
            return

    tasks = [asyncio.create_task(one(account)) for account in slots]
    while len(sockets) + errors < len(slots):  # noqa: ASYNC110 - bounded by the connect timeouts
        await asyncio.sleep(0.05)
    reports.put({"open": len(sockets), "errors": errors})
    while not stop.is_set():  # noqa: ASYNC110 - a multiprocessing event, not an asyncio one
        await asyncio.sleep(0.1)
    closed = sum(1 for ws in sockets if ws.close_code is not None)
    intervals = [b - a for ws in sockets for a, b in zip(ws.pings, ws.pings[1:], strict=False)]
    with_two = sum(1 for ws in sockets if len(ws.pings) >= 2)
    reports.put(
        {"closed": closed, "ping_intervals": intervals, "with_two_pings": with_two, "latencies": latencies}
    )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _probe(base_url: str, pharmacies: list[Account], count: int, rate: float) -> dict[str, Any]:
    """Requests from one patient to random idle pharmacies, ``rate`` per second."""
    (patient,) = await create_accounts(base_url, "patient", 1)
    host, port = host_port(base_url)
    http = RawHTTP(host, port)
    created = 0
    post: list[float] = []
    rng = random.Random(5)
    start = time.perf_counter()
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        fields = {
            "pharmacy": str(rng.choice(pharmacies).id),
            "quantity": "1",
            "medicine_name": "Probe",
            "note": f"probe:{time.time():.6f}",
        }
        body, content_type = multipart(fields)
        t0 = time.perf_counter()
        status, _ = await http.request(
            "POST",
            "/medicine/request/",
            body,
            {"Content-Type": content_type, "Authorization": f"Bearer {patient.access}"},
        )
        post.append(time.perf_counter() - t0)
        created += status == 201
    await asyncio.sleep(2.0)  # let the last deliveries land
    http.close()
    return {"sent": count, "created": created, "post_ms": summary(post)}
