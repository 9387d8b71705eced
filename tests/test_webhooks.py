"""docs/protocol.md §5 webhooks: an offline account's events POSTed from a persistent outbox, signed,
retried with backoff, surviving kill -9; connected accounts get none; SSRF targets refused."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from .conftest import Account, ServerProcess, make_account
from .test_service import account, service, store_settings  # noqa: F401 (the store-parametrised fixtures)
from .wire import db_snapshot, error_code, open_ws, post_request, recv_json

FAST = {
    "MEDREQ_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
    "MEDREQ_WEBHOOK_BACKOFF": "0.2",
    "MEDREQ_WEBHOOK_POLL_INTERVAL": "0.1",
}


class Receiver:
    """A webhook endpoint on 127.0.0.1 answering the given statuses in turn (then `ok`, 200)."""

    def __init__(self, statuses: list[int] | None = None, *, ok: int = 200) -> None:
        self.statuses = list(statuses or [])
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else ok
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def set_webhook(server: ServerProcess, account: Account, url: str | None) -> httpx.Response:
    return httpx.put(f"{server.url}/auth/me", json={"webhook_url": url}, headers=account.headers, timeout=10)


def deliveries(server: ServerProcess, account: Account) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/auth/me/webhook-deliveries", headers=account.headers, timeout=10)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


async def until(check: Any, timeout: float = 10.0) -> Any:
    """Poll `check()` (bounded by `timeout`) until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        value = check()
    assert value, f"timed out waiting for {check}"
    return value


def verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    fields = dict(part.split("=", 1) for part in headers["x-medreq-signature"].split(","))
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    assert abs(int(fields["t"]) - time.time()) < 300


def answer(server: ServerProcess, pharmacy: Account, request_id: int) -> None:
    response = httpx.post(
        f"{server.url}/medicine/response/",
        data={"request_id": str(request_id), "status": "ACCEPTED", "text_message": "Ready"},
        headers=pharmacy.headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text


async def test_offline_patient_gets_signed_webhook_on_third_try(server_factory: Any) -> None:
    server = server_factory(FAST)
    patient, pharmacy = make_account(server.url, "patient"), make_account(server.url, "pharmacy")
    receiver = Receiver([500, 500])
    try:
        response = set_webhook(server, patient, receiver.url)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["id"], body["webhook_url"]) == (patient.id, receiver.url)
        secret = body["webhook_secret"]
        assert secret.startswith("whsec_")
        me = httpx.get(f"{server.url}/auth/me", headers=patient.headers, timeout=10).json()
        assert me["webhook_url"] == receiver.url and "webhook_secret" not in me  # shown once

        request_id = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="A").json()[
            "request_id"
        ]
        answer(server, pharmacy, request_id)
        await until(lambda: len(receiver.received) >= 3)
        [done] = await until(lambda: [d for d in deliveries(server, patient) if d["status"] == "delivered"])
        # event 1 is the patient's own `target_added` for the webhook (sent before it was set)
        assert (done["type"], done["event_id"], done["attempts"], done["last_status"]) == (
            "pharmacy_response", 2, 3, 200,
        )  # fmt: skip
        assert done["delivered_at"] and done["next_attempt_at"] is None
        for headers, raw in receiver.received:
            verify(secret, headers, raw)
            event = json.loads(raw)
            assert (event["type"], event["event_id"], event["request_id"]) == (
                "pharmacy_response",
                2,
                request_id,
            )
        assert len(receiver.received) == 3
        # the pharmacy has no webhook: nothing of its own events went anywhere
        assert deliveries(server, pharmacy) == []
    finally:
        receiver.close()


async def test_live_socket_means_no_webhook_post(server_factory: Any, receiver: Receiver) -> None:
    server = server_factory(FAST)
    patient, pharmacy = make_account(server.url, "patient"), make_account(server.url, "pharmacy")
    assert set_webhook(server, patient, receiver.url).status_code == 200
    request_id = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="A").json()["request_id"]
    async with open_ws(server, patient) as ws:
        answer(server, pharmacy, request_id)
        assert (await recv_json(ws))["type"] == "pharmacy_response"
        await asyncio.sleep(0.5)  # several deliverer rounds (poll interval 0.1 s)
    assert receiver.received == []
    assert deliveries(server, patient) == []  # nothing queued while it was connected
    # offline again: the next event goes out
    posted = httpx.post(
        f"{server.url}/medicine/request/{request_id}/messages/",
        json={"text": "Ready"},
        headers=pharmacy.headers,
        timeout=10,
    )
    assert posted.status_code == 201
    await until(lambda: receiver.received)
    assert json.loads(receiver.received[0][1])["type"] == "message"


