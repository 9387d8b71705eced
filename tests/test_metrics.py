"""The tallies in front of prometheus-client (medreq/telemetry/metrics.py) render what it would have."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from medreq.telemetry import metrics

BUCKETS = (0.001, 0.005, 0.1, 1.0)
# on a bound, between bounds, zero, past the last bound (+Inf), repeated, several label sets
OBSERVATIONS = [
    (("GET", "/health", 200), 0.0),
    (("GET", "/health", 200), 0.001),
    (("GET", "/health", 200), 0.0010001),
    (("GET", "/health", 200), 0.005),
    (("POST", "/medicine/request/", 201), 0.07),
    (("POST", "/medicine/request/", 201), 1.0),
    (("POST", "/medicine/request/", 201), 3.5),
    (("POST", "/medicine/request/", 422), 0.002),
    (("GET", "/health", 200), 0.005),
]


def _text(registry: CollectorRegistry) -> bytes:
    """The exposition, without the `_created` samples (when each metric was made)."""
    return b"\n".join(line for line in generate_latest(registry).splitlines() if b"_created" not in line)


def _histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("lat_seconds", "latency", ["method", "route", "status"], buckets=BUCKETS, registry=registry)


def test_observations_render_as_prometheus_client_observing_each() -> None:
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    each = _histogram(direct)
    observations = metrics.Observations(_histogram(tallied), BUCKETS)
    for labels, amount in OBSERVATIONS[:4]:
        each.labels(*map(str, labels)).observe(amount)
        observations.observe(labels, amount)
    observations.flush()  # a flush in the middle: the second adds to the first
    for labels, amount in OBSERVATIONS[4:]:
        each.labels(*map(str, labels)).observe(amount)
        observations.observe(labels, amount)
    assert _text(tallied) != _text(direct)  # not handed over yet
    observations.flush()
    assert observations.pending == {}
    assert _text(tallied) == _text(direct)
    assert b'lat_seconds_bucket{le="0.005",method="GET",route="/health",status="200"} 5.0' in _text(tallied)


def test_an_unlabelled_histogram_and_counts_render_the_same_too() -> None:
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    each = Histogram("lag_seconds", "lag", buckets=BUCKETS, registry=direct)
    observations = metrics.Observations(Histogram("lag_seconds", "lag", buckets=BUCKETS, registry=tallied), BUCKETS)
    counter = Counter("messages", "messages", ["type", "result"], registry=direct)
    counts = metrics.Counts(Counter("messages", "messages", ["type", "result"], registry=tallied))
    for _, amount in OBSERVATIONS:
        each.observe(amount)
        observations.observe((), amount)
    for labels, amount in [(("response", "ok"), 1), (("message", "invalid_json"), 1), (("response", "ok"), 3)]:
        counter.labels(*labels).inc(amount)
        counts.add(labels, amount)
    observations.flush()
    counts.flush()
    assert _text(tallied) == _text(direct)


async def test_a_workers_flush_task_hands_over_every_second_and_when_stopped() -> None:
    registry = CollectorRegistry()
    counts = metrics.Counts(Counter("ticks", "ticks", registry=registry))

    def value() -> float | None:
        return registry.get_sample_value("ticks_total")

    saved = metrics.TALLIES
    metrics.TALLIES = (counts,)
    try:
        task = asyncio.create_task(metrics.flush_every(0.05))
        counts.add()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if value() == 1:
                break
        assert value() == 1
        counts.add(amount=2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert value() == 3  # the last tallies are not lost with the task
    finally:
        metrics.TALLIES = saved
