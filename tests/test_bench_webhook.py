"""`medreq bench webhook` and `bench cycle --webhook` count what a real deliverer delivered: every
event reaches the benchmark's receiver, none is lost, and the numbers come from that run."""

from __future__ import annotations

import asyncio

from medreq.simulate.bench import WEBHOOK_ENV, bench_webhook
from medreq.simulate.bench.cycle import bench_cycle
from medreq.simulate.server import ServerProcess


def test_bench_webhook_delivers_every_event_to_its_receiver() -> None:
    with ServerProcess(env=WEBHOOK_ENV) as server:
        result = asyncio.run(bench_webhook(server.url, server.pid, events=60, concurrency=4, pharmacies=3))
    assert (result["delivered"], result["lost"], result["errors"]) == (60, 0, 0)
    assert result["latency_ms"]["count"] == 60
    assert result["deliveries_per_s"] > 0


def test_bench_cycle_with_offline_patients_completes_cycles_by_webhook() -> None:
    with ServerProcess(env=WEBHOOK_ENV) as server:
        result = bench_cycle(
            server.url, server.pid, workers=2, processes=1, warmup=0.5, seconds=2, webhook=True
        )
    assert result["patients"] == "offline, webhook"
    assert result["cycles"] > 0
    assert (result["lost"], result["errors"]) == (0, 0)
