"""The direct route table (`web/rest/direct.py`) against Starlette's stack: the same answers.

One app, two ways in: as served (parameterless REST routes looked up directly) and with
`MedreqApp.http` pointed at the Starlette application itself, as before the table existed.
Every case is sent both ways and must come back with the same status, the same §1 body and
the same headers (but for the per-request trace id)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from medreq.config import Settings
from medreq.protocol import TokenIn
from medreq.web.app import MedreqApp, create_app
from medreq.web.rest import direct


async def _lifespan(app: MedreqApp) -> asyncio.Queue[dict[str, Any]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()
    await inbox.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        started.set()

    asyncio.get_running_loop().create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send))
    await started.wait()
    return inbox


class Plain:
    """The same app, every HTTP request through Starlette's middleware and router."""

    def __init__(self, app: MedreqApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        served = self.app.http
        self.app.http = self.app.app
        try:
            await self.app(scope, receive, send)
        finally:
            self.app.http = served


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    settings = Settings.load(
        env={}, data_dir=tmp_path, scrypt_n=1024, rate_limit_enabled=False, pharmacy_registration="open"
    )
    app = create_app(settings)
    inbox = await _lifespan(app)
    base = "http://127.0.0.1"
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as served,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=Plain(app)), base_url=base) as plain,
    ):
        for name, role in (("pat", "patient"), ("pha", "pharmacy")):
            body = {"username": name, "password": "password123", "role": role, "name": name}
            assert (await served.post("/auth/register", json=body)).status_code == 201
        service = app.state.service
        patient = await service.issue_tokens(TokenIn(username="pat", password="password123"))
        pharmacy = await service.issue_tokens(TokenIn(username="pha", password="password123"))
        yield {
            "app": app,
            "served": served,
            "plain": plain,
            "patient": {"Authorization": f"Bearer {patient.access}"},
            "pharmacy_id": pharmacy.account.id,
        }
    await inbox.put({"type": "lifespan.shutdown"})


def _same(a: httpx.Response, b: httpx.Response, *, ignore: tuple[str, ...] = ()) -> None:
    assert a.status_code == b.status_code, (a.text, b.text)
    body_a, body_b = a.json(), b.json()
    for key in ignore:
        body_a.pop(key, None), body_b.pop(key, None)
    assert body_a == body_b
    headers = lambda r: {k: v for k, v in r.headers.items() if k not in ("x-request-id", "content-length")}  # noqa: E731
    assert headers(a) == headers(b)


def test_the_table_holds_the_parameterless_routes_only() -> None:
    from medreq.web.rest import routes

    table = direct.DirectRoutes(None, routes.routes).table  # type: ignore[arg-type]
    assert ("POST", "/medicine/request/") in table
    assert ("GET", "/medicine/request/") in table
    assert all("{" not in path for _, path in table)
    assert not any(path.startswith("/medicine/request/{") for _, path in table)


CASES: list[tuple[str, dict[str, Any]]] = [
    ("no token", {"data": {"pharmacy": "1", "quantity": "1"}}),
    ("bad token", {"data": {"pharmacy": "1"}, "headers": {"Authorization": "Bearer nope"}}),
    ("missing pharmacy", {"data": {"quantity": "1", "medicine_name": "A"}, "auth": True}),
    ("quantity zero", {"data": {"pharmacy": "{pharmacy}", "quantity": "0", "medicine_name": "A"}, "auth": True}),
    ("JSON body", {"json": {"pharmacy": 1}, "auth": True}),
    ("no such pharmacy", {"data": {"pharmacy": "999999", "quantity": "1", "medicine_name": "A"}, "auth": True}),
    ("text where the image goes", {"data": {"pharmacy": "{pharmacy}", "image": "x"}, "auth": True}),
]


@pytest.mark.parametrize(("case", "spec"), CASES, ids=[c for c, _ in CASES])
async def test_refusals_are_the_same_both_ways(clients: dict[str, Any], case: str, spec: dict[str, Any]) -> None:
    spec = json.loads(json.dumps(spec).replace('"{pharmacy}"', json.dumps(str(clients["pharmacy_id"]))))
    headers = dict(spec.get("headers", {}))
    if spec.get("auth"):
        headers.update(clients["patient"])
    kwargs = {k: spec[k] for k in ("data", "json") if k in spec}
    answers = [await clients[way].post("/medicine/request/", headers=headers, **kwargs) for way in ("served", "plain")]
    assert answers[0].status_code >= 400
    _same(*answers)


async def test_a_created_request_is_the_same_both_ways(clients: dict[str, Any], monkeypatch: Any) -> None:
    through_starlette: list[str] = []
    starlette_call = Starlette.__call__

    async def counted(self: Starlette, scope: Any, receive: Any, send: Any) -> None:
        through_starlette.append(scope["path"])
        await starlette_call(self, scope, receive, send)

    monkeypatch.setattr(Starlette, "__call__", counted)
    form = {"pharmacy": str(clients["pharmacy_id"]), "quantity": "2", "medicine_name": "Amoxicillin"}
    served = await clients["served"].post("/medicine/request/", data=form, headers=clients["patient"])
    assert through_starlette == []  # looked up directly
    plain = await clients["plain"].post("/medicine/request/", data=form, headers=clients["patient"])
    assert through_starlette == ["/medicine/request/"]
    assert served.status_code == 201
    assert plain.json()["request_id"] == served.json()["request_id"] + 1
    for answer in (served, plain):  # what differs between two requests
        assert answer.json()["data"].pop("id") == answer.json()["request_id"]
    _same(served, plain, ignore=("request_id", "data", "requests"))
    same = lambda r: {k: v for k, v in r.json()["data"].items() if k not in ("id", "created_at", "updated_at")}  # noqa: E731
    assert same(served) == same(plain)
    listed = [await clients[way].get("/medicine/request/", headers=clients["patient"]) for way in ("served", "plain")]
    _same(*listed)
    assert len(listed[0].json()["results"]) == 2


async def test_an_unexpected_error_is_a_500_both_ways(clients: dict[str, Any], monkeypatch: Any) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(clients["app"].state.service, "create_request", broken)
    form = {"pharmacy": str(clients["pharmacy_id"]), "quantity": "1", "medicine_name": "A"}
    answers = []
    for way in ("served", "plain"):
        try:
            answers.append(await clients[way].post("/medicine/request/", data=form, headers=clients["patient"]))
        except RuntimeError:  # Starlette's ServerErrorMiddleware re-raises after its 500
            answers.append(None)
    served = answers[0]
    assert served is not None and served.status_code == 500
    assert served.json()["error"]["code"] == "internal"


async def test_other_paths_and_methods_still_go_through_starlette(clients: dict[str, Any]) -> None:
    served, plain = clients["served"], clients["plain"]
    for method, path in (("PUT", "/medicine/request/"), ("POST", "/medicine/request"), ("GET", "/nowhere")):
        a = await served.request(method, path, headers=clients["patient"])
        b = await plain.request(method, path, headers=clients["patient"])
        assert a.status_code == b.status_code and a.status_code in (307, 404, 405)
        assert a.content == b.content
