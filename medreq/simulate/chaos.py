"""A flaky network: a loopback TCP proxy that aborts connections passing through it.

Clients configured for ``churn.mode = "cut"`` talk to the server through this proxy; `cut`
aborts one of their live TCP connections (WebSocket or HTTP keep-alive) with a reset, as a
mobile network dropping would. Both ends see the connection die mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import random


class ChaosProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> ChaosProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=2**20)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            _abort(link)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def live(self) -> int:
        return len(self._links)

    def cut(self, rng: random.Random) -> bool:
        """Abort one live connection, picked at random; False when there is none."""
        if not self._links:
            return False
        _abort(rng.choice(list(self._links)))
        self.cuts += 1
        return True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 5)
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self._links.add(link)
        pipes = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._links.discard(link)
            _abort(link)
            for task in pipes:
                task.cancel()
                self._tasks.discard(task)
            await asyncio.gather(*pipes, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


def _abort(link: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
    for writer in link:
        writer.transport.abort()
