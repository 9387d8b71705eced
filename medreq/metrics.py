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
"""

from __future__ import annotations

import os
import time
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

from .protocol import CLIENT_MESSAGE_TYPES

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Off unless the server exposes /metrics: then nothing is counted and nothing costs anything.
enabled = False

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
HTTP_DURATION = Histogram(
    "medreq_http_request_duration_seconds",
    "REST request latency by route template and status",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
EVENTS_STORED = Counter("medreq_events_stored", "Events stored (one per recipient account)")
EVENTS_PUBLISHED = Counter("medreq_events_published", "Stored events published to the hub")
EVENTS_REPLAYED = Counter("medreq_events_replayed", "Stored events read back for a replay or a gap fill")
DELIVERY = Histogram(
    "medreq_event_delivery_seconds",
    "From an event's timestamp to its being written to a socket",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 60.0),
)
RATE_LIMITED = Counter("medreq_rate_limited", "Requests and messages refused by a rate limit", ["transport"])
HUB_RECONNECTS = Counter("medreq_hub_reconnects", "Times the Redis hub listener lost Redis and retried")


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


def render() -> bytes:
    """Every metric in Prometheus text format, summed over workers in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def outbox_backlog(pending: int, oldest_seconds: float) -> None:
    OUTBOX_PENDING.set(pending)
    OUTBOX_OLDEST.set(oldest_seconds)


def events_stored(count: int = 1) -> None:
    if enabled:
        EVENTS_STORED.inc(count)


def events_published(count: int) -> None:
    if enabled and count:
        EVENTS_PUBLISHED.inc(count)


def events_replayed(count: int) -> None:
    if enabled and count:
        EVENTS_REPLAYED.inc(count)


def rate_limited(transport: str) -> None:
    if enabled:
        RATE_LIMITED.labels(transport).inc()


def hub_reconnect() -> None:
    if enabled:
        HUB_RECONNECTS.inc()


_ws_children: dict[tuple[str, str], Any] = {}
_KNOWN_TYPES = frozenset(CLIENT_MESSAGE_TYPES)


def ws_message(kind: object, result: str) -> None:
    if not enabled:
        return
    # only the protocol's types become labels: a client must not grow the label set
    key = (kind if kind in _KNOWN_TYPES else "unknown", result)
    child = _ws_children.get(key)
    if child is None:
        child = _ws_children[key] = WS_MESSAGES.labels(*key)
    child.inc()


_TIMESTAMP = '"timestamp":"'
# labelled children and minute starts, looked up once: `.labels()` and a full ISO parse per
# call were most of what metrics cost per request (measured with timeit: 7 µs and 10 µs)
_http_children: dict[tuple[str, str, int], Any] = {}
_minutes: dict[str, float] = {}


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    child = _http_children.get(key)
    if child is None:
        child = _http_children[key] = HTTP_DURATION.labels(method, route, str(status))
    child.observe(seconds)


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
    DELIVERY.observe(max(0.0, time.time() - stored))
