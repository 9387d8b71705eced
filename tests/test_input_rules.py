"""Input rules of issue 8, each with the §1 error it gets and proof that nothing stored changed:
malformed forms (422/413, never 400 `internal`), numbers that are not plain digits, control
characters in text (also on PostgreSQL, which refuses NUL in text: a 500 there before), and an
`Idempotency-Key` longer than its column."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .contract_scene import Scene, module_scene, postgres_scene
from .test_request_validation import assert_error
from .wire import open_ws, post_request, post_response, recv_json

pytestmark = pytest.mark.shared_server


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    yield from module_scene(tmp_path_factory, "input-rules")


@pytest.fixture
async def pg_scene(tmp_path: Path) -> AsyncIterator[Scene]:
    async for scene in postgres_scene(tmp_path):
        yield scene


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
