"""docs/protocol.md §5 Web Push, end to end with real cryptography: a push service of the test's own on
loopback checks the VAPID JWT (PyJWT, ES256, against the key the server publishes) and decrypts
the aes128gcm payload (http-ece) with the subscription's private key; a 410 removes it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from typing import Any

import httpx
import jwt
import pytest

http_ece = pytest.importorskip("http_ece")

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from .conftest import ServerProcess, make_account  # noqa: E402
from .test_webhooks import Receiver  # noqa: E402
from .wire import db_snapshot, error_code, post_request  # noqa: E402

FAST = {"MEDREQ_WEBHOOK_ALLOW_PRIVATE": "true", "MEDREQ_WEBHOOK_BACKOFF": "0.2", "MEDREQ_WEBHOOK_POLL_INTERVAL": "0.1"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PushService(Receiver):
    """One browser's subscription at a push service on 127.0.0.1 (a `Receiver` answering 201):
    what it was sent, with each POST's VAPID JWT checked and its aes128gcm payload decrypted."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        super().__init__(statuses, ok=201)
        self.port = self.httpd.server_address[1]

    def _opened(self) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
        """(VAPID claims, VAPID public key, decrypted event) of every POST so far."""
        opened = []
        for headers, body in list(self.received):
            scheme, _, params = headers["authorization"].partition(" ")
            assert scheme == "vapid"
            fields = dict(p.strip().split("=", 1) for p in params.split(","))
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
            claims = jwt.decode(fields["t"], key, algorithms=["ES256"], audience=f"http://127.0.0.1:{self.port}")
            assert headers["content-encoding"] == "aes128gcm"
            plain = http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth)
            opened.append((claims, fields["k"], json.loads(plain)))
        return opened

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [message for _, _, message in self._opened()]

    @property
    def claims(self) -> list[dict[str, Any]]:
        return [claims for claims, _, _ in self._opened()]

    @property
    def vapid_keys(self) -> list[str]:
        return [key for _, key, _ in self._opened()]

    def subscription(self) -> dict[str, Any]:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"http://127.0.0.1:{self.port}/push/{b64url(os.urandom(8))}",
            "expirationTime": None,
            "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)},
        }


async def until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        value = check()
    assert value, f"timed out waiting for {check}"
    return value


async def test_push_is_signed_encrypted_and_a_410_removes_the_subscription(server_factory: Any) -> None:
    server: ServerProcess = server_factory(FAST)
    patient, pharmacy = make_account(server.url, "patient"), make_account(server.url, "pharmacy")
    push = PushService(statuses=[201, 410])
    try:
        key = httpx.get(f"{server.url}/push/vapid-public-key", headers=patient.headers, timeout=10)
        assert key.status_code == 200
        public_key = key.json()["public_key"]
        assert len(unb64url(public_key)) == 65
        added = httpx.post(
            f"{server.url}/push/subscriptions", json=push.subscription(), headers=patient.headers, timeout=10
        )
        assert added.status_code == 201, added.text

        request_id = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="A").json()["request_id"]
        answered = httpx.post(
            f"{server.url}/medicine/response/",
            data={"request_id": str(request_id), "status": "ACCEPTED", "text_message": "Ready"},
            headers=pharmacy.headers,
            timeout=10,
        )
        assert answered.status_code == 200
        await until(lambda: push.messages)
        [message] = push.messages
        # event 1 is the patient's own `target_added` for the subscription (it had no socket)
        assert (message["type"], message["event_id"], message["request_id"]) == ("pharmacy_response", 2, request_id)
        assert set(message) == {"type", "event_id", "request_id"}  # no name, message or medicine
        assert push.vapid_keys == [public_key]  # signed with the key browsers were given
        assert push.claims[0]["sub"].startswith("mailto:")

        # the push service now says the subscription is gone: it is removed, nothing retried
        posted = httpx.post(
            f"{server.url}/medicine/request/{request_id}/messages/",
            json={"text": "Come by 5"},
            headers=pharmacy.headers,
            timeout=10,
        )
        assert posted.status_code == 201
        await until(lambda: len(push.messages) == 2)

        def deliveries() -> list[dict[str, Any]]:
            url = f"{server.url}/auth/me/webhook-deliveries"
            return list(httpx.get(url, headers=patient.headers, timeout=10).json()["results"])

        await until(lambda: deliveries()[0]["status"] == "failed")
        gone, first = deliveries()
        assert (gone["channel"], gone["last_status"], gone["attempts"]) == ("push", 410, 1)
        assert (first["channel"], first["status"], first["last_status"]) == ("push", "delivered", 201)
        # removed: the next event queues nothing for it
        again = httpx.post(
            f"{server.url}/medicine/request/{request_id}/messages/",
            json={"text": "Closing at 6"},
            headers=pharmacy.headers,
            timeout=10,
        )
        assert again.status_code == 201
        assert len(deliveries()) == 2
        removed = httpx.request(
            "DELETE",
            f"{server.url}/push/subscriptions",
            json={"endpoint": added.json()["endpoint"]},
            headers=patient.headers,
            timeout=10,
        )
        assert (removed.status_code, error_code(removed)) == (404, "not_found")  # already removed
    finally:
        push.close()


