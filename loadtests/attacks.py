"""Unauthenticated denial-of-service attacks on a throwaway medreq server, with their cost measured.

    python loadtests/attacks.py header --mib 100          # one 100 MiB header line
    python loadtests/attacks.py idle --count 19900        # idle TCP connections (no bytes sent)
    python loadtests/attacks.py slowloris --count 500     # headers trickled, one byte every 5 s
    python loadtests/attacks.py nested --depth 20000      # deeply nested JSON to /auth/register
    python loadtests/attacks.py stuck --events 3000       # a WebSocket that never reads

Each starts `python -m medreq serve` on a free 127.0.0.1 port (temporary data dir, rate limits
off; `--env NAME=VALUE` adds settings), runs the attack from this process, and prints one JSON
line: the server's peak RSS and open descriptors, `/health` as seen meanwhile by a client
whose keep-alive connection predates the attack (latency; unanswered within 5 s) and by fresh
connections (status counts), and what happened to the attacking sockets.
Loopback only; every loop is bounded by its --count / --mib / --seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import time
from typing import Any

import httpx

from medreq.config import Settings
from medreq.simulate.accounts import create_accounts
from medreq.simulate.server import LOAD_ENV, ServerProcess, raise_fd_limit, rss_bytes

TCP_STATES = {1: "established", 7: "closed", 8: "close_wait", 4: "fin_wait1", 5: "fin_wait2"}


class Probe:
    """Every `period` seconds: the server's RSS, `/health` on a keep-alive connection opened
    before the attack (an existing client), and `/health` on a fresh connection (a new one)."""

    def __init__(self, server: ServerProcess, period: float = 0.5) -> None:
        self.server = server
        self.period = period
        self.peak_rss = rss_bytes(server.pid)
        self.start_rss = self.peak_rss
        self.peak_fds = 0
        self.latencies: list[float | None] = []
        self.fresh: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def health(self, client: httpx.AsyncClient | None = None) -> tuple[float | None, str]:
        started = time.perf_counter()
        try:
            if client is None:
                async with httpx.AsyncClient(timeout=5.0) as fresh:
                    reply = await fresh.get(f"{self.server.url}/health")
            else:
                reply = await client.get(f"{self.server.url}/health")
        except httpx.HTTPError as exc:
            return None, type(exc).__name__
        elapsed = time.perf_counter() - started
        return (elapsed if reply.status_code == 200 else None), str(reply.status_code)

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            await self.health(client)
            self._ready.set()
            while True:
                self.peak_rss = max(self.peak_rss, rss_bytes(self.server.pid))
                self.peak_fds = max(self.peak_fds, len(os.listdir(f"/proc/{self.server.pid}/fd")))
                self.latencies.append((await self.health(client))[0])
                outcome = (await self.health())[1]
                self.fresh[outcome] = self.fresh.get(outcome, 0) + 1
                await asyncio.sleep(self.period)

    async def __aenter__(self) -> Probe:
        self._task = asyncio.create_task(self._run())
        await self._ready.wait()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()

    def summary(self) -> dict[str, Any]:
        answered = [x for x in self.latencies if x is not None]
        return {
            "rss_start_mb": round(self.start_rss / 2**20, 1),
            "rss_peak_mb": round(max(self.peak_rss, rss_bytes(self.server.pid)) / 2**20, 1),
            "server_fds_peak": self.peak_fds,
            "health_samples": len(self.latencies),
            "health_unanswered": len(self.latencies) - len(answered),
            "health_max_ms": round(max(answered) * 1000, 1) if answered else None,
            "fresh_health": self.fresh,
        }


def tcp_state(sock: socket.socket) -> str:
    """The kernel's TCP state of our end (Linux TCP_INFO), without reading from the socket."""
    state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    return TCP_STATES.get(state, str(state))


