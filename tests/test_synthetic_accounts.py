"""Synthetic (simulation) accounts: a sandbox of their own, removed with everything they made."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import httpx
import pytest

from medreq.simulate.accounts import Role, create_account

from .conftest import Account, ServerProcess, make_account
from .wire import db_snapshot, error_code, post_request, post_response

pytestmark = pytest.mark.timeout(60)


def make_synthetic(base_url: str, role: Role) -> Account:
    return create_account(
        base_url,
        role,
        username=f"sim-{uuid.uuid4().hex[:10]}",
        password="sim-password",
        name=f"Sim {role}",
        synthetic=True,
    )


def pharmacy_ids(server: ServerProcess, account: Account) -> list[int]:
    listed = httpx.get(f"{server.url}/pharmacies/", headers=account.headers)
    assert listed.status_code == 200, listed.text
    return [p["id"] for p in listed.json()["results"]]


def count(server: ServerProcess, sql: str, *args: Any) -> int:
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        return int(db.execute(sql, args).fetchone()[0])
    finally:
        db.close()


def test_synthetic_pharmacies_are_hidden_from_real_patients_and_back(server: ServerProcess) -> None:
    real_patient, real_pharmacy = make_account(server.url, "patient"), make_account(server.url, "pharmacy")
    sim_patient, sim_pharmacy = make_synthetic(server.url, "patient"), make_synthetic(server.url, "pharmacy")
    assert pharmacy_ids(server, real_patient) == [real_pharmacy.id]
    assert pharmacy_ids(server, sim_patient) == [sim_pharmacy.id]


def test_requests_never_cross_the_sandbox(server: ServerProcess) -> None:
    real_patient, real_pharmacy = make_account(server.url, "patient"), make_account(server.url, "pharmacy")
    sim_patient, sim_pharmacy = make_synthetic(server.url, "patient"), make_synthetic(server.url, "pharmacy")
    before = db_snapshot(server)
    for patient, pharmacy in ((real_patient, sim_pharmacy), (sim_patient, real_pharmacy)):
        refused = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Aspirin")
        assert refused.status_code == 422
        assert error_code(refused) == "validation_error"
        assert refused.json()["error"]["fields"] == {"pharmacy": "no such pharmacy"}
    assert db_snapshot(server) == before


def test_a_real_account_cannot_be_removed_over_the_api(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    assert post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Aspirin").status_code == 201
    before = db_snapshot(server)
    for account in (patient, pharmacy):
        refused = httpx.delete(f"{server.url}/auth/me", headers=account.headers)
        assert refused.status_code == 403
        assert error_code(refused) == "forbidden"
    assert httpx.delete(f"{server.url}/auth/me").status_code == 401
    assert db_snapshot(server) == before


def test_removing_synthetic_accounts_leaves_no_trace_and_no_real_data_touched(
    server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes, wav_bytes: bytes
) -> None:
    real = post_request(server, patient, pharmacy=pharmacy.id, image=png_bytes)
    assert real.status_code == 201
    assert (
        post_response(server, pharmacy, request_id=real.json()["request_id"], audio=wav_bytes).status_code
        == 200
    )
    real_rows = {
        table: count(server, f'select count(*) from "{table}"')
        for table in ("accounts", "medicine_requests", "events")
    }
    real_media = sorted(p.name for p in (server.data_dir / "media").rglob("*.*"))

    sim_patient, sim_pharmacy = make_synthetic(server.url, "patient"), make_synthetic(server.url, "pharmacy")
    for _ in range(2):
        sent = post_request(server, sim_patient, pharmacy=sim_pharmacy.id, image=png_bytes)
        assert sent.status_code == 201, sent.text
        request_id = sent.json()["request_id"]
        message = httpx.post(
            f"{server.url}/medicine/request/{request_id}/messages/",
            json={"text": "hi"},
            headers=sim_patient.headers,
        )
        assert message.status_code == 201, message.text
        assert post_response(server, sim_pharmacy, request_id=request_id, audio=wav_bytes).status_code == 200
    assert count(server, "select count(*) from accounts where synthetic") == 2

    for account in (sim_patient, sim_pharmacy):
        removed = httpx.delete(f"{server.url}/auth/me", headers=account.headers)
        assert removed.status_code == 204, removed.text
        assert httpx.get(f"{server.url}/auth/me", headers=account.headers).status_code == 401

    ids = (sim_patient.id, sim_pharmacy.id)
    assert count(server, "select count(*) from accounts where synthetic") == 0
    assert count(server, "select count(*) from medicine_requests where patient_id in (?, ?)", *ids) == 0
    assert count(server, "select count(*) from events where account_id in (?, ?)", *ids) == 0
    assert count(server, "select count(*) from messages where sender_id in (?, ?)", *ids) == 0
    for table, rows in real_rows.items():
        assert count(server, f'select count(*) from "{table}"') == rows
    assert sorted(p.name for p in (server.data_dir / "media").rglob("*.*")) == real_media
    assert (
        httpx.get(f"{server.url}/medicine/request/", headers=patient.headers).json()["results"][0]["id"]
        == (real.json()["request_id"])
    )


def test_a_server_can_refuse_synthetic_accounts(server_factory: Any) -> None:
    server: ServerProcess = server_factory(env={"MEDREQ_SYNTHETIC_ACCOUNTS": "false"})
    body = {
        "username": "sim-one",
        "password": "sim-password",
        "role": "patient",
        "name": "Sim",
        "synthetic": True,
    }
    before = db_snapshot(server)
    refused = httpx.post(f"{server.url}/auth/register", json=body)
    assert refused.status_code == 403
    assert error_code(refused) == "forbidden"
    assert db_snapshot(server) == before
