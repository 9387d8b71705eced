"""Beyond the seed flow: cancel, thread messages, typing and read receipts (docs/protocol.md §3–§4)."""

from __future__ import annotations

import json

import httpx
import pytest

from .conftest import Account, ServerProcess, make_account
from .wire import assert_silent, db_snapshot, error_code, open_ws, post_request, recv_json

pytestmark = pytest.mark.shared_server


def new_request(server: ServerProcess, patient: Account, pharmacy: Account) -> int:
    response = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Amoxicillin")
    assert response.status_code == 201
    return int(response.json()["request_id"])


async def test_patient_cancels_and_pharmacy_is_told(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    request_id = new_request(server, patient, pharmacy)
    async with open_ws(server, pharmacy, after=1) as pharmacy_ws:
        cancelled = httpx.post(f"{server.url}/medicine/request/{request_id}/cancel/", headers=patient.headers)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "CANCELLED"
        event = await recv_json(pharmacy_ws)
        assert (event["type"], event["request_id"], event["event_id"]) == ("request_cancelled", request_id, 2)
    before = db_snapshot(server)
    again = httpx.post(f"{server.url}/medicine/request/{request_id}/cancel/", headers=patient.headers)
    assert (again.status_code, error_code(again)) == (409, "conflict")
    answer = httpx.post(
        f"{server.url}/medicine/response/",
        data={"request_id": str(request_id), "status": "ACCEPTED"},
        headers=pharmacy.headers,
    )
    assert (answer.status_code, error_code(answer)) == (409, "conflict")
    assert db_snapshot(server) == before


def test_only_the_requesting_patient_can_cancel(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    request_id = new_request(server, patient, pharmacy)
    stranger = make_account(server.url, "patient")
    before = db_snapshot(server)
    by_pharmacy = httpx.post(f"{server.url}/medicine/request/{request_id}/cancel/", headers=pharmacy.headers)
    assert (by_pharmacy.status_code, error_code(by_pharmacy)) == (403, "forbidden")
    by_stranger = httpx.post(f"{server.url}/medicine/request/{request_id}/cancel/", headers=stranger.headers)
    assert (by_stranger.status_code, error_code(by_stranger)) == (404, "not_found")
    missing = httpx.post(f"{server.url}/medicine/request/999999/cancel/", headers=patient.headers)
    assert (missing.status_code, error_code(missing)) == (404, "not_found")
    assert db_snapshot(server) == before


async def test_thread_messages_reach_the_other_party_and_the_detail(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    request_id = new_request(server, patient, pharmacy)
    # the pharmacy first: connecting after the patient would send it `presence` (docs/protocol.md §4)
    async with open_ws(server, pharmacy, after=1) as pharmacy_ws, open_ws(server, patient) as patient_ws:
        posted = httpx.post(
            f"{server.url}/medicine/request/{request_id}/messages/",
            json={"text": "Which strength?"},
            headers=pharmacy.headers,
        )
        assert posted.status_code == 201, posted.text
        event = await recv_json(patient_ws)
        assert (event["type"], event["request_id"], event["from"], event["text"]) == (
            "message",
            request_id,
            pharmacy.id,
            "Which strength?",
        )
        await patient_ws.send(
            json.dumps({"type": "message", "id": "m", "request_id": request_id, "text": "500mg"})
        )
        ack = await recv_json(patient_ws)
        assert (ack["type"], ack["ref"], ack["message"]["text"]) == ("ack", "m", "500mg")
        reply = await recv_json(pharmacy_ws)
        assert (reply["type"], reply["from"], reply["text"]) == ("message", patient.id, "500mg")
    detail = httpx.get(f"{server.url}/medicine/request/{request_id}/", headers=patient.headers).json()
    assert [(m["from"], m["text"]) for m in detail["messages"]] == [
        (pharmacy.id, "Which strength?"),
        (patient.id, "500mg"),
    ]


def test_bad_thread_messages_are_refused(server: ServerProcess, patient: Account, pharmacy: Account) -> None:
    request_id = new_request(server, patient, pharmacy)
    stranger = make_account(server.url, "pharmacy")
    url = f"{server.url}/medicine/request/{request_id}/messages/"
    before = db_snapshot(server)
    cases = [
        (patient.headers, {"text": ""}, 422, "validation_error"),
        (patient.headers, {"text": "x" * 2001}, 422, "validation_error"),
        (patient.headers, {}, 422, "validation_error"),
        (stranger.headers, {"text": "hi"}, 404, "not_found"),
        ({}, {"text": "hi"}, 401, "unauthorized"),
    ]
    for headers, body, status, code in cases:
        response = httpx.post(url, json=body, headers=headers)
        assert (response.status_code, error_code(response)) == (status, code), body
    not_json = httpx.post(url, content=b"{nope", headers=patient.headers)
    assert (not_json.status_code, error_code(not_json)) == (400, "invalid_json")
    assert db_snapshot(server) == before


async def test_typing_is_relayed_but_never_replayed(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    request_id = new_request(server, patient, pharmacy)
    async with open_ws(server, pharmacy) as pharmacy_ws, open_ws(server, patient) as patient_ws:
        await pharmacy_ws.send(json.dumps({"type": "typing", "request_id": request_id, "state": "start"}))
        typing = await recv_json(patient_ws)
        assert (typing["type"], typing["from"], typing["state"], typing["event_id"]) == (
            "typing",
            pharmacy.id,
            "start",
            None,
        )
        await assert_silent(pharmacy_ws)  # typing gets no answer
    async with open_ws(server, patient, after=0) as replay:
        await assert_silent(replay)


async def test_read_receipt_reaches_the_other_party(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    request_id = new_request(server, patient, pharmacy)
    # the pharmacy first: connecting after the patient would send it `presence` (docs/protocol.md §4)
    async with open_ws(server, pharmacy, after=1) as pharmacy_ws, open_ws(server, patient) as patient_ws:
        await pharmacy_ws.send(
            json.dumps({"type": "read", "id": 9, "request_id": request_id, "up_to_event_id": 1})
        )
        ack = await recv_json(pharmacy_ws)
        assert (ack["type"], ack["ref"], ack["up_to_event_id"]) == ("ack", 9, 1)
        receipt = await recv_json(patient_ws)
        assert (receipt["type"], receipt["by"], receipt["up_to_event_id"]) == ("read", pharmacy.id, 1)
        await pharmacy_ws.send(
            json.dumps({"type": "read", "id": 10, "request_id": request_id, "up_to_event_id": 99})
        )
        error = await recv_json(pharmacy_ws)
        assert (error["type"], error["error"]["code"], error["ref"]) == ("error", "validation_error", 10)


async def test_pong_tells_a_live_only_connection_where_to_resume(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    new_request(server, patient, pharmacy)
    new_request(server, patient, pharmacy)
    async with open_ws(server, pharmacy) as ws:  # no ?after: live events only
        await ws.send('{"type": "ping", "id": 1}')
        assert await recv_json(ws) == {"type": "pong", "ref": 1, "last_event_id": 2}
    third = new_request(server, patient, pharmacy)  # while this client is away
    async with open_ws(server, pharmacy, after=2) as ws:
        event = await recv_json(ws)
        assert (event["event_id"], event["request_id"]) == (3, third)
