"""Benchmark 2b: the full cycle of a request asked of several pharmacies at once (docs/protocol.md §3, groups).

A group cycle: the patient POSTs one request to ``pharmacies`` pharmacies → each gets
``new_request`` and accepts over its WebSocket → the patient gets every ``pharmacy_response`` →
chooses the first (``POST /medicine/request/{id}/choose/``) → the chosen pharmacy gets
``request_chosen``, every other one ``request_cancelled``. The cycle ends when all of those
arrived; one missing after 10 s is counted lost. Closed loop, like `cycle`: each worker is one
patient with pharmacies of its own, and the server's CPU is read over the measured window only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from ..accounts import Account, create_accounts
from ..server import tree_cpu_seconds
from ..stats import summary
from .common import RawHTTP, host_port, multipart, open_ws, own_cpu_over, run_generators


def bench_group_cycle(
    base_url: str,
    server_pid: int,
    *,
    pharmacies: int = 3,
    workers: int = 64,
    processes: int = 2,
    warmup: float = 3.0,
    seconds: float = 15.0,
    meter: Callable[[int], float] = tree_cpu_seconds,
) -> dict[str, Any]:
    """Run the generator processes; the server's CPU per group cycle over the measured window."""
    parts, server_cpu, wall = run_generators(
        _generator,
        lambda n, start_at, results: (base_url, n, pharmacies, start_at, warmup, seconds, results),
        workers=workers,
        processes=processes,
        head_start=8.0 + 0.05 * workers * pharmacies,
        warmup=warmup,
        seconds=seconds,
        server_pid=server_pid,
        meter=meter,
    )
    cycles = sum(p["cycles"] for p in parts)
    generator_cpu = sum(p["cpu_s"] for p in parts)
    return {
        "pharmacies_per_request": pharmacies,
        "workers": workers,
        "processes": len(parts),
        "seconds": round(wall, 2),
        "cycles": cycles,
        "cycles_per_s": round(cycles / wall, 1),
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_ms_per_cycle": round(server_cpu / max(1, cycles) * 1000, 3),
        "server_cpu_share": round(server_cpu / wall, 3),
        "generator_cpu_ms_per_cycle": round(generator_cpu / max(1, cycles) * 1000, 3),
        "cycle_ms": summary([x for p in parts for x in p["latencies"]]),
        "errors": sum(p["errors"] for p in parts),
        "lost": sum(p["lost"] for p in parts),
    }


def _generator(
    base_url: str, workers: int, pharmacies: int, start_at: float, warmup: float, seconds: float, results: Any
) -> None:
    results.put(asyncio.run(_generate(base_url, workers, pharmacies, start_at, warmup, seconds)))


class _Waits:
    """Futures keyed by (event type, request id), set by the socket readers; an event that comes
    before its future is kept and resolves it at once."""

    def __init__(self) -> None:
        self.futures: dict[tuple[str, int], asyncio.Future[None]] = {}
        self.early: set[tuple[str, int]] = set()

    def expect(self, kind: str, request_id: int) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        key = (kind, request_id)
        if key in self.early:
            self.early.discard(key)
            future.set_result(None)
        else:
            self.futures[key] = future
        return future

    def arrived(self, kind: str, request_id: int) -> None:
        future = self.futures.pop((kind, request_id), None)
        if future is None:
            self.early.add((kind, request_id))
        elif not future.done():
            future.set_result(None)


async def _generate(
    base_url: str, workers: int, pharmacies: int, start_at: float, warmup: float, seconds: float
) -> dict[str, Any]:
    patients = await create_accounts(base_url, "patient", workers, concurrency=8)
    shops = await create_accounts(base_url, "pharmacy", workers * pharmacies, concurrency=8)
    waits = _Waits()
    errors = 0

    async def pharmacy_loop(ws: Any) -> None:
        nonlocal errors
        async for frame in ws:
            event = json.loads(frame)
            kind = event.get("type")
            if kind == "new_request":
                answer = {"type": "response", "request_id": event["request_id"], "status": "ACCEPTED"}
                await ws.send(json.dumps(answer))
            elif kind in ("request_chosen", "request_cancelled"):
                waits.arrived(kind, event["request_id"])
            elif kind == "error":
                errors += 1

    async def patient_loop(ws: Any) -> None:
        async for frame in ws:
            event = json.loads(frame)
            if event.get("type") == "pharmacy_response":
                waits.arrived("pharmacy_response", event["request_id"])

    sockets = []
    readers = []
    for account in [*shops, *patients]:
        ws = await open_ws(base_url, account)
        sockets.append(ws)
        loop = pharmacy_loop if account.role == "pharmacy" else patient_loop
        readers.append(asyncio.create_task(loop(ws)))
    host, port = host_port(base_url)
    measure_from = start_at + warmup
    measure_to = measure_from + seconds
    done: list[float] = []
    lost = 0

    async def worker(patient: Account, asked: list[Account]) -> None:
        nonlocal errors, lost
        http = RawHTTP(host, port)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        auth = {"Authorization": f"Bearer {patient.access}"}
        while time.time() < measure_to:
            fields = [("pharmacy", str(p.id)) for p in asked] + [
                ("quantity", "1"),
                ("medicine_name", "Ibuprofen"),
            ]
            body, content_type = multipart(fields)
            started = time.perf_counter()
            status, data = await http.request(
                "POST", "/medicine/request/", body, {"Content-Type": content_type, **auth}
            )
            if status != 201:
                errors += 1
                continue
            ids = [int(r["id"]) for r in json.loads(data)["requests"]]
            try:
                async with asyncio.timeout(10):
                    await asyncio.gather(*(waits.expect("pharmacy_response", i) for i in ids))
                    later = [waits.expect("request_chosen", ids[0])]
                    later += [waits.expect("request_cancelled", i) for i in ids[1:]]
                    status, _ = await http.request("POST", f"/medicine/request/{ids[0]}/choose/", b"", auth)
                    if status != 200:
                        errors += 1
                    await asyncio.gather(*later)
            except TimeoutError:
                lost += 1
                continue
            if measure_from <= time.time() < measure_to:
                done.append(time.perf_counter() - started)
        http.close()

    window: list[float] = []

    groups = [shops[i * pharmacies : (i + 1) * pharmacies] for i in range(workers)]
    workers_done = (worker(p, g) for p, g in zip(patients, groups, strict=True))
    await asyncio.gather(own_cpu_over(measure_from, measure_to, window), *workers_done)
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()
    return {
        "cycles": len(done),
        "latencies": done,
        "cpu_s": window[1] - window[0],
        "errors": errors,
        "lost": lost,
    }
