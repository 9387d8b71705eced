"""Benchmark 1: request → pharmacy notification latency, open loop, at fixed offered rates.

Requests are scheduled at a constant rate whether or not earlier ones finished (open loop,
so a slow server shows up as latency, not as a lower rate). The clock starts at the
request's *scheduled* time, so time spent waiting for a free connection in the generator
counts too. ``post→notify`` is from then to the ``new_request`` frame at the pharmacy;
``201→notify`` from the ``201`` to that frame, over the requests whose frame came after their
``201``. Most come before it (the server pushes the event before it answers the POST):
``notified_before_201`` counts those, rather than a row of zeros that said nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from ..accounts import Account, create_accounts
from ..stats import summary
from .common import CPUMeter, RawHTTP, host_port, multipart, open_ws


async def bench_notify(
    base_url: str,
    server_pid: int,
    *,
    rates: tuple[float, ...] = (50.0, 200.0, 500.0),
    seconds: float = 10.0,
    pharmacies: int = 20,
    patients: int = 50,
    pool: int = 128,
    drain: float = 5.0,
) -> list[dict[str, Any]]:
    pharmacy_accounts = await create_accounts(base_url, "pharmacy", pharmacies)
    patient_accounts = await create_accounts(base_url, "patient", patients)
    sockets = [await open_ws(base_url, account) for account in pharmacy_accounts]
    sent_at: dict[str, float] = {}
    created_at: dict[str, float] = {}
    delivered: dict[str, float] = {}
    duplicates = 0

    async def read(ws: Any) -> None:
        nonlocal duplicates
        async for frame in ws:
            now = time.perf_counter()
            event = json.loads(frame)
            if event.get("type") != "new_request":
                continue
            key = event.get("note") or ""
            if key in delivered:
                duplicates += 1
            else:
                delivered[key] = now

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    host, port = host_port(base_url)
    free: asyncio.Queue[RawHTTP] = asyncio.Queue()
    for _ in range(pool):
        free.put_nowait(RawHTTP(host, port))
    results = []
    try:
        for rate in rates:
            results.append(
                await _one_rate(
                    rate,
                    seconds,
                    drain,
                    server_pid,
                    free,
                    patient_accounts,
                    pharmacy_accounts,
                    sent_at,
                    created_at,
                    delivered,
                )
            )
            results[-1]["duplicated"] = duplicates
            duplicates = 0
    finally:
        for task in readers:
            task.cancel()
        for ws in sockets:
            await ws.close()
        while not free.empty():
            free.get_nowait().close()
    return results


async def _one_rate(
    rate: float,
    seconds: float,
    drain: float,
    server_pid: int,
    free: asyncio.Queue[RawHTTP],
    patients: list[Account],
    pharmacies: list[Account],
    sent_at: dict[str, float],
    created_at: dict[str, float],
    delivered: dict[str, float],
) -> dict[str, Any]:
    errors: dict[str, int] = {}
    tasks: set[asyncio.Task[None]] = set()
    keys: list[str] = []
    prefix = f"r{int(rate)}-"

    async def post(key: str, patient: Account, pharmacy: Account) -> None:
        fields = {"pharmacy": str(pharmacy.id), "quantity": "1", "medicine_name": "Paracetamol", "note": key}
        body, content_type = multipart(fields)
        http = await free.get()
        try:
            status, _ = await http.request(
                "POST",
                "/medicine/request/",
                body,
                {"Content-Type": content_type, "Authorization": f"Bearer {patient.access}"},
            )
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            http.close()
            return
        finally:
            free.put_nowait(http)
        if status == 201:
            created_at[key] = time.perf_counter()
        else:
            errors[str(status)] = errors.get(str(status), 0) + 1

    meter = CPUMeter(server_pid)
    meter.start()
    interval = 1.0 / rate
    start = time.perf_counter()
    count = int(rate * seconds)
    for i in range(count):
        scheduled = start + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        key = f"{prefix}{i}"
        keys.append(key)
        sent_at[key] = scheduled
        task = asyncio.create_task(post(key, patients[i % len(patients)], pharmacies[i % len(pharmacies)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    send_seconds = time.perf_counter() - start
    deadline = time.perf_counter() + drain
    while time.perf_counter() < deadline:
        pending = [k for k in keys if k in created_at and k not in delivered]
        if not tasks and not pending:
            break
        await asyncio.sleep(0.02)
    cpu = meter.stop()
    created = [k for k in keys if k in created_at]
    notify = [delivered[k] - sent_at[k] for k in created if k in delivered]
    after_201 = [delivered[k] - created_at[k] for k in created if k in delivered and delivered[k] > created_at[k]]
    post_times = [created_at[k] - sent_at[k] for k in created]
    return {
        "offered_rate": rate,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "seconds": round(send_seconds, 2),
        "sent": len(keys),
        "created": len(created),
        "delivered": len(notify),
        "lost": len(created) - len(notify),
        "errors": errors,
        "post_to_notify_ms": summary(notify),
        "notified_before_201": len(notify) - len(after_201),
        "created_to_notify_ms": summary(after_201),
        "post_ms": summary(post_times),
        "server_cpu_ms_per_request": round(cpu["server_cpu_s"] / max(1, len(created)) * 1000, 3),
        "server_cpu_share": round(cpu["server_cpu_s"] / cpu["wall_s"], 3),
        "generator_cpu_share": round(cpu["generator_cpu_s"] / cpu["wall_s"], 3),
    }
