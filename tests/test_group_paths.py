"""A group's writes (docs/protocol.md §8) on their fast paths against the plain path.

The same service calls, on a stopped clock, on two fresh databases: SQLite with its hot statements
on the raw sqlite3 cursor (storage/prepared.py) against the same statements through SQLAlchemy,
and PostgreSQL with its fast path (storage/pgfast.py: an answer in a group, with an offer's
price, currency and ready_at) against `MEDREQ_PG_FAST_PATH=false`. Every result, every event
published, every replay page and every row of every table must be the same. And a choice that
PostgreSQL rolls back to break a deadlock runs once more, publishing only what it committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from medreq.bootstrap import open_service
from medreq.protocol import RequestForm
from medreq.service import MedreqService
from medreq.service.base import Offer
from medreq.storage import groups, prepared
from medreq.storage.pgfast import EVENT_ID_MARK, ROW_ID_MARK

from .test_pg_fast import (
    Recorder,
    attempt,
    databases,  # noqa: F401 (a fixture)
    register,
    settings_for,
    stopped_clock,  # noqa: F401 (a fixture)
    stored_rows,
)


async def group_scenario(service: MedreqService) -> dict[str, Any]:
    """A group of four: two offers, a refusal, a choice, and the refusals around it."""
    pat = await register(service, "patient", "pat")
    shops = [await register(service, "pharmacy", name) for name in ("ana", "ben", "cas")]
    far = await register(service, "pharmacy", "far")  # offline, with a webhook: outbox rows
    await service.set_webhook(far, "http://127.0.0.1:9/far")
    sinks = {account.id: Recorder() for account in (pat, *shops)}
    for account_id, sink in sinks.items():
        await service.subscribe(account_id, sink)
    ana, ben, cas = shops
    results: list[Any] = []
    tricky = f'"event_id":{EVENT_ID_MARK} "request_id":{ROW_ID_MARK} ü'
    form = RequestForm(
        pharmacy=[ana.id, ben.id, cas.id, far.id], quantity=2, medicine_name="Amoxicillin", note=tricky
    )
    created = await attempt(results, service.create_request(pat, form, idempotency_key="g-1"))
    await attempt(results, service.create_request(pat, form, idempotency_key="g-1"))  # the whole group again
    assert created is not None
    ids = [request.id for request in created[0].requests]
    await attempt(results, service.choose(pat, ids[0]))  # PENDING: Conflict
    priced = Offer(price="12.50", currency="USD", ready_at="2026-03-05T17:00:00+00:00")
    await attempt(results, service.respond(ana, ids[0], "ACCEPTED", "ready at five", offer=priced))
    await attempt(results, service.respond(ben, ids[1], "ACCEPTED", offer=Offer(price="9.99")))  # default currency
    await attempt(results, service.respond(cas, ids[2], "REJECTED", "none left"))
    await attempt(results, service.choose(ana, ids[0]))  # a pharmacy: Forbidden
    await attempt(results, service.choose(pat, ids[1]))  # ben's: ana's and far's cancelled, cas's stays
    await attempt(results, service.choose(pat, ids[1]))  # again: the same answer
    await attempt(results, service.choose(pat, ids[0]))  # another one is chosen: Conflict
    await attempt(results, service.respond(far, ids[3], "ACCEPTED"))  # cancelled by the choice: Conflict
    await attempt(results, service.respond(ben, ids[1], "REJECTED"))  # answered already: Conflict
    single = await attempt(results, service.create_request(pat, RequestForm(pharmacy=ana.id, quantity=1, medicine_name="Ibuprofen")))
    assert single is not None
    await attempt(results, service.respond(ana, single[0].request_id, "ACCEPTED", offer=priced))
    await attempt(results, service.choose(pat, single[0].request_id))  # not one of a group: Conflict
    await attempt(results, service.choose(pat, 10_000))  # no such request: NotFound
    for account in (pat, *shops, far):
        results.append(await service.events_after(account.id, 0))
    return {"results": results, "published": {k: v.received for k, v in sinks.items()}}


def check_reached(outcome: dict[str, Any]) -> None:
    """The scenario did reach what it is meant to compare."""
    refusals = [r[1] for r in outcome["results"] if isinstance(r, tuple) and r[0] == "refused"]
    assert refusals == ["Conflict", "Forbidden", "Conflict", "Conflict", "Conflict", "Conflict", "NotFound"]
    requests = outcome["rows"]["medicine_requests"]
    assert [(r["status"], r["chosen"], r["cancel_reason"]) for r in requests[:4]] == [
        ("CANCELLED", False, "another_pharmacy_chosen"),
        ("ACCEPTED", True, None),
        ("REJECTED", False, None),
        ("CANCELLED", False, "another_pharmacy_chosen"),
    ]
    assert [(str(r["response_price"]), r["response_currency"]) for r in requests[:2]] == [
        ("12.50", "USD"),
        ("9.99", "EUR"),
    ]
    assert requests[0]["response_ready_at"] is not None
    kinds = {(r["channel"], r["type"]) for r in outcome["rows"]["webhook_deliveries"]}
    assert ("webhook", "request_cancelled") in kinds and ("webhook", "new_request") in kinds


async def run_both(urls: tuple[str, str], tmp_path: Path, fast: tuple[bool, bool]) -> list[dict[str, Any]]:
    outcomes = []
    for url, fast_path in zip(urls, fast, strict=True):
        async with open_service(settings_for(url, tmp_path / str(len(outcomes)), fast=fast_path)) as service:
            outcome = await group_scenario(service)
            outcome["rows"] = await stored_rows(service)
            outcomes.append(outcome)
    return outcomes


def assert_same(plain: dict[str, Any], fast: dict[str, Any]) -> None:
    assert fast["results"] == plain["results"]
    assert fast["published"] == plain["published"]
    for table, rows in plain["rows"].items():
        assert fast["rows"][table] == rows, table


@pytest.mark.usefixtures("stopped_clock")
async def test_a_group_on_sqlite_is_the_same_on_the_raw_cursor_and_through_sqlalchemy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_url, plain_url = f"sqlite:///{tmp_path / 'fast.db'}", f"sqlite:///{tmp_path / 'plain.db'}"
    [fast] = await run_both((fast_url,), tmp_path / "fast", (True,))
    with monkeypatch.context() as patched:
        patched.setattr(prepared, "_sqlite_connection", lambda _conn: None)  # every statement through SQLAlchemy
        [plain] = await run_both((plain_url,), tmp_path / "plain", (True,))
    check_reached(plain)
    assert_same(plain, fast)


@pytest.mark.usefixtures("stopped_clock")
async def test_a_group_on_postgresql_is_the_same_on_the_fast_and_the_plain_path(
    databases: tuple[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    plain, fast = await run_both(databases, tmp_path, (False, True))
    check_reached(plain)
    assert_same(plain, fast)


async def test_a_choice_on_sqlite_runs_no_statement_through_sqlalchemy(tmp_path: Path) -> None:
    """Its five statements and six events run on the raw sqlite3 cursor (storage/groups.py)."""
    async with open_service(settings_for(f"sqlite:///{tmp_path / 'db'}", tmp_path, fast=True)) as service:
        pat = await register(service, "patient", "pat")
        shops = [await register(service, "pharmacy", name) for name in ("ana", "ben", "cas")]
        form = RequestForm(pharmacy=[shop.id for shop in shops], quantity=1, medicine_name="Ibuprofen")
        created, _ = await service.create_request(pat, form)
        ids = [request.id for request in created.requests]
        for shop, request_id in zip(shops, ids, strict=True):
            await service.respond(shop, request_id, "ACCEPTED")
        executed: list[str] = []
        engine = service._store._sync
        assert engine is not None
        listener = lambda *args: executed.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            chosen = await service.choose(pat, ids[0])
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert chosen.chosen and executed == []


def test_a_lost_race_is_told_apart_through_sqlalchemys_wrapping() -> None:
    deadlock = asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
    try:
        raise DBAPIError("UPDATE …", {}, Exception("wrapped")) from deadlock
    except DBAPIError as exc:
        wrapped = exc
    assert groups.lost_a_race(deadlock) and groups.lost_a_race(wrapped)
    assert groups.lost_a_race(asyncpg.exceptions.SerializationError("could not serialize"))
    assert not groups.lost_a_race(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    assert not groups.lost_a_race(ValueError("no"))


async def test_a_choice_rolled_back_by_a_deadlock_runs_once_more_and_publishes_once(tmp_path: Path) -> None:
    async with open_service(settings_for(f"sqlite:///{tmp_path / 'db'}", tmp_path, fast=True)) as service:
        pat = await register(service, "patient", "pat")
        shops = [await register(service, "pharmacy", name) for name in ("ana", "ben")]
        form = RequestForm(pharmacy=[shop.id for shop in shops], quantity=1, medicine_name="Ibuprofen")
        created, _ = await service.create_request(pat, form)
        ids = [request.id for request in created.requests]
        await service.respond(shops[0], ids[0], "ACCEPTED")
        sink = Recorder()
        await service.subscribe(pat.id, sink)
        store = service._store
        real_write = store.write
        attempts = 0

        async def write_losing_once(fn: Any) -> Any:
            """The first attempt does all its work, then is rolled back as PostgreSQL would."""
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                return await real_write(fn)

            def lose(tx: Any) -> Any:
                fn(tx)
                raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")

            return await real_write(lose)

        store.write = write_losing_once  # type: ignore[method-assign]
        chosen = await service.choose(pat, ids[0])
        assert attempts == 2 and chosen.chosen
        updates = [text for _, text in sink.received if '"request_updated"' in text]
        assert len(updates) == 2  # the chosen and the cancelled request, each once
        event_ids = [event_id for event_id, _ in await service.events_after(pat.id, 0)]
        assert event_ids == list(range(1, len(event_ids) + 1))  # gap-free: the lost attempt left nothing
