"""The server-side cost of JSON access logs and metrics per request, measured in one process.

    python loadtests/observability_inprocess.py --batches 30

End-to-end `bench cycle` runs (observability_overhead.py) on a shared 2-core machine vary by
more than the effect being measured. This calls the ASGI app directly (no sockets, no
generator) with four apps side by side — off, metrics only, JSON logs only, both — and
alternates batches of 100 calls between them, so background load falls on all alike. It
reports the median and the minimum CPU time per call (the minimum: the least disturbed batch)
for `GET /auth/me` and `POST /medicine/request/` (urlencoded, no file: one event stored and
published). Log lines go to /dev/null, so what is measured is building and writing them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import logging.config
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medreq.config import Settings
from medreq.protocol import TokenIn
from medreq.telemetry import metrics
from medreq.telemetry.logs import log_config
from medreq.web.app import create_app

SETUPS = {"off": ("text", ""), "metrics": ("text", "t"), "logs": ("json", ""), "on": ("json", "t")}


async def start(app: Any) -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()
    await queue.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        started.set()

    asyncio.get_running_loop().create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, queue.get, send))
    await started.wait()


async def call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
        "raw_path": path.encode(), "query_string": b"", "headers": headers, "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000), "scheme": "http", "root_path": "",
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


async def make(fmt: str, token: str) -> dict[str, Any]:
    settings = Settings.load(
        data_dir=tempfile.mkdtemp(prefix="medreq-obs-"),
        log_format=fmt,
        metrics_token=token,
        rate_limit_enabled=False,
        scrypt_n=1024,
        pharmacy_registration="open",
    )
    app = create_app(settings)
    await start(app)
    content = [(b"content-type", b"application/json")]
    for name, role in (("pat", "patient"), ("pha", "pharmacy")):
        body = {"username": name, "password": "password123", "role": role, "name": name}
        assert await call(app, "POST", "/auth/register", content, json.dumps(body).encode()) == 201
    service = app.state.service
    patient = await service.issue_tokens(TokenIn(username="pat", password="password123"))
    pharmacy = await service.issue_tokens(TokenIn(username="pha", password="password123"))
    auth = (b"authorization", f"Bearer {patient.access}".encode())
    return {
        "app": app,
        "metrics": bool(token),
        "get": [auth],
        "post": [auth, (b"content-type", b"application/x-www-form-urlencoded")],
        "form": f"pharmacy={pharmacy.account.id}&quantity=1&medicine_name=Amox".encode(),
    }


def quiet_json_logs() -> None:
    logging.config.dictConfig(log_config("info", "json"))
    for handler in logging.getLogger("medreq").handlers:
        handler.stream = open(os.devnull, "w")  # type: ignore[attr-defined]  # noqa: SIM115


async def main(batches: int, size: int) -> dict[str, Any]:
    apps = {name: await make(*setup) for name, setup in SETUPS.items()}
    results: dict[str, Any] = {}
    for kind in ("GET /auth/me", "POST /medicine/request/"):
        times: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(batches):
            for name, a in apps.items():
                metrics.enable(a["metrics"])
                started = time.process_time()
                for _ in range(size):
                    if kind.startswith("GET"):
                        await call(a["app"], "GET", "/auth/me", a["get"])
                    else:
                        await call(a["app"], "POST", "/medicine/request/", a["post"], a["form"])
                times[name].append((time.process_time() - started) / size * 1e6)
        results[kind] = {
            name: {"median_us": round(statistics.median(t), 1), "min_us": round(min(t), 1)}
            for name, t in times.items()
        }
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    quiet_json_logs()
    output = asyncio.run(main(args.batches, args.size))
    output["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(output, indent=2))
