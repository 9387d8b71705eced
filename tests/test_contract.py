"""Smaller contract breaks of issue 8, each with the §1 error it now gets and proof that nothing
stored changed: malformed forms, control characters in text, numbers that are not plain digits,
paths with a trailing newline, oversized idempotency keys, per-connection WebSocket rate limits,
and the §1 shape of Starlette's own errors. Also run against PostgreSQL, which refuses NUL in text."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from .conftest import (
    REDIS_URL,
    Account,
    ServerProcess,
    create_database,
    drop_database,
    make_account,
    require_service,
)
from .test_request_validation import assert_error
from .wire import close_code, db_snapshot, open_ws, post_request, post_response, recv_json

NO_RATE_LIMIT = {"MEDREQ_RATE_LIMIT_ENABLED": "false"}


@dataclass
class Scene:
    server: ServerProcess
    patient: Account
    pharmacy: Account
    request_id: int
    snapshot: Callable[[], Any]


def make_scene(server: ServerProcess, snapshot: Callable[[], Any]) -> Scene:
    patient = make_account(server.url, "patient", name="Pat", phone="+1-555-0101")
    pharmacy = make_account(server.url, "pharmacy", name="Pharm")
    created = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Aspirin")
    assert created.status_code == 201, created.text
    return Scene(server, patient, pharmacy, int(created.json()["request_id"]), snapshot)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    server = ServerProcess(tmp_path_factory.mktemp("contract") / "data", env=NO_RATE_LIMIT)
    server.start()
    try:
        yield make_scene(server, lambda: db_snapshot(server))
    finally:
        server.stop()


async def pg_snapshot(url: str) -> dict[str, Any]:
    """Every row of every table of a PostgreSQL database."""
    import asyncpg

    db = await asyncpg.connect(url)
    try:
        tables = [
            r["tablename"]
            for r in await db.fetch("select tablename from pg_tables where schemaname = 'public'")
        ]
        return {
            t: sorted(map(tuple, await db.fetch(f'select * from "{t}"')), key=repr) for t in sorted(tables)
        }
    finally:
        await db.close()


@pytest.fixture
async def pg_scene(tmp_path: Path) -> AsyncIterator[Scene]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    url = await create_database()
    env = {**NO_RATE_LIMIT, "MEDREQ_DATABASE_URL": url, "MEDREQ_REDIS_URL": REDIS_URL}
    server = ServerProcess(tmp_path / "data", env=env)
    server.start()
    try:
        yield make_scene(server, lambda: asyncio.run(pg_snapshot(url)))
    finally:
        server.stop()
        await drop_database(url)


# --- forms -----------------------------------------------------------------------------------------


def raw_post(scene: Scene, path: str, body: bytes, content_type: str) -> httpx.Response:
    headers = {**scene.patient.headers, "content-type": content_type}
    return httpx.post(f"{scene.server.url}{path}", content=body, headers=headers, timeout=10)


def part(name: str, value: str, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--b\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n".encode()


def test_malformed_forms_are_422_or_413_never_400_internal(scene: Scene) -> None:
    ok = part("pharmacy", str(scene.pharmacy.id)) + part("quantity", "1") + part("medicine_name", "X")
    cases: list[tuple[str, bytes, str, int, str]] = [
        ("no boundary", ok + b"--b--\r\n", "multipart/form-data", 422, "validation_error"),
        ("empty boundary", ok + b"--b--\r\n", "multipart/form-data; boundary=", 422, "validation_error"),
        ("wrong boundary", ok + b"--b--\r\n", "multipart/form-data; boundary=zz", 422, "validation_error"),
        ("garbage", b"--b\r\nxx\r\n\r\n", "multipart/form-data; boundary=b", 422, "validation_error"),
        (
            "part without a name",
            b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
            422,
            "validation_error",
        ),
        (
            "21 fields",
            ok + b"".join(part(f"f{i}", "1") for i in range(21)) + b"--b--\r\n",
            "multipart/form-data; boundary=b",
            422,
            "validation_error",
        ),
        (
            "3 files",
            ok + b"".join(part(f"f{i}", "1", filename="a.png") for i in range(3)) + b"--b--\r\n",
            "multipart/form-data; boundary=b",
            422,
            "validation_error",
        ),
        (
            "a 70 KB text field",
            ok + part("note", "n" * 70_000) + b"--b--\r\n",
            "multipart/form-data; boundary=b",
            413,
            "payload_too_large",
        ),
        (
            "21 urlencoded fields",
            "&".join(f"f{i}=1" for i in range(21)).encode(),
            "application/x-www-form-urlencoded",
            422,
            "validation_error",
        ),
        (
            "a 70 KB urlencoded field",
            b"note=" + b"n" * 70_000,
            "application/x-www-form-urlencoded",
            413,
            "payload_too_large",
        ),
    ]
    before = scene.snapshot()
    for path in ("/medicine/request/", "/medicine/response/"):
        for label, body, content_type, status, code in cases:
            assert_error(raw_post(scene, path, body, content_type), status, code, label=f"{path} {label}")
            assert scene.snapshot() == before, label


# --- numbers ---------------------------------------------------------------------------------------

NOT_PLAIN_DIGITS = ["1_000", "5.0", "+5", " 5", "5 ", "0x10", "1e3", "٥", "5\n", "-0"]


def test_integer_form_fields_take_only_plain_digits(scene: Scene) -> None:
    before = scene.snapshot()
    for bad in NOT_PLAIN_DIGITS:
        for field, response in (
            (
                "quantity",
                post_request(
                    scene.server, scene.patient, pharmacy=scene.pharmacy.id, quantity=bad, medicine_name="X"
                ),
            ),
            ("pharmacy", post_request(scene.server, scene.patient, pharmacy=bad, medicine_name="X")),
            (
                "patient",
                post_request(
                    scene.server, scene.patient, pharmacy=scene.pharmacy.id, patient=bad, medicine_name="X"
                ),
            ),
            ("request_id", post_response(scene.server, scene.pharmacy, request_id=bad)),
        ):
            assert_error(response, 422, "validation_error", {field}, label=f"{field}={bad!r}")
            assert scene.snapshot() == before, (field, bad)
        listed = httpx.get(
            f"{scene.server.url}/medicine/request/", params={"limit": bad}, headers=scene.patient.headers
        )
        assert_error(listed, 422, "validation_error", {"limit"}, label=f"limit={bad!r}")
    # plain digits, leading zeros included, still work
    fine = post_request(
        scene.server, scene.patient, pharmacy=f"00{scene.pharmacy.id}", quantity="007", medicine_name="X"
    )
    assert fine.status_code == 201, fine.text
    assert fine.json()["data"]["quantity"] == 7


# --- control characters ----------------------------------------------------------------------------

CONTROLS = ["\x00", "\x01", "\x1b", "\x7f"]


def text_inputs(scene: Scene, bad: str) -> list[tuple[str, Callable[[], httpx.Response]]]:
    """Every inbound text field of the REST API, each sent with `bad` inside."""
    url, patient, pharmacy = scene.server.url, scene.patient, scene.pharmacy
    register = {"username": "newbie", "password": "password123", "role": "patient", "name": "New"}

    def post_json(path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(f"{url}{path}", json=body, headers=headers or {}, timeout=10)

    return [
        ("name", lambda: post_json("/auth/register", {**register, "name": f"New{bad}"})),
        ("phone", lambda: post_json("/auth/register", {**register, "phone": f"+1{bad}555"})),
        ("password", lambda: post_json("/auth/register", {**register, "password": f"password{bad}123"})),
        (
            "username",
            lambda: post_json("/auth/token", {"username": f"{patient.username}{bad}", "password": "x"}),
        ),
        ("password", lambda: post_json("/auth/token", {"username": patient.username, "password": f"p{bad}"})),
        ("refresh", lambda: post_json("/auth/refresh", {"refresh": f"{patient.refresh}{bad}"})),
        (
            "medicine_name",
            lambda: post_request(scene.server, patient, pharmacy=pharmacy.id, medicine_name=f"Asp{bad}irin"),
        ),
        (
            "note",
            lambda: post_request(
                scene.server, patient, pharmacy=pharmacy.id, medicine_name="X", note=f"a{bad}b"
            ),
        ),
        (
            "text_message",
            lambda: post_response(
                scene.server, pharmacy, request_id=scene.request_id, text_message=f"a{bad}b"
            ),
        ),
        (
            "text",
            lambda: post_json(
                f"/medicine/request/{scene.request_id}/messages/", {"text": f"a{bad}b"}, patient.headers
            ),
        ),
        (
            "cursor",
            lambda: httpx.get(
                f"{url}/medicine/request/", params={"cursor": f"a{bad}"}, headers=patient.headers
            ),
        ),
    ]


def assert_control_characters_refused(scene: Scene) -> None:
    before = scene.snapshot()
    for bad in CONTROLS:
        for field, send in text_inputs(scene, bad):
            assert_error(send(), 422, "validation_error", {field}, label=f"{field} with {bad!r}")
            assert scene.snapshot() == before, (field, bad)


def test_control_characters_in_any_text_field_are_422(scene: Scene) -> None:
    assert_control_characters_refused(scene)


def test_free_form_text_keeps_tabs_and_line_breaks(scene: Scene) -> None:
    text = "line one\r\nline two\n\tindented"
    created = post_request(
        scene.server, scene.patient, pharmacy=scene.pharmacy.id, medicine_name="X", note=text
    )
    assert created.status_code == 201, created.text
    assert created.json()["data"]["note"] == text
    posted = httpx.post(
        f"{scene.server.url}/medicine/request/{scene.request_id}/messages/",
        json={"text": text},
        headers=scene.patient.headers,
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["message"]["text"] == text


def test_a_line_break_in_a_single_line_field_is_422(scene: Scene) -> None:
    before = scene.snapshot()
    response = post_request(
        scene.server, scene.patient, pharmacy=scene.pharmacy.id, medicine_name="Asp\nirin"
    )
    assert_error(response, 422, "validation_error", {"medicine_name"})
    assert scene.snapshot() == before


async def assert_websocket_refuses_control_characters(scene: Scene) -> None:
    before = await asyncio.to_thread(scene.snapshot)
    async with open_ws(scene.server, scene.pharmacy) as ws:
        messages = [
            {"type": "message", "id": 1, "request_id": scene.request_id, "text": "a\x00b"},
            {
                "type": "response",
                "id": 2,
                "request_id": scene.request_id,
                "status": "ACCEPTED",
                "message": "a\x00",
            },
        ]
        for message in messages:
            await ws.send(json.dumps(message))
            reply = await recv_json(ws)
            assert (reply["type"], reply["error"]["code"], reply["ref"]) == (
                "error",
                "validation_error",
                message["id"],
            )
        await ws.send('{"type": "ping", "id": "alive"}')  # the socket stays open
        assert (await recv_json(ws))["type"] == "pong"
    assert await asyncio.to_thread(scene.snapshot) == before


async def test_websocket_messages_with_control_characters_are_errors_and_the_socket_stays(
    scene: Scene,
) -> None:
    await assert_websocket_refuses_control_characters(scene)


async def test_postgresql_refuses_no_text_with_a_500(pg_scene: Scene) -> None:
    """PostgreSQL cannot store NUL in text: every field must be refused before it gets there."""
    await asyncio.to_thread(assert_control_characters_refused, pg_scene)
    await assert_websocket_refuses_control_characters(pg_scene)
    idempotency = post_request(
        pg_scene.server,
        pg_scene.patient,
        pharmacy=pg_scene.pharmacy.id,
        medicine_name="X",
        headers={"Idempotency-Key": "k" * 201},
    )
    assert_error(idempotency, 422, "validation_error", {"Idempotency-Key"})


# --- headers ---------------------------------------------------------------------------------------


def test_idempotency_key_over_its_column_is_422(scene: Scene) -> None:
    before = scene.snapshot()
    for key in ("k" * 201, "k" * 5000):  # control characters never get past uvicorn's HTTP parser
        response = post_request(
            scene.server,
            scene.patient,
            pharmacy=scene.pharmacy.id,
            medicine_name="X",
            headers={"Idempotency-Key": key},
        )
        assert_error(response, 422, "validation_error", {"Idempotency-Key"}, label=key[:10])
        assert scene.snapshot() == before
    fits = post_request(
        scene.server,
        scene.patient,
        pharmacy=scene.pharmacy.id,
        medicine_name="X",
        headers={"Idempotency-Key": "k" * 200},
    )
    assert fits.status_code == 201, fits.text


# --- paths -----------------------------------------------------------------------------------------


def test_a_trailing_newline_or_control_character_in_a_path_is_404(scene: Scene) -> None:
    url, rid = scene.server.url, scene.request_id
    before = scene.snapshot()
    for method, path in [
        ("GET", "/health%0A"),
        ("GET", f"/medicine/request/{rid}/%0A"),
        ("GET", f"/medicine/request/{rid}%0A/"),
        ("GET", "/pharmacies/%0A"),
        ("POST", f"/medicine/request/{rid}/cancel/%0A"),
        ("POST", f"/medicine/request/{rid}/cancel/%00"),
        ("GET", "/auth/me%0D"),
    ]:
        response = httpx.request(method, url + path, headers=scene.patient.headers)
        assert_error(response, 404, "not_found", label=path)
    assert scene.snapshot() == before
    assert (
        httpx.get(f"{url}/medicine/request/{rid}/", headers=scene.patient.headers).json()["status"]
        == "PENDING"
    )


async def test_a_websocket_path_with_a_trailing_newline_is_4404(scene: Scene) -> None:
    url = f"{scene.server.ws_url}/ws/pharmacy/{scene.pharmacy.id}/%0A?token={scene.pharmacy.access}"
    async with connect(url) as ws:
        assert await close_code(ws) == 4404


# --- Starlette's own errors in the §1 shape ---------------------------------------------------------


def test_unknown_paths_and_methods_get_the_error_shape(scene: Scene) -> None:
    url = scene.server.url
    assert_error(httpx.get(f"{url}/no/such/thing"), 404, "not_found")
    wrong_method = httpx.delete(f"{url}/medicine/request/", headers=scene.patient.headers)
    assert_error(wrong_method, 405, "method_not_allowed")
    assert "POST" in wrong_method.headers["allow"]
    assert_error(httpx.put(f"{url}/health"), 405, "method_not_allowed")


# --- WebSocket rate limits -------------------------------------------------------------------------


async def test_one_flooding_socket_does_not_rate_limit_the_accounts_other_sockets(
    server_factory: Any,
) -> None:
    server = server_factory(
        env={"MEDREQ_WS_RATE": "0.1", "MEDREQ_WS_BURST": "3", "MEDREQ_WS_FLOOD_LIMIT": "50"}
    )
    pharmacy = make_account(server.url, "pharmacy")
    async with open_ws(server, pharmacy) as flooder, open_ws(server, pharmacy) as quiet:
        for i in range(10):
            await flooder.send(json.dumps({"type": "ping", "id": i}))
        replies = [await recv_json(flooder) for _ in range(10)]
        assert [r["type"] for r in replies[:3]] == ["pong"] * 3
        assert {r["error"]["code"] for r in replies[3:]} == {"rate_limited"}
        for i in range(3):  # the other device of the same account has its own allowance
            await quiet.send(json.dumps({"type": "ping", "id": f"q{i}"}))
            assert await recv_json(quiet) == {"type": "pong", "ref": f"q{i}", "last_event_id": 0}


# --- ids in paths and parameters -------------------------------------------------------------------


def test_an_id_of_thousands_of_digits_in_a_path_is_404(scene: Scene) -> None:
    """Starlette's int convertor called int() on any run of digits: past 4,300 of them, a 500."""
    before = scene.snapshot()
    for digits in ("9" * 20, "1" * 5000):
        for method, path in [
            ("GET", f"/medicine/request/{digits}/"),
            ("POST", f"/medicine/request/{digits}/cancel/"),
        ]:
            response = httpx.request(method, scene.server.url + path, headers=scene.patient.headers)
            assert_error(response, 404, "not_found", label=f"{method} {path[:40]}")
    assert scene.snapshot() == before


