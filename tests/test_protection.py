"""Transport limits against unauthenticated denial of service, each attack made on a real socket.

Header size and time, idle keep-alive, connection caps (global and per address), JSON nesting
over REST and WebSocket, and WebSocket clients that stop reading. Small limits are set through
the environment so every attack stays small; the defaults are measured in docs/security.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from medreq.client import Backoff, MedreqClient, NewRequestEvent

from .conftest import Account, ServerProcess, make_account
from .wire import db_snapshot, error_code, open_ws, post_request, recv_json

pytestmark = pytest.mark.timeout(120)

WS_HANDSHAKE = (
    "GET {path}?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
TCP_ESTABLISHED = 1


# --- raw sockets -------------------------------------------------------------------------------


def connect(server: ServerProcess, timeout: float = 15.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset after its answer counts as closed);
    the socket's timeout bounds the wait, so a server that never closes fails the test."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def parse_reply(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def get_health(server: ServerProcess) -> tuple[int, dict[str, str], Any]:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return parse_reply(read_until_closed(sock))


def tcp_state(sock: socket.socket) -> int:
    """Our end's TCP state (Linux TCP_INFO), read without reading from the socket."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


@contextlib.contextmanager
def idle_sockets(server: ServerProcess, count: int) -> Iterator[list[socket.socket]]:
    socks = [connect(server) for _ in range(count)]
    try:
        time.sleep(0.3)  # the server has accepted them all before anything else connects
        yield socks
    finally:
        for sock in socks:
            sock.close()


# --- 1. headers --------------------------------------------------------------------------------


def test_oversize_headers_get_431_json_and_the_server_keeps_serving(server_factory: Any) -> None:
    server = server_factory(env={"MEDREQ_MAX_HEADER_BYTES": "8192"})
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        with contextlib.suppress(OSError):  # the server may stop reading at any point past 8 KiB
            for _ in range(64):
                sock.sendall(b"a" * 16384)
            sock.sendall(b"\r\n\r\n")
        status, headers, body = parse_reply(read_until_closed(sock))
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert body["error"]["code"] == "headers_too_large"
    assert get_health(server)[0] == 200


def test_a_malformed_request_gets_the_error_shape_not_plain_text(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: a\x01b\r\n\r\n")
        status, headers, body = parse_reply(read_until_closed(sock))
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert body["error"]["code"] == "invalid_json"
    assert body["error"]["message"].startswith("malformed HTTP request")
    assert get_health(server)[0] == 200


def test_headers_below_the_limit_are_served(server_factory: Any) -> None:
    server = server_factory(env={"MEDREQ_MAX_HEADER_BYTES": "8192"})
    reply = httpx.get(f"{server.url}/health", headers={"X-Big": "a" * 7000}, timeout=10)
    assert reply.status_code == 200


def test_many_headers_in_one_packet_are_431(server_factory: Any) -> None:
    server = server_factory(env={"MEDREQ_MAX_HEADER_BYTES": "4096"})
    many = "".join(f"X-H{i}: {'v' * 50}\r\n" for i in range(200))  # 12 KB, sent at once
    with connect(server) as sock:
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}\r\n".encode())
        status, _, body = parse_reply(read_until_closed(sock))
    assert (status, body["error"]["code"]) == (431, "headers_too_large")


# --- 2. time -----------------------------------------------------------------------------------


