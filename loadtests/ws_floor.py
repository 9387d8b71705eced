"""The memory floor of the stack: RSS per idle WebSocket for an app that only accepts and waits.

    python loadtests/ws_floor.py --connections 2000                 # behind Starlette's router
    python loadtests/ws_floor.py --connections 2000 --stack asgi    # a plain ASGI callable

Starts such an app (same uvicorn settings as `medreq serve`: websockets-sansio, compression
off), opens N sockets from this process, and prints the server's RSS growth per socket. Compare with `medreq bench idle`: the difference is what
medreq itself keeps per connection. Loopback only; bounded by --connections.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import subprocess
import sys
import time

from websockets.asyncio.client import connect

APP = """
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

async def idle(websocket):
    await websocket.accept()
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass

app = Starlette(routes=[WebSocketRoute("/ws/{rest:path}", idle)])
uvicorn.run(app, host="127.0.0.1", port={port}, ws="websockets-sansio", ws_per_message_deflate=False,
            log_level="warning")
"""


ASGI = """
import uvicorn
from starlette.websockets import WebSocket

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    websocket = WebSocket(scope, receive, send)
    await websocket.accept()
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass

uvicorn.run(app, host="127.0.0.1", port={port}, ws="websockets-sansio", ws_per_message_deflate=False,
            log_level="warning")
"""


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def measure(port: int, pid: int, count: int) -> float:
    before = rss_kb(pid)
    sockets = [await connect(f"ws://127.0.0.1:{port}/ws/idle/", compression=None) for _ in range(count)]
    await asyncio.sleep(2)
    after = rss_kb(pid)
    for ws in sockets:
        await ws.close()
    return (after - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--stack", choices=["starlette", "asgi"], default="starlette")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = APP if args.stack == "starlette" else ASGI
    server = subprocess.Popen([sys.executable, "-c", source.replace("{port}", str(port))])
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        per_connection = asyncio.run(measure(port, server.pid, args.connections))
        print(f"{args.stack}: {args.connections} idle sockets, {per_connection:.1f} KB RSS each")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
