"""The PostgreSQL fast path (storage/pgfast.py) against the plain path (SQLAlchemy, `Store.write`).

The same service calls run on two fresh PostgreSQL databases, one per path, on a stopped clock:
every result, every event published, every replay page, and every row of every table must be
the same. Then many writers at once on the fast path, in one process and on two servers
sharing the database: each account's event ids stay gap-free and strictly increasing.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from sqlalchemy import select, text

import medreq
from medreq.bootstrap import open_service
from medreq.config import Settings
from medreq.protocol import PushSubscriptionIn, RegisterIn, RequestForm
from medreq.protocol.errors import MedreqError
from medreq.service import MedreqService
from medreq.service.base import Caller
from medreq.storage import queries
from medreq.storage.pgfast import EVENT_ID_MARK, ROW_ID_MARK, HotEvent, Template
from medreq.storage.schema import metadata

from .conftest import REDIS_URL, ServerProcess, create_database, drop_database, make_account, require_service
from .wire import open_ws, recv_json

NOW = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
SECRET = "test-pg-fast-secret-" + "x" * 32
# columns that differ by design whichever the path: salted hashes, secrets made at random
RANDOM_COLUMNS = {"password_hash", "webhook_secret"}


class Recorder:
    def __init__(self) -> None:
        self.received: list[tuple[int | None, str]] = []

    def deliver(self, event_id: int | None, text: str) -> None:
        self.received.append((event_id, text))


@pytest.fixture
def stopped_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `utcnow` medreq imported returns NOW, so both paths write the same times."""
    import sys

    real = queries.utcnow
    for name, module in list(sys.modules.items()):
        if name.startswith("medreq") and getattr(module, "utcnow", None) is real:
            monkeypatch.setattr(module, "utcnow", lambda: NOW)


@pytest.fixture
async def databases() -> AsyncIterator[tuple[str, str]]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    urls = (await create_database(), await create_database())
    yield urls
    for url in urls:
        await drop_database(url)


def settings_for(url: str, tmp: Path, *, fast: bool) -> Settings:
    return Settings.load(
        env={},
        data_dir=tmp,
        scrypt_n=1024,
        database_url=url,
        jwt_secret=SECRET,
        webhook_allow_private=True,
        pg_fast_path=fast,
    )


async def register(service: MedreqService, role: Literal["patient", "pharmacy"], username: str) -> Caller:
    row = await service.register(
        RegisterIn(username=username, password="password1", role=role, name=username.title()), by_operator=True
    )
    return Caller(row.id, role, username, auth_time=int(time.time()))  # as if it just signed in


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def attempt(results: list[Any], call: Any) -> Any:
    """Run a service call; record its result, or the error it refused with."""
    try:
        value = await call
    except MedreqError as exc:
        results.append(("refused", type(exc).__name__, str(exc)))
        return None
    results.append(value.model_dump() if hasattr(value, "model_dump") else value)
    return value


async def scenario(service: MedreqService) -> dict[str, Any]:
    """Every hot transaction, with and without outbox rows, and the refusals around them."""
    pat = await register(service, "patient", "pat")
    pha = await register(service, "pharmacy", "pha")
    away = await register(service, "patient", "away")  # offline, with a webhook and a push subscription
    far = await register(service, "pharmacy", "far")  # offline, with a webhook
    await service.set_webhook(away, "http://127.0.0.1:9/away")
    await service.set_webhook(far, "http://127.0.0.1:9/far")
    keys = {"p256dh": b64url(b"\x04" + bytes(range(64))), "auth": b64url(bytes(16))}
    await service.subscribe_push(
        away, PushSubscriptionIn.model_validate({"endpoint": "http://127.0.0.1:9/push/1", "keys": keys})
    )
    sinks = {pat.id: Recorder(), pha.id: Recorder()}
    for account_id, sink in sinks.items():
        await service.subscribe(account_id, sink)
    results: list[Any] = []
    # text that looks like the placeholders must come through as written
    tricky = f'"event_id":{EVENT_ID_MARK} "request_id":{ROW_ID_MARK} "message_id":{ROW_ID_MARK} ü'
    form = RequestForm(pharmacy=pha.id, quantity=2, medicine_name="Amoxicillin 500mg", note=tricky)
    first = await attempt(results, service.create_request(pat, form, idempotency_key="k-1"))
    await attempt(results, service.create_request(pat, form, idempotency_key="k-1"))  # a replay
    plain = RequestForm(pharmacy=pha.id, quantity=1, medicine_name="Ibuprofen")
    second = await attempt(results, service.create_request(pat, plain))
    to_far = RequestForm(pharmacy=far.id, quantity=3, medicine_name="Aspirin")
    third = await attempt(results, service.create_request(away, to_far, idempotency_key="k-2"))
    assert first is not None and second is not None and third is not None
    one, two, three = first[0].request_id, second[0].request_id, third[0].request_id
    await attempt(results, service.post_message(pat, one, f"a question {tricky}"))
    await attempt(results, service.post_message(pha, one, "an answer"))
    await attempt(results, service.respond(pha, one, "ACCEPTED", "ready at five"))
    await attempt(results, service.respond(pha, one, "REJECTED"))  # already answered: Conflict
    await attempt(results, service.respond(far, two, "ACCEPTED"))  # not far's: NotFound
    await attempt(results, service.respond(pha, 10_000, "ACCEPTED"))  # no such request
    await attempt(results, service.respond(far, three, "REJECTED", "out of stock"))
    await attempt(results, service.post_message(away, three, "why?"))
    await attempt(results, service.post_message(far, three, "sorry"))
    await attempt(results, service.post_message(far, two, "not yours"))  # NotFound
    await attempt(results, service.respond(pha, two, "ACCEPTED"))
    await attempt(results, service.mark_read(pat, one, 2))  # `read` for the pharmacy
    await attempt(results, service.typing(pha, one, "start"))  # published, not stored
    await attempt(results, service.typing(far, one, "start"))  # NotFound
    for account in (pat, pha, away, far):
        results.append(await service.events_after(account.id, 0))
        results.append(await service.events_after(account.id, 1, before=3))
        results.append(await service.events_after(account.id, 0, limit=1))
    return {"results": results, "published": {k: v.received for k, v in sinks.items()}}


