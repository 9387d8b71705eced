"""docs/protocol.md §1, browsers: CORS on every HTTP response for configured origins, preflight for
`Authorization` and `Idempotency-Key`, and WebSocket handshakes from other origins closed 4403."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner
from websockets.asyncio.client import connect

from medreq.cli import app as cli_app
from medreq.config import Settings
from medreq.simulate.accounts import create_account
from medreq.simulate.server import free_port
from medreq.web import create_app

from .conftest import Account, ServerProcess, make_account
from .operator_accounts import operator_account
from .wire import close_code, db_snapshot, error_code, post_request, recv_json, ws_path

pytestmark = pytest.mark.shared_server

FRONTEND = "http://127.0.0.1:5173"
OTHER = "http://127.0.0.1:6006"


@pytest.fixture
def cors_server(server_factory: Any) -> ServerProcess:
    server: ServerProcess = server_factory({"MEDREQ_CORS_ORIGINS": f"{FRONTEND}, http://localhost:5173"})
    return server


def preflight(server: ServerProcess, path: str, origin: str, headers: str) -> httpx.Response:
    return httpx.options(
        server.url + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
        timeout=10,
    )


def test_default_is_same_origin_only(server: ServerProcess, patient: Account) -> None:
    answer = preflight(server, "/medicine/request/", FRONTEND, "authorization")
    assert answer.status_code == 405
    assert "access-control-allow-origin" not in answer.headers
    me = httpx.get(f"{server.url}/auth/me", headers={**patient.headers, "Origin": FRONTEND})
    assert me.status_code == 200
    assert "access-control-allow-origin" not in me.headers


def test_preflight_allows_authorization_and_idempotency_key(cors_server: ServerProcess) -> None:
    answer = preflight(cors_server, "/medicine/request/", FRONTEND, "authorization, idempotency-key")
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == FRONTEND
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "idempotency-key", "content-type"} <= allowed
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in answer.headers
    assert "Origin" in answer.headers["vary"]


def test_preflight_from_an_unlisted_origin_is_refused(cors_server: ServerProcess) -> None:
    before = db_snapshot(cors_server)
    answer = preflight(cors_server, "/medicine/request/", OTHER, "authorization")
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers
    assert db_snapshot(cors_server) == before


def test_rest_media_and_error_responses_are_readable_by_a_listed_origin(
    cors_server: ServerProcess, png_bytes: bytes
) -> None:
    patient = make_account(cors_server.url, "patient")
    pharmacy = operator_account(cors_server, "pharmacy", "LifeCare")
    origin = {"Origin": FRONTEND}
    created = post_request(cors_server, patient, pharmacy=pharmacy.id, image=png_bytes, headers=origin)
    assert created.status_code == 201
    assert created.headers["access-control-allow-origin"] == FRONTEND
    assert "Retry-After" in created.headers["access-control-expose-headers"]

    image = httpx.get(created.json()["data"]["image_url"], headers=origin)
    assert image.status_code == 200
    assert image.headers["access-control-allow-origin"] == FRONTEND

    before = db_snapshot(cors_server)
    unauthorized = httpx.get(f"{cors_server.url}/auth/me", headers=origin)
    assert unauthorized.status_code == 401
    assert error_code(unauthorized) == "unauthorized"
    assert unauthorized.headers["access-control-allow-origin"] == FRONTEND
    invalid = post_request(
        cors_server, patient, pharmacy=pharmacy.id, quantity=0, image=png_bytes, headers=origin
    )
    assert invalid.status_code == 422
    assert error_code(invalid) == "validation_error"
    assert invalid.headers["access-control-allow-origin"] == FRONTEND
    assert db_snapshot(cors_server) == before

    unlisted = httpx.get(f"{cors_server.url}/auth/me", headers={**patient.headers, "Origin": OTHER})
    assert unlisted.status_code == 200
    assert "access-control-allow-origin" not in unlisted.headers


def test_rate_limited_answer_exposes_retry_after(server_factory: Any) -> None:
    server: ServerProcess = server_factory(
        {"MEDREQ_CORS_ORIGINS": FRONTEND, "MEDREQ_REST_RATE": "0.01", "MEDREQ_REST_BURST": "2"}
    )
    patient = make_account(server.url, "patient")  # register + token: the address's burst
    answer = httpx.get(f"{server.url}/auth/me", headers={**patient.headers, "Origin": FRONTEND})
    for _ in range(3):
        if answer.status_code == 429:
            break
        answer = httpx.get(f"{server.url}/auth/me", headers={**patient.headers, "Origin": FRONTEND})
    assert answer.status_code == 429
    assert error_code(answer) == "rate_limited"
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.headers["access-control-allow-origin"] == FRONTEND
    assert "Retry-After" in answer.headers["access-control-expose-headers"]


def test_star_allows_any_origin_without_credentials(server_factory: Any) -> None:
    server: ServerProcess = server_factory({"MEDREQ_CORS_ORIGINS": "*"})
    answer = preflight(server, "/auth/token", OTHER, "content-type")
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    health = httpx.get(f"{server.url}/health", headers={"Origin": OTHER})
    assert health.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in health.headers


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        (FRONTEND, None),  # listed
        ("http://LOCALHOST:5173", None),  # listed, case aside
        (OTHER, 4403),  # cross-site WebSocket hijacking
        ("null", 4403),  # sandboxed frames and file:// pages
        ("self", None),  # the server's own pages (the console)
        (None, None),  # not a browser
    ],
)
async def test_websocket_origin_outside_the_list_is_closed_4403(
    cors_server: ServerProcess, origin: str | None, expected: int | None
) -> None:
    patient = make_account(cors_server.url, "patient")
    headers = {} if origin is None else {"Origin": cors_server.url if origin == "self" else origin}
    url = f"{cors_server.ws_url}{ws_path(patient)}?token={patient.access}"
    async with connect(url, additional_headers=headers) as ws:
        if expected is not None:
            assert await close_code(ws) == expected
        else:
            await ws.send('{"type": "ping", "id": 1}')
            assert (await recv_json(ws))["type"] == "pong"


async def test_websocket_origin_is_not_checked_without_a_list(
    server: ServerProcess, patient: Account
) -> None:
    url = f"{server.ws_url}{ws_path(patient)}?token={patient.access}"
    async with connect(url, additional_headers={"Origin": OTHER}) as ws:
        await ws.send('{"type": "ping", "id": 1}')
        assert (await recv_json(ws))["type"] == "pong"


@pytest.mark.parametrize("bad", ["localhost:5173", "http://x.test/app", "ftp://x.test", "http://"])
def test_a_malformed_origin_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ValueError, match="CORS origin"):
        Settings.load(env={}, cors_origins=bad)
    result = CliRunner().invoke(cli_app, ["serve", "--cors-origin", FRONTEND, "--cors-origin", bad])
    assert result.exit_code == 2
    assert "CORS origin" in result.output


def test_origins_from_options_and_environment() -> None:
    settings = Settings.load(env={"MEDREQ_CORS_ORIGINS": "http://A.test:1/, https://b.test"})
    assert settings.cors_origin_list == ("http://a.test:1", "https://b.test")
    assert Settings.load(env={}).cors_origin_list == ()


# --- a 500 is readable too: served in-process, so a route can be made to fail ------------------


@pytest.fixture
def failing_server(tmp_path: Any) -> Iterator[str]:
    port = free_port()
    settings = Settings.load(
        env={}, data_dir=tmp_path / "data", port=port, cors_origins=FRONTEND, scrypt_n=1024
    )
    app = create_app(settings)

    async def broken(*_args: Any) -> Any:
        raise RuntimeError("boom: a bug in the server")

    app.state.service.pharmacies_for = broken
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_an_unexpected_error_carries_cors_headers(failing_server: str) -> None:
    alice = create_account(failing_server, "patient", username="alice", password=PASSWORD_500, name="Alice")
    answer = httpx.get(f"{failing_server}/pharmacies/", headers={**alice.headers, "Origin": FRONTEND})
    assert answer.status_code == 500
    assert answer.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert "boom" not in answer.text
    assert answer.headers["access-control-allow-origin"] == FRONTEND


PASSWORD_500 = "correct horse battery"
