"""docs/protocol.md §3, groups: a patient asks several pharmacies at once, compares their offers and
chooses one; the others are cancelled. Real server (SQLite), real sockets.

The races between workers are in tests/test_group_races.py (PostgreSQL + Redis, two servers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Account, ServerProcess, make_account, png
from .operator_accounts import operator_account
from .wire import db_snapshot, error_code, open_ws, post_response, recv_events, recv_json

pytestmark = pytest.mark.shared_server


def ask(
    server: ServerProcess,
    patient: Account,
    pharmacies: list[int],
    *,
    image: bytes | None = None,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    """`POST /medicine/request/` with the field `pharmacy` repeated."""
    data: dict[str, Any] = {"pharmacy": [str(p) for p in pharmacies], "quantity": "1", **fields}
    if image is None:
        data.setdefault("medicine_name", "Amoxicillin 500mg")
    files = {"image": ("rx.png", image, "image/png")} if image is not None else None
    return httpx.post(
        f"{server.url}/medicine/request/",
        data=data,
        files=files,
        headers={**patient.headers, **(headers or {})},
        timeout=30,
    )


def choose(server: ServerProcess, account: Account, request_id: int) -> httpx.Response:
    return httpx.post(f"{server.url}/medicine/request/{request_id}/choose/", headers=account.headers, timeout=30)


def get(server: ServerProcess, account: Account, path: str) -> Any:
    response = httpx.get(server.url + path, headers=account.headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def media_files(server: ServerProcess) -> list[Path]:
    return sorted(p for p in Path(server.data_dir, "media").rglob("*") if p.is_file())


async def events_of(ws: Any, kind: str, count: int) -> list[dict[str, Any]]:
    """The next `count` events of type `kind` (a patient's socket also hears `presence`)."""
    found: list[dict[str, Any]] = []
    while len(found) < count:
        event = await recv_json(ws)
        if event["type"] == kind:
            found.append(event)
    return found


def soon(hours: int = 2) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat()


async def test_one_request_per_pharmacy_in_one_group_with_the_image_stored_once(server: ServerProcess) -> None:
    patient = make_account(server.url, "patient", name="Pat", phone="+1 555 0100")
    pharmacies = [make_account(server.url, "pharmacy", name=f"P{i}") for i in range(3)]
    order = [pharmacies[2].id, pharmacies[0].id, pharmacies[1].id]
    files_before = len(media_files(server))
    async with open_ws(server, pharmacies[0]) as ws:
        created = ask(server, patient, order, image=png(3, 3))
        assert created.status_code == 201, created.text
        event = await recv_json(ws)
    body = created.json()
    group = body["group"]
    assert isinstance(group, int)
    assert [r["pharmacy"]["id"] for r in body["requests"]] == order  # in the order named
    assert body["request_id"] == body["requests"][0]["id"] == body["data"]["id"]
    assert body["data"] == body["requests"][0]
    for request in body["requests"]:
        assert (request["group"], request["asked_pharmacies"], request["chosen"], request["cancel_reason"]) == (
            group,
            3,
            False,
            None,
        )
    assert len(media_files(server)) == files_before + 1  # one file for the three requests
    # each pharmacy: its own new_request, how many were asked, never the group or the others
    mine = next(r for r in body["requests"] if r["pharmacy"]["id"] == pharmacies[0].id)
    assert (event["type"], event["request_id"], event["asked_pharmacies"]) == ("new_request", mine["id"], 3)
    assert httpx.get(event["image_url"]).status_code == 200
    seen = get(server, pharmacies[0], f"/medicine/request/{mine['id']}/")
    assert (seen["group"], seen["asked_pharmacies"]) == (None, 3)
    assert [r["id"] for r in get(server, pharmacies[0], "/medicine/request/")["results"]] == [mine["id"]]
    assert get(server, pharmacies[0], f"/medicine/request/?group={group}")["results"] == []
    listed = get(server, patient, f"/medicine/request/?group={group}")["results"]
    assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in body["requests"])
    other = make_account(server.url, "patient")
    assert get(server, other, f"/medicine/request/?group={group}")["results"] == []


