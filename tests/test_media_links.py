"""Media links follow the address the client used, unless `--public-url` is set."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect

from medreq.web.origin import client_base_url

from .conftest import Account, ServerProcess, make_account
from .wire import post_request

pytestmark = pytest.mark.timeout(60)

HOST = "example.test:8123"


async def first_event(server: ServerProcess, pharmacy: Account, host: str, send: Any) -> dict[str, Any]:
    """Open the pharmacy's socket as a client that reached the server as ``host``; run ``send``;
    the first event that arrives."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    uri = f"ws://{host}/ws/pharmacy/{pharmacy.id}/?token={pharmacy.access}"
    async with connect(uri, sock=sock) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv(decode=True))["type"] == "pong"
        await asyncio.to_thread(send)
        return dict(json.loads(await asyncio.wait_for(ws.recv(decode=True), 10)))


async def replay_first(server: ServerProcess, pharmacy: Account, host: str) -> dict[str, Any]:
    sock = socket.create_connection(("127.0.0.1", server.port))
    async with connect(
        f"ws://{host}/ws/pharmacy/{pharmacy.id}/?token={pharmacy.access}&after=0", sock=sock
    ) as ws:
        return dict(json.loads(await asyncio.wait_for(ws.recv(decode=True), 10)))


def test_links_follow_the_host_each_client_used(
    server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes
) -> None:
    answers: list[httpx.Response] = []

    def send() -> None:
        answers.append(
            post_request(
                server, patient, pharmacy=pharmacy.id, image=png_bytes, headers={"Host": "other.test:9"}
            )
        )

    event = asyncio.run(first_event(server, pharmacy, HOST, send))
    created = answers[0]
    assert created.status_code == 201, created.text
    # the patient reached us as other.test:9, the pharmacy as example.test:8123
    assert created.json()["data"]["image_url"].startswith("http://other.test:9/media/prescriptions/")
    assert event["type"] == "new_request"
    assert event["image_url"].startswith(f"http://{HOST}/media/prescriptions/")
    # a replayed event is rebased for the socket that asks for it
    replayed = asyncio.run(replay_first(server, pharmacy, "replay.test:7"))
    assert replayed["image_url"].startswith("http://replay.test:7/media/prescriptions/")
    detail = httpx.get(
        f"{server.url}/medicine/request/{event['request_id']}/", headers={**pharmacy.headers, "Host": HOST}
    )
    link = urlsplit(detail.json()["image_url"])
    assert link.netloc == HOST
    # the link is signed independently of the host: it opens on the real address
    opened = httpx.get(f"{server.url}{link.path}?{link.query}")
    assert opened.status_code == 200
    assert opened.content == png_bytes


def test_public_url_wins_over_the_host(server_factory: Any, png_bytes: bytes) -> None:
    server: ServerProcess = server_factory(env={"MEDREQ_PUBLIC_URL": "https://medreq.example.org"})
    patient = make_account(server.url, "patient")
    pharmacy = make_account(server.url, "pharmacy")
    created = post_request(server, patient, pharmacy=pharmacy.id, image=png_bytes, headers={"Host": HOST})
    assert created.json()["data"]["image_url"].startswith("https://medreq.example.org/media/prescriptions/")
    event = asyncio.run(first_event(server, pharmacy, HOST, lambda: post_request(
        server, patient, pharmacy=pharmacy.id, image=png_bytes, headers={"Host": HOST}
    )))  # fmt: skip
    assert event["image_url"].startswith("https://medreq.example.org/media/prescriptions/")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.test:8123", "http://example.test:8123"),
        ("192.168.1.20:8000", "http://192.168.1.20:8000"),
        ("[::1]:8000", "http://[::1]:8000"),
        ("localhost", "http://localhost"),
        ('evil.test/"><script>', None),
        ("user@evil.test", None),
        ("evil.test:80/x?", None),
        ("", None),
        ("a" * 300, None),
    ],
)
def test_only_a_well_formed_host_is_used(host: str, expected: str | None) -> None:
    scope = {"type": "http", "scheme": "http", "headers": [(b"host", host.encode())]}
    assert client_base_url(scope) == expected
    assert client_base_url({"type": "http", "scheme": "https", "headers": []}) is None
    if expected is not None:
        assert client_base_url(scope | {"scheme": "https"}) == expected.replace("http:", "https:")
