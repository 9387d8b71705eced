"""The whole seed flow, end to end, over real sockets: register, connect, request, answer."""

from __future__ import annotations

import json

import httpx
import pytest

from .conftest import Account, ServerProcess, make_account
from .wire import assert_silent, db_snapshot, open_ws, post_request, post_response, recv_json

pytestmark = pytest.mark.shared_server


async def test_request_reaches_pharmacy_and_answer_reaches_patient(
    server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes
) -> None:
    async with open_ws(server, pharmacy) as pharmacy_ws, open_ws(server, patient) as patient_ws:
        created = post_request(
            server,
            patient,
            pharmacy=pharmacy.id,
            quantity=5,
            image=png_bytes,
            medicine_name="Amoxicillin 500mg",
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["message"] == "Medicine request sent successfully"
        request_id = body["request_id"]
        assert body["data"]["status"] == "PENDING"
        assert body["data"]["patient"] == {"id": patient.id, "name": patient.name, "phone": patient.phone}

        event = await recv_json(pharmacy_ws)
        assert event["type"] == "new_request"
        assert event["event_id"] == 1
        assert event["request_id"] == request_id
        assert (event["patient_id"], event["patient_name"], event["patient_phone"]) == (
            patient.id,
            patient.name,
            patient.phone,
        )
        assert event["quantity"] == 5
        assert event["medicine_name"] == "Amoxicillin 500mg"
        assert event["timestamp"].endswith("+00:00")
        image = httpx.get(event["image_url"])  # signed: no token needed, as for <img src>
        assert image.status_code == 200
        assert image.content == png_bytes
        assert image.headers["content-type"] == "image/png"

        await pharmacy_ws.send(
            json.dumps(
                {
                    "type": "response",
                    "id": "a1",
                    "request_id": request_id,
                    "status": "ACCEPTED",
                    "message": "Ready",
                }
            )
        )
        # the ack and this connection's own request_updated, in either order
        replies = {m["type"]: m for m in [await recv_json(pharmacy_ws), await recv_json(pharmacy_ws)]}
        ack, updated = replies["ack"], replies["request_updated"]
        assert ack["ref"] == "a1"
        assert ack["data"]["status"] == "ACCEPTED"
        assert (updated["request_id"], updated["status"], updated["event_id"]) == (request_id, "ACCEPTED", 2)

        answer = await recv_json(patient_ws)
        assert answer["type"] == "pharmacy_response"
        assert answer["event_id"] == 1
        assert (answer["request_id"], answer["status"], answer["message"]) == (
            request_id,
            "ACCEPTED",
            "Ready",
        )
        assert answer["audio_url"] is None
        assert (answer["pharmacy_id"], answer["pharmacy_name"]) == (pharmacy.id, pharmacy.name)
        await assert_silent(patient_ws)


async def test_answer_with_audio_over_rest_plays_from_its_url(
    server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes, wav_bytes: bytes
) -> None:
    request_id = post_request(server, patient, pharmacy=pharmacy.id, image=png_bytes).json()["request_id"]
    async with open_ws(server, patient) as patient_ws:
        answered = post_response(
            server,
            pharmacy,
            request_id=request_id,
            status="REJECTED",
            text_message="Out of stock",
            audio=wav_bytes,
        )
        assert answered.status_code == 200, answered.text
        assert answered.json()["message"] == "Response sent successfully"
        response = answered.json()["data"]["response"]
        assert (response["status"], response["message"]) == ("REJECTED", "Out of stock")
        event = await recv_json(patient_ws)
        assert event["type"] == "pharmacy_response"
        assert event["status"] == "REJECTED"
        audio = httpx.get(event["audio_url"])
        assert audio.status_code == 200
        assert audio.content == wav_bytes
        assert audio.headers["content-type"] == "audio/wav"


async def test_two_connections_of_one_account_both_receive(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    async with open_ws(server, pharmacy) as first, open_ws(server, pharmacy) as second:
        created = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Ibuprofen")
        assert created.status_code == 201
        for ws in (first, second):
            event = await recv_json(ws)
            assert (event["type"], event["request_id"], event["event_id"]) == (
                "new_request",
                created.json()["request_id"],
                1,
            )


async def test_other_device_of_answering_pharmacy_gets_request_updated(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    request_id = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Insulin").json()[
        "request_id"
    ]
    async with (
        open_ws(server, pharmacy, after=1) as counter,
        open_ws(server, pharmacy, after=1) as back_office,
    ):
        await counter.send(json.dumps({"type": "response", "request_id": request_id, "status": "REJECTED"}))
        assert {(await recv_json(counter))["type"] for _ in range(2)} == {"ack", "request_updated"}
        synced = await recv_json(back_office)
        assert (synced["type"], synced["request_id"], synced["status"]) == (
            "request_updated",
            request_id,
            "REJECTED",
        )


@pytest.mark.own_server
def test_pharmacies_list_and_health_and_openapi(server: ServerProcess, patient: Account) -> None:
    pharmacies = [make_account(server.url, "pharmacy", name=f"Pharmacy {i}") for i in range(2)]
    listed = httpx.get(f"{server.url}/pharmacies/", headers=patient.headers).json()["results"]
    assert listed == [{"id": p.id, "name": p.name, "online": False} for p in pharmacies]  # none connected
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/medicine/request/", "/medicine/response/", "/auth/token"} <= set(spec["paths"])


async def test_retry_with_the_same_idempotency_key_creates_nothing_new(
    server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes
) -> None:
    async with open_ws(server, pharmacy) as ws:
        first = post_request(
            server, patient, pharmacy=pharmacy.id, image=png_bytes, headers={"Idempotency-Key": "rx-42"}
        )
        assert first.status_code == 201
        assert (await recv_json(ws))["request_id"] == first.json()["request_id"]
        before = db_snapshot(server)
        retry = post_request(
            server, patient, pharmacy=pharmacy.id, image=png_bytes, headers={"Idempotency-Key": "rx-42"}
        )
        assert retry.status_code == 201
        assert retry.json()["request_id"] == first.json()["request_id"]
        assert db_snapshot(server) == before  # no row, no event, no second file
        await assert_silent(ws)
        other = post_request(
            server, patient, pharmacy=pharmacy.id, image=png_bytes, headers={"Idempotency-Key": "rx-43"}
        )
        assert other.json()["request_id"] != first.json()["request_id"]