async def stored_rows(service: MedreqService) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, in primary-key order."""

    def dump(conn: Any) -> dict[str, list[dict[str, Any]]]:
        rows = {}
        for table in metadata.sorted_tables:
            order = list(table.primary_key.columns)
            found = conn.execute(select(table).order_by(*order)).mappings().all()
            rows[table.name] = [{k: v for k, v in row.items() if k not in RANDOM_COLUMNS} for row in found]
        return rows

    return await service._store.read(dump)


@pytest.mark.usefixtures("stopped_clock")
async def test_both_paths_return_publish_and_store_the_same(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    outcomes = []
    for url, fast in zip(databases, (False, True), strict=True):
        async with open_service(settings_for(url, tmp_path / str(fast), fast=fast)) as service:
            assert (service._store.fast is not None) is fast
            outcome = await scenario(service)
            outcome["rows"] = await stored_rows(service)
            outcomes.append(outcome)
    plain, fast_path = outcomes
    assert fast_path["results"] == plain["results"]
    assert fast_path["published"] == plain["published"]
    for table, rows in plain["rows"].items():
        assert fast_path["rows"][table] == rows, table
    # the scenario did reach what it is meant to compare
    # 3 requests, 4 messages, 3 answers of two events, a read; and 3 `target_added` (2 webhooks, a push)
    assert len(plain["rows"]["events"]) == 17
    assert {(r["channel"], r["type"]) for r in plain["rows"]["webhook_deliveries"]} == {
        ("webhook", "new_request"),
        ("webhook", "pharmacy_response"),
        ("push", "pharmacy_response"),
        ("webhook", "request_updated"),
        ("webhook", "message"),
        ("push", "message"),
        ("webhook", "target_added"),  # away's push subscription, told to the webhook it already had
    }
    refusals = [r[1] for r in plain["results"] if isinstance(r, tuple) and r[0] == "refused"]
    assert refusals == ["Conflict", "NotFound", "NotFound", "NotFound", "NotFound"]
    assert any('"type":"typing"' in text for received in plain["published"].values() for _, text in received)
    assert len(plain["rows"]["idempotency_keys"]) == 2


async def test_a_key_stored_meanwhile_stores_nothing_and_replays(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    """Two retries with one idempotency key racing past the service's lookup: the second
    statement stores nothing (no request, no event, no counter bump) and the first request is
    what the caller gets."""
    async with open_service(settings_for(databases[0], tmp_path, fast=True)) as service:
        fast = service._store.fast
        assert fast is not None
        pat = await register(service, "patient", "pat")
        pha = await register(service, "pharmacy", "pha")
        form = RequestForm(pharmacy=pha.id, quantity=1, medicine_name="Ibuprofen")
        first, created = await service.create_request(pat, form, idempotency_key="k")
        assert created
        values = {
            "patient_id": pat.id,
            "pharmacy_id": pha.id,
            "quantity": 1,
            "medicine_name": "Ibuprofen",
            "note": None,
            "image_name": None,
            "status": "PENDING",
            "created_at": datetime.now(UTC),
            "updated_at": datetime.now(UTC),
        }
        template = Template.cut(f'{{"event_id":{EVENT_ID_MARK},"request_id":{ROW_ID_MARK}}}', "request_id")
        event = HotEvent(pha.id, "new_request", template)
        assert await fast.create_request(values, event, idempotency_key="k") is None

        def counts(conn: Any) -> tuple[int, ...]:
            return tuple(
                conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("medicine_requests", "events", "idempotency_keys")
            )

        assert await service._store.read(counts) == (1, 1, 1)
        assert await service.last_event_id(pha.id) == 1
        again, created = await service.create_request(pat, form, idempotency_key="k")
        assert (again.request_id, created) == (first.request_id, False)


def test_template_cuts_only_the_events_own_ids() -> None:
    text = (
        f'{{"type":"message","event_id":{EVENT_ID_MARK},"request_id":5,"message_id":{ROW_ID_MARK},'
        f'"text":"\\"message_id\\":{ROW_ID_MARK}"}}'
    )
    template = Template.cut(text, "message_id")
    assert template.fill(7, 42) == text.replace(str(EVENT_ID_MARK), "7").replace(
        f'"message_id":{ROW_ID_MARK}', '"message_id":42', 1
    )
    with pytest.raises(ValueError, match="placeholders"):
        Template.cut('{"type":"x","event_id":1}')


async def test_concurrent_writers_keep_event_ids_gap_free(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    """40 writers at once on the fast path's pool: new requests to one pharmacy and messages to
    one patient. Every account's events are 1..n, with no gap and no repeat."""
    async with open_service(settings_for(databases[0], tmp_path, fast=True)) as service:
        assert service._store.fast is not None
        pharmacy = await register(service, "pharmacy", "pha")
        patients = [await register(service, "patient", f"pat{i}") for i in range(8)]

        async def write(patient: Caller, n: int) -> None:
            body, _ = await service.create_request(
                patient, RequestForm(pharmacy=pharmacy.id, quantity=1, medicine_name=f"M{n}")
            )
            await service.post_message(pharmacy, body.request_id, f"noted {n}")

        await asyncio.gather(*(write(patients[n % 8], n) for n in range(40)))

        def check(conn: Any) -> list[tuple[int, int, int]]:
            found = conn.execute(
                text("SELECT account_id, count(*), max(event_id) FROM events GROUP BY account_id ORDER BY 1")
            ).all()
            return [tuple(row) for row in found]

        for account_id, count, highest in await service._store.read(check):
            ids = [event_id for event_id, _ in await service.events_after(account_id, 0)]
            assert ids == list(range(1, count + 1)) and highest == count, account_id
            assert await service.last_event_id(account_id) == count
        assert [e for e, _ in await service.events_after(pharmacy.id, 0)] == list(range(1, 41))