async def test_a_single_pharmacy_keeps_its_shape_with_group_null(server: ServerProcess) -> None:
    patient = make_account(server.url, "patient")
    pharmacy = make_account(server.url, "pharmacy")
    async with open_ws(server, pharmacy) as ws:
        body = ask(server, patient, [pharmacy.id]).json()
        event = await recv_json(ws)
    assert body["group"] is None
    assert body["requests"] == [body["data"]]
    assert (body["data"]["group"], body["data"]["asked_pharmacies"], body["data"]["chosen"]) == (None, 1, False)
    assert event["asked_pharmacies"] == 1


def test_an_idempotency_key_covers_the_whole_group(server: ServerProcess) -> None:
    patient = make_account(server.url, "patient")
    pharmacies = [make_account(server.url, "pharmacy").id for _ in range(2)]
    key = {"Idempotency-Key": "group-once"}
    first = ask(server, patient, pharmacies, headers=key)
    assert first.status_code == 201
    before = db_snapshot(server)
    again = ask(server, patient, pharmacies, headers=key)
    assert again.status_code == 201
    assert (again.json()["group"], [r["id"] for r in again.json()["requests"]]) == (
        first.json()["group"],
        [r["id"] for r in first.json()["requests"]],
    )
    assert db_snapshot(server) == before


@pytest.mark.own_server
def test_bad_pharmacy_lists_are_refused_naming_the_pharmacy_and_store_nothing(server_factory: Any) -> None:
    server: ServerProcess = server_factory({"MEDREQ_PHARMACY_REGISTRATION": "approval"})
    patient = make_account(server.url, "patient")
    active = [operator_account(server, "pharmacy", f"Active {i}").id for i in range(5)]
    pending = make_account(server.url, "pharmacy").id  # self-registered: awaiting approval
    before = db_snapshot(server)
    cases = {
        "duplicate": ([active[0], active[1], active[0]], f"pharmacy {active[0]}"),
        "unknown": ([active[0], 999_999], "pharmacy 999999"),
        "pending": ([active[0], pending], f"pharmacy {pending}"),
        "too many": ([*active, 999_998], "at most 5 pharmacies"),
        "not a number": ([active[0], "x"], "pharmacy"),
    }
    for case, (named, expected) in cases.items():
        refused = ask(server, patient, named, image=png())  # type: ignore[arg-type]
        assert refused.status_code == 422, (case, refused.text)
        assert error_code(refused) == "validation_error"
        assert expected in refused.json()["error"]["message"], (case, refused.json())
        assert "pharmacy" in refused.json()["error"]["fields"], case
    assert db_snapshot(server) == before  # no request, no group, no file


