"""Access that can be granted and taken away (docs/protocol.md §2, §4; issue 8 items 5 and 6).

Pharmacies that register themselves wait for an operator; logout revokes a refresh token; a
password change or disabling revokes every token and closes live sockets; a socket lives only
as long as its access token unless renewed in-band; ids are never reused.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from medreq.cli import app

from .conftest import Account, ServerProcess, eventually, make_account
from .wire import close_code, db_snapshot, error_code, open_ws, post_request, recv_json

pytestmark = pytest.mark.shared_server

APPROVAL = {"MEDREQ_PHARMACY_REGISTRATION": "approval"}


def operator(server: ServerProcess, *args: str, stdin: str | None = None) -> Any:
    """Run `medreq account …` against the server's data dir, as its operator would."""
    result = CliRunner().invoke(app, ["account", *args, "--data-dir", str(server.data_dir)], input=stdin)
    return result


def register(server: ServerProcess, username: str, role: str, name: str) -> httpx.Response:
    body = {"username": username, "password": "correct horse battery", "role": role, "name": name}
    return httpx.post(f"{server.url}/auth/register", json=body, timeout=10)


def login(server: ServerProcess, username: str, password: str = "correct horse battery") -> httpx.Response:
    return httpx.post(
        f"{server.url}/auth/token", json={"username": username, "password": password}, timeout=10
    )


def pharmacy_ids(server: ServerProcess, patient: Account) -> list[int]:
    listed = httpx.get(f"{server.url}/pharmacies/", headers=patient.headers, timeout=10)
    assert listed.status_code == 200
    return [p["id"] for p in listed.json()["results"]]


# --- pharmacy registration: approval, open, closed -------------------------------------------


def test_self_registered_pharmacy_waits_for_approval(server_factory: Any) -> None:
    server = server_factory(APPROVAL)
    patient = make_account(server.url, "patient")
    created = register(server, "lifecare-lookalike", "pharmacy", "LifeCare Pharmacy")
    assert created.status_code == 201
    assert created.json()["status"] == "pending"
    pharmacy_id = created.json()["id"]

    # it can sign in and read its own account ...
    tokens = login(server, "lifecare-lookalike")
    assert tokens.status_code == 200
    assert tokens.json()["account"]["status"] == "pending"
    me = httpx.get(f"{server.url}/auth/me", headers={"Authorization": f"Bearer {tokens.json()['access']}"})
    assert me.json()["status"] == "pending"
    # ... but no patient sees it or can send it a prescription
    assert pharmacy_id not in pharmacy_ids(server, patient)
    before = db_snapshot(server)
    refused = post_request(server, patient, pharmacy=pharmacy_id, quantity=1, medicine_name="Insulin")
    assert refused.status_code == 422
    assert error_code(refused) == "validation_error"
    assert refused.json()["error"]["fields"] == {"pharmacy": "no such pharmacy"}
    assert db_snapshot(server) == before

    listed = operator(server, "list", "--pending", "--json")
    assert listed.exit_code == 0, listed.output
    assert '"username": "lifecare-lookalike"' in listed.output
    approved = operator(server, "approve", "lifecare-lookalike")
    assert approved.exit_code == 0, approved.output
    assert "active" in approved.output

    # the running server sees the approval (through account_changes, within its poll
    # interval) without a restart
    assert pharmacy_id in pharmacy_ids(server, patient)
    sent = eventually(
        lambda: post_request(server, patient, pharmacy=pharmacy_id, quantity=1, medicine_name="Insulin"),
        lambda response: response.status_code == 201,
    )
    assert sent.status_code == 201, sent.text


def test_pharmacy_registration_open_and_closed(server_factory: Any) -> None:
    open_server = server_factory({"MEDREQ_PHARMACY_REGISTRATION": "open"})
    created = register(open_server, "corner", "pharmacy", "Corner Pharmacy")
    assert created.status_code == 201
    assert created.json()["status"] == "active"

    closed = server_factory({"MEDREQ_PHARMACY_REGISTRATION": "closed"})
    before = db_snapshot(closed)
    refused = register(closed, "corner", "pharmacy", "Corner Pharmacy")
    assert refused.status_code == 403
    assert error_code(refused) == "forbidden"
    assert db_snapshot(closed) == before
    # patients still register themselves
    assert register(closed, "alice", "patient", "Alice").status_code == 201


