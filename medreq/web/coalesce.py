"""One `send` per small HTTP response instead of two: its head held until its body comes.

uvicorn's httptools cycle writes a response's status line and headers as soon as the app
starts the response, then the body as a second `transport.write`; uvloop sends each at once
(a write to an idle socket goes straight to `send`), so every REST answer cost two system
calls and two TCP segments. Over loopback a `send` also does the receiving side's work, and
socket writes were 14 % of the server's active CPU under `bench cycle` (py-spy --native,
issue 14). `HeadWithBody` is the transport a response cycle writes through: a small write is
held until the next one, which leaves joined to it, or until the end of this loop iteration
(`call_soon`), whichever comes first; closing releases it first. Starlette sends a whole
response's head and body in one go, so both leave together; nothing is ever held past the
iteration it was written in, and order is kept (every write of the cycle goes through here).
"""

from __future__ import annotations

import asyncio
from typing import Any

HOLD_AT_MOST = 4096  # bytes: a response head, not a chunk of a media download


class HeadWithBody:
    __slots__ = ("_held", "_loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self.transport.write(held + data)
        elif len(data) <= HOLD_AT_MOST:
            self._held = bytes(data)
            self._loop.call_soon(self.release)
        else:
            self.transport.write(data)

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self.transport.is_closing():
            self.transport.write(held)

    def close(self) -> None:
        self.release()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading …
        return getattr(self.transport, name)