async def test_two_servers_writing_at_once_keep_one_gap_free_sequence(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    """Two server processes on the fast path, sharing the database and Redis: patients on both
    send requests to one pharmacy at once; its socket on each server sees 1..n in order."""
    require_service("Redis", "127.0.0.1", 6379)
    shared = {
        "MEDREQ_DATABASE_URL": databases[0],
        "MEDREQ_REDIS_URL": REDIS_URL,
        "MEDREQ_JWT_SECRET": SECRET,
        "MEDREQ_MEDIA_DIR": str(tmp_path / "media"),
        "MEDREQ_PG_FAST_PATH": "true",
    }
    servers = (ServerProcess(tmp_path / "a", env=shared), ServerProcess(tmp_path / "b", env=shared))
    servers[0].start()  # one at a time: the first applies the migrations
    servers[1].start()
    try:
        pharmacy = make_account(servers[0].url, "pharmacy")
        patients = [make_account(servers[i % 2].url, "patient") for i in range(4)]
        async with open_ws(servers[0], pharmacy) as on_a, open_ws(servers[1], pharmacy) as on_b:
            async with httpx.AsyncClient(timeout=30) as http:

                async def burst(i: int) -> list[int]:
                    server, patient = servers[i % 2], patients[i]
                    ids = []
                    for n in range(10):
                        response = await http.post(
                            f"{server.url}/medicine/request/",
                            data={"pharmacy": str(pharmacy.id), "quantity": "1", "medicine_name": f"M{n}"},
                            headers=patient.headers,
                        )
                        assert response.status_code == 201, response.text
                        ids.append(response.json()["request_id"])
                    return ids

                created = [i for ids in await asyncio.gather(*(burst(i) for i in range(4))) for i in ids]
            for ws in (on_a, on_b):
                events = [await recv_json(ws) for _ in created]
                assert [e["event_id"] for e in events] == list(range(1, len(created) + 1))
                assert sorted(e["request_id"] for e in events) == sorted(created)
    finally:
        for server in servers:
            server.stop()


def test_the_fast_path_is_a_documented_setting() -> None:
    assert Settings.load(env={}).pg_fast_path is True
    assert Settings.load(env={"MEDREQ_PG_FAST_PATH": "false"}).pg_fast_path is False
    readme = (Path(medreq.__file__).parent.parent / "README.md").read_text()
    assert "MEDREQ_PG_FAST_PATH" in readme
