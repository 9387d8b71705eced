"""Prometheus metrics (`GET /metrics`, text format), recorded only when the endpoint is on.

The endpoint exists only when `MEDREQ_METRICS_TOKEN` is set, and answers only to that bearer
token: metrics name routes, roles and volumes, nothing for the public. With `--workers`,
`medreq serve` gives the workers a private temporary PROMETHEUS_MULTIPROC_DIR and each scrape
sums every worker's files (prometheus-client's multiprocess mode); a single process uses the
default registry.

What is measured, and where:
- `medreq_ws_connections{role}`: live WebSockets (web/observe.py)
- `medreq_ws_closes_total{code}`, `medreq_ws_slow_client_disconnects_total` (close 1013)
- `medreq_ws_messages_total{type,result}`: client messages, result `ok` or the error code
- `medreq_http_request_duration_seconds{method,route,status}`: REST latency by route template
- `medreq_events_stored_total`, `medreq_events_published_total`, `medreq_events_replayed_total`
- `medreq_event_delivery_seconds`: stored → written to the socket (replays of old events land
  in the top buckets: they are delivered late by design)
- `medreq_rate_limited_total{transport}`: refusals by the REST and WebSocket limiters
- `medreq_hub_reconnects_total`: Redis listener errors that made the hub reconnect

- `medreq_webhook_outbox_pending`, `medreq_webhook_outbox_oldest_seconds`: the webhook/Web Push
  outbox's waiting rows and the age of the oldest, read from the database at each scrape
A worker that crashes leaves its share of `medreq_ws_connections` in its file until the
server restarts (prometheus-client cannot tell a dead worker's file from a live one's).

The per-event and per-request series (REST latency, delivery lag, events, WS messages) are
tallied in plain numbers on the event loop's thread (`Counts`, `Observations`) and handed to
prometheus-client by `flush`: at every scrape, and every second in each `--workers` worker
(so a scrape sees another worker's counts at most about a second late). prometheus-client
takes a lock per increment and walks a histogram's buckets in Python: counted with callgrind
(docs/benchmarks-history.md), a REST request's latency cost 10,400 instructions that way and 3,900
as a tally (a dict lookup and a bisect); metrics and JSON logs on went from +5.4 % to +3.4 %
of a full cycle.
"""

from __future__ import annotations

import asyncio
import os
import time
from bisect import bisect_left
from datetime import datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ..protocol import CLIENT_MESSAGE_TYPES

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Off unless the server exposes /metrics: then nothing is counted and nothing costs anything.
enabled = False


class Counts:
    """A Counter's increments, tallied by label values until `flush` hands them over."""

    __slots__ = ("metric", "pending")

    def __init__(self, metric: Counter) -> None:
        self.metric = metric
        self.pending: dict[tuple[str, ...], float] = {}

    def add(self, labels: tuple[str, ...] = (), amount: float = 1) -> None:
        pending = self.pending
        pending[labels] = pending.get(labels, 0) + amount

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        for labels, amount in pending.items():
            (self.metric.labels(*labels) if labels else self.metric).inc(amount)


class Observations:
    """A Histogram's observations, tallied per bucket by label values until `flush`.

    A tally is the count in each bucket (as prometheus-client keeps them: not cumulative, the
    last one +Inf) and then the sum. `flush` adds them to the histogram's own bucket and sum
    values, which prometheus-client has no public call for; tests/test_metrics.py renders the
    same observations both ways and compares the text."""

    __slots__ = ("bounds", "metric", "pending")

    def __init__(self, metric: Histogram, buckets: tuple[float, ...]) -> None:
        self.metric = metric
        self.bounds = buckets
        self.pending: dict[tuple[Any, ...], list[float]] = {}

    def observe(self, labels: tuple[Any, ...], amount: float) -> None:
        tally = self.pending.get(labels)
        if tally is None:
            tally = self.pending[labels] = [0.0] * (len(self.bounds) + 2)
        tally[bisect_left(self.bounds, amount)] += 1  # the first bucket whose bound is >= amount
        tally[-1] += amount

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        for labels, tally in pending.items():
            child = self.metric.labels(*map(str, labels)) if labels else self.metric
            for bucket, count in zip(child._buckets, tally[:-1], strict=True):
                if count:
                    bucket.inc(count)
            child._sum.inc(tally[-1])


