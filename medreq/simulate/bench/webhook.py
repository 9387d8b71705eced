"""Benchmark 4: webhook delivery (docs/protocol.md §5, "Reaching accounts that are not connected").

- `bench_webhook`: the deliverer's throughput. Pharmacies with a webhook and no socket; patients
  send ``events`` requests as fast as ``concurrency`` keep-alive connections allow; a receiver on
  loopback (this process) answers every POST 200 at once. Reported: deliveries per second from
  the first request to the last delivery, and each event's latency from its request's 201 to the
  receiver having it.
- `WebhookReceiver` is also what ``bench cycle --webhook`` uses to complete a cycle when the
  patient is offline and learns of the answer by webhook.

The server must allow loopback webhook targets (``MEDREQ_WEBHOOK_ALLOW_PRIVATE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from ..accounts import Account, create_accounts
from ..server import tree_cpu_seconds
from ..stats import summary
from .common import RawHTTP, host_port, post_request

WEBHOOK_ENV = {"MEDREQ_WEBHOOK_ALLOW_PRIVATE": "true"}


class WebhookReceiver:
    """A minimal HTTP/1.1 server on 127.0.0.1 that answers every POST ``200`` and hands the JSON
    event to ``on_event`` (keep-alive, as the deliverer's httpx client reuses connections)."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.on_event = on_event
        self.received = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                self.received += 1
                if body:
                    self.on_event(json.loads(body))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the deliverer closed its connection, or the benchmark is over
        finally:
            writer.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


async def set_webhooks(base_url: str, accounts: list[Account], port: int) -> None:
    """Point each account's webhook at the receiver (``/hook/<account id>``)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False) as http:
        for account in accounts:
            url = f"http://127.0.0.1:{port}/hook/{account.id}"
            answer = await http.put("/auth/me", json={"webhook_url": url}, headers=account.headers)
            answer.raise_for_status()


async def bench_webhook(
    base_url: str, server_pid: int, *, events: int = 5000, concurrency: int = 32, pharmacies: int = 50
) -> dict[str, Any]:
    """Deliver ``events`` new_request events by webhook; deliveries/s and latency percentiles."""
    host, port = host_port(base_url)
    patients = await create_accounts(base_url, "patient", concurrency, concurrency=8)
    shops = await create_accounts(base_url, "pharmacy", pharmacies, concurrency=8)
    sent_at: dict[int, float] = {}  # request_id → its 201
    arrived: dict[int, float] = {}
    all_in = asyncio.Event()

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == "new_request":
            arrived.setdefault(int(event["request_id"]), time.perf_counter())
            if len(arrived) >= events:
                all_in.set()

    receiver = WebhookReceiver(on_event)
    await set_webhooks(base_url, shops, await receiver.start())
    errors = 0
    queue = iter(range(events))

    async def sender(patient: Account) -> None:
        nonlocal errors
        http = RawHTTP(host, port)
        try:
            for index in queue:
                shop = shops[index % len(shops)]
                fields = {"pharmacy": str(shop.id), "quantity": "1", "medicine_name": "B"}
                status, data = await post_request(http, patient.access, fields)
                if status != 201:
                    errors += 1
                    continue
                sent_at[int(json.loads(data)["request_id"])] = time.perf_counter()
        finally:
            http.close()

    cpu0, started = tree_cpu_seconds(server_pid), time.perf_counter()
    await asyncio.gather(*(sender(p) for p in patients))
    sent_done = time.perf_counter()
    with contextlib.suppress(TimeoutError):  # what never arrived is counted as lost below
        await asyncio.wait_for(all_in.wait(), 60 + events / 100)
    finished = max(arrived.values(), default=time.perf_counter())
    server_cpu = tree_cpu_seconds(server_pid) - cpu0
    receiver.close()
    latencies = [arrived[r] - t for r, t in sent_at.items() if r in arrived]
    wall = finished - started
    return {
        "events": events,
        "sender_connections": concurrency,
        "pharmacies": pharmacies,
        "delivered": len(arrived),
        "lost": len(sent_at) - len([r for r in sent_at if r in arrived]),
        "errors": errors,
        "requests_per_s": round(len(sent_at) / max(1e-9, sent_done - started), 1),
        "deliveries_per_s": round(len(arrived) / max(1e-9, wall), 1),
        "latency_ms": summary(latencies),
        "server_cpu_ms_per_event": round(server_cpu / max(1, len(arrived)) * 1000, 3),
    }