async def test_kill_9_between_attempts_delivers_after_restart(server_factory: Any) -> None:
    # the first retry waits 1.5-3 s: the server is killed well before it
    server = server_factory({**FAST, "MEDREQ_WEBHOOK_BACKOFF": "3"})
    patient, pharmacy = make_account(server.url, "patient"), make_account(server.url, "pharmacy")
    receiver = Receiver([500])
    try:
        assert set_webhook(server, patient, receiver.url).status_code == 200
        request_id = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="A").json()[
            "request_id"
        ]
        answer(server, pharmacy, request_id)
        await until(
            lambda: [d for d in deliveries(server, patient) if d["attempts"] == 1 and d["last_status"] == 500]
        )
        server.kill()
        assert len(receiver.received) == 1
        server.start()
        [done] = await until(lambda: [d for d in deliveries(server, patient) if d["status"] == "delivered"])
        assert (done["attempts"], done["event_id"]) == (2, 2)  # 1: the webhook's `target_added`
        assert [json.loads(raw)["event_id"] for _, raw in receiver.received] == [2, 2]
    finally:
        receiver.close()


SSRF_TARGETS = [
    "http://127.0.0.1:9/hook",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://0.0.0.0/",
    "ftp://example.com/hook",
    "http://user:secret@example.com/hook",
    "not a url",
    "http://example.com/a b",  # a space would end the request line
    "http://example.com/hook\r\nX-Injected: 1",  # and a line break start a header
]


def test_ssrf_targets_and_bad_bodies_are_refused_and_nothing_stored(
    server: ServerProcess, patient: Account
) -> None:
    before = db_snapshot(server)
    for url in SSRF_TARGETS:
        response = set_webhook(server, patient, url)
        assert (response.status_code, error_code(response)) == (422, "validation_error"), url
        assert "webhook_url" in response.json()["error"]["fields"]
    for body in ({}, {"webhook_url": 5}, {"webhook_url": "https://x.test/" + "a" * 2000}):
        response = httpx.put(f"{server.url}/auth/me", json=body, headers=patient.headers, timeout=10)
        assert (response.status_code, error_code(response)) == (422, "validation_error"), body
    anonymous = httpx.put(f"{server.url}/auth/me", json={"webhook_url": None}, timeout=10)
    assert (anonymous.status_code, error_code(anonymous)) == (401, "unauthorized")
    no_hook = httpx.post(f"{server.url}/auth/me/webhook-test", headers=patient.headers, timeout=10)
    assert (no_hook.status_code, error_code(no_hook)) == (409, "conflict")
    assert db_snapshot(server) == before


def test_webhook_cli_set_test_deliveries_clear(
    server_factory: Any, receiver: Receiver, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medreq.cli import app

    monkeypatch.setenv("MEDREQ_CONFIG_DIR", str(tmp_path / "config"))
    server = server_factory(FAST)
    patient = make_account(server.url, "patient")
    runner = CliRunner()

    def cli(*args: str, input: str | None = None) -> Any:
        result = runner.invoke(app, [*args, "-P", "me"], input=input)
        assert result.exit_code == 0, result.output
        return result

    cli("login", "--url", server.url, "-u", patient.username, "--password-stdin", input=patient.password + "\n")
    shown = cli("webhook", "set", receiver.url)
    secret = shown.output.split("Signing secret (shown once): ")[1].split()[0]
    assert secret.startswith("whsec_")
    queued = json.loads(cli("webhook", "test", "--json").stdout)
    assert (queued["type"], queued["event_id"], queued["status"]) == ("webhook_test", None, "pending")
    deadline = time.monotonic() + 10
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.05)
    [(headers, raw)] = receiver.received
    verify(secret, headers, raw)
    assert json.loads(raw)["type"] == "webhook_test"
    listed: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not (listed and listed[0]["status"] == "delivered"):
        listed = json.loads(cli("webhook", "deliveries", "--json").stdout)
    assert [(d["id"], d["status"]) for d in listed] == [(queued["id"], "delivered")]
    assert "delivered" in cli("webhook", "deliveries").output
    assert "Webhook removed" in cli("webhook", "clear").output
    me = httpx.get(f"{server.url}/auth/me", headers=patient.headers, timeout=10).json()
    assert me["webhook_url"] is None


