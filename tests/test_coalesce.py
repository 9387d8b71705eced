"""`HeadWithBody`: a response's head leaves with its body, in order, never later than the loop
iteration it was written in; and on a real server a REST answer arrives whole."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from medreq.web.coalesce import HOLD_AT_MOST, HeadWithBody

from .conftest import ServerProcess


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return f"info {name}"


async def test_the_head_leaves_joined_to_the_body() -> None:
    transport = Transport()
    writer = HeadWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writer.write(b"HTTP/1.1 201 Created\r\n\r\n")
    assert transport.writes == []
    writer.write(b'{"ok":1}')
    assert transport.writes == [b'HTTP/1.1 201 Created\r\n\r\n{"ok":1}']
    await asyncio.sleep(0)
    assert transport.writes == [b'HTTP/1.1 201 Created\r\n\r\n{"ok":1}']  # nothing left over


async def test_a_lone_write_leaves_at_the_end_of_the_iteration() -> None:
    transport = Transport()
    writer = HeadWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]


async def test_order_is_kept_and_large_writes_are_not_held() -> None:
    transport = Transport()
    writer = HeadWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    chunk = b"x" * (HOLD_AT_MOST + 1)
    writer.write(b"head")
    writer.write(chunk)  # joined to what was held
    writer.write(chunk)  # too large to hold: at once
    writer.write(b"tail")
    await asyncio.sleep(0)
    assert transport.writes == [b"head" + chunk, chunk, b"tail"]
    assert b"".join(transport.writes) == b"head" + chunk + chunk + b"tail"


async def test_close_releases_what_is_held_first() -> None:
    transport = Transport()
    writer = HeadWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
    writer.close()
    assert transport.writes == [b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"] and transport.closed
    await asyncio.sleep(0)  # the scheduled release finds nothing held, and writes nothing to a closed transport
    assert len(transport.writes) == 1
    assert writer.get_extra_info("peername") == "info peername"  # the rest is the transport's


def _write_calls(pid: int) -> int:
    """The process's write-like system calls so far (`syscw`: uvloop writes sockets with write(2))."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/PID/io")


def test_a_rest_answer_is_one_write(server_factory: Any) -> None:
    """Fifty `GET /health` on one keep-alive connection: one write(2) each (two before). No
    access lines and no wire recording (tests/conftest.py): each would be a write of its own."""
    server: ServerProcess = server_factory({"MEDREQ_LOG_LEVEL": "warning", "MEDREQ_WIRE_RECORD": ""})
    answers = 50
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        before = _write_calls(server.pid)
        for _ in range(answers):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while not data.endswith(b"}"):
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200") and b'{"status":"ok"' in data, data
        writes = _write_calls(server.pid) - before
    assert answers <= writes < answers * 1.2, writes