def test_operator_commands_report_unknown_accounts(server: ServerProcess) -> None:
    for command in ("approve", "disable", "enable"):
        result = operator(server, command, "nobody-here")
        assert result.exit_code == 1
        assert "not_found" in result.output


# --- logout and password change ---------------------------------------------------------------


def test_logout_revokes_that_refresh_token_only(server: ServerProcess, patient: Account) -> None:
    other_session = login(server, patient.username).json()
    out = httpx.post(
        f"{server.url}/auth/logout", json={"refresh": patient.refresh}, headers=patient.headers, timeout=10
    )
    assert out.status_code == 204
    refused = httpx.post(f"{server.url}/auth/refresh", json={"refresh": patient.refresh}, timeout=10)
    assert refused.status_code == 401
    assert error_code(refused) == "unauthorized"
    still = httpx.post(f"{server.url}/auth/refresh", json={"refresh": other_session["refresh"]}, timeout=10)
    assert still.status_code == 200
    # logging out twice is harmless; another account's refresh token cannot be revoked
    again = httpx.post(
        f"{server.url}/auth/logout", json={"refresh": patient.refresh}, headers=patient.headers, timeout=10
    )
    assert again.status_code == 204
    stranger = make_account(server.url, "patient")
    foreign = httpx.post(
        f"{server.url}/auth/logout",
        json={"refresh": other_session["refresh"]},
        headers=stranger.headers,
        timeout=10,
    )
    assert foreign.status_code == 403


def test_logout_needs_a_bearer_token_and_a_body(server: ServerProcess, patient: Account) -> None:
    anonymous = httpx.post(f"{server.url}/auth/logout", json={"refresh": patient.refresh}, timeout=10)
    assert anonymous.status_code == 401
    empty = httpx.post(f"{server.url}/auth/logout", json={}, headers=patient.headers, timeout=10)
    assert empty.status_code == 422
    assert error_code(empty) == "validation_error"


async def test_password_change_revokes_every_token_and_closes_sockets(
    server: ServerProcess, pharmacy: Account
) -> None:
    async with open_ws(server, pharmacy) as ws:
        await ws.send('{"type":"ping","id":1}')
        assert (await recv_json(ws))["type"] == "pong"

        before = db_snapshot(server)
        wrong = httpx.post(
            f"{server.url}/auth/password",
            json={"old": "not the password", "new": "brand new password"},
            headers=pharmacy.headers,
            timeout=10,
        )
        assert wrong.status_code == 422
        assert wrong.json()["error"]["fields"] == {"old": "is not the current password"}
        short = httpx.post(
            f"{server.url}/auth/password",
            json={"old": pharmacy.password, "new": "short"},
            headers=pharmacy.headers,
            timeout=10,
        )
        assert short.status_code == 422
        # a wrong old password only counts towards the login back-off
        after = db_snapshot(server)
        assert _without_login_counters(after, server) == _without_login_counters(before, server)

        changed = httpx.post(
            f"{server.url}/auth/password",
            json={"old": pharmacy.password, "new": "brand new password"},
            headers=pharmacy.headers,
            timeout=10,
        )
        assert changed.status_code == 204
        assert await close_code(ws, timeout=5) == 4401

    assert httpx.get(f"{server.url}/auth/me", headers=pharmacy.headers).status_code == 401
    assert httpx.post(f"{server.url}/auth/refresh", json={"refresh": pharmacy.refresh}).status_code == 401
    assert login(server, pharmacy.username, pharmacy.password).status_code == 401
    assert login(server, pharmacy.username, "brand new password").status_code == 200


def _without_login_counters(snapshot: dict[str, Any], server: ServerProcess) -> dict[str, Any]:
    """The snapshot without the accounts' login back-off columns, found by name (a migration that
    adds a column appends it, so positions from the end shift)."""
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        names = [column[1] for column in db.execute("pragma table_info(accounts)")]
    finally:
        db.close()
    keep = [i for i, name in enumerate(names) if name not in ("failed_logins", "login_blocked_until")]
    rows = dict(snapshot["rows"])
    rows["accounts"] = [tuple(row[i] for i in keep) for row in rows["accounts"]]
    return {**snapshot, "rows": rows}


