"""docs/protocol.md §3 unread: `<Request>` carries the caller's events of that request after its
last `read` mark, on the list and detail endpoints, and the count moves with read receipts."""

from __future__ import annotations

import json

import httpx
import pytest

from medreq.protocol import ListQuery, RequestForm
from medreq.service import MedreqService

from .conftest import Account, ServerProcess
from .test_service import account, service, store_settings  # noqa: F401 (the store-parametrised fixtures)
from .wire import db_snapshot, error_code, open_ws, post_request, recv_json

pytestmark = pytest.mark.shared_server


def unread(server: ServerProcess, account: Account, request_id: int) -> tuple[int, int]:
    """(the count in the list, the count in the detail) for one request."""
    listed = httpx.get(f"{server.url}/medicine/request/", headers=account.headers, timeout=10).json()
    [in_list] = [r["unread"] for r in listed["results"] if r["id"] == request_id]
    detail = httpx.get(f"{server.url}/medicine/request/{request_id}/", headers=account.headers, timeout=10)
    return in_list, detail.json()["unread"]


async def test_unread_counts_move_with_read_receipts(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    created = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Amoxicillin")
    assert created.status_code == 201
    request_id = created.json()["request_id"]
    assert created.json()["data"]["unread"] == 0  # the patient has no event of it yet
    assert unread(server, pharmacy, request_id) == (1, 1)  # new_request
    for text in ("Which strength?", "We have 250mg"):
        posted = httpx.post(
            f"{server.url}/medicine/request/{request_id}/messages/",
            json={"text": text},
            headers=pharmacy.headers,
            timeout=10,
        )
        assert posted.status_code == 201
    assert unread(server, patient, request_id) == (2, 2)  # two messages
    assert unread(server, pharmacy, request_id) == (1, 1)  # its own messages are not unread

    async with open_ws(server, patient, after=0) as ws:
        first, second = await recv_json(ws), await recv_json(ws)
        await ws.send(
            json.dumps(
                {"type": "read", "id": 1, "request_id": request_id, "up_to_event_id": first["event_id"]}
            )
        )
        assert (await recv_json(ws))["type"] == "ack"
        assert unread(server, patient, request_id) == (1, 1)
        await ws.send(
            json.dumps(
                {"type": "read", "id": 2, "request_id": request_id, "up_to_event_id": second["event_id"]}
            )
        )
        assert (await recv_json(ws))["type"] == "ack"
        assert unread(server, patient, request_id) == (0, 0)
        # a receipt never lowers the mark
        await ws.send(json.dumps({"type": "read", "id": 3, "request_id": request_id, "up_to_event_id": 0}))
        assert (await recv_json(ws))["type"] == "ack"
        assert unread(server, patient, request_id) == (0, 0)

    answered = httpx.post(
        f"{server.url}/medicine/response/",
        data={"request_id": str(request_id), "status": "ACCEPTED"},
        headers=pharmacy.headers,
        timeout=10,
    )
    assert answered.status_code == 200
    # the pharmacy's own answer (request_updated) and the patient's receipts are not news for it
    assert answered.json()["data"]["unread"] == 1
    assert unread(server, patient, request_id) == (1, 1)  # pharmacy_response


async def test_read_receipt_beyond_the_last_event_is_refused_and_changes_nothing(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    request_id = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="A").json()["request_id"]
    before = db_snapshot(server)
    async with open_ws(server, pharmacy) as ws:
        await ws.send(json.dumps({"type": "read", "id": 1, "request_id": request_id, "up_to_event_id": 99}))
        reply = await recv_json(ws)
        assert (reply["type"], reply["error"]["code"]) == ("error", "validation_error")
    assert db_snapshot(server) == before
    assert unread(server, pharmacy, request_id) == (1, 1)
    missing = httpx.get(
        f"{server.url}/medicine/request/{request_id + 100}/", headers=pharmacy.headers, timeout=10
    )
    assert (missing.status_code, error_code(missing)) == (404, "not_found")


async def test_unread_counts_on_each_store(service: MedreqService) -> None:  # noqa: F811
    patient = await account(service, "patient", "pat")
    pharmacy = await account(service, "pharmacy", "pha")
    ids = []
    for name in ("A", "B", "C"):
        body, _ = await service.create_request(
            patient, RequestForm(pharmacy=pharmacy.id, quantity=1, medicine_name=name)
        )
        ids.append(body.request_id)
    await service.post_message(patient, ids[0], "hello")
    listed = (await service.list_requests(pharmacy, ListQuery())).results
    assert {r.id: r.unread for r in listed} == {ids[0]: 2, ids[1]: 1, ids[2]: 1}
    await service.mark_read(pharmacy, ids[0], 1)  # the new_request of A, not the message
    await service.mark_read(pharmacy, ids[2], 3)
    listed = (await service.list_requests(pharmacy, ListQuery())).results
    assert {r.id: r.unread for r in listed} == {ids[0]: 1, ids[1]: 1, ids[2]: 0}
    assert (await service.request_detail(pharmacy, ids[0])).unread == 1
    assert {r.unread for r in (await service.list_requests(patient, ListQuery())).results} == {0}