def test_slowloris_is_disconnected_after_the_header_timeout(server_factory: Any) -> None:
    server = server_factory(env={"MEDREQ_HEADER_TIMEOUT": "1"})
    with connect(server, timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        trickled = 0
        with contextlib.suppress(OSError):
            for _ in range(40):  # a header byte every 0.25 s: 10 s of trickle if never cut off
                sock.sendall(b"X")
                trickled += 1
                time.sleep(0.25)
                if tcp_state(sock) != TCP_ESTABLISHED:
                    break
        assert read_until_closed(sock) == b""  # closed, without an answer
    assert trickled < 40
    assert get_health(server)[0] == 200


def test_a_connection_that_sends_nothing_is_closed(server_factory: Any) -> None:
    server = server_factory(env={"MEDREQ_HEADER_TIMEOUT": "1"})
    with connect(server, timeout=10) as sock:
        assert read_until_closed(sock) == b""


def test_idle_keep_alive_connection_is_closed(server_factory: Any) -> None:
    server = server_factory(env={"MEDREQ_KEEP_ALIVE_TIMEOUT": "1", "MEDREQ_HEADER_TIMEOUT": "30"})
    with connect(server, timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = read_until_closed(sock)  # the answer, then the close when the keep-alive ends
    status, headers, _ = parse_reply(data)
    assert status == 200
    assert headers.get("connection") != "close"  # kept alive, then closed for idleness


# --- 3. connection caps ------------------------------------------------------------------------


def assert_unavailable(reply: tuple[int, dict[str, str], Any]) -> None:
    status, headers, body = reply
    assert status == 503
    assert int(headers["retry-after"]) >= 1
    assert body["error"]["code"] == "unavailable"


async def test_global_cap_counts_websockets_and_answers_503_then_recovers(
    server_factory: Any,
) -> None:
    server = server_factory(env={"MEDREQ_MAX_CONNECTIONS": "6", "MEDREQ_MAX_CONNECTIONS_PER_CLIENT": "0"})
    pharmacy = make_account(server.url, "pharmacy")
    async with open_ws(server, pharmacy) as ws1, open_ws(server, pharmacy) as ws2:
        with idle_sockets(server, 4):
            assert_unavailable(get_health(server))
            with pytest.raises(Exception, match="503"):  # a WebSocket handshake is refused too
                async with open_ws(server, pharmacy):
                    pass
        await ws1.send(json.dumps({"type": "ping", "id": 1}))  # the sockets in use keep working
        assert (await recv_json(ws1))["type"] == "pong"
        assert get_health(server)[0] == 200  # the attackers are gone: room again
        await ws2.send(json.dumps({"type": "ping", "id": 2}))
        assert (await recv_json(ws2))["type"] == "pong"
    assert get_health(server)[0] == 200


def test_per_address_cap_answers_503_and_frees_slots_on_close(server_factory: Any) -> None:
    server = server_factory(env={"MEDREQ_MAX_CONNECTIONS_PER_CLIENT": "3"})
    with idle_sockets(server, 3) as socks:
        assert_unavailable(get_health(server))
        socks.pop().close()
        time.sleep(0.3)
        assert get_health(server)[0] == 200
    assert get_health(server)[0] == 200
    assert "connection limit: refusing" in server.log()


# --- 4. JSON nesting ---------------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/auth/register", "/auth/token"])
def test_deeply_nested_json_is_invalid_json_not_a_500(server: ServerProcess, path: str) -> None:
    before = db_snapshot(server)
    body = (
        '{"username": "deep-user", "password": "pass-word-1", "role": "patient", "name": '
        + nested(20000)
        + "}"
    )
    reply = httpx.post(server.url + path, content=body, timeout=10)
    assert (reply.status_code, error_code(reply)) == (400, "invalid_json")
    bare = httpx.post(server.url + path, content=nested(30000), timeout=10)
    assert (bare.status_code, error_code(bare)) == (400, "invalid_json")
    assert db_snapshot(server) == before
    assert "RecursionError" not in server.log()
    assert "Traceback" not in server.log()


def test_json_nested_within_the_limit_is_validated_as_usual(server: ServerProcess) -> None:
    body = {"username": "shallow", "password": "pass-word-1", "role": "patient", "name": [[["x"]]]}
    reply = httpx.post(f"{server.url}/auth/register", json=body, timeout=10)
    assert (reply.status_code, error_code(reply)) == (422, "validation_error")


async def test_nested_json_over_websocket_is_an_error_frame_and_the_socket_stays_open(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    created = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Amoxicillin")
    assert created.status_code == 201
    request_id = created.json()["request_id"]
    before = db_snapshot(server)
    async with open_ws(server, pharmacy) as ws:
        deep = (
            f'{{"type": "response", "id": "r1", "request_id": {request_id}, "status": "ACCEPTED", '
            f'"message": {nested(15000)}}}'
        )
        await ws.send(deep)
        reply = await recv_json(ws)
        assert (reply["type"], reply["error"]["code"]) == ("error", "invalid_json")
        await ws.send(json.dumps({"type": "ping", "id": "still-there"}))
        assert (await recv_json(ws))["ref"] == "still-there"
    assert db_snapshot(server) == before
    assert "RecursionError" not in server.log()


# --- 5. WebSockets that stop reading -----------------------------------------------------------


def stuck_socket(server: ServerProcess, account: Account) -> socket.socket:
    """A WebSocket that completes its handshake and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(WS_HANDSHAKE.format(path=f"/ws/pharmacy/{account.id}/", token=account.access).encode())
    time.sleep(0.5)  # accepted and subscribed before events flow
    return sock


def push_requests(server: ServerProcess, patient: Account, pharmacy: Account, count: int) -> list[int]:
    ids = []
    with httpx.Client(base_url=server.url, headers=patient.headers, timeout=30) as client:
        for i in range(count):
            form = {
                "pharmacy": str(pharmacy.id),
                "quantity": "1",
                "medicine_name": f"m{i}",
                "note": "n" * 900,
            }
            reply = client.post("/medicine/request/", data=form)
            assert reply.status_code == 201, reply.text
            ids.append(reply.json()["request_id"])
    return ids


SLOW_ENV = {"MEDREQ_RATE_LIMIT_ENABLED": "false", "MEDREQ_WS_MAX_UNSENT": "65536"}


async def test_a_socket_that_stops_reading_is_dropped_while_another_keeps_working(
    server_factory: Any,
) -> None:
    server = server_factory(env=SLOW_ENV)
    patient = make_account(server.url, "patient")
    pharmacy = make_account(server.url, "pharmacy")
    stuck = stuck_socket(server, pharmacy)
    async with open_ws(server, pharmacy) as good:
        got: list[int] = []

        async def read_all() -> None:
            while len(got) < 300:
                event = await recv_json(good, timeout=30)
                if event["type"] == "new_request":
                    got.append(event["request_id"])

        reader = asyncio.create_task(read_all())
        ids = await asyncio.to_thread(push_requests, server, patient, pharmacy, 300)
        await reader
        assert got == ids  # the well-behaved socket got every event, in order
        for _ in range(40):  # 300 events of ~1.5 KB are far past the 64 KiB bound
            if tcp_state(stuck) != TCP_ESTABLISHED:
                break
            await asyncio.sleep(0.25)
        assert tcp_state(stuck) != TCP_ESTABLISHED  # dropped (1013 or reset), not kept for good
    stuck.close()  # within 10 s: the heartbeat alone would take 40 s (20 s ping + 20 s timeout)


async def test_client_cut_for_slowness_resumes_with_nothing_lost(server_factory: Any) -> None:
    server = server_factory(env=SLOW_ENV)
    patient = make_account(server.url, "patient")
    pharmacy = make_account(server.url, "pharmacy")
    async with MedreqClient(server.url, backoff=Backoff(initial=0.05, maximum=0.5)) as shop:
        await shop.login(pharmacy.username, pharmacy.password)
        async with shop.connect(after=0) as live:
            await live.ping()
            # The client's event loop stalls (a busy consumer) while 400 events are pushed:
            # its socket is not read, the server's bound is passed and it drops the socket.
            pusher = threading.Thread(target=push_requests, args=(server, patient, pharmacy, 400))
            pusher.start()
            pusher.join(60)  # blocks this event loop on purpose
            ids = list(range(1, 401))
            got: list[int] = []
            async with asyncio.timeout(60):
                async for event in live:
                    if isinstance(event, NewRequestEvent):
                        got.append(event.request_id)
                    if len(got) == len(ids):
                        break
            assert live.reconnects >= 1  # it was cut, and came back
    assert got == ids  # every event exactly once, in order


async def test_heartbeat_drops_a_silent_client_even_with_its_send_buffer_full(
    server_factory: Any,
) -> None:
    # No byte bound here (100 MB): only the heartbeat can end it. uvicorn's close() waited
    # for a buffer that never drains, and the kernel kept the orphan: the client saw it open.
    server = server_factory(
        env={
            "MEDREQ_RATE_LIMIT_ENABLED": "false",
            "MEDREQ_WS_MAX_UNSENT": str(100 * 2**20),
            "MEDREQ_WS_PING_INTERVAL": "1",
            "MEDREQ_WS_PING_TIMEOUT": "1",
        }
    )
    patient = make_account(server.url, "patient")
    pharmacy = make_account(server.url, "pharmacy")
    stuck = stuck_socket(server, pharmacy)
    await asyncio.to_thread(push_requests, server, patient, pharmacy, 150)
    for _ in range(40):
        if tcp_state(stuck) != TCP_ESTABLISHED:
            break
        await asyncio.sleep(0.25)
    assert tcp_state(stuck) != TCP_ESTABLISHED
    stuck.close()
    assert get_health(server)[0] == 200


def test_a_request_body_trickled_too_slowly_is_cut_off(server_factory: Any) -> None:
    server = server_factory(env={"MEDREQ_BODY_TIMEOUT": "1"})
    before = db_snapshot(server)
    with connect(server, timeout=10) as sock:
        sock.sendall(
            b"POST /auth/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        time.sleep(0.5)
        sock.sendall(b'"a')  # progress, then silence past the timeout
        assert read_until_closed(sock) == b""
    assert db_snapshot(server) == before
    assert "Traceback" not in server.log()
    assert get_health(server)[0] == 200
