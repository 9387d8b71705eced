"""docs/protocol.md §3, groups "Minimum necessary": once a request is CANCELLED, for whatever reason, its
pharmacy gets neither the patient's phone nor the prescription (REST detail and list, socket
events and replays, webhooks), and every media link issued to it before stops opening: a link is
issued to one account, and each fetch asks whether that account may still see the file. The
patient's own links keep working. A disabled account's links stop too."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from medreq.cli import app

from .conftest import (
    Account,
    ServerProcess,
    create_database,
    drop_database,
    make_account,
    png,
    require_service,
    wav,
)
from .test_webhooks import FAST, set_webhook, until
from .wire import open_ws, post_request, post_response, recv_json

PHONE = "+1-555-0142"


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the file (webhooks to loopback, quick retries); every test makes its own accounts."""
    proc = ServerProcess(tmp_path_factory.mktemp("minimum") / "data", env=FAST)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The same on PostgreSQL, whose fast path (storage/pgfast.py) creates requests and replays
    events with statements of its own."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    url = asyncio.run(create_database())
    proc = ServerProcess(
        tmp_path_factory.mktemp("minimum-pg") / "data", env={**FAST, "MEDREQ_DATABASE_URL": url}
    )
    proc.start()
    yield proc
    proc.stop()
    asyncio.run(drop_database(url))


class HeldReceiver:
    """A webhook endpoint that holds its first `new_request` until `release()`, then answers it
    500 (so that event is tried again, rendered after whatever the test did meanwhile), and
    answers every other POST 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.first = threading.Event()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event = json.loads(body)
                receiver.received.append(event)
                status = 200
                if event["type"] == "new_request" and not receiver.first.is_set():
                    receiver.first.set()
                    receiver._release.wait(8)  # within the server's webhook timeout (10 s)
                    status = 500
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()

    def new_requests(self) -> list[dict[str, Any]]:
        return [event for event in self.received if event["type"] == "new_request"]


def issued_to(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["to"][0])


def bare(url: str) -> str:
    return url.split("?", 1)[0]


def detail(server: ServerProcess, account: Account, request_id: int) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/medicine/request/{request_id}/", headers=account.headers, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def listed(server: ServerProcess, account: Account, request_id: int) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/medicine/request/", headers=account.headers, timeout=10)
    assert response.status_code == 200, response.text
    [item] = [item for item in response.json()["results"] if item["id"] == request_id]
    return dict(item)


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    return httpx.get(url, headers=headers, timeout=10).status_code


def cancel(server: ServerProcess, patient: Account, request_id: int) -> None:
    response = httpx.post(
        f"{server.url}/medicine/request/{request_id}/cancel/", headers=patient.headers, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CANCELLED"


async def next_of(ws: Any, kind: str) -> dict[str, Any]:
    """The next event of type `kind` on the socket (others are skipped)."""
    while (event := await recv_json(ws))["type"] != kind:
        pass
    return event


async def socket_events(server: ServerProcess, account: Account, want: int) -> list[dict[str, Any]]:
    """The account's stored events, replayed from the start (`after=0`)."""
    async with open_ws(server, account, after=0) as ws:
        return [await recv_json(ws) for _ in range(want)]


@pytest.fixture(params=["sqlite", "postgresql"])
def either_server(request: pytest.FixtureRequest) -> ServerProcess:
    server: ServerProcess = request.getfixturevalue(
        "fast_server" if request.param == "sqlite" else "pg_server"
    )
    return server


