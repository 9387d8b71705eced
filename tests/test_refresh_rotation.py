"""Refresh token rotation with reuse detection (issue 25, RFC 9700 §4.14.2; docs/security.md
"A stolen refresh token"): every refresh answers a new refresh token and uses up the one sent;
one sent again revokes its whole sign-in (the family), refresh and access tokens alike, on every
worker, while the account's other sign-ins go on. The Python client and the CLI's profiles keep
each new refresh token and never send a used one."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from medreq.client import MedreqClient, ProfileStore
from medreq.simulate.accounts import Account

from .conftest import ServerProcess, eventually, make_account
from .wire import close_code, error_code, open_ws

pytestmark = pytest.mark.shared_server


def refresh(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.post(f"{server.url}/auth/refresh", json={"refresh": token}, timeout=10)


def me(server: ServerProcess, access: str) -> int:
    return httpx.get(f"{server.url}/auth/me", headers={"Authorization": f"Bearer {access}"}, timeout=10).status_code


def sign_in(server: ServerProcess, account: Account) -> dict[str, Any]:
    answer = httpx.post(
        f"{server.url}/auth/token", json={"username": account.username, "password": account.password}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_each_refresh_answers_a_new_refresh_token_that_works_once(server: ServerProcess) -> None:
    account = make_account(server.url, "patient")
    token = account.refresh
    first = claims(token)
    seen = {token}
    for _ in range(5):
        answer = refresh(server, token)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"access", "refresh", "token_type", "expires_in"}
        token = body["refresh"]
        assert token not in seen
        seen.add(token)
        now = claims(token)
        # one sign-in: the same family and sign-in time, and rotation never extends the sign-in
        assert (now["fam"], now["auth_time"], now["exp"]) == (first["fam"], first["auth_time"], first["exp"])
        assert claims(body["access"])["fam"] == first["fam"]
        assert me(server, body["access"]) == 200


def test_thirty_reuses_revoke_the_sign_in_and_its_newest_tokens(server: ServerProcess) -> None:
    """The brief's scenario: one refresh token sent 30 times. The first refresh works; the second
    use is a reuse, which revokes the family (401 from then on), so the newest refresh token (the
    one the first use answered) and the newest access token fail too, and that sign-in's socket
    closes. The account's other sign-in is untouched."""
    account = make_account(server.url, "pharmacy")
    other = sign_in(server, account)  # another device of the same account
    answers = [refresh(server, account.refresh) for _ in range(30)]
    assert answers[0].status_code == 200
    assert [a.status_code for a in answers[1:]] == [401] * 29
    assert {error_code(a) for a in answers[1:]} == {"unauthorized"}
    assert "used" in answers[1].json()["error"]["message"]  # says why, in words
    newest = answers[0].json()
    assert refresh(server, newest["refresh"]).status_code == 401
    assert me(server, newest["access"]) == 401
    assert me(server, account.access) == 401  # the sign-in's first access token too
    # the other sign-in goes on: its own refresh rotates, its access works
    assert me(server, other["access"]) == 200
    assert refresh(server, other["refresh"]).status_code == 200


async def test_a_reuse_closes_the_sign_ins_open_socket(server: ServerProcess) -> None:
    account = make_account(server.url, "pharmacy")
    newest = refresh(server, account.refresh).json()
    async with open_ws(server, account, token=newest["access"]) as ws:
        assert refresh(server, account.refresh).status_code == 401  # the thief's copy, or the owner's
        assert await close_code(ws, timeout=10) == 4401


def test_logout_revokes_the_later_refresh_tokens_of_its_sign_in(server: ServerProcess) -> None:
    account = make_account(server.url, "patient")
    newest = refresh(server, account.refresh).json()
    out = httpx.post(
        f"{server.url}/auth/logout", json={"refresh": account.refresh}, headers=account.headers, timeout=10
    )
    assert out.status_code == 204
    assert refresh(server, newest["refresh"]).status_code == 401


