"""docs/security.md, "One account's receiver": a receiver that never answers delays its own
account's webhooks and no one else's, and `POST /auth/me/webhook-test` is limited per account."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from .conftest import make_account
from .test_webhooks import FAST, Receiver, deliveries, set_webhook, until
from .wire import error_code, post_request

HOLD = 60.0  # how long the hanging receiver holds a POST at most (the test releases it sooner)


class HangingReceiver:
    """A webhook endpoint on 127.0.0.1 that reads each POST and answers nothing until released:
    `held` counts the POSTs it is holding right now, `seen` all it got, `closed` the connections
    the server gave up on (none while the server's timeout is longer than the test)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.held = self.seen = self.closed = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.held += 1
                    receiver.seen += 1
                receiver.release.wait(HOLD)
                with receiver.lock:
                    receiver.held -= 1
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the server gave up on it
                    with receiver.lock:
                        receiver.closed += 1

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def attackers(server: Any, account: Any) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.url}/auth/me/webhook-deliveries", params={"limit": 100}, headers=account.headers, timeout=10
    )
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


async def test_a_hanging_receiver_delays_only_its_own_account(server_factory: Any) -> None:
    """60 events queued for a pharmacy whose receiver holds every POST open, then one for another
    pharmacy: the other's webhook arrives while the first's POSTs are still held (the server's
    POST timeout is 45 s, so none has timed out), and the hanging receiver never holds more than
    two. Before, the deliverer claimed 50 rows at a time and waited for the batch's slowest POST:
    the other pharmacy's event waited behind the whole timeout."""
    server = server_factory({**FAST, "MEDREQ_WEBHOOK_TIMEOUT": "45", "MEDREQ_RATE_LIMIT_ENABLED": "false"})
    attacker, victim = make_account(server.url, "pharmacy"), make_account(server.url, "pharmacy")
    patient = make_account(server.url, "patient")
    hanging, normal = HangingReceiver(), Receiver()
    try:
        assert set_webhook(server, attacker, hanging.url).status_code == 200
        assert set_webhook(server, victim, normal.url).status_code == 200
        for n in range(60):
            assert post_request(server, patient, pharmacy=attacker.id, medicine_name=f"A{n}").status_code == 201
        queued_at = time.monotonic()
        request_id = post_request(server, patient, pharmacy=victim.id, medicine_name="B").json()["request_id"]

        def victims_request() -> list[dict[str, Any]]:
            bodies = [json.loads(raw) for _, raw in normal.received]
            return [b for b in bodies if b["type"] == "new_request" and b["request_id"] == request_id]

        await until(victims_request, timeout=20)
        assert time.monotonic() - queued_at < 45  # inside the POST timeout, however slow the machine
        await until(lambda: hanging.held == 2)
        with hanging.lock:
            assert (hanging.seen, hanging.closed) == (2, 0)  # still held; no third POST to it
        # the attacker's other rows wait in the outbox, unclaimed: nothing failed, nothing lost
        assert [d["status"] for d in attackers(server, attacker)] == ["pending"] * 60
        hanging.release.set()  # the receiver answers again: its backlog drains, two at a time
        await until(lambda: hanging.seen == 60, timeout=60)
        await until(lambda: {d["status"] for d in attackers(server, attacker)} == {"delivered"}, timeout=30)
        assert hanging.closed == 0
    finally:
        hanging.close()
        normal.close()


def test_webhook_test_is_limited_to_one_every_ten_seconds_per_account(server_factory: Any) -> None:
    server = server_factory(FAST)
    one, other = make_account(server.url, "patient"), make_account(server.url, "patient")
    receiver = Receiver()
    try:
        for account in (one, other):
            assert set_webhook(server, account, receiver.url).status_code == 200
        url = f"{server.url}/auth/me/webhook-test"
        first = httpx.post(url, headers=one.headers, timeout=10)
        assert first.status_code == 202, first.text
        again = httpx.post(url, headers=one.headers, timeout=10)
        assert (again.status_code, error_code(again)) == (429, "rate_limited")
        assert 1 <= int(again.headers["retry-after"]) <= 10
        assert "one test delivery every 10 s" in again.json()["error"]["message"]
        # another account's limit is its own
        assert httpx.post(url, headers=other.headers, timeout=10).status_code == 202
        tests = [d for d in deliveries(server, one) if d["type"] == "webhook_test"]
        assert [d["id"] for d in tests] == [first.json()["id"]]
    finally:
        receiver.close()
