"""Benchmark 2: the full cycle, closed loop, and the server's CPU time per cycle.

A cycle: the patient POSTs a request → the pharmacy gets ``new_request`` → answers it over
its WebSocket → the patient gets ``pharmacy_response``. Each of ``workers`` loops runs
cycles back to back (closed loop), spread over ``processes`` generator processes so the
generator's own event loop is not the bottleneck. The server's CPU is read from
``/proc/<server pid>/stat`` (utime + stime) over the measured window only, so the
generators' CPU does not blur it; theirs is reported separately.

With ``image`` every request carries a prescription photo (a 32 KB PNG, `samples.photo`), which the
server streams to its media directory after sniffing its type, as patients' requests do.

With ``webhook`` every patient is offline with a webhook instead: the answer reaches it through
the server's outbox and deliverer (a receiver in the generator process), which is what the cycle
costs when nobody on the patient side has the app open.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from ..accounts import Account, create_accounts
from ..samples import photo
from ..server import tree_cpu_seconds
from ..stats import summary
from .common import RawHTTP, host_port, open_ws, own_cpu_over, post_request, run_generators
from .webhook import WebhookReceiver, set_webhooks


def bench_cycle(
    base_url: str,
    server_pid: int,
    *,
    workers: int = 64,
    processes: int = 2,
    warmup: float = 3.0,
    seconds: float = 15.0,
    webhook: bool = False,
    image: bool = False,
    meter: Callable[[int], float] = tree_cpu_seconds,
) -> dict[str, Any]:
    """Run the generator processes and combine their numbers with the server's CPU.

    `meter(pid)` reads the server's cumulative cost, read at both ends of the measured window: CPU
    seconds by default; `loadtests/instructions.py` passes callgrind's instruction count."""
    parts, server_cpu, wall = run_generators(
        _generator,
        lambda n, start_at, results: (base_url, n, start_at, warmup, seconds, webhook, image, results),
        workers=workers,
        processes=processes,
        head_start=8.0 + 0.02 * workers,
        warmup=warmup,
        seconds=seconds,
        server_pid=server_pid,
        meter=meter,
    )
    cycles = sum(p["cycles"] for p in parts)
    latencies = [x for p in parts for x in p["latencies"]]
    generator_cpu = sum(p["cpu_s"] for p in parts)
    return {
        "patients": "offline, webhook" if webhook else "connected",
        "image_bytes": len(photo()) if image else 0,
        "workers": workers,
        "processes": len(parts),
        "seconds": round(wall, 2),
        "cycles": cycles,
        "cycles_per_s": round(cycles / wall, 1),
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_ms_per_cycle": round(server_cpu / max(1, cycles) * 1000, 3),
        "server_cpu_share": round(server_cpu / wall, 3),
        "generator_cpu_share": round(generator_cpu / wall, 3),
        "generator_cpu_ms_per_cycle": round(generator_cpu / max(1, cycles) * 1000, 3),
        "cycle_ms": summary(latencies),
        "errors": sum(p["errors"] for p in parts),
        "lost": sum(p["lost"] for p in parts),
    }


def _generator(
    base_url: str,
    workers: int,
    start_at: float,
    warmup: float,
    seconds: float,
    webhook: bool,
    image: bool,
    results: Any,
) -> None:
    results.put(asyncio.run(_generate(base_url, workers, start_at, warmup, seconds, webhook, image)))


async def _generate(
    base_url: str, workers: int, start_at: float, warmup: float, seconds: float, webhook: bool, image: bool
) -> dict[str, Any]:
    prescription = photo() if image else None
    patients = await create_accounts(base_url, "patient", workers, concurrency=8)
    pharmacies = await create_accounts(base_url, "pharmacy", workers, concurrency=8)
    waiting: dict[int, asyncio.Future[float]] = {}  # request_id → resolved at pharmacy_response
    early: set[int] = set()
    errors = 0

    async def pharmacy_loop(ws: Any) -> None:
        nonlocal errors
        async for frame in ws:
            event = json.loads(frame)
            if event.get("type") == "new_request":
                answer = {"type": "response", "request_id": event["request_id"], "status": "ACCEPTED"}
                await ws.send(json.dumps(answer))
            elif event.get("type") == "error":
                errors += 1

    def answered(event: dict[str, Any]) -> None:
        if event.get("type") == "pharmacy_response":
            future = waiting.get(event["request_id"])
            if future is None:
                early.add(event["request_id"])
            elif not future.done():
                future.set_result(time.perf_counter())

    async def patient_loop(ws: Any) -> None:
        async for frame in ws:
            answered(json.loads(frame))

    host, port = host_port(base_url)
    pairs: list[tuple[Account, Account]] = list(zip(patients, pharmacies, strict=True))
    sockets = []
    readers = []
    receiver = WebhookReceiver(answered)
    if webhook:
        await set_webhooks(base_url, patients, await receiver.start())
    for patient, pharmacy in pairs:
        hws = await open_ws(base_url, pharmacy)
        sockets.append(hws)
        readers.append(asyncio.create_task(pharmacy_loop(hws)))
        if not webhook:
            pws = await open_ws(base_url, patient)
            sockets.append(pws)
            readers.append(asyncio.create_task(patient_loop(pws)))
    measure_from = start_at + warmup
    measure_to = measure_from + seconds
    done: list[float] = []
    lost = 0

    async def worker(patient: Account, pharmacy: Account) -> None:
        nonlocal errors, lost
        http = RawHTTP(host, port)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        while time.time() < measure_to:
            fields = {"pharmacy": str(pharmacy.id), "quantity": "1", "medicine_name": "Ibuprofen"}
            started = time.perf_counter()
            status, data = await post_request(http, patient.access, fields, prescription)
            if status != 201:
                errors += 1
                continue
            request_id = int(json.loads(data)["request_id"])
            future = asyncio.get_running_loop().create_future()
            waiting[request_id] = future
            if request_id in early:
                future.set_result(time.perf_counter())
            try:
                finished = await asyncio.wait_for(future, 10)
            except TimeoutError:
                lost += 1
                continue
            finally:
                waiting.pop(request_id, None)
            if measure_from <= time.time() < measure_to:
                done.append(finished - started)
        http.close()

    window: list[float] = []

    await asyncio.gather(own_cpu_over(measure_from, measure_to, window), *(worker(p, h) for p, h in pairs))
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()
    receiver.close()
    return {
        "cycles": len(done),
        "latencies": done,
        "cpu_s": window[1] - window[0],
        "errors": errors,
        "lost": lost,
    }