def test_a_refresh_token_from_before_rotation_rotates_once(server: ServerProcess) -> None:
    """Tokens issued before this change carry no `fam`: the first refresh starts their family,
    and the same token sent again is a reuse like any other."""
    account = make_account(server.url, "patient")
    secret = (server.data_dir / "jwt-secret").read_text().strip()
    now = int(time.time())
    old = jwt.encode(
        {"sub": str(account.id), "role": "patient", "typ": "refresh", "ver": 0, "iat": now,
         "exp": now + 3600, "jti": "legacy-token-id-1", "auth_time": now},
        secret,
        algorithm="HS256",
    )
    first = refresh(server, old)
    assert first.status_code == 200, first.text
    assert claims(first.json()["refresh"])["fam"] == "legacy-token-id-1"
    assert refresh(server, old).status_code == 401
    assert refresh(server, first.json()["refresh"]).status_code == 401


async def test_the_client_keeps_each_new_refresh_token(server: ServerProcess) -> None:
    account = make_account(server.url, "patient")
    heard: list[str | None] = []
    async with MedreqClient(
        server.url, token=account.access, refresh_token=account.refresh,
        on_tokens=lambda _access, refresh: heard.append(refresh),
    ) as client:
        for _ in range(3):  # each sends the refresh token the one before answered
            await client.refresh()
        assert len(set(heard)) == 3 and account.refresh not in heard
        assert client.refresh_token == heard[-1]
        assert (await client.me()).id == account.id


async def test_two_commands_of_one_profile_never_send_a_used_refresh_token(
    server: ServerProcess, tmp_path: Path
) -> None:
    """`medreq listen` holds its tokens for hours while other commands of the same profile refresh
    and save theirs: before refreshing, a client takes up what the profile holds now."""
    account = make_account(server.url, "pharmacy")
    store = ProfileStore(tmp_path)
    login = httpx.post(
        f"{server.url}/auth/token", json={"username": account.username, "password": account.password}, timeout=10
    ).json()
    from medreq.protocol import TokenOut

    profile = store.save_login("shop", server.url, TokenOut.model_validate(login))

    def save(access: str, refresh: str | None) -> None:
        store.update("shop", access=access, refresh=refresh)

    def stored() -> tuple[str | None, str | None]:
        saved = store.load("shop")
        return (saved.access, saved.refresh) if saved else (None, None)

    def client() -> MedreqClient:
        return MedreqClient(
            server.url, token=profile.access, refresh_token=profile.refresh, on_tokens=save, stored_tokens=stored
        )

    async with client() as listen, client() as other:
        await other.refresh()  # uses up the profile's refresh token, saves the next
        stale = listen.access_token
        await listen.session.refresh_once(stale)  # holds the used one: takes the saved pair
        assert listen.refresh_token == other.refresh_token
        await listen.refresh()  # and refreshes with the live one
        assert (await listen.me()).id == account.id
        await other.session.refresh_once(other.access_token)
        assert (await other.me()).id == account.id  # nothing was revoked


# --- several workers on PostgreSQL ------------------------------------------------------------




@pytest.fixture
def cluster_env() -> dict[str, str]:
    return {"MEDREQ_RATE_LIMIT_ENABLED": "false"}


async def test_on_two_postgresql_workers_one_of_thirty_concurrent_uses_wins(
    cluster: tuple[ServerProcess, ServerProcess],
) -> None:
    """30 uses of one refresh token at once, split over two servers: exactly one rotates it (the
    family row is locked), the rest revoke the family; then the winner's tokens fail on both."""
    a, b = cluster
    account = make_account(a.url, "patient")
    async with httpx.AsyncClient(timeout=30) as http:
        answers = await asyncio.gather(
            *(
                http.post(f"{(a, b)[n % 2].url}/auth/refresh", json={"refresh": account.refresh})
                for n in range(30)
            )
        )
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] + [401] * 29
    [won] = [answer.json() for answer in answers if answer.status_code == 200]
    for server in (a, b):
        assert refresh(server, won["refresh"]).status_code == 401
        # the other worker hears of the revocation through account_changes (its poll interval)
        eventually(lambda s=server: me(s, won["access"]), lambda status: status == 401)