async def test_two_deliverers_never_claim_the_same_row(
    service: Any,  # noqa: F811
    store_settings: Any,  # noqa: F811
) -> None:
    from medreq.storage import Store, webhooks

    patients = [await account(service, "patient", f"pat{n}") for n in range(8)]
    store = Store(store_settings.database_url)  # the service's database, as a second process sees it
    try:
        ids = [
            await store.write(lambda tx, i=i: webhooks.enqueue(tx.conn, patients[i % 8].id, i, "message", "{}"))
            for i in range(1, 41)
        ]
        claimed: list[int] = []
        for _ in range(10):  # rounds of four deliverers claiming at once, until nothing is due
            claims = await asyncio.gather(
                *(store.write(lambda tx: webhooks.claim(tx.conn, limit=15, lease=60, per_target=5)) for _ in range(4))
            )
            claimed += [c.id for batch in claims for c in batch]
        assert sorted(claimed) == sorted(set(claimed))  # no row twice
        assert set(claimed) == set(ids)  # every due row was taken by someone
        # leased rows are not due again until the lease ends
        assert await store.write(lambda tx: webhooks.claim(tx.conn, limit=50, lease=60)) == []
    finally:
        await store.close()


async def test_a_claim_takes_few_rows_of_each_target_and_none_of_a_full_one(
    service: Any,  # noqa: F811
    store_settings: Any,  # noqa: F811
) -> None:
    """One account's backlog (a receiver that hangs, or a flood) never fills a claim: the claim
    takes at most `per_target` rows of each target, counting those already in flight, so the
    other accounts' rows behind the backlog go out at once."""
    from medreq.storage import Store, webhooks

    flooder = await account(service, "patient", "flooder")
    other = await account(service, "patient", "other")
    store = Store(store_settings.database_url)
    try:
        flood = [
            await store.write(lambda tx, i=i: webhooks.enqueue(tx.conn, flooder.id, i, "message", "{}"))
            for i in range(1, 201)
        ]
        theirs = await store.write(lambda tx: webhooks.enqueue(tx.conn, other.id, 1, "message", "{}"))
        first = await store.write(lambda tx: webhooks.claim(tx.conn, limit=50, lease=60, per_target=2))
        assert [c.id for c in first] == [*flood[:2], theirs]  # oldest first, two of the flood only
        assert first[0].target == (flooder.id, "webhook", None)
        # the flooder's two are in flight: nothing more of it, however many are due
        full = {first[0].target: 2}
        assert await store.write(lambda tx: webhooks.claim(tx.conn, limit=50, lease=60, in_flight=full)) == []
        one_done = {first[0].target: 1}
        [nxt] = await store.write(lambda tx: webhooks.claim(tx.conn, limit=50, lease=60, in_flight=one_done))
        assert nxt.id == flood[2]
    finally:
        await store.close()


async def test_one_transaction_records_a_batch_and_claims_the_next(
    service: Any,  # noqa: F811
    store_settings: Any,  # noqa: F811
) -> None:
    """The deliverer's round: the outcomes of the batch it sent are recorded in the transaction
    that claims the next batch, and a deliverer stopping records what it sent before it ends."""
    from medreq.service.outbound.http import OutboundClient
    from medreq.storage import Store, webhooks

    patient = await account(service, "patient", "pat")
    deliverer = service._deliverer
    receiver = Receiver()
    store = Store(store_settings.database_url)  # the service's database, as a second process sees it
    try:
        await store.write(lambda tx: tx.update_account(patient.id, webhook_url=receiver.url, webhook_secret="s"))
        queue = lambda n: store.write(lambda tx: webhooks.enqueue(tx.conn, patient.id, n, "message", "{}"))  # noqa: E731
        first = await queue(1)
        async with OutboundClient(timeout=5, allow_private=True) as client:
            [claimed] = await deliverer.settle_and_claim([])
            assert claimed.id == first
            outcomes = [await deliverer.deliver(client, claimed, online=False)]
            assert [o.status for o in outcomes] == ["delivered"] and len(receiver.received) == 1
            second = await queue(2)
            [next_claimed] = await deliverer.settle_and_claim(outcomes)
            assert next_claimed.id == second
            rows = {r.id: r.status for r in await store.read(lambda c: webhooks.for_account(c, patient.id, limit=10))}
            assert rows == {first: "delivered", second: "pending"}
            outcomes = [await deliverer.deliver(client, next_claimed, online=False)]
            assert await deliverer.settle_and_claim(outcomes, claim=False) == []
        rows = {r.id: r.status for r in await store.read(lambda c: webhooks.for_account(c, patient.id, limit=10))}
        assert rows == {first: "delivered", second: "delivered"}
    finally:
        receiver.close()
        await store.close()
