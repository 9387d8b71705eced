"""Shared pieces of the benchmarks: a lean HTTP/1.1 client, sockets, CPU numbers (accounts come
from `medreq.simulate.accounts`).

The load generator shares two cores with the server, so it spends as little CPU per request
as it can: requests are pre-encoded bytes written on keep-alive connections (no httpx), and
WebSockets are plain ``websockets`` connections (no reconnect logic: a drop is an error).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

from ..accounts import Account
from ..server import cpu_seconds, tree_cpu_seconds


class RawHTTP:
    """One keep-alive HTTP/1.1 connection; one request at a time (use a pool for more)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        data = await self._reader.readexactly(length) if length else b""
        if close:
            self._writer.close()
        return status, data

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def multipart(
    fields: dict[str, str] | list[tuple[str, str]], image: bytes | None = None
) -> tuple[bytes, str]:
    """A multipart/form-data body of plain fields (pairs when a name repeats: ``pharmacy``) and
    an `image` PNG, and its Content-Type."""
    boundary = "b" + uuid.uuid4().hex
    pairs = list(fields.items()) if isinstance(fields, dict) else fields
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in pairs
    ]
    if image is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="prescription.png"\r\n'
            "Content-Type: image/png\r\n\r\n".encode()
            + image
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def post_request(
    http: RawHTTP, token: str, fields: dict[str, str], image: bytes | None = None
) -> tuple[int, bytes]:
    """`POST /medicine/request/` with plain form fields (and a prescription image): (status, body)."""
    body, content_type = multipart(fields, image)
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}"}
    return await http.request("POST", "/medicine/request/", body, headers)

def host_port(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def ws_url(base_url: str, account: Account, after: int | None = None) -> str:
    kind = "pharmacy" if account.role == "pharmacy" else "user"
    query = f"?token={account.access}" + (f"&after={after}" if after is not None else "")
    return base_url.replace("http://", "ws://", 1) + f"/ws/{kind}/{account.id}/{query}"


async def open_ws(base_url: str, account: Account, **kwargs: Any) -> ClientConnection:
    """An authenticated socket, confirmed by a ping/pong round trip."""
    ws = await connect(ws_url(base_url, account), open_timeout=30, proxy=None, **kwargs)
    await ws.send('{"type":"ping","id":"open"}')
    reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
    if reply.get("type") != "pong":
        raise RuntimeError(f"unexpected first frame {reply}")
    return ws


class CPUMeter:
    """CPU seconds of the server process and of this one over a measured window."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._server0 = self._self0 = self._t0 = 0.0

    def start(self) -> None:
        self._server0 = tree_cpu_seconds(self.server_pid)
        self._self0 = cpu_seconds(os.getpid())
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        return {
            "wall_s": time.monotonic() - self._t0,
            "server_cpu_s": tree_cpu_seconds(self.server_pid) - self._server0,
            "generator_cpu_s": cpu_seconds(os.getpid()) - self._self0,
        }


async def own_cpu_over(measure_from: float, measure_to: float, window: list[float]) -> None:
    """This process's CPU seconds at both ends of the measured window (wall-clock times),
    appended to `window`: a generator's own cost over exactly what the server is measured on."""
    await asyncio.sleep(max(0.0, measure_from - time.time()))
    window.append(cpu_seconds(os.getpid()))
    await asyncio.sleep(max(0.0, measure_to - time.time()))
    window.append(cpu_seconds(os.getpid()))


def run_generators(
    target: Callable[..., None],
    args: Callable[[int, float, Any], tuple[Any, ...]],
    *,
    workers: int,
    processes: int,
    head_start: float,
    warmup: float,
    seconds: float,
    server_pid: int,
    meter: Callable[[int], float],
) -> tuple[list[dict[str, Any]], float, float]:
    """Start up to `processes` load generators sharing `workers` between them, each running
    ``target(*args(its workers, start_at, results queue))`` and putting one report on the queue;
    they all begin at ``start_at`` (now + `head_start`, time for every process to set up). The
    server is measured with `meter` over the `seconds` after `warmup`. Returns the generators'
    reports, the server's cost over the window and the window's length."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    share = [workers // processes + (1 if i < workers % processes else 0) for i in range(processes)]
    start_at = time.time() + head_start
    procs = [ctx.Process(target=target, args=args(n, start_at, results), daemon=True) for n in share if n]
    for proc in procs:
        proc.start()
    time.sleep(max(0.0, start_at + warmup - time.time()))
    server0, t0 = meter(server_pid), time.monotonic()
    time.sleep(seconds)
    server_cost, wall = meter(server_pid) - server0, time.monotonic() - t0
    parts = [results.get(timeout=60 + seconds) for _ in procs]
    for proc in procs:
        proc.join(10)
    return parts, server_cost, wall
