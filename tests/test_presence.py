"""docs/protocol.md §4 presence: pharmacies in `GET /pharmacies/` carry `online`, and a patient's socket
hears `presence` for the pharmacies of its pending requests when they come or go (not stored)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from .conftest import REDIS_URL, Account, ServerProcess, make_account
from .wire import assert_silent, open_ws, post_request, recv_json


def online(server: ServerProcess, patient: Account, pharmacy: Account) -> bool:
    listed = httpx.get(f"{server.url}/pharmacies/", headers=patient.headers, timeout=10).json()["results"]
    [entry] = [p for p in listed if p["id"] == pharmacy.id]
    return bool(entry["online"])


async def test_pharmacy_presence_reaches_its_pending_patients_only(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    bystander = make_account(server.url, "patient")
    assert post_request(server, patient, pharmacy=pharmacy.id, medicine_name="A").status_code == 201
    assert not online(server, patient, pharmacy)
    async with open_ws(server, patient) as patient_ws, open_ws(server, bystander) as bystander_ws:
        async with open_ws(server, pharmacy), open_ws(server, pharmacy):  # two devices: one change
            event = await recv_json(patient_ws)
            event.pop("trace_id", None)  # the pharmacy socket's trace, when tracing is on
            assert event == {
                "type": "presence",
                "event_id": None,
                "timestamp": event["timestamp"],
                "pharmacy_id": pharmacy.id,
                "online": True,
            }
            assert online(server, patient, pharmacy)
            await assert_silent(patient_ws)
        event = await recv_json(patient_ws)
        assert (event["type"], event["pharmacy_id"], event["online"]) == ("presence", pharmacy.id, False)
        assert not online(server, patient, pharmacy)
        await assert_silent(bystander_ws)  # no pending request to that pharmacy
    # not stored: a replay from the start holds none
    async with open_ws(server, patient, after=0) as replay:
        await replay.send('{"type":"ping"}')
        assert (await recv_json(replay))["type"] == "pong"


async def test_presence_across_workers_and_a_killed_worker_expires(
    postgres_url: str,
    tmp_path: Path,
) -> None:
    ttl = 1.5
    shared = {
        "MEDREQ_DATABASE_URL": postgres_url,
        "MEDREQ_REDIS_URL": REDIS_URL,
        "MEDREQ_JWT_SECRET": "test-presence-secret-" + tmp_path.name,
        "MEDREQ_PRESENCE_TTL": str(ttl),
    }
    a = ServerProcess(tmp_path / "a", env=shared)
    b = ServerProcess(tmp_path / "b", env=shared)
    a.start()
    b.start()
    try:
        patient = make_account(a.url, "patient")
        pharmacy = make_account(a.url, "pharmacy")
        assert post_request(a, patient, pharmacy=pharmacy.id, medicine_name="A").status_code == 201
        async with open_ws(a, patient) as patient_ws:
            assert not online(a, patient, pharmacy)
            pharmacy_ws = await open_ws(b, pharmacy)
            event = await recv_json(patient_ws, timeout=1.0)  # within a second, from the other worker
            assert (event["type"], event["pharmacy_id"], event["online"]) == ("presence", pharmacy.id, True)
            assert online(a, patient, pharmacy)

            b.kill()  # kill -9: no goodbye, the claim must expire on its own
            deadline = time.monotonic() + ttl + 1.0  # the TTL, and slack for a loaded machine
            still = online(a, patient, pharmacy)
            while still and time.monotonic() < deadline:  # bounded: polls for ttl + 1 s at most
                await asyncio.sleep(0.1)
                still = online(a, patient, pharmacy)
            assert not still
            # the surviving worker's sweep tells the patient (within a third of the TTL more)
            event = await recv_json(patient_ws, timeout=ttl + 2.0)
            assert (event["type"], event["pharmacy_id"], event["online"]) == ("presence", pharmacy.id, False)
            await asyncio.wait_for(pharmacy_ws.close(), 2)
    finally:
        a.stop()
        b.stop()
