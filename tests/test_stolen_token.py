"""A stolen access token leaves nothing behind (issue 25, item 1).

With a pharmacy's token an attacker points the account's webhook and a push subscription at its
own server. The owner sees both on every device (`target_added`, stored and replayed), lists and
removes push subscriptions, and a password change, an operator's reset, "log out everywhere" or
disabling the account removes every target at once, so the next patient request goes nowhere
but the owner's sockets. Adding a target needs a password sign-in of the last 10 minutes, which a
token stolen earlier (refreshed or not) does not carry."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from typer.testing import CliRunner

from medreq.cli import app
from medreq.simulate.accounts import Account

from .conftest import ServerProcess, make_account
from .wire import db_snapshot, error_code, open_ws, post_request, recv_json

ENV = {"MEDREQ_WEBHOOK_ALLOW_PRIVATE": "true", "MEDREQ_RATE_LIMIT_ENABLED": "false"}
ATTACKER = "http://127.0.0.1:9"  # the discard port: nothing is ever sent in these tests


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def push_body(endpoint: str) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "keys": {"p256dh": b64url(b"\x04" + os.urandom(64)), "auth": b64url(os.urandom(16))},
    }


def set_webhook(server: ServerProcess, headers: dict[str, str], url: str | None) -> httpx.Response:
    return httpx.put(f"{server.url}/auth/me", json={"webhook_url": url}, headers=headers, timeout=10)


def subscribe(server: ServerProcess, headers: dict[str, str], endpoint: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/push/subscriptions", json=push_body(endpoint), headers=headers, timeout=10
    )


def subscriptions(server: ServerProcess, headers: dict[str, str]) -> list[dict[str, Any]]:
    listed = httpx.get(f"{server.url}/push/subscriptions", headers=headers, timeout=10)
    assert listed.status_code == 200, listed.text
    return list(listed.json()["results"])


def sign_in(server: ServerProcess, username: str, password: str) -> dict[str, str]:
    tokens = httpx.post(
        f"{server.url}/auth/token", json={"username": username, "password": password}, timeout=10
    )
    assert tokens.status_code == 200, tokens.text
    return {"Authorization": f"Bearer {tokens.json()['access']}"}


def outbox(server: ServerProcess, account_id: int) -> list[tuple[str, str, str | None]]:
    """(channel, status, payload) of every outbox row of the account."""
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        query = "select channel, status, payload from webhook_deliveries where account_id = ? order by id"
        return [tuple(row) for row in db.execute(query, (account_id,))]
    finally:
        db.close()


def plant_targets(server: ServerProcess, stolen: dict[str, str]) -> int:
    """What the attacker does with the stolen token: a webhook and a push subscription of its own."""
    hook = set_webhook(server, stolen, f"{ATTACKER}/hook")
    assert hook.status_code == 200, hook.text
    sub = subscribe(server, stolen, f"{ATTACKER}/push/attacker")
    assert sub.status_code == 201, sub.text
    return int(sub.json()["id"])


def assert_no_targets(
    server: ServerProcess, owner: Account, headers: dict[str, str], patient: Account
) -> None:
    """The account has no webhook and no push subscription, and a new request queues nothing."""
    me = httpx.get(f"{server.url}/auth/me", headers=headers, timeout=10).json()
    assert me["webhook_url"] is None
    assert subscriptions(server, headers) == []
    assert all(status == "failed" and payload is None for _, status, payload in outbox(server, owner.id))
    created = post_request(server, patient, pharmacy=owner.id, medicine_name="Insulin")
    assert created.status_code == 201, created.text
    assert outbox(server, owner.id) == [row for row in outbox(server, owner.id) if row[1] == "failed"]


async def test_a_password_change_removes_what_a_stolen_token_planted(server_factory: Any) -> None:
    server: ServerProcess = server_factory(ENV)
    owner = make_account(server.url, "pharmacy", name="Target Pharmacy")
    patient = make_account(server.url, "patient")
    stolen = dict(owner.headers)
    async with open_ws(server, owner) as device:
        subscription_id = plant_targets(server, stolen)
        hook_event, push_event = await recv_json(device), await recv_json(device)
        assert (hook_event["type"], hook_event["channel"], hook_event["target"]) == (
            "target_added",
            "webhook",
            ATTACKER,
        )
        assert hook_event["subscription_id"] is None
        assert "/hook" not in json.dumps(hook_event)  # the origin only: a path may hold a secret
        assert (push_event["type"], push_event["channel"], push_event["target"]) == (
            "target_added",
            "push",
            ATTACKER,
        )
        assert push_event["subscription_id"] == subscription_id
        assert [s["id"] for s in subscriptions(server, owner.headers)] == [subscription_id]
        # a request while the targets stand queues nothing for them: the owner is connected
        changed = httpx.post(
            f"{server.url}/auth/password",
            json={"old": owner.password, "new": "a brand new password"},
            headers=owner.headers,
            timeout=10,
        )
        assert changed.status_code == 204, changed.text
    assert httpx.get(f"{server.url}/auth/me", headers=stolen, timeout=10).status_code == 401
    fresh = sign_in(server, owner.username, "a brand new password")
    assert_no_targets(server, owner, fresh, patient)
    # the events stay: a device that was offline sees them on replay
    async with open_ws(server, owner, after=0, token=fresh["Authorization"].split()[1]) as later:
        replayed = [await recv_json(later) for _ in range(3)]
    assert [e["type"] for e in replayed] == ["target_added", "target_added", "new_request"]


async def test_pending_deliveries_to_planted_targets_are_dropped_with_them(server_factory: Any) -> None:
    server: ServerProcess = server_factory({**ENV, "MEDREQ_WEBHOOK_POLL_INTERVAL": "3600"})
    owner = make_account(server.url, "pharmacy")
    patient = make_account(server.url, "patient")
    plant_targets(server, dict(owner.headers))
    created = post_request(server, patient, pharmacy=owner.id, medicine_name="Morphine")  # owner offline
    assert created.status_code == 201
    assert {(channel, status) for channel, status, _ in outbox(server, owner.id)} >= {("webhook", "pending")}
    logged_out = httpx.post(f"{server.url}/auth/logout-all", headers=owner.headers, timeout=10)
    assert logged_out.status_code == 204, logged_out.text
    rows = outbox(server, owner.id)
    assert rows
    assert all(status == "failed" and payload is None for _, status, payload in rows), rows


@pytest.mark.parametrize("how", ["reset-password", "disable", "logout-all"])
def test_reset_disable_and_logout_everywhere_remove_every_target(server_factory: Any, how: str) -> None:
    server: ServerProcess = server_factory(ENV)
    owner = make_account(server.url, "pharmacy")
    patient = make_account(server.url, "patient")
    plant_targets(server, dict(owner.headers))
    password = owner.password
    if how == "logout-all":
        assert (
            httpx.post(f"{server.url}/auth/logout-all", headers=owner.headers, timeout=10).status_code == 204
        )
    else:
        args = ["account", how, owner.username, "--data-dir", str(server.data_dir)]
        if how == "reset-password":
            password = "reset by the operator"
            args.append("--password-stdin")
        result = CliRunner().invoke(app, args, input=password + "\n")
        assert result.exit_code == 0, result.output
        if how == "disable":
            enabled = CliRunner().invoke(
                app, ["account", "enable", owner.username, "--data-dir", str(server.data_dir)]
            )
            assert enabled.exit_code == 0, enabled.output
    assert httpx.get(f"{server.url}/auth/me", headers=owner.headers, timeout=10).status_code == 401
    assert_no_targets(server, owner, sign_in(server, owner.username, password), patient)


# --- a recent sign-in to add a target ---------------------------------------------------------------


def old_tokens(server: ServerProcess, account: Account, signed_in_ago: int) -> tuple[str, str]:
    """(access, refresh) as the server would have issued them at a sign-in `signed_in_ago` s ago."""
    secret = (server.data_dir / "jwt-secret").read_text().strip()
    now = int(time.time())
    claims = jwt.decode(account.access, options={"verify_signature": False})
    claims.pop("fam", None)  # a sign-in of its own, not a copy of the account's (test_refresh_rotation.py)
    made = []
    for kind in ("access", "refresh"):
        payload = {
            **claims,
            "typ": kind,
            "iat": now,
            "exp": now + 3600,
            "jti": f"{kind}-{now}",
            "auth_time": now - signed_in_ago,
        }
        made.append(jwt.encode(payload, secret, algorithm="HS256"))
    return made[0], made[1]


def test_adding_a_target_needs_a_sign_in_of_the_last_ten_minutes(server_factory: Any) -> None:
    server: ServerProcess = server_factory(ENV)
    owner = make_account(server.url, "pharmacy")
    access, refresh = old_tokens(server, owner, signed_in_ago=601)
    stale = {"Authorization": f"Bearer {access}"}
    refreshed = httpx.post(f"{server.url}/auth/refresh", json={"refresh": refresh}, timeout=10)
    assert refreshed.status_code == 200, refreshed.text
    renewed = {"Authorization": f"Bearer {refreshed.json()['access']}"}  # keeps the old sign-in time
    assert (
        jwt.decode(refreshed.json()["access"], options={"verify_signature": False})["auth_time"]
        < time.time() - 600
    )
    before = db_snapshot(server)
    for headers in (stale, renewed):
        still_valid = httpx.get(f"{server.url}/auth/me", headers=headers, timeout=10)
        assert still_valid.status_code == 200
        hook = set_webhook(server, headers, f"{ATTACKER}/hook")
        push = subscribe(server, headers, f"{ATTACKER}/p")
        for refused in (hook, push):
            assert (refused.status_code, error_code(refused)) == (403, "reauthentication_required")
            assert "sign in again" in refused.json()["error"]["message"]
    assert db_snapshot(server) == before
    assert set_webhook(server, stale, None).status_code == 200  # removing one needs nothing more
    recent, _ = old_tokens(server, owner, signed_in_ago=590)
    assert set_webhook(server, {"Authorization": f"Bearer {recent}"}, f"{ATTACKER}/hook").status_code == 200


def test_tokens_from_before_auth_time_existed_cannot_add_targets(server_factory: Any) -> None:
    server: ServerProcess = server_factory(ENV)
    owner = make_account(server.url, "pharmacy")
    secret = (server.data_dir / "jwt-secret").read_text().strip()
    claims = jwt.decode(owner.access, options={"verify_signature": False})
    del claims["auth_time"]
    legacy = {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}
    refused = subscribe(server, legacy, f"{ATTACKER}/p")
    assert (refused.status_code, error_code(refused)) == (403, "reauthentication_required")


# --- the owner lists and removes push subscriptions ------------------------------------------------


def test_owner_lists_and_removes_push_subscriptions_by_id_and_no_one_else_can(server_factory: Any) -> None:
    server: ServerProcess = server_factory(ENV)
    owner = make_account(server.url, "pharmacy")
    other = make_account(server.url, "patient")
    mine = [subscribe(server, owner.headers, f"{ATTACKER}/push/{i}").json()["id"] for i in range(2)]
    theirs = subscribe(server, other.headers, f"{ATTACKER}/push/other").json()["id"]
    listed = subscriptions(server, owner.headers)
    assert [s["id"] for s in listed] == mine
    assert set(listed[0]) == {"id", "endpoint", "created_at"}
    before = db_snapshot(server)
    for bad in (theirs, 10**9, 10**19 - 1):
        refused = httpx.delete(f"{server.url}/push/subscriptions/{bad}", headers=owner.headers, timeout=10)
        assert (refused.status_code, error_code(refused)) == (404, "not_found")
    assert httpx.delete(f"{server.url}/push/subscriptions/{mine[0]}", timeout=10).status_code == 401
    assert httpx.get(f"{server.url}/push/subscriptions", timeout=10).status_code == 401
    assert db_snapshot(server) == before
    removed = httpx.delete(f"{server.url}/push/subscriptions/{mine[0]}", headers=owner.headers, timeout=10)
    assert removed.status_code == 204
    assert [s["id"] for s in subscriptions(server, owner.headers)] == [mine[1]]
    assert [s["id"] for s in subscriptions(server, other.headers)] == [theirs]


def test_push_cli_lists_and_removes(
    server_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDREQ_CONFIG_DIR", str(tmp_path / "config"))
    server: ServerProcess = server_factory(ENV)
    owner = make_account(server.url, "pharmacy")
    subscription_id = subscribe(server, owner.headers, f"{ATTACKER}/push/secret-capability").json()["id"]
    runner = CliRunner()

    def cli(*args: str, input: str | None = None) -> Any:
        result = runner.invoke(app, [*args, "-P", "me"], input=input)
        assert result.exit_code == 0, result.output
        return result

    cli("login", "--url", server.url, "-u", owner.username, "--password-stdin", input=owner.password + "\n")
    table = cli("push", "list").output
    assert str(subscription_id) in table
    assert ATTACKER in table
    assert "secret-capability" not in table  # the endpoint's path is the subscription's capability
    [listed] = json.loads(cli("push", "list", "--json").stdout)
    assert listed["id"] == subscription_id
    assert "removed" in cli("push", "remove", str(subscription_id)).output
    assert json.loads(cli("push", "list", "--json").stdout) == []
    missing = runner.invoke(app, ["push", "remove", str(subscription_id), "-P", "me"])
    assert missing.exit_code == 1
    assert "not found" in missing.output