async def test_choosing_one_cancels_the_others_and_tells_everyone(server: ServerProcess) -> None:
    patient = make_account(server.url, "patient")
    chosen_ph, accepted_ph, pending_ph, rejected_ph = (make_account(server.url, "pharmacy") for _ in range(4))
    named = [chosen_ph, accepted_ph, pending_ph, rejected_ph]
    body = ask(server, patient, [p.id for p in named]).json()
    ids = {p.id: r["id"] for p, r in zip(named, body["requests"], strict=True)}
    for pharmacy, status in ((chosen_ph, "ACCEPTED"), (accepted_ph, "ACCEPTED"), (rejected_ph, "REJECTED")):
        assert post_response(server, pharmacy, request_id=ids[pharmacy.id], status=status).status_code == 200
    async with (
        open_ws(server, patient) as pws,
        open_ws(server, chosen_ph) as cws,
        open_ws(server, accepted_ph) as aws,
        open_ws(server, pending_ph) as qws,
    ):
        chose = choose(server, patient, ids[chosen_ph.id])
        assert chose.status_code == 200, chose.text
        assert (chose.json()["id"], chose.json()["chosen"], chose.json()["status"]) == (
            ids[chosen_ph.id],
            True,
            "ACCEPTED",
        )
        told = await recv_json(cws)
        assert (told["type"], told["request_id"]) == ("request_chosen", ids[chosen_ph.id])
        for ws, pharmacy in ((aws, accepted_ph), (qws, pending_ph)):
            cancelled = await recv_json(ws)
            assert (cancelled["type"], cancelled["request_id"], cancelled["reason"]) == (
                "request_cancelled",
                ids[pharmacy.id],
                "another_pharmacy_chosen",
            )
        updates = await events_of(pws, "request_updated", 3)
        assert sorted((u["type"], u["request_id"], u["status"]) for u in updates) == sorted(
            [
                ("request_updated", ids[chosen_ph.id], "ACCEPTED"),
                ("request_updated", ids[accepted_ph.id], "CANCELLED"),
                ("request_updated", ids[pending_ph.id], "CANCELLED"),
            ]
        )
    group = {r["id"]: r for r in get(server, patient, f"/medicine/request/?group={body['group']}")["results"]}
    assert [(group[ids[p.id]]["status"], group[ids[p.id]]["chosen"], group[ids[p.id]]["cancel_reason"]) for p in named] == [
        ("ACCEPTED", True, None),
        ("CANCELLED", False, "another_pharmacy_chosen"),
        ("CANCELLED", False, "another_pharmacy_chosen"),
        ("REJECTED", False, None),
    ]
    # the chosen pharmacy has news to read; replayed after a reconnect like any stored event
    assert get(server, chosen_ph, f"/medicine/request/{ids[chosen_ph.id]}/")["unread"] == 2  # new_request, chosen
    async with open_ws(server, chosen_ph, after=0) as replay:
        kinds = [e["type"] for e in await recv_events(replay, 3)]
    assert kinds == ["new_request", "request_updated", "request_chosen"]
    # the same choice again is the same answer; another is a conflict; a late answer too
    before = db_snapshot(server)
    again = choose(server, patient, ids[chosen_ph.id])
    assert (again.status_code, again.json()["chosen"]) == (200, True)
    for request_id in (ids[accepted_ph.id], ids[rejected_ph.id]):
        refused = choose(server, patient, request_id)
        assert (refused.status_code, error_code(refused)) == (409, "conflict")
    late = post_response(server, pending_ph, request_id=ids[pending_ph.id], status="ACCEPTED")
    assert (late.status_code, error_code(late)) == (409, "conflict")
    assert db_snapshot(server) == before


def test_choices_that_are_not_allowed_store_nothing(server: ServerProcess) -> None:
    patient = make_account(server.url, "patient")
    stranger = make_account(server.url, "patient")
    pharmacies = [make_account(server.url, "pharmacy") for _ in range(2)]
    body = ask(server, patient, [p.id for p in pharmacies]).json()
    first, second = (r["id"] for r in body["requests"])
    single = ask(server, patient, [pharmacies[0].id]).json()["request_id"]
    assert post_response(server, pharmacies[0], request_id=single, status="ACCEPTED").status_code == 200
    assert post_response(server, pharmacies[0], request_id=first, status="ACCEPTED").status_code == 200
    before = db_snapshot(server)
    for account, request_id, status in (
        (stranger, first, 404),  # not the caller's: as if it did not exist
        (patient, 10**9, 404),
        (pharmacies[0], first, 403),  # only the patient chooses
        (patient, second, 409),  # PENDING, not ACCEPTED
        (patient, single, 409),  # accepted, but of no group
    ):
        refused = choose(server, account, request_id)
        assert refused.status_code == status, (account.role, request_id, refused.text)
    assert db_snapshot(server) == before


async def test_a_patient_cancel_says_why(server: ServerProcess) -> None:
    patient = make_account(server.url, "patient")
    pharmacy = make_account(server.url, "pharmacy")
    request_id = ask(server, patient, [pharmacy.id]).json()["request_id"]
    async with open_ws(server, pharmacy) as ws:
        cancelled = httpx.post(f"{server.url}/medicine/request/{request_id}/cancel/", headers=patient.headers)
        assert cancelled.status_code == 200
        assert cancelled.json()["cancel_reason"] == "patient_cancelled"
        event = await recv_json(ws)
    assert (event["type"], event["reason"]) == ("request_cancelled", "patient_cancelled")


