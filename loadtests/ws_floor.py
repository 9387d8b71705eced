"""The memory floor of the stack: RSS per idle WebSocket for a bare uvicorn + Starlette app.

    python loadtests/ws_floor.py --connections 2000

Starts an app that only accepts sockets and waits (same uvicorn settings as `medreq serve`:
websockets-sansio, compression off), opens N sockets from this process, and prints the
server's RSS growth per socket. Compare with `medreq bench idle`: the difference is what
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
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", APP.replace("{port}", str(port))])
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        per_connection = asyncio.run(measure(port, server.pid, args.connections))
        print(f"bare uvicorn + Starlette: {args.connections} idle sockets, {per_connection:.1f} KB RSS each")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