async def test_a_websocket_id_of_thousands_of_digits_is_4404(scene: Scene) -> None:
    url = f"{scene.server.ws_url}/ws/pharmacy/{'1' * 5000}/?token={scene.pharmacy.access}"
    async with connect(url) as ws:
        assert await close_code(ws) == 4404


@pytest.mark.parametrize(
    "after",
    ["²", "٥", "1" * 5000, "99999999999999999999"],
    ids=["superscript", "arabic", "5000-digits", "20-digits"],
)
async def test_a_bad_after_is_an_error_and_close_1008_not_a_dropped_socket(scene: Scene, after: str) -> None:
    url = (
        f"{scene.server.ws_url}/ws/pharmacy/{scene.pharmacy.id}/?token={scene.pharmacy.access}&after={after}"
    )
    async with connect(url) as ws:
        reply = await recv_json(ws)
        assert (reply["type"], reply["error"]["code"]) == ("error", "validation_error")
        assert await close_code(ws) == 1008


@pytest.mark.parametrize(
    "frame",
    ['{"type": "ping", "id": "\\ud800"}', '{"type": "nope", "id": "a\\udfff"}'],
    ids=["ping", "unknown-type"],
)
async def test_a_correlation_id_that_cannot_be_echoed_is_an_error_not_a_1011(
    scene: Scene, frame: str
) -> None:
    """A lone surrogate in `id` cannot be encoded back: the reply carries `ref: null`, the socket stays."""
    async with open_ws(scene.server, scene.pharmacy) as ws:
        await ws.send(frame)
        reply = await recv_json(ws)
        assert (reply["type"], reply["error"]["code"], reply["ref"]) == ("error", "validation_error", None)
        await ws.send('{"type": "ping", "id": "alive"}')
        assert (await recv_json(ws))["ref"] == "alive"