# --- disabling from the operator CLI reaches running servers ------------------------------------


async def test_disable_closes_live_sockets_and_blocks_sign_in(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    async with open_ws(server, patient) as ws:
        await ws.send('{"type":"ping"}')
        await recv_json(ws)
        disabled = await asyncio.to_thread(operator, server, "disable", patient.username)
        assert disabled.exit_code == 0, disabled.output
        assert await close_code(ws, timeout=5) == 4401
    assert httpx.get(f"{server.url}/auth/me", headers=patient.headers).status_code == 401
    refused = login(server, patient.username, patient.password)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "this account is disabled"
    # the pharmacy is untouched
    assert httpx.get(f"{server.url}/auth/me", headers=pharmacy.headers).status_code == 200

    enabled = await asyncio.to_thread(operator, server, "enable", patient.username)
    assert enabled.exit_code == 0, enabled.output
    assert login(server, patient.username, patient.password).status_code == 200
    # tokens from before the disable stay revoked
    assert httpx.get(f"{server.url}/auth/me", headers=patient.headers).status_code == 401


def test_reset_password_from_the_cli(server: ServerProcess, patient: Account) -> None:
    result = operator(server, "reset-password", patient.username, "--password-stdin", stdin="reset-pass-123\n")
    assert result.exit_code == 0, result.output
    assert httpx.get(f"{server.url}/auth/me", headers=patient.headers).status_code == 401
    assert login(server, patient.username, "reset-pass-123").status_code == 200


# --- a socket lives as long as its access token ------------------------------------------------


async def test_socket_closes_at_token_expiry_unless_renewed(server_factory: Any) -> None:
    server = server_factory({"MEDREQ_ACCESS_TOKEN_TTL": "4"})
    pharmacy = make_account(server.url, "pharmacy")
    other = make_account(server.url, "pharmacy")
    async with open_ws(server, pharmacy) as expiring, open_ws(server, pharmacy) as renewed:
        await asyncio.sleep(2.5)  # so the fresh token expires well after the first one
        fresh = httpx.post(f"{server.url}/auth/refresh", json={"refresh": pharmacy.refresh}).json()["access"]
        # a token of another account, or a bad one, is refused and changes nothing
        await renewed.send(f'{{"type":"auth","id":"x","token":"{other.access}"}}')
        refused = await recv_json(renewed)
        assert (refused["type"], refused["ref"], refused["error"]["code"]) == ("error", "x", "forbidden")
        await renewed.send('{"type":"auth","id":"y","token":"not-a-jwt"}')
        assert (await recv_json(renewed))["error"]["code"] == "unauthorized"
        await renewed.send(f'{{"type":"auth","id":"z","token":"{fresh}"}}')
        ack = await recv_json(renewed)
        assert (ack["type"], ack["ref"]) == ("ack", "z")
        assert isinstance(ack["expires_at"], int)

        assert await close_code(expiring, timeout=8) == 4401
        assert not renewed.close_code
        # the renewed socket outlives the first token
        await renewed.send('{"type":"ping","id":"alive"}')
        assert (await recv_json(renewed))["ref"] == "alive"


# --- ids are never reused ------------------------------------------------------------------------


async def test_a_deleted_accounts_id_and_token_name_no_one_else(server: ServerProcess) -> None:
    first = make_account(server.url, "pharmacy")
    victim = make_account(server.url, "pharmacy")
    # an operator deletes the newest account by hand (there is no API for it)
    db = sqlite3.connect(server.data_dir / "medreq.db")
    with db:
        db.execute("delete from accounts where id = ?", (victim.id,))
    db.close()
    newcomer = make_account(server.url, "pharmacy")
    assert newcomer.id > victim.id > first.id
    assert httpx.get(f"{server.url}/auth/me", headers=victim.headers).status_code == 401
    async with open_ws(server, newcomer, token=victim.access) as ws:
        assert await close_code(ws) in (4401, 4403)


@pytest.mark.parametrize("field", ["refresh"])
def test_refresh_of_a_disabled_account_is_refused(server: ServerProcess, patient: Account, field: str) -> None:
    assert operator(server, "disable", patient.username).exit_code == 0
    refused = httpx.post(f"{server.url}/auth/refresh", json={field: patient.refresh}, timeout=10)
    assert refused.status_code == 401
