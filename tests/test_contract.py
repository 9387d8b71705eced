"""Contract breaks of issue 8 around routing and sockets, each with its §1 error and proof that
nothing stored changed: paths with a trailing newline or thousands of digits (404/4404), Starlette's
own 404 and 405 in the §1 shape, per-connection WebSocket rate limits, WebSocket parameters and ids
that used to drop the socket, and a stranger's request answered exactly like an unknown one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from .conftest import make_account
from .contract_scene import Scene, module_scene
from .test_request_validation import assert_error
from .wire import close_code, open_ws, post_response, recv_json


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    yield from module_scene(tmp_path_factory, "contract")


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
    """docs/protocol.md §3: 404 whatever the reason, so ids cannot be probed (it was 403 for answering)."""
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
