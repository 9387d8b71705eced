"""docs/protocol.md §4: handshake auth and close codes, bad messages, limits, heartbeat, shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time

import pytest
from websockets.asyncio.client import connect

from .conftest import Account, ServerProcess, make_account
from .wire import assert_silent, close_code, db_snapshot, open_ws, post_request, recv_json

pytestmark = pytest.mark.shared_server


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/ws/pharmacy/{pharmacy}/", 4401),  # no token
        ("/ws/pharmacy/{pharmacy}/?token=garbage", 4401),
        ("/ws/pharmacy/{pharmacy}/?token={patient_token}", 4403),  # a patient's token
        ("/ws/user/{pharmacy}/?token={pharmacy_token}", 4403),  # the right account, the wrong role
        ("/ws/pharmacy/{other}/?token={pharmacy_token}", 4403),  # another pharmacy's socket
        ("/ws/nowhere/?token={pharmacy_token}", 4404),
        ("/ws/pharmacy/abc/?token={pharmacy_token}", 4404),
    ],
)
async def test_handshake_closes_with_readable_code(
    server: ServerProcess, patient: Account, pharmacy: Account, path: str, expected: int
) -> None:
    other = make_account(server.url, "pharmacy")
    url = server.ws_url + path.format(
        pharmacy=pharmacy.id, other=other.id, patient_token=patient.access, pharmacy_token=pharmacy.access
    )
    async with connect(url) as ws:
        assert await close_code(ws) == expected


async def test_bearer_header_authenticates_too(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    url = f"{server.ws_url}/ws/pharmacy/{pharmacy.id}/"
    async with connect(url, additional_headers=pharmacy.headers) as ws:
        post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Aspirin")
        assert (await recv_json(ws))["type"] == "new_request"


@pytest.mark.parametrize(
    ("message", "code", "ref"),
    [
        ("not json", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        ('{"id": 5}', "validation_error", 5),  # no type
        ('{"type": "launch", "id": "x"}', "validation_error", "x"),
        ('{"type": "response", "id": 1, "status": "ACCEPTED"}', "validation_error", 1),  # no request_id
        ('{"type": "response", "id": 2, "request_id": 1, "status": "MAYBE"}', "validation_error", 2),
        ('{"type": "response", "id": 3, "request_id": 999, "status": "ACCEPTED"}', "not_found", 3),
        ('{"type": "resume", "id": 4, "after": -1}', "validation_error", 4),
        ('{"type": "message", "id": 6, "request_id": 999, "text": "hi"}', "not_found", 6),
    ],
)
async def test_bad_message_gets_error_and_connection_stays_open(
    server: ServerProcess, pharmacy: Account, message: str, code: str, ref: object
) -> None:
    before = db_snapshot(server)
    async with open_ws(server, pharmacy) as ws:
        await ws.send(message)
        reply = await recv_json(ws)
        assert reply["type"] == "error"
        assert reply["error"]["code"] == code
        assert reply["error"]["message"]
        assert reply["ref"] == ref
        await ws.send('{"type": "ping", "id": "still-there"}')
        assert await recv_json(ws) == {"type": "pong", "ref": "still-there", "last_event_id": 0}
    assert db_snapshot(server) == before


async def test_patient_cannot_answer_over_websocket(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    request_id = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="X").json()["request_id"]
    before = db_snapshot(server)
    async with open_ws(server, patient) as ws:
        await ws.send(
            json.dumps({"type": "response", "id": 1, "request_id": request_id, "status": "ACCEPTED"})
        )
        reply = await recv_json(ws)
        assert (reply["type"], reply["error"]["code"], reply["ref"]) == ("error", "forbidden", 1)
    assert db_snapshot(server) == before


async def test_other_pharmacy_cannot_answer_and_double_answer_conflicts(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    other = make_account(server.url, "pharmacy")
    request_id = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="X").json()["request_id"]
    async with open_ws(server, other) as ws:
        await ws.send(json.dumps({"type": "response", "request_id": request_id, "status": "ACCEPTED"}))
        # not the caller's request: as absent as an unknown id (docs/protocol.md §3)
        assert (await recv_json(ws))["error"]["code"] == "not_found"
    async with open_ws(server, pharmacy) as ws:
        await ws.send(
            json.dumps({"type": "response", "id": "1", "request_id": request_id, "status": "ACCEPTED"})
        )
        assert {(await recv_json(ws))["type"] for _ in range(2)} == {"ack", "request_updated"}
        before = db_snapshot(server)
        await ws.send(
            json.dumps({"type": "response", "id": "2", "request_id": request_id, "status": "REJECTED"})
        )
        reply = await recv_json(ws)
        assert (reply["error"]["code"], reply["ref"]) == ("conflict", "2")
        assert db_snapshot(server) == before


async def test_oversized_frame_closes_with_1009(server: ServerProcess, pharmacy: Account) -> None:
    async with open_ws(server, pharmacy) as ws:
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
        assert await close_code(ws) == 1009


async def test_flooding_gets_rate_limited_then_closed_1008(server_factory: object) -> None:
    server = server_factory(env={"MEDREQ_WS_RATE": "1", "MEDREQ_WS_BURST": "3", "MEDREQ_WS_FLOOD_LIMIT": "5"})  # type: ignore[operator]
    pharmacy = make_account(server.url, "pharmacy")
    async with open_ws(server, pharmacy) as ws:
        for i in range(12):
            await ws.send(json.dumps({"type": "ping", "id": i}))
        replies = []
        code = None
        try:
            while True:
                replies.append(await recv_json(ws))
        except Exception:  # the close ends the loop
            code = await close_code(ws)
        assert [r["type"] for r in replies[:3]] == ["pong", "pong", "pong"]
        limited = [r for r in replies if r["type"] == "error"]
        assert limited
        assert {r["error"]["code"] for r in limited} == {"rate_limited"}
        # each refusal names the message it refused, though the message was never parsed
        refs = [r["ref"] for r in limited]
        assert refs == sorted(set(refs)) and set(refs) <= set(range(12)), refs
        assert code == 1008


async def test_bad_after_parameter_is_an_error(server: ServerProcess, pharmacy: Account) -> None:
    url = f"{server.ws_url}/ws/pharmacy/{pharmacy.id}/?token={pharmacy.access}&after=-3"
    async with connect(url) as ws:
        reply = await recv_json(ws)
        assert (reply["type"], reply["error"]["code"]) == ("error", "validation_error")
        assert await close_code(ws) == 1008


def test_heartbeat_drops_a_client_that_never_answers_pings(server_factory: object) -> None:
    server = server_factory(env={"MEDREQ_WS_PING_INTERVAL": "0.3", "MEDREQ_WS_PING_TIMEOUT": "0.3"})  # type: ignore[operator]
    pharmacy = make_account(server.url, "pharmacy")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            (
                f"GET /ws/pharmacy/{pharmacy.id}/?token={pharmacy.access} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        started = time.monotonic()
        received = b""
        while chunk := sock.recv(4096):  # a client that reads but never answers a ping
            received += chunk
    assert received.startswith(b"HTTP/1.1 101")
    assert b"\x89" in received  # the server did ping (opcode 0x9)
    assert time.monotonic() - started < 8  # and then hung up on us


@pytest.mark.own_server
async def test_shutdown_closes_sockets_with_1001(server: ServerProcess, pharmacy: Account) -> None:
    async with open_ws(server, pharmacy) as ws:
        await assert_silent(ws, 0.1)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGINT)
        assert await close_code(ws, timeout=10) == 1001
    assert server.stop() in (0, 130)  # uvicorn re-raises SIGINT after a clean shutdown: 130, not -9


@pytest.mark.own_server
async def test_shutdown_finishes_an_in_flight_upload(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    import httpx

    from .conftest import png

    image = png(64, 64)
    boundary = "medreqboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="pharmacy"\r\n\r\n{pharmacy.id}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="quantity"\r\n\r\n2\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="rx.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    half = len(image) // 2

    async def body():  # type: ignore[no-untyped-def]
        yield head + image[:half]
        # let the server read the headers first: a connection whose request has not begun is
        # idle, and shutdown closes idle ones (under a loaded CI run the signal could win)
        await asyncio.sleep(0.5)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGINT)  # shutdown starts mid-upload
        await asyncio.sleep(0.5)
        yield image[half:] + tail

    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(
            f"{server.url}/medicine/request/",
            content=body(),
            headers={**patient.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert response.status_code == 201, response.text
    assert server.stop() in (0, 130)  # uvicorn re-raises SIGINT after a clean shutdown: 130, not -9
    server.start()
    async with open_ws(server, pharmacy, after=0) as ws:
        assert (await recv_json(ws))["request_id"] == response.json()["request_id"]


def test_a_refused_messages_id_is_found_without_parsing_it() -> None:
    from medreq.web.socket.endpoint import EARLY_ID_WINDOW, _early_ref

    assert _early_ref('{"type":"ping","id":7}') == 7
    assert _early_ref('{"id": "abc-1", "type":"ping"}') == "abc-1"
    assert _early_ref('{"type":"ping","id":"a\\"b"}') == 'a"b'
    assert _early_ref('{"type":"message","text":"say \\"id\\": 5"}') is None  # inside a string
    assert _early_ref('{"type":"ping","id":1.5}') is None  # not an id the server echoes
    assert _early_ref('{"type":"ping","id":"\\ud800"}') is None  # cannot be sent back
    assert _early_ref(" " * EARLY_ID_WINDOW + '{"id":1}') is None  # only the start is searched
