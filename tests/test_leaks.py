"""Nothing leaks (issue 8 items 4 and 7): history to fresh sockets, whether a username exists,
secrets in logs, files to other users, guesses past the back-off."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import stat
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from medreq import auth
from medreq.bootstrap import open_service
from medreq.config import Settings
from medreq.protocol import TokenIn

from .conftest import REDIS_URL, Account, ServerProcess, create_database, drop_database, make_account
from .conftest import require_service as require
from .wire import error_code, open_ws, post_request, recv_json

# --- a fresh socket starts at the present ------------------------------------------------------

HISTORY = 3000
WRITERS = 3


def store_history(server: ServerProcess, account: Account, database_url: str | None) -> None:
    """Give `account` thousands of stored events straight in the database (fast, and the
    same rows the server would have written)."""
    rows = [
        (account.id, n, "message", None, f'{{"type":"message","event_id":{n},"timestamp":"t","text":"old"}}')
        for n in range(1, HISTORY + 1)
    ]
    if database_url is None:
        db = sqlite3.connect(server.data_dir / "medreq.db")
        with db:
            db.executemany(
                "insert into events (account_id, event_id, type, request_id, payload, created_at)"
                " values (?, ?, ?, ?, ?, '2026-01-01 00:00:00.000000')",
                rows,
            )
            db.execute("update accounts set last_event_id = ? where id = ?", (HISTORY, account.id))
        db.close()
        return

    async def insert() -> None:
        import asyncpg

        conn = await asyncpg.connect(database_url)
        try:
            await conn.executemany(
                "insert into events (account_id, event_id, type, request_id, payload, created_at)"
                " values ($1, $2, $3, $4, $5, now())",
                rows,
            )
            await conn.execute("update accounts set last_event_id = $1 where id = $2", HISTORY, account.id)
        finally:
            await conn.close()

    asyncio.run(insert())


@pytest.fixture(params=["sqlite", "postgresql+redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    require("PostgreSQL", "127.0.0.1", 5432)
    require("Redis", "127.0.0.1", 6379)
    url = await create_database()
    yield {"MEDREQ_DATABASE_URL": url, "MEDREQ_REDIS_URL": REDIS_URL}
    await drop_database(url)


async def test_fresh_sockets_get_no_history(server_factory: Any, backend: dict[str, str]) -> None:
    """Sockets opened without `after` while requests keep arriving receive live events only.

    The race this pins: the handler subscribed before reading the account's last event id, so
    a live event arriving in between found last_sent = 0 and "filled the gap" from event 1.
    """
    server: ServerProcess = server_factory({**backend, "MEDREQ_RATE_LIMIT_ENABLED": "false"})
    patients = [make_account(server.url, "patient") for _ in range(WRITERS)]
    pharmacy = make_account(server.url, "pharmacy")
    await asyncio.to_thread(store_history, server, pharmacy, backend.get("MEDREQ_DATABASE_URL"))

    def keep_requesting(patient: Account, stop: threading.Event) -> int:
        sent = 0
        deadline = time.monotonic() + 30
        with httpx.Client(headers=patient.headers, timeout=10) as http:
            while not stop.is_set() and time.monotonic() < deadline:  # bounded in time
                data = {"pharmacy": str(pharmacy.id), "quantity": "1", "medicine_name": f"Live {sent}"}
                response = http.post(f"{server.url}/medicine/request/", data=data)
                assert response.status_code == 201, response.text
                sent += 1
        return sent

    stop = threading.Event()
    writer = asyncio.gather(*(asyncio.to_thread(keep_requesting, p, stop) for p in patients))
    received: list[dict[str, Any]] = []
    try:
        for _ in range(10):
            async with open_ws(server, pharmacy, max_queue=None) as ws:  # closes while events flow
                received.append(await recv_json(ws, timeout=10))
                with contextlib.suppress(TimeoutError):
                    for _ in range(20):  # a few more, then the next fresh socket
                        received.append(await recv_json(ws, timeout=0.5))
    finally:
        stop.set()
        await writer
    assert len(received) >= 10
    old = [event for event in received if event["event_id"] <= HISTORY]
    assert old == []
    assert {event["type"] for event in received} == {"new_request"}


# --- login: constant work, per-account back-off, addresses not spoofable ----------------------


async def test_unknown_username_costs_the_same_hash(tmp_path: Path, monkeypatch: Any) -> None:
    """A wrong password costs one scrypt whether or not the username exists (the 48.8 ms vs
    2.9 ms difference came from skipping it); timings are in docs/security.md."""
    hashed: list[str] = []
    real = auth.verify_password_async

    async def counting(password: str, stored: str) -> bool:
        hashed.append(stored)
        return await real(password, stored)

    monkeypatch.setattr(auth, "verify_password_async", counting)
    async with open_service(Settings.load(env={}, data_dir=tmp_path, scrypt_n=1024)) as service:
        for username in ("nobody", "nobody-else"):
            with pytest.raises(auth.Unauthorized):
                await service.issue_tokens(TokenIn(username=username, password="guess-1234"))
    assert len(hashed) == 2
    assert all(stored.startswith("scrypt$1024$") for stored in hashed)


def test_wrong_passwords_hold_back_the_account_whatever_the_address(server_factory: Any) -> None:
    server = server_factory({"MEDREQ_LOGIN_MAX_FAILURES": "3", "MEDREQ_RATE_LIMIT_ENABLED": "false"})
    victim = make_account(server.url, "patient")
    for n in range(3):
        wrong = httpx.post(
            f"{server.url}/auth/token",
            json={"username": victim.username, "password": f"guess-{n}"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
            timeout=10,
        )
        assert wrong.status_code == 401
    # held back now: even the right password waits, and the wait is announced
    held = httpx.post(
        f"{server.url}/auth/token",
        json={"username": victim.username, "password": victim.password},
        headers={"X-Forwarded-For": "198.51.100.7"},
        timeout=10,
    )
    assert held.status_code == 429
    assert error_code(held) == "rate_limited"
    assert int(held.headers["Retry-After"]) >= 1
    # an unknown username is held back the same way: a hold tells nothing about existence
    for n in range(4):
        unknown = httpx.post(
            f"{server.url}/auth/token", json={"username": "no-such-user", "password": f"g-{n}"}, timeout=10
        )
    assert unknown.status_code == 429


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(server_factory: Any) -> None:
    limits = {"MEDREQ_REST_RATE": "0.01", "MEDREQ_REST_BURST": "3"}

    def attempts(server: ServerProcess) -> list[int]:
        return [
            httpx.post(
                f"{server.url}/auth/token",
                json={"username": "x-user", "password": "whatever-1"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
                timeout=10,
            ).status_code
            for n in range(5)
        ]

    # default: the header is the client's word; every attempt counts against 127.0.0.1
    assert attempts(server_factory(limits))[3:] == [429, 429]
    # behind a configured proxy the forwarded address is the client's
    trusting = server_factory({**limits, "MEDREQ_TRUSTED_PROXIES": "127.0.0.1"})
    assert 429 not in attempts(trusting)[:3]


# --- no secret in the logs ----------------------------------------------------------------------


async def test_tokens_and_signatures_never_reach_the_log(
    server_factory: Any, png_bytes: bytes
) -> None:
    server: ServerProcess = server_factory({"MEDREQ_LOG_LEVEL": "info"})
    patient = make_account(server.url, "patient")
    pharmacy = make_account(server.url, "pharmacy")
    async with open_ws(server, pharmacy) as ws:
        created = post_request(server, patient, pharmacy=pharmacy.id, image=png_bytes)
        await recv_json(ws)
    image_url = created.json()["data"]["image_url"]
    assert httpx.get(image_url, timeout=10).status_code == 200
    signature = image_url.split("sig=", 1)[1]
    httpx.get(f"{server.url}/auth/me?token={patient.access}", timeout=10)
    server.stop()
    log = server.log_path.read_text()
    assert "WebSocket" in log and "/media/" in log  # the lines are there ...
    for secret in (pharmacy.access, patient.access, signature):
        assert secret not in log  # ... without the secrets
    assert "[redacted]" in log


# --- files readable by the server's user only ---------------------------------------------------


def test_data_files_are_private(server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes) -> None:
    assert post_request(server, patient, pharmacy=pharmacy.id, image=png_bytes).status_code == 201
    data = server.data_dir
    folders = [data, data / "media", *(p for p in (data / "media").iterdir() if p.is_dir())]
    files = [data / "medreq.db", data / "medreq.db-wal", data / "jwt-secret"]
    files += [p for p in (data / "media").rglob("*") if p.is_file()]
    assert len(files) > 3
    for folder in folders:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