async def open_raw(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        except OSError:
            sock.close()
            break
        socks.append(sock)
    return socks


def closed_by_server(socks: list[socket.socket]) -> int:
    return sum(tcp_state(s) != "established" for s in socks)


async def read_reply(sock: socket.socket, limit: float = 5.0) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(limit):
            while chunk := await loop.sock_recv(sock, 65536):
                data += chunk
    return data


# --- the attacks ------------------------------------------------------------------------------


async def header(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    socks = await open_raw(server.port, args.connections)
    chunk = b"a" * 2**20
    started = time.perf_counter()
    sent, replies = 0, []
    async with Probe(server) as probe:
        for sock in socks:
            await loop.sock_sendall(sock, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(args.mib):
            for sock in list(socks):
                try:
                    await loop.sock_sendall(sock, chunk)
                except OSError:  # cut off by the server: keep what it answered
                    socks.remove(sock)
                    replies.append(await read_reply(sock, 1.0))
                    sock.close()
            if not socks:
                break
            sent += len(chunk)
        for sock in socks:
            with contextlib.suppress(OSError):
                await loop.sock_sendall(sock, b"\r\n\r\n")
            replies.append(await read_reply(sock))
            sock.close()
        await asyncio.sleep(1.0)
    return {
        **probe.summary(),
        "sent_mib": round(sent / 2**20, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "reply": b"".join(replies)[:300].decode("latin-1"),
    }


async def idle(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit(args.count + 100)
    async with Probe(server) as probe:
        socks = await open_raw(server.port, args.count)
        await asyncio.sleep(args.seconds)
        closed = closed_by_server(socks)
        refused = sum(1 for s in socks if _peek_503(s))
    for sock in socks:
        sock.close()
    _, status = await probe.health()
    return {
        **probe.summary(),
        "opened": len(socks),
        "closed_by_server": closed,
        "answered_503": refused,
        "health_after": status,
    }


def _peek_503(sock: socket.socket) -> bool:
    try:
        return sock.recv(64, socket.MSG_PEEK).startswith(b"HTTP/1.1 503")
    except OSError:
        return False


async def slowloris(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    raise_fd_limit(args.count + 100)
    async with Probe(server) as probe:
        socks = await open_raw(server.port, args.count)
        for sock in socks:
            with contextlib.suppress(OSError):
                await loop.sock_sendall(sock, b"GET /health HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.send(b"X-a: b\r\n")
            await asyncio.sleep(args.interval)
        closed = closed_by_server(socks)
    for sock in socks:
        sock.close()
    return {**probe.summary(), "opened": len(socks), "closed_by_server": closed, "seconds": args.seconds}


async def nested(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    body = "[" * args.depth + "]" * args.depth
    out: dict[str, Any] = {"depth": args.depth, "bytes": len(body)}
    async with Probe(server) as probe, httpx.AsyncClient(timeout=30) as client:
        for path in ("/auth/register", "/auth/token"):
            reply = await client.post(server.url + path, content=body)
            out[path] = [reply.status_code, reply.text[:200]]
    out["traceback_in_log"] = "RecursionError" in server.log()
    return {**probe.summary(), **out}


async def stuck(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    """A pharmacy socket that never reads while a patient sends it `args.events` requests."""
    (patient,) = await create_accounts(server.url, "patient", 1)
    (shop,) = await create_accounts(server.url, "pharmacy", 1)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        shop_id, shop_token = shop.id, shop.access
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(
            f"GET /ws/pharmacy/{shop_id}/?token={shop_token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        started = time.monotonic()
        headers = patient.headers
        note = "n" * 900  # a large-ish event, so the buffers fill quickly
        closed_after = None
        async with Probe(server) as probe:
            for i in range(args.events):
                form = {"pharmacy": str(shop_id), "quantity": "1", "medicine_name": f"m{i}", "note": note}
                await client.post("/medicine/request/", data=form, headers=headers)
                if closed_after is None and tcp_state(sock) != "established":
                    closed_after = time.monotonic() - started
            deadline = time.monotonic() + args.seconds
            while closed_after is None and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                if tcp_state(sock) != "established":
                    closed_after = time.monotonic() - started
        state = tcp_state(sock)
        server_side = server_socket(server.port, sock.getsockname()[1])
        sock.close()
    return {
        **probe.summary(),
        "events": args.events,
        "socket_state": state,
        "closed_after_s": closed_after,
        "server_socket": server_side,
    }


def server_socket(server_port: int, client_port: int) -> str | None:
    """The server's end of our connection in /proc/net/tcp: its state and send queue, or None
    once the kernel has let go of it."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as fh:
        for line in fh:
            fields = line.split()
            if fields[1] == local and fields[2] == remote:
                state = {"01": "established", "04": "fin_wait1", "06": "time_wait", "07": "close"}
                tx_queue = int(fields[4].split(":")[0], 16)
                return f"{state.get(fields[3], fields[3])}, {tx_queue} bytes queued"
    return None


ATTACKS = {"header": header, "idle": idle, "slowloris": slowloris, "nested": nested, "stuck": stuck}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("attack", choices=sorted(ATTACKS))
    parser.add_argument("--mib", type=int, default=100, help="header: size of the header line")
    parser.add_argument("--connections", type=int, default=1, help="header: how many at once")
    parser.add_argument("--count", type=int, default=500, help="idle, slowloris: connections")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to hold / wait")
    parser.add_argument("--interval", type=float, default=5.0, help="slowloris: seconds between bytes")
    parser.add_argument("--depth", type=int, default=20000, help="nested: nesting depth")
    parser.add_argument("--events", type=int, default=3000, help="stuck: events pushed")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE server setting")
    args = parser.parse_args()
    # the server's own default for every limit (LOAD_ENV lifts the per-address cap for load tests)
    per_client = getattr(Settings(), "max_connections_per_client", 0)
    env = {**LOAD_ENV, "MEDREQ_MAX_CONNECTIONS_PER_CLIENT": str(per_client)}
    env.update(item.split("=", 1) for item in args.env)
    raise_fd_limit(65536)  # the server inherits it: as high as the hard limit allows
    with ServerProcess(env=env) as server:
        time.sleep(1.0)
        result = asyncio.run(ATTACKS[args.attack](server, args))
    print(json.dumps({"attack": args.attack, **result, "env": args.env}))


if __name__ == "__main__":
    main()
