"""docs/deploy.md: several server processes on one PostgreSQL and one Redis behave as one."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx
from typer.testing import CliRunner

from medreq.cli import app

from .conftest import (
    REDIS_URL,
    ServerProcess,
    make_account,
    png,
)
from .wire import close_code, open_ws, post_request, recv_json


async def test_request_posted_on_one_server_reaches_pharmacy_on_another(
    cluster: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = cluster
    patient = make_account(a.url, "patient", name="Pat")
    pharmacy = make_account(b.url, "pharmacy", name="Far Pharmacy")
    async with open_ws(a, pharmacy) as on_a, open_ws(b, pharmacy) as on_b, open_ws(b, patient) as patient_ws:
        created = post_request(b, patient, pharmacy=pharmacy.id, quantity=2, image=png())
        assert created.status_code == 201, created.text
        request_id = created.json()["request_id"]
        for ws in (on_a, on_b):
            event = await recv_json(ws)
            assert (event["type"], event["event_id"], event["request_id"]) == ("new_request", 1, request_id)
            assert httpx.get(event["image_url"]).status_code == 200  # the media volume is shared
        await on_a.send(
            json.dumps({"type": "response", "id": 1, "request_id": request_id, "status": "ACCEPTED"})
        )
        assert {(await recv_json(on_a))["type"] for _ in range(2)} == {"ack", "request_updated"}
        assert (await recv_json(on_b))["type"] == "request_updated"
        answer = await recv_json(patient_ws)
        assert (answer["type"], answer["request_id"], answer["status"]) == (
            "pharmacy_response",
            request_id,
            "ACCEPTED",
        )


async def test_events_from_many_writers_arrive_in_order_on_every_server(
    cluster: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = cluster
    pharmacy = make_account(a.url, "pharmacy")
    patients = [make_account(server.url, "patient") for server in (a, b)]
    async with open_ws(a, pharmacy) as on_a, open_ws(b, pharmacy) as on_b:
        created = []
        for i in range(10):
            server = (a, b)[i % 2]
            response = post_request(server, patients[i % 2], pharmacy=pharmacy.id, medicine_name=f"M{i}")
            assert response.status_code == 201
            created.append(response.json()["request_id"])
        for ws in (on_a, on_b):
            events = [await recv_json(ws) for _ in created]
            assert [e["event_id"] for e in events] == list(range(1, 11))
            assert [e["request_id"] for e in events] == created


async def test_serve_with_two_workers(postgres_url: str, tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "workers",
        env={"MEDREQ_DATABASE_URL": postgres_url, "MEDREQ_REDIS_URL": REDIS_URL, "MEDREQ_WORKERS": "2"},
    )
    server.start()
    try:
        patient = make_account(server.url, "patient")
        pharmacy = make_account(server.url, "pharmacy")
        async with open_ws(server, pharmacy) as ws:
            created = [
                post_request(server, patient, pharmacy=pharmacy.id, medicine_name=f"M{i}").json()[
                    "request_id"
                ]
                for i in range(8)
            ]
            events = [await recv_json(ws) for _ in created]
        assert [e["request_id"] for e in events] == created
        assert [e["event_id"] for e in events] == list(range(1, 9))
    finally:
        assert server.stop() in (0, 130)


async def test_stopping_two_workers_closes_their_sockets_with_1001(postgres_url: str, tmp_path: Path) -> None:
    # a worker process shuts down as a single server does: 1001 (docs/protocol.md), not uvicorn's 1012
    server = ServerProcess(
        tmp_path / "workers",
        env={"MEDREQ_DATABASE_URL": postgres_url, "MEDREQ_REDIS_URL": REDIS_URL, "MEDREQ_WORKERS": "2"},
    )
    server.start()
    try:
        pharmacy = make_account(server.url, "pharmacy")
        async with open_ws(server, pharmacy) as ws:
            await ws.send('{"type":"ping"}')
            assert (await recv_json(ws))["type"] == "pong"
            assert server.proc is not None
            server.proc.send_signal(signal.SIGINT)
            assert await close_code(ws, timeout=15) == 1001
    finally:
        assert server.stop() in (0, 130)


async def test_password_change_on_one_server_closes_sockets_on_the_other(
    cluster: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = cluster
    pharmacy = make_account(a.url, "pharmacy")
    async with open_ws(b, pharmacy) as on_b:
        await on_b.send('{"type":"ping"}')
        assert (await recv_json(on_b))["type"] == "pong"
        changed = httpx.post(
            f"{a.url}/auth/password",
            json={"old": pharmacy.password, "new": "another long password"},
            headers=pharmacy.headers,
            timeout=10,
        )
        assert changed.status_code == 204
        assert await close_code(on_b, timeout=5) == 4401
    # the other server refuses the old token too (its directory forgot the account)
    assert httpx.get(f"{b.url}/auth/me", headers=pharmacy.headers, timeout=10).status_code == 401


async def test_operator_disable_reaches_every_server(
    cluster: tuple[ServerProcess, ServerProcess], postgres_url: str
) -> None:
    a, b = cluster
    patient = make_account(a.url, "patient")
    async with open_ws(a, patient) as on_a, open_ws(b, patient) as on_b:
        for ws in (on_a, on_b):
            await ws.send('{"type":"ping"}')
            await recv_json(ws)
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["account", "disable", patient.username, "--database", postgres_url]
        )
        assert result.exit_code == 0, result.output
        assert [await close_code(ws, timeout=5) for ws in (on_a, on_b)] == [4401, 4401]
