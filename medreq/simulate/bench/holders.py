"""The idle benchmark's load-generator processes: each holds its share of the sockets.

A holder opens its sockets (64 handshakes at a time, each to its slot's server, from its own
loopback source address: one address has ~28,000 ephemeral ports, a process 20,000
descriptors), reports how many opened, were refused (HTTP 503 from a full server) or failed, then
keeps them open, recording on every socket when each server ping arrives and which events it
received, until told to stop. Events are recognised by their ``note``: ``probe:<sent at>`` and
``burst:<n>:<sent at>`` (senders and holders share this machine's clock).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus
from websockets.frames import Opcode

from ..accounts import Account
from .common import open_ws

# handshakes in flight per holder: each takes a database connection on its server, and 6 servers'
# pools (up to 44 connections each, medreq/storage) met this PostgreSQL's max_connections (100,
# shared) at 8 and 16; the servers' CPU, not this, bounds the opening rate
OPENING = 4
QUIET = 2.0  # after the stop, seconds without a burst event before reporting
QUIET_CAP = 60.0  # …but never longer than this
SLACK = 1.0  # seconds a ping may be late and still on schedule (the next is due an interval after a pong)


@dataclass(frozen=True)
class Slot:
    """One socket to hold: whose it is and which server it goes to."""

    account: Account
    url: str


class PingRecorder(ClientConnection):
    """A client connection that notes when each server ping arrives, and which events it got."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = time.monotonic()
        self.pings: list[float] = []
        self.burst_events: dict[int, int] = {}  # event id → request id

    def process_event(self, event: Any) -> None:
        if getattr(event, "opcode", None) is Opcode.PING:
            self.pings.append(time.monotonic())
        super().process_event(event)


def holder(slots: list[Slot], source: str, ping_interval: float, reports: Any, stop: Any) -> None:
    """A process's entry point (spawned)."""
    asyncio.run(_hold(slots, source, ping_interval, reports, stop))


async def _hold(slots: list[Slot], source: str, ping_interval: float, reports: Any, stop: Any) -> None:
    limit = asyncio.Semaphore(OPENING)
    sockets: list[tuple[Slot, PingRecorder]] = []
    failures: Counter[str] = Counter()
    probe_latencies: list[float] = []
    burst_latencies: list[float] = []
    burst = {"duplicates": 0, "last": 0.0}

    async def one(slot: Slot) -> None:
        async with limit:
            try:
                ws = await open_ws(
                    slot.url,
                    slot.account,
                    create_connection=PingRecorder,
                    ping_interval=None,
                    compression="deflate",
                    local_addr=(source, 0),
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                failures["refused" if status == 503 else f"HTTP {status}"] += 1
                return
            except Exception as exc:
                failures[type(exc).__name__] += 1
                return
        assert isinstance(ws, PingRecorder)
        ws.opened = time.monotonic()  # the server's heartbeat starts once the socket is accepted
        sockets.append((slot, ws))
        try:
            async for frame in ws:
                event = json.loads(frame)
                note = event.get("note") or ""
                if event.get("type") != "new_request":
                    continue
                if note.startswith("probe:"):
                    probe_latencies.append(time.time() - float(note.removeprefix("probe:")))
                elif note.startswith("burst:"):
                    burst["last"] = time.monotonic()
                    if event["event_id"] in ws.burst_events:
                        burst["duplicates"] += 1
                        continue
                    ws.burst_events[event["event_id"]] = event["request_id"]
                    burst_latencies.append(time.time() - float(note.rsplit(":", 1)[1]))
        except Exception:
            return

    tasks = [asyncio.create_task(one(slot)) for slot in slots]
    while len(sockets) + failures.total() < len(slots):  # noqa: ASYNC110 - bounded by the connect timeouts
        await asyncio.sleep(0.05)
    refused = failures.pop("refused", 0)
    reports.put({"open": len(sockets), "refused": refused, "errors": dict(failures)})
    while not stop.is_set():  # noqa: ASYNC110 - a multiprocessing event, not an asyncio one
        await asyncio.sleep(0.1)
    await _quiet(burst)
    reports.put(_final(sockets, ping_interval, burst, probe_latencies, burst_latencies))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _quiet(burst: dict[str, Any]) -> None:
    """Until no burst event has come for `QUIET` seconds (the last may still be on their way)."""
    since = time.monotonic()
    while time.monotonic() - since < QUIET_CAP:
        left = QUIET - (time.monotonic() - max(burst["last"], since))
        if left <= 0:
            return
        await asyncio.sleep(left)


def _longest_gap(ws: PingRecorder, now: float) -> float:
    times = [ws.opened, *ws.pings, now]
    return max(b - a for a, b in itertools.pairwise(times))


def _final(
    sockets: list[tuple[Slot, PingRecorder]],
    ping_interval: float,
    burst: dict[str, Any],
    probe_latencies: list[float],
    burst_latencies: list[float],
) -> dict[str, Any]:
    """What a holder reports at the end. A socket is off schedule if, at any time from its open
    until now, it went longer than the ping interval plus `SLACK` without a ping."""
    now = time.monotonic()
    alive = [(slot, ws) for slot, ws in sockets if ws.close_code is None]
    intervals = [b - a for _, ws in sockets for a, b in zip(ws.pings, ws.pings[1:], strict=False)]
    return {
        "closed": len(sockets) - len(alive),
        "off_schedule": sum(1 for _, ws in sockets if _longest_gap(ws, now) > ping_interval + SLACK),
        "with_two_pings": sum(1 for _, ws in sockets if len(ws.pings) >= 2),
        "ping_intervals": intervals,
        "probe_latencies": probe_latencies,
        "burst_latencies": burst_latencies,
        # request id → sockets still open that got its `new_request` (a closed one is counted as dropped)
        "burst_seen": dict(Counter(r for _, ws in alive for r in ws.burst_events.values())),
        "burst_duplicates": burst["duplicates"],
        "open_per_account": dict(Counter(slot.account.id for slot, _ in alive)),
    }
