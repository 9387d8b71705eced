"""Parallel guessing (issue 25, item 2): 300 wrong passwords (or `/metrics` tokens) sent at once
check at most the allowance and are otherwise refused with 429 before anything is hashed, on
one SQLite server and on two servers sharing PostgreSQL; during the hold even the right
password is refused, and an unknown username is held back exactly like a real one.

The first hold is made long (`MEDREQ_LOGIN_BACKOFF_FIRST`), so no hold can run out during a burst
and every count below is exact."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from .conftest import REDIS_URL, ServerProcess, make_account

GUESSES = 300
ALLOWANCE = 5
GUARDED = {
    "MEDREQ_RATE_LIMIT_ENABLED": "false",  # the per-address limit would hide the per-account one
    "MEDREQ_MAX_CONNECTIONS_PER_CLIENT": "1000",  # all 300 from 127.0.0.1 at once
    "MEDREQ_LOGIN_MAX_FAILURES": str(ALLOWANCE),
    "MEDREQ_LOGIN_BACKOFF_FIRST": "600",
    "MEDREQ_METRICS_TOKEN": "the-right-metrics-token",
}


async def burst(
    urls: list[str], count: int, send: str, body: dict[str, str] | None = None, **headers: str
) -> Counter[int]:
    """`count` requests at once, each on a connection of its own, spread over `urls` (servers);
    the statuses answered. Plain HTTP/1.1 on asyncio streams: httpx's pool with 300 connections
    open at once cost 2.3 s of the test's CPU per burst against 0.2 s of the server's."""
    payload = json.dumps(body).encode() if body is not None else b""

    async def one(i: int) -> int:
        parts = urlsplit(urls[i % len(urls)])
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            lines = [f"{send} {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            if body is not None:
                lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
            answer = await asyncio.wait_for(reader.read(), 60)  # until the server closes
        finally:
            writer.close()
        head, _, text = answer.partition(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        if status == 429:
            found = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
            assert int(found["retry-after"]) > 500
            assert json.loads(text)["error"]["code"] == "rate_limited"
        return status

    return Counter(await asyncio.gather(*(one(i) for i in range(count))))


def login(server: ServerProcess, username: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/auth/token", json={"username": username, "password": password}, timeout=10
    )


def failed_logins(server: ServerProcess, username: str) -> int:
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        [count] = db.execute("select failed_logins from accounts where username = ?", (username,)).fetchone()
    finally:
        db.close()
    return int(count)


async def test_300_parallel_wrong_passwords_check_five_and_hold_the_right_one(server_factory: object) -> None:
    server: ServerProcess = server_factory(GUARDED)  # type: ignore[operator]
    account = make_account(server.url, "pharmacy")
    body = {"username": account.username, "password": "not the password"}
    statuses = await burst([f"{server.url}/auth/token"], GUESSES, "POST", body)
    assert statuses == {401: ALLOWANCE, 429: GUESSES - ALLOWANCE}
    assert failed_logins(server, account.username) == ALLOWANCE  # every checked guess counted, none lost
    held = login(server, account.username, account.password)
    assert held.status_code == 429, held.text
    assert int(held.headers["retry-after"]) > 500


async def test_an_unknown_username_is_held_back_exactly_like_a_real_one(server_factory: object) -> None:
    server: ServerProcess = server_factory(GUARDED)  # type: ignore[operator]
    body = {"username": "nobody-by-this-name", "password": "not the password"}
    statuses = await burst([f"{server.url}/auth/token"], GUESSES, "POST", body)
    assert statuses == {401: ALLOWANCE, 429: GUESSES - ALLOWANCE}
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        rows = db.execute("select subject, failures from login_guards").fetchall()
    finally:
        db.close()
    assert [failures for _, failures in rows] == [ALLOWANCE]
    assert "nobody" not in rows[0][0]  # a keyed hash, never what was typed


async def test_300_parallel_wrong_metrics_tokens_check_five_and_hold_the_right_one(
    server_factory: object,
) -> None:
    server: ServerProcess = server_factory(GUARDED)  # type: ignore[operator]
    url = f"{server.url}/metrics"
    right = {"Authorization": "Bearer the-right-metrics-token"}
    assert httpx.get(url, headers=right, timeout=10).status_code == 200  # a right token clears its claim
    statuses = await burst([url], GUESSES, "GET", None, Authorization="Bearer a-wrong-guess")
    assert statuses == {401: ALLOWANCE, 429: GUESSES - ALLOWANCE}
    held = httpx.get(url, headers=right, timeout=10)
    assert held.status_code == 429, held.text
    missing = httpx.get(url, timeout=10)  # no token at all is no guess: 401, and nothing counted
    assert missing.status_code == 401


async def test_right_passwords_clear_the_series(server_factory: object) -> None:
    server: ServerProcess = server_factory(GUARDED)  # type: ignore[operator]
    account = make_account(server.url, "patient")
    for _ in range(ALLOWANCE - 1):
        assert login(server, account.username, "wrong guess").status_code == 401
    assert login(server, account.username, account.password).status_code == 200
    assert failed_logins(server, account.username) == 0
    for _ in range(ALLOWANCE - 1):  # a new series starts from nothing
        assert login(server, account.username, "wrong guess").status_code == 401
    assert login(server, account.username, account.password).status_code == 200


# --- two servers, one PostgreSQL ------------------------------------------------------------------




async def test_parallel_guesses_on_two_servers_over_postgresql_share_one_hold(
    postgres_url: str, tmp_path: Path
) -> None:
    shared = {
        **GUARDED,
        "MEDREQ_DATABASE_URL": postgres_url,
        "MEDREQ_REDIS_URL": REDIS_URL,
        "MEDREQ_JWT_SECRET": "test-guessing-secret-" + tmp_path.name,
    }
    first = ServerProcess(tmp_path / "a", env=shared)
    second = ServerProcess(tmp_path / "b", env=shared)
    first.start()  # one at a time: the first applies the migrations
    second.start()
    try:
        account = make_account(first.url, "pharmacy")
        urls = [f"{first.url}/auth/token", f"{second.url}/auth/token"]
        body = {"username": account.username, "password": "not the password"}
        statuses = await burst(urls, GUESSES, "POST", body)
        assert statuses == {401: ALLOWANCE, 429: GUESSES - ALLOWANCE}
        unknown = await burst(urls, GUESSES, "POST", {"username": "nobody-here", "password": "guess"})
        assert unknown == {401: ALLOWANCE, 429: GUESSES - ALLOWANCE}
        metrics = [f"{first.url}/metrics", f"{second.url}/metrics"]
        tokens = await burst(metrics, GUESSES, "GET", None, Authorization="Bearer a-wrong-guess")
        assert tokens == {401: ALLOWANCE, 429: GUESSES - ALLOWANCE}
        for server in (first, second):
            assert login(server, account.username, account.password).status_code == 429
        db = await asyncpg.connect(postgres_url)
        try:
            count = await db.fetchval("select failed_logins from accounts where id = $1", account.id)
        finally:
            await db.close()
        assert count == ALLOWANCE
    finally:
        first.stop()
        second.stop()
