"""medreq.simulate.accounts: the one helper that makes accounts for tests, benchmarks, Locust and
the simulator, through each of its faces, against a real server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from medreq.client import MedreqClient
from medreq.simulate.accounts import (
    AccountError,
    NewAccount,
    create_account,
    create_accounts,
    httpx_post,
    operator_account,
    sign_up,
    sign_up_client,
)

from .conftest import ServerProcess


def me(server: ServerProcess, headers: dict[str, str]) -> Any:
    answer = httpx.get(f"{server.url}/auth/me", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_register_body_carries_only_what_was_given() -> None:
    plain = NewAccount.fresh("patient", prefix="t")
    assert plain.username.startswith("t-") and plain.name == f"Patient {plain.username}"
    assert plain.register_body() == {
        "username": plain.username,
        "password": plain.password,
        "role": "patient",
        "name": plain.name,
    }
    sim = NewAccount.fresh("pharmacy", phone="+1-555-0100", synthetic=True)
    assert sim.register_body()["phone"] == "+1-555-0100" and sim.register_body()["synthetic"] is True


def test_sync_face_registers_and_logs_in(server: ServerProcess) -> None:
    account = create_account(server.url, "patient", name="Alice", phone="+1-555-0100")
    assert me(server, account.headers) == {
        **me(server, account.headers),
        "id": account.id,
        "username": account.username,
        "role": "patient",
        "name": "Alice",
    }
    assert account.ws_path == f"/ws/user/{account.id}/"
    # a refusal is an error naming the endpoint, not an account
    with pytest.raises(AccountError) as refused:
        sign_up(httpx_post(server.url), NewAccount.fresh("patient", username=account.username))
    assert refused.value.status == 409 and "/auth/register" in str(refused.value)


async def test_async_face_makes_many_and_leaves_a_client_logged_in(server: ServerProcess) -> None:
    made = await create_accounts(server.url, "pharmacy", 5, concurrency=2)
    assert len({a.id for a in made}) == 5 and all(a.role == "pharmacy" for a in made)
    assert all(a.ws_path == f"/ws/pharmacy/{a.id}/" for a in made)
    async with MedreqClient(server.url) as client:
        account = await sign_up_client(client, NewAccount.fresh("patient", synthetic=True))
        assert (await client.me()).id == account.id
        assert client.access_token == account.access


def test_operator_path_gives_an_active_pharmacy_under_approval(server_factory: Any) -> None:
    server = server_factory(env={"MEDREQ_PHARMACY_REGISTRATION": "approval"})
    shop = operator_account(server.url, server.data_dir, "pharmacy", "LifeCare")
    patient = create_account(server.url, "patient")
    listed = httpx.get(f"{server.url}/pharmacies/", headers=patient.headers, timeout=10).json()["results"]
    assert [p["id"] for p in listed] == [shop.id]
    assert me(server, shop.headers)["name"] == "LifeCare"