# --- a request the caller may not see ----------------------------------------------------------------


def test_every_endpoint_answers_a_strangers_request_exactly_like_an_unknown_one(scene: Scene) -> None:
    """PROTOCOL.md §3: 404 whatever the reason, so ids cannot be probed (it was 403 for answering)."""
    url, rid, unknown = scene.server.url, scene.request_id, 987_654_321
    patient = make_account(url, "patient")
    pharmacy = make_account(url, "pharmacy")

    def calls(request_id: int) -> list[tuple[str, httpx.Response]]:
        path = f"{url}/medicine/request/{request_id}"
        return [
            ("detail", httpx.get(f"{path}/", headers=patient.headers)),
            ("detail by pharmacy", httpx.get(f"{path}/", headers=pharmacy.headers)),
            ("cancel", httpx.post(f"{path}/cancel/", headers=patient.headers)),
            ("message", httpx.post(f"{path}/messages/", json={"text": "hi"}, headers=patient.headers)),
            (
                "message by pharmacy",
                httpx.post(f"{path}/messages/", json={"text": "hi"}, headers=pharmacy.headers),
            ),
            ("answer", post_response(scene.server, pharmacy, request_id=request_id)),
        ]

    before = scene.snapshot()
    for (label, theirs), (_, missing) in zip(calls(rid), calls(unknown), strict=True):
        error = assert_error(theirs, 404, "not_found", label=label)
        assert error["message"] == missing.json()["error"]["message"].replace(str(unknown), str(rid)), label
    assert scene.snapshot() == before


async def test_websocket_answers_a_strangers_request_exactly_like_an_unknown_one(scene: Scene) -> None:
    stranger = await asyncio.to_thread(make_account, scene.server.url, "pharmacy")
    before = await asyncio.to_thread(scene.snapshot)
    async with open_ws(scene.server, stranger) as ws:
        for message in (
            {"type": "response", "status": "ACCEPTED"},
            {"type": "message", "text": "hi"},
            {"type": "typing", "state": "start"},
            {"type": "read", "up_to_event_id": 0},
        ):
            replies = []
            for request_id in (scene.request_id, 987_654_321):
                await ws.send(json.dumps({**message, "id": 1, "request_id": request_id}))
                replies.append(await recv_json(ws))
            theirs, missing = replies
            assert theirs["error"]["code"] == missing["error"]["code"] == "not_found", message
            assert theirs["error"]["message"] == missing["error"]["message"].replace(
                "987654321", str(scene.request_id)
            )
    assert await asyncio.to_thread(scene.snapshot) == before
