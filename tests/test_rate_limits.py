"""Per-account rate limits on REST (429 + Retry-After) are on by default and configurable."""

from __future__ import annotations

import httpx

from medreq.config import Settings

from .conftest import ServerProcess, make_account
from .wire import db_snapshot, error_code


def test_rate_limits_are_on_by_default() -> None:
    settings = Settings.load(env={})
    assert settings.rate_limit_enabled
    assert settings.rest_rate > 0
    assert settings.ws_rate > 0


def test_rest_calls_past_the_burst_get_429_with_retry_after(server_factory: object) -> None:
    # one call back every 20 s: at 0.5/s a loaded machine (two CI runs' worth of work on 2 cores)
    # spaced the calls enough to refill the bucket, and the write below got 201
    server: ServerProcess = server_factory(env={"MEDREQ_REST_RATE": "0.05", "MEDREQ_REST_BURST": "4"})  # type: ignore[operator]
    patient = make_account(server.url, "patient")
    pharmacy = make_account(server.url, "pharmacy")
    statuses = [httpx.get(f"{server.url}/auth/me", headers=patient.headers).status_code for _ in range(6)]
    assert statuses[:4] == [200, 200, 200, 200]
    assert statuses[4:] == [429, 429]
    limited = httpx.get(f"{server.url}/auth/me", headers=patient.headers)
    assert limited.status_code == 429
    assert error_code(limited) == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    # a limited write changes nothing
    before = db_snapshot(server)
    refused = httpx.post(
        f"{server.url}/medicine/request/",
        data={"pharmacy": str(pharmacy.id), "quantity": "1", "medicine_name": "X"},
        headers=patient.headers,
    )
    assert refused.status_code == 429
    assert db_snapshot(server) == before
    # the limit is per account: another account is unaffected
    assert httpx.get(f"{server.url}/auth/me", headers=pharmacy.headers).status_code == 200


def test_rate_limits_can_be_switched_off(server_factory: object) -> None:
    server: ServerProcess = server_factory(  # type: ignore[operator]
        env={"MEDREQ_REST_RATE": "0.5", "MEDREQ_REST_BURST": "1", "MEDREQ_RATE_LIMIT_ENABLED": "false"}
    )
    patient = make_account(server.url, "patient")
    statuses = {httpx.get(f"{server.url}/auth/me", headers=patient.headers).status_code for _ in range(10)}
    assert statuses == {200}


def test_docs_page_is_served(server: ServerProcess) -> None:
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
