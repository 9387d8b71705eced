"""Accounts and tokens (docs/protocol.md §2) over the wire: every bad input is refused with the §1
error body and leaves the store untouched; tokens are typed, expire, and survive a restart."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from .conftest import Account, ServerProcess, make_account
from .wire import db_snapshot, error_code

pytestmark = pytest.mark.shared_server

NO_RATE_LIMIT = {"MEDREQ_RATE_LIMIT_ENABLED": "false"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that only read or add their own uniquely named accounts."""
    proc = ServerProcess(tmp_path_factory.mktemp("auth") / "data", env=NO_RATE_LIMIT)
    proc.start()
    yield proc
    proc.stop()


def assert_error(
    response: httpx.Response, status: int, code: str, fields: set[str] | None = None
) -> dict[str, Any]:
    """The §1 error body: exactly {"error": {code, message[, fields]}}, no stack trace."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert error_code(response) == code
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "fields"}, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Traceback" not in response.text
    if fields is None:
        assert "fields" not in error, error
    else:
        assert set(error["fields"]) == fields, error
        assert all(isinstance(v, str) and v for v in error["fields"].values()), error
    return error


def unique(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def register_body(username: str, **overrides: Any) -> dict[str, Any]:
    body = {"username": username, "password": "correct horse battery", "role": "patient", "name": "Val"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def password_hash(server: ServerProcess, username: str) -> str:
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        row = db.execute("select password_hash from accounts where username = ?", (username,)).fetchone()
    finally:
        db.close()
    assert row is not None, username
    return str(row[0])


# --- register: bad input ------------------------------------------------------------------------


def test_register_rejects_every_bad_json_body_and_stores_nothing(shared: ServerProcess) -> None:
    name = unique("reg")
    cases: list[tuple[str, dict[str, Any], set[str]]] = [
        ("username too short", register_body("ab"), {"username"}),
        ("username too long", register_body("a" * 65), {"username"}),
        ("username with a space", register_body("bad name"), {"username"}),
        ("username with a slash", register_body("bad/name"), {"username"}),
        ("username with a non-ASCII letter", register_body("bäd_name"), {"username"}),
        ("username with an @", register_body("bad@name"), {"username"}),
        ("empty username", register_body(""), {"username"}),
        ("username not a string", register_body(12345), {"username"}),
        ("password of 7 chars", register_body(name, password="1234567"), {"password"}),
        ("empty password", register_body(name, password=""), {"password"}),
        ("unknown role", register_body(name, role="admin"), {"role"}),
        ("role in the wrong case", register_body(name, role="Patient"), {"role"}),
        ("missing name", register_body(name, name=None), {"name"}),
        ("empty name", register_body(name, name=""), {"name"}),
        ("name over 200 chars", register_body(name, name="n" * 201), {"name"}),
        ("phone over 40 chars", register_body(name, phone="1" * 41), {"phone"}),
        ("missing role", register_body(name, role=None), {"role"}),
        ("missing password", register_body(name, password=None), {"password"}),
        (
            "missing username",
            {"password": "correct horse battery", "role": "patient", "name": "V"},
            {"username"},
        ),
        ("no fields at all", {}, {"username", "password", "role", "name"}),
    ]
    before = db_snapshot(shared)
    for label, body, fields in cases:
        response = httpx.post(f"{shared.url}/auth/register", json=body, timeout=10)
        error = assert_error(response, 422, "validation_error", fields)
        assert error["fields"], label
        assert db_snapshot(shared) == before, label
    # none of the refused attempts reserved the name
    created = httpx.post(f"{shared.url}/auth/register", json=register_body(name), timeout=10)
    assert created.status_code == 201, created.text
    assert created.json() == {
        "id": created.json()["id"],
        "username": name,
        "role": "patient",
        "name": "Val",
        "phone": None,
        "status": "active",
    }


def test_register_rejects_bodies_that_are_not_a_json_object(shared: ServerProcess) -> None:
    url = f"{shared.url}/auth/register"
    json_header = {"content-type": "application/json"}
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("not JSON", {"content": b"username=alice&password=x", "headers": json_header}, 400, "invalid_json"),
        ("truncated JSON", {"content": b'{"username": "alice"', "headers": json_header}, 400, "invalid_json"),
        ("empty body", {"content": b"", "headers": json_header}, 400, "invalid_json"),
        (
            "invalid UTF-8",
            {"content": b'{"username": "\xff\xfe"}', "headers": json_header},
            400,
            "invalid_json",
        ),
        ("JSON array", {"json": [register_body(unique())]}, 400, "invalid_json"),
        ("JSON string", {"json": "alice"}, 400, "invalid_json"),
        ("JSON null", {"content": b"null", "headers": json_header}, 400, "invalid_json"),
        (
            "multipart form",
            {"data": register_body(unique()), "files": {"x": ("x.txt", b"x", "text/plain")}},
            415,
            "unsupported_media_type",
        ),
        (
            "JSON over 64 KiB",
            {"json": {**register_body(unique()), "padding": "x" * 70_000}},
            413,
            "payload_too_large",
        ),
    ]
    before = db_snapshot(shared)
    for label, kwargs, status, code in cases:
        response = httpx.post(url, timeout=10, **kwargs)
        assert_error(response, status, code)
        assert db_snapshot(shared) == before, label


def test_register_taken_username_is_409_and_keeps_the_first_account(shared: ServerProcess) -> None:
    name = unique("dup")
    first = httpx.post(f"{shared.url}/auth/register", json=register_body(name), timeout=10)
    assert first.status_code == 201, first.text
    before = db_snapshot(shared)
    second = httpx.post(
        f"{shared.url}/auth/register",
        json=register_body(name, password="another password", role="pharmacy", name="Impostor"),
        timeout=10,
    )
    assert_error(second, 409, "conflict", {"username"})
    assert db_snapshot(shared) == before
    ok = httpx.post(
        f"{shared.url}/auth/token", json={"username": name, "password": "correct horse battery"}, timeout=10
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["account"] == first.json()
    refused = httpx.post(f"{shared.url}/auth/token", json={"username": name, "password": "another password"})
    assert_error(refused, 401, "unauthorized")


def test_register_returns_the_account_with_its_phone(shared: ServerProcess) -> None:
    name = unique("ph")
    created = httpx.post(
        f"{shared.url}/auth/register",
        json=register_body(name, role="pharmacy", name="Corner Pharmacy", phone="+1-555-0199"),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "username", "role", "name", "phone", "status"}
    assert (body["username"], body["role"], body["name"], body["phone"]) == (
        name,
        "pharmacy",
        "Corner Pharmacy",
        "+1-555-0199",
    )
    assert isinstance(body["id"], int)


def test_register_rejects_a_blank_name(shared: ServerProcess) -> None:
    """`name` is required: a name of only spaces is no name (the other models strip whitespace)."""
    name = unique("blank")
    before = db_snapshot(shared)
    for blank in ("   ", "\t", " \n "):
        response = httpx.post(f"{shared.url}/auth/register", json=register_body(name, name=blank), timeout=10)
        assert_error(response, 422, "validation_error", {"name"})
        assert db_snapshot(shared) == before


# --- token ----------------------------------------------------------------------------------------


def test_wrong_password_and_unknown_user_get_the_same_401(shared: ServerProcess) -> None:
    account = make_account(shared.url, "patient")
    url = f"{shared.url}/auth/token"
    wrong_password = httpx.post(url, json={"username": account.username, "password": "not the password"})
    unknown_user = httpx.post(url, json={"username": unique("ghost"), "password": "not the password"})
    first = assert_error(wrong_password, 401, "unauthorized")
    second = assert_error(unknown_user, 401, "unauthorized")
    assert first == second
    assert account.username not in wrong_password.text
    assert "access" not in wrong_password.json()


def test_token_body_has_typed_tokens_and_the_account(shared: ServerProcess) -> None:
    account = make_account(shared.url, "pharmacy", name="Token Pharmacy")
    response = httpx.post(
        f"{shared.url}/auth/token", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access", "refresh", "token_type", "expires_in", "account"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["account"] == {
        "id": account.id,
        "username": account.username,
        "role": "pharmacy",
        "name": "Token Pharmacy",
        "phone": None,
        "status": "active",
    }
    claims = jwt_claims(body["access"])
    assert claims["sub"] == str(account.id)
    assert claims["role"] == "pharmacy"
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt_claims(body["refresh"])["exp"] - claims["iat"] >= 14 * 24 * 3600 - 5


def test_token_rejects_bad_bodies(shared: ServerProcess) -> None:
    url = f"{shared.url}/auth/token"
    assert_error(httpx.post(url, json={"username": "someone"}), 422, "validation_error", {"password"})
    assert_error(httpx.post(url, json=["someone", "pw"]), 400, "invalid_json")
    assert_error(
        httpx.post(url, content=b"{", headers={"content-type": "application/json"}), 400, "invalid_json"
    )


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# --- refresh and token kinds ---------------------------------------------------------------------


def test_refresh_issues_a_working_access_token(shared: ServerProcess) -> None:
    account = make_account(shared.url, "patient")
    refreshed = httpx.post(f"{shared.url}/auth/refresh", json={"refresh": account.refresh})
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["access"] != account.access
    me = httpx.get(f"{shared.url}/auth/me", headers={"Authorization": f"Bearer {body['access']}"})
    assert me.status_code == 200, me.text
    assert me.json()["id"] == account.id
    assert me.json()["username"] == account.username


def test_access_token_cannot_refresh_and_refresh_token_cannot_authenticate(shared: ServerProcess) -> None:
    account = make_account(shared.url, "patient")
    before = db_snapshot(shared)
    assert_error(
        httpx.post(f"{shared.url}/auth/refresh", json={"refresh": account.access}), 401, "unauthorized"
    )
    as_bearer = httpx.get(f"{shared.url}/auth/me", headers={"Authorization": f"Bearer {account.refresh}"})
    assert_error(as_bearer, 401, "unauthorized")
    listing = httpx.get(
        f"{shared.url}/medicine/request/", headers={"Authorization": f"Bearer {account.refresh}"}
    )
    assert_error(listing, 401, "unauthorized")
    assert_error(httpx.post(f"{shared.url}/auth/refresh", json={"refresh": "garbage"}), 401, "unauthorized")
    assert_error(httpx.post(f"{shared.url}/auth/refresh", json={}), 422, "validation_error", {"refresh"})
    assert db_snapshot(shared) == before


def test_me_requires_a_valid_access_token(shared: ServerProcess) -> None:
    account = make_account(shared.url, "patient")
    url = f"{shared.url}/auth/me"
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Bearer a.b.c"},
        {"Authorization": f"Basic {account.access}"},
        {"Authorization": f"Bearer {account.access[:-4]}AAAA"},  # signature tampered
        {"Authorization": f"Bearer {forged_token(account)}"},  # signed with the wrong key
    ]
    for headers in bad_headers:
        assert_error(httpx.get(url, headers=headers), 401, "unauthorized")
    ok = httpx.get(url, headers=account.headers)
    assert ok.status_code == 200
    assert ok.json()["id"] == account.id


def test_token_for_an_account_that_does_not_exist_is_401(shared: ServerProcess) -> None:
    """Signed with the server's own secret (as after an account is removed): still 401, never 500."""
    secret = (shared.data_dir / "jwt-secret").read_text().strip()
    wrong = {}
    for sub in ("987654", str(10**22), "not-a-number"):
        token = jwt.encode(
            {"sub": sub, "role": "patient", "typ": "access", "exp": 2**31 - 1}, secret, algorithm="HS256"
        )
        response = httpx.get(f"{shared.url}/auth/me", headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 401:
            wrong[f"sub={sub}"] = (response.status_code, response.text)
        else:
            assert_error(response, 401, "unauthorized")
    assert not wrong, wrong


def forged_token(account: Account) -> str:
    return jwt.encode(
        {"sub": str(account.id), "role": account.role, "typ": "access", "exp": 2**31 - 1},
        "not-the-server-secret-but-long-enough-for-hs256",
        algorithm="HS256",
    )


def test_expired_access_token_is_401(server_factory: Any) -> None:
    server = server_factory(env={"MEDREQ_ACCESS_TOKEN_TTL": "-1"})
    account = make_account(server.url, "patient")
    error = assert_error(httpx.get(f"{server.url}/auth/me", headers=account.headers), 401, "unauthorized")
    assert "expired" in error["message"]
    # the refresh token is still good, but what it issues is born expired too
    refreshed = httpx.post(f"{server.url}/auth/refresh", json={"refresh": account.refresh})
    assert refreshed.status_code == 200, refreshed.text
    again = httpx.get(
        f"{server.url}/auth/me", headers={"Authorization": f"Bearer {refreshed.json()['access']}"}
    )
    assert_error(again, 401, "unauthorized")


# --- configuration and storage --------------------------------------------------------------------


def test_closed_registration_is_403_and_stores_nothing(server_factory: Any) -> None:
    server = server_factory(env={"MEDREQ_OPEN_REGISTRATION": "false"})
    name = unique("closed")
    before = db_snapshot(server)
    response = httpx.post(f"{server.url}/auth/register", json=register_body(name), timeout=10)
    assert_error(response, 403, "forbidden")
    assert db_snapshot(server) == before
    assert before["rows"]["accounts"] == []
    token = httpx.post(
        f"{server.url}/auth/token", json={"username": name, "password": "correct horse battery"}
    )
    assert_error(token, 401, "unauthorized")


def test_passwords_are_stored_as_salted_scrypt_hashes(shared: ServerProcess) -> None:
    first, second = make_account(shared.url, "patient"), make_account(shared.url, "pharmacy")
    assert first.password == second.password
    hashes = [password_hash(shared, a.username) for a in (first, second)]
    assert hashes[0] != hashes[1]
    for stored in hashes:
        assert stored.startswith("scrypt$")
        assert first.password not in stored
        _scheme, n, r, p, salt, digest = stored.split("$")
        raw_salt = base64.urlsafe_b64decode(salt + "=" * (-len(salt) % 4))
        raw_digest = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4))
        assert len(raw_salt) >= 16
        assert int(n) >= 1024  # conftest lowers N for speed; the production default is 2**14
        # it really is scrypt of the password with that salt
        assert (
            hashlib.scrypt(
                first.password.encode(), salt=raw_salt, n=int(n), r=int(r), p=int(p), dklen=len(raw_digest)
            )
            == raw_digest
        )


@pytest.mark.own_server
def test_jwt_secret_is_private_and_tokens_survive_restart(server: ServerProcess) -> None:
    account = make_account(server.url, "patient")
    secret_file = server.data_dir / "jwt-secret"
    assert secret_file.is_file()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text()
    assert len(secret.strip()) >= 32
    server.restart()
    assert secret_file.read_text() == secret
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    me = httpx.get(f"{server.url}/auth/me", headers=account.headers)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == account.username
    refreshed = httpx.post(f"{server.url}/auth/refresh", json={"refresh": account.refresh})
    assert refreshed.status_code == 200, refreshed.text
