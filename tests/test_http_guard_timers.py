"""The HTTP guard's header and body timers (web/guard/http.py), on the protocol object itself.

The deadlines are tested end to end in test_protection.py (slowloris, a trickled body, an idle
connection); here: a request that arrives whole arms no timer, one that does not arms the
one it needs, and a keep-alive connection goes on with neither.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from uvicorn.server import ServerState

from medreq.config import Settings
from medreq.server import uvicorn_config
from medreq.web.app import create_app
from medreq.web.guard.http import GuardedHttpProtocol


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


class CountingLoop:
    """The running loop, counting the guard's timers as they are armed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.armed: list[str] = []

    def call_later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        if callback.__name__ in ("_header_timeout", "_body_timeout"):
            self.armed.append(callback.__name__)
        return self.loop.call_later(delay, callback, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)


def _protocol(tmp_path: Path) -> tuple[GuardedHttpProtocol, Transport, CountingLoop]:
    settings = Settings.load({}, data_dir=tmp_path)
    config = uvicorn_config(settings, create_app(settings, migrate=False))
    config.load()
    loop = CountingLoop(asyncio.get_running_loop())
    protocol = GuardedHttpProtocol(config=config, server_state=ServerState(), app_state={}, _loop=loop)  # type: ignore[arg-type]
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport, loop


POST_HEAD = b"POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n"


async def test_requests_that_arrive_whole_arm_no_timer(tmp_path: Path) -> None:
    protocol, transport, loop = _protocol(tmp_path)
    assert protocol.header_timer is not None  # a new connection must send its headers in time
    protocol.data_received(POST_HEAD + b'{"a": 1}')
    assert (protocol.header_timer, protocol.body_timer) == (None, None)
    for _ in range(3):  # the next requests on the kept-alive connection
        await asyncio.sleep(0.05)
        protocol.data_received(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (protocol.header_timer, protocol.body_timer) == (None, None)
    assert loop.armed == ["_header_timeout"]  # the connection's first deadline, and no other
    assert not transport.closed
    protocol.connection_lost(None)


async def test_a_request_cut_in_its_headers_or_body_arms_its_timer(tmp_path: Path) -> None:
    protocol, transport, loop = _protocol(tmp_path)
    protocol.data_received(POST_HEAD + b'{"a": 1}')
    await asyncio.sleep(0.05)
    protocol.data_received(b"POST /nowhere HTTP/1.1\r\nHost: 12")  # the headers, cut
    assert protocol.header_timer is not None and protocol.body_timer is None
    protocol.data_received(POST_HEAD[len(b"POST /nowhere HTTP/1.1\r\nHost: 12") :] + b'{"a"')  # the body, cut
    assert protocol.header_timer is None and protocol.body_timer is not None
    protocol.data_received(b": 1}")
    assert (protocol.header_timer, protocol.body_timer) == (None, None)
    assert loop.armed == ["_header_timeout", "_header_timeout", "_body_timeout"]
    assert not transport.closed
    protocol.connection_lost(None)