def test_bad_push_subscriptions_are_refused_and_nothing_stored(server: ServerProcess) -> None:
    patient = make_account(server.url, "patient")
    good = {"p256dh": b64url(b"\x04" + os.urandom(64)), "auth": b64url(os.urandom(16))}
    before = db_snapshot(server)
    for body in (
        {"endpoint": "http://127.0.0.1:9/push", "keys": good},  # loopback: SSRF
        {"endpoint": "https://push.example/x", "keys": {"p256dh": "short", "auth": good["auth"]}},
        {"endpoint": "https://push.example/x", "keys": {"p256dh": good["p256dh"]}},
        {"keys": good},
    ):
        response = httpx.post(f"{server.url}/push/subscriptions", json=body, headers=patient.headers, timeout=10)
        assert (response.status_code, error_code(response)) == (422, "validation_error"), body
    assert db_snapshot(server) == before


async def test_only_events_worth_a_notification_are_pushed(server_factory: Any) -> None:
    """A pharmacy answering from the CLI (no socket) gets no push for its own `request_updated`,
    nor for its own message; the patient's message reaches it."""
    server: ServerProcess = server_factory(FAST)
    patient, pharmacy = make_account(server.url, "patient"), make_account(server.url, "pharmacy")
    push = PushService()
    try:
        added = httpx.post(
            f"{server.url}/push/subscriptions", json=push.subscription(), headers=pharmacy.headers, timeout=10
        )
        assert added.status_code == 201, added.text
        request_id = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="A").json()["request_id"]
        await until(lambda: len(push.messages) == 1)  # new_request
        for posted in (
            httpx.post(
                f"{server.url}/medicine/response/",
                data={"request_id": str(request_id), "status": "ACCEPTED"},
                headers=pharmacy.headers,
                timeout=10,
            ),
            httpx.post(
                f"{server.url}/medicine/request/{request_id}/messages/",
                json={"text": "from the pharmacy"},
                headers=pharmacy.headers,
                timeout=10,
            ),
            httpx.post(
                f"{server.url}/medicine/request/{request_id}/messages/",
                json={"text": "from the patient"},
                headers=patient.headers,
                timeout=10,
            ),
        ):
            assert posted.status_code in (200, 201), posted.text
        await until(lambda: len(push.messages) == 2)
        await asyncio.sleep(0.5)  # a wrongly queued push would arrive by now (the deliverer is woken)
        # 1 is its `target_added`, 3 its own `request_updated`: neither is pushed, nor its own message
        assert [(m["type"], m["event_id"]) for m in push.messages] == [("new_request", 2), ("message", 4)]
        assert all(set(m) == {"type", "event_id", "request_id"} for m in push.messages)
    finally:
        push.close()
