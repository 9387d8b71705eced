"""The contract test: everything the server sends during the test suite matches the published
schemas, and a field a schema lacks fails.

Every server the suite starts records what it sends (`MEDREQ_WIRE_RECORD`, set by conftest.py;
medreq/web/wire_record.py): each JSON body with its method, route template and status, each
WebSocket frame. This module validates all of it recorded by its turn with `jsonschema` (with
pytest-xdist other files may still be running; `conftest.pytest_sessionfinish` checks everything
again once the whole suite is done, with `offenders_in_recording`):
bodies against `/openapi.json` (the operation's response for that status, `ErrorOut` for any
error), frames against the `/asyncapi.json` message of their `type`. The outbound models' schemas
say `additionalProperties: false`, so an undocumented field fails here. Its own scene below makes
every event and reply type happen, so it checks them all even when run alone.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from websockets.asyncio.client import ClientConnection

from medreq.protocol import EVENT_TYPES, REPLY_TYPES
from medreq.simulate import server as medreq_server

from .conftest import WIRE_RECORD, Account, ServerProcess, make_account
from .wire import open_ws, post_request, post_response

DOCUMENTS = ("/openapi.json", "/asyncapi.json")  # served by the routes they would be checked against
MIN_ITEMS = 40  # its own scene sends 46 bodies and frames; the whole suite, thousands


class Contract:
    def __init__(self, openapi: dict[str, Any], asyncapi: dict[str, Any]) -> None:
        self.openapi = openapi
        self.asyncapi = asyncapi
        self.frames = {
            message["name"]: message["payload"]
            for key, message in asyncapi["components"]["messages"].items()
            if key.startswith("server.")
        }

    @cache  # noqa: B019  (one Contract per test)
    def _validator(self, document: str, schema_json: str) -> jsonschema.Draft202012Validator:
        root = self.openapi if document == "openapi" else self.asyncapi
        schema = {**json.loads(schema_json), "components": root["components"]}
        return jsonschema.Draft202012Validator(schema)

    def errors(self, document: str, schema: dict[str, Any], value: Any) -> list[str]:
        validator = self._validator(document, json.dumps(schema, sort_keys=True))
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(value)
        ]

    def check(self, item: dict[str, Any]) -> list[str]:
        """What is wrong with one recorded body or frame (nothing: [])."""
        if item["kind"] == "ws":
            frame = item["frame"]
            payload = self.frames.get(frame.get("type")) if isinstance(frame, dict) else None
            if payload is None:
                return [f"a frame of a type /asyncapi.json does not describe: {frame!r}"]
            return self.errors("asyncapi", payload, frame)
        status, route, method = item["status"], item["route"], str(item["method"]).lower()
        if status >= 400:
            schema: dict[str, Any] = {"$ref": "#/components/schemas/ErrorOut"}
            return self.errors("openapi", schema, item["body"])
        operation = self.openapi["paths"].get(route, {}).get(method)
        if operation is None:
            return [f"{method.upper()} {route} answered {status} but /openapi.json has no such operation"]
        response = operation["responses"].get(str(status))
        content = (response or {}).get("content", {}).get("application/json")
        if content is None:
            return [
                f"{method.upper()} {route} answered {status} with JSON that /openapi.json does not describe"
            ]
        return self.errors("openapi", content["schema"], item["body"])


@pytest.fixture
def server(server_factory: Any) -> ServerProcess:
    """A server that takes webhooks on loopback, so the scene can set one (`target_added`)."""
    proc: ServerProcess = server_factory({"MEDREQ_WEBHOOK_ALLOW_PRIVATE": "true"})
    return proc


def contract(server: ServerProcess) -> Contract:
    openapi, asyncapi = (httpx.get(server.url + path).json() for path in DOCUMENTS)
    return Contract(openapi, asyncapi)


def recorded() -> list[dict[str, Any]]:
    items = []
    for path in sorted(Path(WIRE_RECORD).glob("wire-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                items.append(json.loads(line))
    return [item for item in items if item.get("route") not in DOCUMENTS]


# --- a scene that makes every event and reply happen -----------------------------------------------


async def _send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def _drain(*sockets: ClientConnection, seconds: float = 0.5) -> None:
    async def drain(ws: ClientConnection) -> None:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), seconds)
        except TimeoutError:
            return

    await asyncio.gather(*(drain(ws) for ws in sockets))


async def _scene(server: ServerProcess, patient: Account, pharmacy: Account) -> None:
    first = post_request(
        server, patient, pharmacy=pharmacy.id, medicine_name="Aspirin", note="after 5"
    ).json()
    second = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Ibuprofen").json()
    third = post_request(server, patient, pharmacy=pharmacy.id, quantity=2, medicine_name="Zinc").json()
    async with open_ws(server, patient) as pws:
        await _drain(pws, seconds=0.3)
        hook = {"webhook_url": "http://127.0.0.1:9/hook"}  # set and cleared while connected: never POSTed
        httpx.put(f"{server.url}/auth/me", json=hook, headers=patient.headers)  # target_added
        httpx.put(f"{server.url}/auth/me", json={"webhook_url": None}, headers=patient.headers)
        httpx.get(f"{server.url}/push/subscriptions", headers=patient.headers)
        async with open_ws(server, pharmacy, after=0) as hws:  # replays new_request; patient: presence
            await _drain(pws, hws)
            await _send(pws, {"type": "typing", "request_id": first["request_id"], "state": "start"})
            await _send(pws, {"type": "message", "id": 1, "request_id": first["request_id"], "text": "Hi"})
            await _drain(pws, hws)
            await _send(
                hws, {"type": "read", "id": "r", "request_id": first["request_id"], "up_to_event_id": 1}
            )
            await _send(hws, {"type": "ping", "id": "p"})
            await _send(
                hws, {"type": "response", "id": 2, "request_id": first["request_id"], "status": "ACCEPTED"}
            )
            await _send(hws, {"type": "response", "id": 3, "request_id": 10**6, "status": "ACCEPTED"})
            await _send(hws, {"type": "resume", "id": 4, "after": 0})
            await _send(hws, {"type": "auth", "id": 5, "token": pharmacy.access})
            await _drain(pws, hws)
            httpx.post(
                f"{server.url}/medicine/request/{second['request_id']}/cancel/", headers=patient.headers
            )
            post_response(
                server, pharmacy, request_id=third["request_id"], status="REJECTED", text_message="No"
            )
            await _drain(pws, hws)
            # §8: two pharmacies at once, an offer, a choice (request_chosen, request_cancelled's reason)
            other = make_account(server.url, "pharmacy", name="Other")
            group = httpx.post(
                f"{server.url}/medicine/request/",
                data={"pharmacy": [str(pharmacy.id), str(other.id)], "quantity": "1", "medicine_name": "Zinc"},
                headers=patient.headers,
            ).json()
            chosen = group["requests"][0]["id"]
            await _drain(pws, hws)
            httpx.post(
                f"{server.url}/medicine/response/",
                data={"request_id": str(chosen), "status": "ACCEPTED", "price": "4.5", "currency": "EUR"},
                headers=pharmacy.headers,
            )
            httpx.post(f"{server.url}/medicine/request/{chosen}/choose/", headers=patient.headers)
            httpx.get(f"{server.url}/medicine/request/?group={group['group']}", headers=patient.headers)
            await _drain(pws, hws)
        await _drain(pws)  # presence: the pharmacy went offline
    for account in (patient, pharmacy):
        httpx.get(f"{server.url}/medicine/request/", headers=account.headers)
        httpx.get(f"{server.url}/medicine/request/{first['request_id']}/", headers=account.headers)
        httpx.get(f"{server.url}/auth/me", headers=account.headers)
    httpx.get(f"{server.url}/pharmacies/", headers=patient.headers)
    httpx.post(f"{server.url}/auth/refresh", json={"refresh": patient.refresh})
    httpx.post(
        f"{server.url}/medicine/request/{first['request_id']}/messages/",
        json={"text": "ok"},
        headers=pharmacy.headers,
    )
    httpx.get(f"{server.url}/health")
    httpx.get(f"{server.url}/medicine/request/?limit=0", headers=patient.headers)  # 422


def offenders(checker: Contract, items: list[dict[str, Any]]) -> list[str]:
    found = []
    for item in items:
        problems = checker.check(item)
        if problems:
            where = f"{item.get('method') or 'WS'} {item.get('route')} {item.get('status', '')}".strip()
            found.append(f"{where}: {'; '.join(problems[:3])}\n    {json.dumps(item)[:400]}")
    return found


def offenders_in_recording() -> list[str]:
    """Every recorded item that breaks the documents of a fresh server (the session's final check)."""
    with medreq_server.ServerProcess() as server:  # a data dir of its own, removed after
        checker = contract(server)
    return offenders(checker, recorded())


async def test_everything_the_server_sent_matches_the_published_schemas(server: ServerProcess) -> None:
    patient = make_account(server.url, "patient", name="Pat", phone="+1 555 0100")
    pharmacy = make_account(server.url, "pharmacy", name="Pharm")
    await _scene(server, patient, pharmacy)
    checker = contract(server)
    items = recorded()
    broken = offenders(checker, items)
    assert not broken, f"{len(broken)} of {len(items)} sent items break the contract:\n" + "\n".join(broken[:30])
    assert len(items) >= MIN_ITEMS, (
        f"only {len(items)} items recorded: is MEDREQ_WIRE_RECORD reaching the server?"
    )
    seen = Counter(item["frame"].get("type") for item in items if item["kind"] == "ws")
    missing = (set(EVENT_TYPES) | set(REPLY_TYPES)) - set(seen)
    assert not missing, f"never sent during the tests, so never checked: {sorted(missing)}"
    http = Counter((item["method"], item["route"]) for item in items if item["kind"] == "http")
    assert ("POST", "/medicine/request/") in http and ("GET", "/medicine/request/{request_id}/") in http


def test_a_field_the_schema_lacks_fails(server: ServerProcess) -> None:
    """The check above would catch a field added on the server but not in the models."""
    checker = contract(server)
    event = {
        "type": "request_updated",
        "event_id": 4,
        "timestamp": "2026-11-28T20:56:26.667344+00:00",
        "request_id": 1,
        "status": "ACCEPTED",
    }
    assert checker.check({"kind": "ws", "frame": event}) == []
    assert checker.check({"kind": "ws", "frame": {**event, "trace_id": "abc"}}) == []
    assert checker.check({"kind": "ws", "frame": {**event, "secret": 1}}) != []
    assert checker.check({"kind": "ws", "frame": {k: v for k, v in event.items() if k != "timestamp"}}) != []
    account = {
        "id": 1,
        "username": "pat",
        "role": "patient",
        "name": "Pat",
        "phone": None,
        "status": "active",
    }
    me = {"kind": "http", "method": "GET", "route": "/auth/me", "status": 200, "body": account}
    assert checker.check(me) == []
    assert checker.check({**me, "body": {**account, "password_hash": "x"}}) != []
    request = {
        "kind": "http",
        "method": "GET",
        "route": "/medicine/request/",
        "status": 200,
        "body": {"results": [], "next": None, "total": 0},
    }
    assert checker.check(request) != []