WS_CONNECTIONS = Gauge(
    "medreq_ws_connections", "Live WebSocket connections", ["role"], multiprocess_mode="livesum"
)
WS_CLOSES = Counter("medreq_ws_closes", "WebSocket connections closed, by close code", ["code"])
WS_SLOW_CLIENTS = Counter(
    "medreq_ws_slow_client_disconnects", "Connections closed 1013 because the client could not keep up"
)
WS_MESSAGES = Counter(
    "medreq_ws_messages",
    "Client WebSocket messages by type and result (ok or error code)",
    ["type", "result"],
)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
HTTP_DURATION = Histogram(
    "medreq_http_request_duration_seconds",
    "REST request latency by route template and status",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
)
EVENTS_STORED = Counter("medreq_events_stored", "Events stored (one per recipient account)")
EVENTS_PUBLISHED = Counter("medreq_events_published", "Stored events published to the hub")
EVENTS_REPLAYED = Counter("medreq_events_replayed", "Stored events read back for a replay or a gap fill")
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 60.0)
DELIVERY = Histogram(
    "medreq_event_delivery_seconds",
    "From an event's timestamp to its being written to a socket",
    buckets=DELIVERY_BUCKETS,
)
RATE_LIMITED = Counter("medreq_rate_limited", "Requests and messages refused by a rate limit", ["transport"])
HUB_RECONNECTS = Counter("medreq_hub_reconnects", "Times the Redis hub listener lost Redis and retried")

# the series counted on every request or event, tallied
http_durations = Observations(HTTP_DURATION, HTTP_BUCKETS)
deliveries = Observations(DELIVERY, DELIVERY_BUCKETS)
ws_messages = Counts(WS_MESSAGES)
stored_events = Counts(EVENTS_STORED)
published_events = Counts(EVENTS_PUBLISHED)
replayed_events = Counts(EVENTS_REPLAYED)
TALLIES = (http_durations, deliveries, ws_messages, stored_events, published_events, replayed_events)


# read from the database by the scraping worker: in multiprocess mode the latest scrape's value
OUTBOX_PENDING = Gauge(
    "medreq_webhook_outbox_pending",
    "Webhook and Web Push deliveries waiting (first tries and retries)",
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST = Gauge(
    "medreq_webhook_outbox_oldest_seconds",
    "Age of the oldest waiting webhook or Web Push delivery",
    multiprocess_mode="mostrecent",
)


def enable(on: bool = True) -> None:
    global enabled
    enabled = on


def flush() -> None:
    """Hand every tally to prometheus-client (its metrics then hold everything counted)."""
    for tally in TALLIES:
        tally.flush()


async def flush_every(seconds: float) -> None:
    """A `--workers` worker's task: its tallies reach the shared files for other workers' scrapes."""
    try:
        while True:
            await asyncio.sleep(seconds)
            flush()
    finally:
        flush()


def multiprocess_mode() -> bool:
    """Whether this process is one of `--workers` (metrics in shared files, summed at scrape)."""
    return bool(os.environ.get(MULTIPROC_ENV))


def render() -> bytes:
    """Every metric in Prometheus text format, summed over workers in multiprocess mode."""
    flush()
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def outbox_backlog(pending: int, oldest_seconds: float) -> None:
    OUTBOX_PENDING.set(pending)
    OUTBOX_OLDEST.set(oldest_seconds)


def events_stored(count: int = 1) -> None:
    if enabled and count:
        stored_events.add((), count)


def events_published(count: int) -> None:
    if enabled and count:
        published_events.add((), count)


def events_replayed(count: int) -> None:
    if enabled and count:
        replayed_events.add((), count)


def rate_limited(transport: str) -> None:
    if enabled:
        RATE_LIMITED.labels(transport).inc()


def hub_reconnect() -> None:
    if enabled:
        HUB_RECONNECTS.inc()


_KNOWN_TYPES = frozenset(CLIENT_MESSAGE_TYPES)


def ws_message(kind: object, result: str) -> None:
    if not enabled:
        return
    # only the protocol's types become labels: a client must not grow the label set
    ws_messages.add((kind if kind in _KNOWN_TYPES else "unknown", result))


_TIMESTAMP = '"timestamp":"'
# minute starts, parsed once: a full ISO parse per event was 10 µs (timeit)
_minutes: dict[str, float] = {}


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    http_durations.observe((method, route, status), seconds)


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00` (events are UTC)."""
    minute = _minutes.get(stamp[:16])
    if minute is None:
        if len(_minutes) > 1000:
            _minutes.clear()
        minute = _minutes[stamp[:16]] = datetime.fromisoformat(stamp[:16] + ":00+00:00").timestamp()
    return minute + float(stamp[17:-6])


def event_delivered(text: str) -> None:
    """Observe the delivery lag of a stored event just written to a socket.

    Called by the connection, which knows the frame is a stored event; stored events are
    serialized `{"type":…,"event_id":N,"timestamp":"…"` (events.Event.build), so the timestamp
    is found without parsing the JSON. Measured with callgrind, every frame checked for being
    an event on its way out cost 24,500 instructions, three times a full cycle."""
    if not enabled:
        return
    start = text.find(_TIMESTAMP, 0, 90)
    if start < 0:
        return
    start += len(_TIMESTAMP)
    end = text.find('"', start)
    try:
        stored = _epoch(text[start:end])
    except ValueError:
        return
    deliveries.observe((), max(0.0, time.time() - stored))
