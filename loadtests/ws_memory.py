"""Where an idle WebSocket's memory goes, per socket, in a real `medreq serve` process.

    python loadtests/ws_memory.py --connections 2000              # RSS and gc object types
    python loadtests/ws_memory.py --connections 2000 --trace 16   # + tracemalloc by line

Starts the server (the `medreq bench` settings, compression off) with a signal handler that
counts the collector's objects by type (and takes a `tracemalloc` snapshot with `--trace`),
registers pharmacies, opens N authenticated sockets (10 per account, each confirmed by a
ping/pong like `medreq bench idle`), and prints what grew, divided by N. `tracemalloc` makes
the server slower and its RSS meaningless: read RSS from a run without `--trace`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx


def _serve(port: str, data_dir: str, out: str) -> None:
    """The server process: `medreq serve` with a SIGUSR1 hook that dumps what it holds."""
    dumps = [0]

    def dump(signum: int, frame: Any) -> None:
        dumps[0] += 1
        n = dumps[0]
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(f"{out}/snap{n}.bin")
        counts: collections.Counter[str] = collections.Counter()
        sizes: collections.Counter[str] = collections.Counter()
        for obj in gc.get_objects():
            kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
            counts[kind] += 1
            sizes[kind] += sys.getsizeof(obj)
        with open(f"{out}/types{n}.pkl", "wb") as f:
            pickle.dump((counts, sizes), f)
        Path(f"{out}/done{n}").touch()

    signal.signal(signal.SIGUSR1, dump)
    if os.environ.get("WS_MEMORY_TRACE"):
        tracemalloc.start(int(os.environ["WS_MEMORY_TRACE"]))
    from medreq.cli import main

    sys.argv = ["medreq", "serve", "--host", "127.0.0.1", "--port", port, "--data-dir", data_dir]
    main()


def _report(out: str, count: int, top: int) -> None:
    c1, s1 = pickle.load(open(f"{out}/types1.pkl", "rb"))  # noqa: SIM115
    c2, s2 = pickle.load(open(f"{out}/types2.pkl", "rb"))  # noqa: SIM115
    print("gc-tracked objects per socket: bytes (sys.getsizeof), count, type")
    rows = sorted(((s2[k] - s1.get(k, 0)) / count, (c2[k] - c1.get(k, 0)) / count, k) for k in c2)
    for size, n, kind in reversed(rows[-top:]):
        print(f"{size:8.0f} B {n:6.2f}  {kind}")
    if not os.path.exists(f"{out}/snap2.bin"):
        return
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before = tracemalloc.Snapshot.load(f"{out}/snap1.bin").filter_traces(ignore)
    after = tracemalloc.Snapshot.load(f"{out}/snap2.bin").filter_traces(ignore)
    diff = after.compare_to(before, "lineno")
    print(f"tracemalloc, per socket: {sum(d.size_diff for d in diff) / count:.0f} B in all")
    for d in diff[:top]:
        where = d.traceback[0]
        name = where.filename.split("site-packages/")[-1]
        print(f"{d.size_diff / count:8.0f} B {d.count_diff / count:6.2f}  {name}:{where.lineno}")


def main() -> None:
    from medreq.simulate.accounts import create_accounts
    from medreq.simulate.bench.common import open_ws
    from medreq.simulate.server import LOAD_ENV, free_port, raise_fd_limit, rss_bytes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--trace", type=int, default=0, help="tracemalloc frames (0: off)")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    raise_fd_limit(args.connections + 200)
    out = tempfile.mkdtemp(prefix="ws-memory-")
    port = free_port()
    env = {**os.environ, **LOAD_ENV, "MEDREQ_WS_PING_INTERVAL": "5"}
    if args.trace:
        env["WS_MEMORY_TRACE"] = str(args.trace)
    data_dir = tempfile.mkdtemp(prefix="ws-memory-data-")
    server = subprocess.Popen([sys.executable, "-P", __file__, "_serve", str(port), data_dir, out], env=env)
    url = f"http://127.0.0.1:{port}"

    def mark(n: int) -> None:
        server.send_signal(signal.SIGUSR1)
        while not os.path.exists(f"{out}/done{n}"):
            time.sleep(0.1)

    async def run() -> dict[str, Any]:
        accounts = await create_accounts(url, "pharmacy", -(-args.connections // 10))
        await asyncio.sleep(1)
        mark(1)
        before = rss_bytes(server.pid)
        limit, sockets = asyncio.Semaphore(64), []

        async def one(i: int) -> None:
            async with limit:
                sockets.append(await open_ws(url, accounts[i // 10], compression=None, ping_interval=None))

        await asyncio.gather(*(one(i) for i in range(args.connections)))
        await asyncio.sleep(3)
        after = rss_bytes(server.pid)
        mark(2)
        for ws in sockets:
            await ws.close()
        return {
            "connections": args.connections,
            "rss_before_mb": round(before / 2**20, 1),
            "rss_after_mb": round(after / 2**20, 1),
            "rss_per_socket_kb": round((after - before) / args.connections / 1024, 2),
        }

    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        print(json.dumps(asyncio.run(run())))
        _report(out, args.connections, args.top)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_serve"]:
        _serve(*sys.argv[2:5])
    else:
        main()