async def test_an_answer_carries_an_offer_by_rest_and_socket(server: ServerProcess) -> None:
    patient = make_account(server.url, "patient")
    pharmacies = [make_account(server.url, "pharmacy") for _ in range(2)]
    first, second = (r["id"] for r in ask(server, patient, [p.id for p in pharmacies]).json()["requests"])
    ready = soon()
    async with open_ws(server, patient) as pws:
        answered = httpx.post(
            f"{server.url}/medicine/response/",
            data={"request_id": str(first), "status": "ACCEPTED", "price": "12.5", "ready_at": ready},
            headers=pharmacies[0].headers,
        )
        assert answered.status_code == 200, answered.text
        offer = answered.json()["data"]["response"]
        assert (offer["price"], offer["currency"], offer["ready_at"]) == ("12.50", "EUR", ready)
        [event] = await events_of(pws, "pharmacy_response", 1)
        assert (event["type"], event["price"], event["currency"], event["ready_at"]) == (
            "pharmacy_response",
            "12.50",
            "EUR",
            ready,
        )
        async with open_ws(server, pharmacies[1]) as hws:
            message = {"type": "response", "id": 1, "request_id": second, "status": "ACCEPTED", "price": "9"}
            await hws.send(json.dumps({**message, "currency": "USD"}))
            ack = next(f for f in await recv_events(hws, 2) if f["type"] == "ack")
        assert ack["data"]["response"] | {"responded_at": None} == {
            "status": "ACCEPTED",
            "message": None,
            "audio_url": None,
            "responded_at": None,
            "price": "9.00",
            "currency": "USD",
            "ready_at": None,
        }
        [event] = await events_of(pws, "pharmacy_response", 1)
        assert (event["price"], event["currency"], event["ready_at"]) == ("9.00", "USD", None)
    listed = get(server, patient, f"/medicine/request/{first}/")["response"]
    assert (listed["price"], listed["currency"], listed["ready_at"]) == ("12.50", "EUR", ready)


async def test_an_answer_without_an_offer_has_nulls(server: ServerProcess) -> None:
    patient = make_account(server.url, "patient")
    pharmacy = make_account(server.url, "pharmacy")
    request_id = ask(server, patient, [pharmacy.id]).json()["request_id"]
    response = post_response(server, pharmacy, request_id=request_id).json()["data"]["response"]
    assert (response["price"], response["currency"], response["ready_at"]) == (None, None, None)


async def test_bad_offers_are_refused_and_store_nothing(server: ServerProcess) -> None:
    patient = make_account(server.url, "patient")
    pharmacy = make_account(server.url, "pharmacy")
    request_id = ask(server, patient, [pharmacy.id]).json()["request_id"]
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    before = db_snapshot(server)
    bad = {
        "price": ["-1", "1.234", "abc", "1e3", "12,50", "1234567890"],
        "currency": ["eur", "EURO", "E1R"],
        "ready_at": [past, "tomorrow", "2099-01-01T10:00:00"],  # past, not a time, no offset
    }
    for field, values in bad.items():
        for value in values:
            refused = httpx.post(
                f"{server.url}/medicine/response/",
                data={"request_id": str(request_id), "status": "ACCEPTED", field: value},
                headers=pharmacy.headers,
            )
            assert refused.status_code == 422, (field, value, refused.text)
            assert field in refused.json()["error"]["fields"], (field, value)
    async with open_ws(server, pharmacy) as ws:
        message = {"type": "response", "id": 7, "request_id": request_id, "status": "ACCEPTED", "price": "-3"}
        await ws.send(json.dumps(message))
        error = await recv_json(ws)
    assert (error["type"], error["ref"], error["error"]["code"]) == ("error", 7, "validation_error")
    assert db_snapshot(server) == before
