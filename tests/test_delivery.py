"""docs/protocol.md §5: nothing acknowledged is lost, replay has no gaps and no duplicates."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from .conftest import Account, ServerProcess, make_account
from .wire import assert_silent, open_ws, post_request, recv_events, recv_json

pytestmark = pytest.mark.shared_server


def send_requests(server: ServerProcess, patient: Account, pharmacy: Account, count: int) -> list[int]:
    ids = []
    for i in range(count):
        response = post_request(server, patient, pharmacy=pharmacy.id, medicine_name=f"Medicine {i}")
        assert response.status_code == 201, response.text
        ids.append(response.json()["request_id"])
    return ids


async def test_offline_pharmacy_gets_every_request_with_after_zero(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    ids = send_requests(server, patient, pharmacy, 5)
    async with open_ws(server, pharmacy, after=0) as ws:
        events = await recv_events(ws, 5)
        assert [e["event_id"] for e in events] == [1, 2, 3, 4, 5]
        assert [e["request_id"] for e in events] == ids
        assert {e["type"] for e in events} == {"new_request"}
        await assert_silent(ws)
        # and then live ones continue the sequence
        [live_id] = send_requests(server, patient, pharmacy, 1)
        live = await recv_json(ws)
        assert (live["event_id"], live["request_id"]) == (6, live_id)


async def test_connect_without_after_gets_only_live_events(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    send_requests(server, patient, pharmacy, 2)
    async with open_ws(server, pharmacy) as ws:
        await assert_silent(ws)
        [live_id] = send_requests(server, patient, pharmacy, 1)
        event = await recv_json(ws)
        assert (event["event_id"], event["request_id"]) == (3, live_id)


async def test_broken_connection_resumes_without_gaps_or_duplicates(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    seen: list[int] = []
    async with open_ws(server, pharmacy, after=0) as ws:
        send_requests(server, patient, pharmacy, 3)
        seen += [e["event_id"] for e in await recv_events(ws, 3)]
        ws.transport.abort()  # a broken connection, not a clean close
    send_requests(server, patient, pharmacy, 4)  # while offline
    async with open_ws(server, pharmacy, after=seen[-1]) as ws:
        seen += [e["event_id"] for e in await recv_events(ws, 4)]
        send_requests(server, patient, pharmacy, 2)
        seen += [e["event_id"] for e in await recv_events(ws, 2)]
        await assert_silent(ws)
    assert seen == list(range(1, 10))


async def test_resume_message_replays_then_acks(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    send_requests(server, patient, pharmacy, 3)
    async with open_ws(server, pharmacy) as ws:
        await ws.send(json.dumps({"type": "resume", "id": "r", "after": 1}))
        replayed = await recv_events(ws, 2)
        assert [e["event_id"] for e in replayed] == [2, 3]
        ack = await recv_json(ws)
        assert ack == {"type": "ack", "ref": "r", "after": 1, "replayed": 2}
        await assert_silent(ws)


@pytest.mark.own_server
async def test_restart_between_request_and_pharmacy_connect_loses_nothing(
    server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes
) -> None:
    created = post_request(server, patient, pharmacy=pharmacy.id, image=png_bytes, quantity=3)
    assert created.status_code == 201
    server.kill()  # not even a graceful shutdown
    server.start()
    async with open_ws(server, pharmacy, after=0) as ws:
        event = await recv_json(ws)
        assert (event["type"], event["event_id"], event["request_id"]) == (
            "new_request",
            1,
            created.json()["request_id"],
        )
        image = httpx.get(event["image_url"])
        assert image.content == png_bytes
    listed = httpx.get(f"{server.url}/medicine/request/", headers=pharmacy.headers).json()["results"]
    assert [r["id"] for r in listed] == [created.json()["request_id"]]


async def test_concurrent_requests_arrive_in_order_without_gaps(
    server: ServerProcess, pharmacy: Account
) -> None:
    patients = [make_account(server.url, "patient") for _ in range(4)]
    async with open_ws(server, pharmacy) as ws, httpx.AsyncClient(timeout=30) as http:

        async def burst(patient: Account) -> list[int]:
            ids = []
            for i in range(10):
                response = await http.post(
                    f"{server.url}/medicine/request/",
                    data={"pharmacy": str(pharmacy.id), "quantity": "1", "medicine_name": f"M{i}"},
                    headers=patient.headers,
                )
                assert response.status_code == 201, response.text
                ids.append(response.json()["request_id"])
            return ids

        created = [i for ids in await asyncio.gather(*(burst(p) for p in patients)) for i in ids]
        events = await recv_events(ws, len(created))
        assert [e["event_id"] for e in events] == list(range(1, len(created) + 1))
        assert sorted(e["request_id"] for e in events) == sorted(created)
        await assert_silent(ws)


async def test_replay_carries_fresh_media_signatures(
    server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes
) -> None:
    post_request(server, patient, pharmacy=pharmacy.id, image=png_bytes)
    async with open_ws(server, pharmacy, after=0) as ws:
        first = await recv_json(ws)
    await asyncio.sleep(1.1)  # signatures carry a whole-second expiry
    async with open_ws(server, pharmacy, after=0) as ws:
        again = await recv_json(ws)
    assert first["event_id"] == again["event_id"] == 1
    assert first["image_url"] != again["image_url"]
    assert httpx.get(again["image_url"]).status_code == 200