async def test_cancelled_request_withdraws_phone_and_prescription_from_its_pharmacy(
    either_server: ServerProcess,
) -> None:
    server = either_server
    patient = make_account(server.url, "patient", name="Maria Patient", phone=PHONE)
    pharmacy = make_account(server.url, "pharmacy", name="Corner Pharmacy")
    image = png(5, 5)
    receiver = HeldReceiver()
    try:
        assert set_webhook(server, pharmacy, receiver.url).status_code == 200
        # 1. the pharmacy is offline: the first request reaches it by webhook (held there)
        first = post_request(server, patient, pharmacy=pharmacy.id, image=image, medicine_name="Salbutamol")
        assert first.status_code == 201, first.text
        first_id = first.json()["request_id"]
        await until(receiver.first.is_set)
        [hooked] = receiver.new_requests()
        assert (hooked["request_id"], hooked["patient_phone"]) == (first_id, PHONE)
        webhook_url = hooked["image_url"]

        # 2. its socket: the first replayed, the second live
        async with open_ws(server, pharmacy, after=0) as ws:
            replayed = await next_of(ws, "new_request")
            second = post_request(server, patient, pharmacy=pharmacy.id, image=image, medicine_name="Insulin")
            assert second.status_code == 201, second.text
            second_id = second.json()["request_id"]
            live = await next_of(ws, "new_request")
        assert (replayed["type"], replayed["request_id"], replayed["patient_phone"]) == (
            "new_request",
            first_id,
            PHONE,
        )
        assert (live["type"], live["request_id"], live["patient_phone"]) == ("new_request", second_id, PHONE)

        # 3. REST: the pharmacy's detail and list, the patient's own
        pharmacy_urls = [webhook_url, replayed["image_url"], live["image_url"]]
        patient_urls = [first.json()["data"]["image_url"], second.json()["data"]["image_url"]]
        for request_id in (first_id, second_id):
            seen = detail(server, pharmacy, request_id)
            assert seen["patient"]["phone"] == PHONE
            pharmacy_urls += [seen["image_url"], listed(server, pharmacy, request_id)["image_url"]]
            patient_urls.append(detail(server, patient, request_id)["image_url"])
        # every link names the account it was issued to, and opens now
        assert {issued_to(url) for url in pharmacy_urls} == {pharmacy.id}
        assert {issued_to(url) for url in patient_urls} == {patient.id}
        for url in pharmacy_urls + patient_urls:
            assert status_of(url) == 200, url
        assert status_of(bare(webhook_url), pharmacy.headers) == 200  # the token way too

        # 4. the patient cancels both; the held webhook attempt then fails and is retried
        cancel(server, patient, first_id)
        cancel(server, patient, second_id)
        receiver.release()

        # the pharmacy's links stop, with or without its token; the patient's keep working
        for url in pharmacy_urls:
            response = httpx.get(url, timeout=10)
            assert response.status_code == 403, (url, response.text)
            assert response.json()["error"]["code"] == "forbidden"
            assert response.content != image
            assert status_of(url, pharmacy.headers) == 403
            assert status_of(bare(url), pharmacy.headers) == 403
        for url in patient_urls:
            assert httpx.get(url, timeout=10).content == image
            assert status_of(bare(url), patient.headers) == 200

        # the pharmacy's views carry neither; the rest of the request stays
        for request_id, medicine in ((first_id, "Salbutamol"), (second_id, "Insulin")):
            for view in (detail(server, pharmacy, request_id), listed(server, pharmacy, request_id)):
                assert (view["status"], view["medicine_name"]) == ("CANCELLED", medicine)
                assert (view["patient"]["phone"], view["image_url"]) == (None, None)
                assert view["patient"]["name"] == "Maria Patient"
            own = detail(server, patient, request_id)
            assert own["patient"]["phone"] == PHONE
            assert httpx.get(own["image_url"], timeout=10).content == image

        # a replay: the new_request events are sent without them
        # target_added (the webhook), 2 new_request, 2 request_cancelled
        events = await socket_events(server, pharmacy, 5)
        offered = {e["request_id"]: e for e in events if e["type"] == "new_request"}
        assert set(offered) == {first_id, second_id}
        for event in offered.values():
            assert (event["patient_phone"], event["image_url"]) == (None, None)
            assert event["patient_name"] == "Maria Patient"
        assert offered[first_id]["medicine_name"] == "Salbutamol"
        assert [e["type"] for e in events].count("request_cancelled") == 2

        # the webhook's retry, rendered after the cancel, is sent without them
        retried = await until(lambda: receiver.new_requests()[1:])
        assert retried[0]["request_id"] == first_id
        assert (retried[0]["patient_phone"], retried[0]["image_url"]) == (None, None)
        assert retried[0]["medicine_name"] == "Salbutamol"
    finally:
        receiver.close()


def set_status(server: ServerProcess, request_id: int, status: str) -> None:
    """What another cancel reason (another pharmacy chosen) leaves: the request CANCELLED after
    an answer, written straight into the database."""
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        db.execute("update medicine_requests set status = ? where id = ?", (status, request_id))
        db.commit()
    finally:
        db.close()


def test_the_rule_follows_the_status_whatever_cancelled_it(fast_server: ServerProcess) -> None:
    """An answered request (the pharmacy's own voice note in it) that becomes CANCELLED: the
    pharmacy's links to both files stop, the patient's do not, and the pharmacy's view drops them."""
    server = fast_server
    patient = make_account(server.url, "patient", phone=PHONE)
    pharmacy = make_account(server.url, "pharmacy")
    created = post_request(server, patient, pharmacy=pharmacy.id, image=png(6, 6))
    request_id = created.json()["request_id"]
    answered = post_response(server, pharmacy, request_id=request_id, audio=wav(0.05))
    assert answered.status_code == 200, answered.text
    theirs = [answered.json()["data"]["image_url"], answered.json()["data"]["response"]["audio_url"]]
    own = detail(server, patient, request_id)
    mine = [own["image_url"], own["response"]["audio_url"]]
    for url in theirs + mine:
        assert status_of(url) == 200

    set_status(server, request_id, "CANCELLED")
    assert [status_of(url) for url in theirs] == [403, 403]
    assert [status_of(url) for url in mine] == [200, 200]
    seen = detail(server, pharmacy, request_id)
    assert (seen["status"], seen["patient"]["phone"], seen["image_url"]) == ("CANCELLED", None, None)
    # the check is made at each fetch: the same links open again if it were not CANCELLED
    set_status(server, request_id, "ACCEPTED")
    assert [status_of(url) for url in theirs] == [200, 200]


def operator(server: ServerProcess, command: str, username: str) -> None:
    result = CliRunner().invoke(app, ["account", command, username, "--data-dir", str(server.data_dir)])
    assert result.exit_code == 0, result.output


def test_a_disabled_accounts_links_stop_and_come_back_with_it(fast_server: ServerProcess) -> None:
    server = fast_server
    patient = make_account(server.url, "patient")
    pharmacy = make_account(server.url, "pharmacy")
    created = post_request(server, patient, pharmacy=pharmacy.id, image=png(7, 7))
    request_id = created.json()["request_id"]
    patient_url = created.json()["data"]["image_url"]
    pharmacy_url = detail(server, pharmacy, request_id)["image_url"]
    assert (status_of(patient_url), status_of(pharmacy_url)) == (200, 200)

    operator(server, "disable", pharmacy.username)
    assert (status_of(patient_url), status_of(pharmacy_url)) == (200, 403)
    operator(server, "enable", pharmacy.username)
    assert status_of(pharmacy_url) == 200

    operator(server, "disable", patient.username)
    assert (status_of(patient_url), status_of(pharmacy_url)) == (403, 200)
    operator(server, "enable", patient.username)
    assert status_of(patient_url) == 200
