"""docs/protocol.md §5: an account chooses `full` or `thin` webhooks (`PUT /auth/me`
`webhook_payload`, `medreq webhook set --thin`); a thin one carries ids only and the receiver reads
the rest with its own token; links in a full one are valid minutes, not a day."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .conftest import make_account
from .test_stolen_token import old_tokens
from .test_webhooks import FAST, Receiver, set_webhook, until, verify
from .wire import db_snapshot, error_code, post_request


def choose(server: Any, headers: dict[str, str], body: dict[str, Any]) -> httpx.Response:
    return httpx.put(f"{server.url}/auth/me", json=body, headers=headers, timeout=10)


def new_requests(receiver: Receiver) -> list[tuple[dict[str, str], bytes, dict[str, Any]]]:
    return [(h, raw, json.loads(raw)) for h, raw in receiver.received if json.loads(raw)["type"] == "new_request"]


async def test_full_then_thin_payloads_over_a_real_receiver(server_factory: Any, png_bytes: bytes) -> None:
    server = server_factory(FAST)
    pharmacy, patient = make_account(server.url, "pharmacy"), make_account(server.url, "patient")
    receiver = Receiver()
    try:
        set_ = set_webhook(server, pharmacy, receiver.url)
        assert set_.status_code == 200, set_.text
        secret = set_.json()["webhook_secret"]
        assert set_.json()["webhook_payload"] == "full"  # the default

        # full: the event as a socket gets it, its prescription link valid 10 minutes
        first = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Amoxicillin", image=png_bytes)
        first_id = first.json()["request_id"]
        [(headers, raw, event)] = await until(lambda: new_requests(receiver))
        verify(secret, headers, raw)
        assert (event["request_id"], event["medicine_name"], event["patient_name"]) == (
            first_id, "Amoxicillin", patient.name,
        )  # fmt: skip
        expires = int(parse_qs(urlsplit(event["image_url"]).query)["exp"][0])
        assert time.time() + 500 < expires <= time.time() + 600  # not the 24 h of a socket's link
        image = httpx.get(event["image_url"], timeout=10)
        assert (image.status_code, image.content) == (200, png_bytes)

        # thin, chosen alone: the URL and the secret stay, no secret in the answer
        thin = choose(server, pharmacy.headers, {"webhook_payload": "thin"})
        assert thin.status_code == 200, thin.text
        assert (thin.json()["webhook_url"], thin.json()["webhook_payload"]) == (receiver.url, "thin")
        assert "webhook_secret" not in thin.json()
        me = httpx.get(f"{server.url}/auth/me", headers=pharmacy.headers, timeout=10).json()
        assert me["webhook_payload"] == "thin"

        second_id = post_request(
            server, patient, pharmacy=pharmacy.id, medicine_name="Insulin", note="before 5pm", image=png_bytes
        ).json()["request_id"]
        [_, (headers, raw, event)] = await until(lambda: new_requests(receiver)[1:] and new_requests(receiver))
        verify(secret, headers, raw)  # signed with the secret set earlier
        assert event == {"type": "new_request", "event_id": event["event_id"], "request_id": second_id}
        for private in (b"Insulin", b"before 5pm", patient.name.encode(), b"/media/"):
            assert private not in raw
        # the receiver reads the rest with its own token
        detail = httpx.get(f"{server.url}/medicine/request/{second_id}/", headers=pharmacy.headers, timeout=10)
        assert (detail.status_code, detail.json()["medicine_name"], detail.json()["note"]) == (
            200, "Insulin", "before 5pm",
        )  # fmt: skip

        # a new URL keeps the choice; a test delivery is thin too
        moved = Receiver()
        try:
            again = set_webhook(server, pharmacy, moved.url)
            assert (again.status_code, again.json()["webhook_payload"]) == (200, "thin")
            assert httpx.post(f"{server.url}/auth/me/webhook-test", headers=pharmacy.headers, timeout=10).status_code == 202
            tests = lambda: [(h, raw) for h, raw in moved.received if b"webhook_test" in raw]  # noqa: E731
            [(headers, raw)] = await until(tests)
            verify(again.json()["webhook_secret"], headers, raw)
            assert json.loads(raw) == {"type": "webhook_test", "event_id": None, "request_id": None}
        finally:
            moved.close()
    finally:
        receiver.close()


def test_bad_payload_choices_are_refused_and_full_needs_a_recent_sign_in(server_factory: Any) -> None:
    server = server_factory(FAST)
    pharmacy = make_account(server.url, "pharmacy")
    receiver = Receiver()
    try:
        assert choose(server, pharmacy.headers, {"webhook_url": receiver.url, "webhook_payload": "thin"}).status_code == 200
        before = db_snapshot(server)
        for body in ({"webhook_payload": "medium"}, {"webhook_payload": 1}, {}, {"webhook_payload": "THIN "}):
            refused = choose(server, pharmacy.headers, body)
            assert (refused.status_code, error_code(refused)) == (422, "validation_error"), body
        # more of the account's data to a target set earlier: as adding a target, a recent sign-in
        access, _ = old_tokens(server, pharmacy, signed_in_ago=601)
        stale = {"Authorization": f"Bearer {access}"}
        refused = choose(server, stale, {"webhook_payload": "full"})
        assert (refused.status_code, error_code(refused)) == (403, "reauthentication_required")
        assert db_snapshot(server) == before
        # less never needs one
        assert choose(server, stale, {"webhook_payload": "thin"}).json()["webhook_payload"] == "thin"
        assert choose(server, pharmacy.headers, {"webhook_payload": "full"}).json()["webhook_payload"] == "full"
    finally:
        receiver.close()


def test_webhook_cli_sets_thin_and_full(
    server_factory: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medreq.cli import app

    monkeypatch.setenv("MEDREQ_CONFIG_DIR", str(tmp_path / "config"))
    server = server_factory(FAST)
    pharmacy = make_account(server.url, "pharmacy")
    runner = CliRunner()
    receiver = Receiver()

    def cli(*args: str, input: str | None = None) -> Any:
        result = runner.invoke(app, [*args, "-P", "me"], input=input)
        assert result.exit_code == 0, result.output
        return result

    def payload() -> str:
        return str(httpx.get(f"{server.url}/auth/me", headers=pharmacy.headers, timeout=10).json()["webhook_payload"])

    try:
        cli("login", "--url", server.url, "-u", pharmacy.username, "--password-stdin", input=pharmacy.password + "\n")
        assert "(thin payloads)" in cli("webhook", "set", receiver.url, "--thin").output
        assert payload() == "thin"
        assert json.loads(cli("webhook", "set", receiver.url, "--json").stdout)["webhook_payload"] == "thin"
        cli("webhook", "set", receiver.url, "--full")
        assert payload() == "full"
        bad = runner.invoke(app, ["webhook", "set", receiver.url, "--medium", "-P", "me"])
        assert bad.exit_code == 2 and payload() == "full"
    finally:
        receiver.close()
