"""A frontend on another origin, in Chromium: plain `fetch` + `FormData` + `new WebSocket(url +
"?token=…")`, written like the original design's snippets. It works once its origin is
configured (`MEDREQ_CORS_ORIGINS`) and is refused by the browser otherwise."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from medreq.simulate.samples import png, wav
from medreq.simulate.server import free_port

from .browser import launch_browser
from .conftest import ServerProcess, make_account
from .operator_accounts import operator_account
from .wire import db_snapshot

pytestmark = pytest.mark.timeout(120)

FRONTEND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A frontend on another origin</title></head>
<body><main><h1>A frontend on another origin</h1></main>
<script>
const params = new URLSearchParams(location.search);
const API = params.get("api");
const WS = API.replace(/^http/, "ws");

function next(socket, type) {
  return new Promise((resolve) => socket.addEventListener("message", (e) => {
    const data = JSON.parse(e.data);
    if (data.type === type) resolve(data);
  }));
}

async function ready(socket) {
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
  const pong = next(socket, "pong");
  socket.send(JSON.stringify({ type: "ping" }));
  await pong; // subscribed: events from now on reach this socket
}

async function login(username, password) {
  const response = await fetch(`${API}/auth/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  return response.json();
}

async function run() {
  const patient = await login(params.get("patient"), params.get("password"));
  const pharmacy = await login(params.get("pharmacy"), params.get("password"));
  const pharmacySocket = new WebSocket(`${WS}/ws/pharmacy/${pharmacy.account.id}/?token=${pharmacy.access}`);
  const patientSocket = new WebSocket(`${WS}/ws/user/${patient.account.id}/?token=${patient.access}`);
  await Promise.all([ready(pharmacySocket), ready(patientSocket)]);

  // the patient sends a request with a prescription image
  const newRequest = next(pharmacySocket, "new_request");
  const formData = new FormData();
  formData.append("pharmacy", pharmacy.account.id);
  formData.append("quantity", 2);
  formData.append("image", await (await fetch("rx.png")).blob(), "prescription.png");
  const created = await fetch(`${API}/medicine/request/`, {
    method: "POST",
    headers: { Authorization: `Bearer ${patient.access}`, "Idempotency-Key": "rx-1" },
    body: formData,
  });
  const { request_id } = await created.json();
  const request = await newRequest;
  const image = new Image();
  image.src = request.image_url;
  await image.decode();

  // the pharmacy answers with a voice message
  const answered = next(patientSocket, "pharmacy_response");
  const answer = new FormData();
  answer.append("request_id", request_id);
  answer.append("status", "ACCEPTED");
  answer.append("text_message", "Ready for pickup");
  answer.append("audio", await (await fetch("reply.wav")).blob(), "reply.wav");
  const responded = await fetch(`${API}/medicine/response/`, {
    method: "POST",
    headers: { Authorization: `Bearer ${pharmacy.access}` },
    body: answer,
  });
  const data = await answered;
  const audio = new Audio(data.audio_url);
  await new Promise((resolve, reject) => {
    audio.oncanplaythrough = resolve;
    audio.onerror = () => reject(new Error("the audio did not load"));
  });

  // an error body is readable too
  const refused = await fetch(`${API}/medicine/request/`, { headers: { Authorization: "Bearer nonsense" } });
  const error = await refused.json();
  return {
    created: created.status, new_request: request.request_id, image: image.naturalWidth,
    responded: responded.status, response: data.status, message: data.message,
    audio: audio.duration > 0, error: [refused.status, error.error.code],
  };
}

window.result = run().then((value) => ({ ok: true, ...value }), (error) => ({ ok: false, error: String(error) }));
</script></body></html>
"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def frontend(tmp_path: Path) -> Iterator[str]:
    """The frontend's own little static server, on another port (so another origin)."""
    root = tmp_path / "frontend"
    root.mkdir()
    (root / "index.html").write_text(FRONTEND_PAGE, encoding="utf-8")
    (root / "rx.png").write_bytes(png(40, 30, (200, 220, 255)))
    (root / "reply.wav").write_bytes(wav(0.5))
    httpd = ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


def accounts_query(server: ServerProcess) -> str:
    """A patient and an active pharmacy, named in the page's query string with the API's URL."""
    patient = make_account(server.url, "patient", name="Alice")
    shop = operator_account(server, "pharmacy", "LifeCare Pharmacy")
    return urlencode(
        {"api": server.url, "patient": patient.username, "pharmacy": shop.username, "password": shop.password}
    )


def open_frontend(browser: Any, frontend: str, query: str) -> dict[str, Any]:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{frontend}/?{query}")
        result: dict[str, Any] = page.evaluate("window.result")
    finally:
        context.close()
    return result


def test_a_frontend_on_a_configured_origin_plays_both_sides(
    browser: Any, frontend: str, server_factory: Any
) -> None:
    server: ServerProcess = server_factory({"MEDREQ_CORS_ORIGINS": frontend})
    result = open_frontend(browser, frontend, accounts_query(server))
    assert result == {
        "ok": True,
        "created": 201,
        "new_request": 1,
        "image": 40,
        "responded": 200,
        "response": "ACCEPTED",
        "message": "Ready for pickup",
        "audio": True,
        "error": [401, "unauthorized"],
    }


def test_the_same_frontend_is_refused_by_the_browser_without_its_origin(
    browser: Any, frontend: str, server: ServerProcess
) -> None:
    query = accounts_query(server)
    before = db_snapshot(server)
    result = open_frontend(browser, frontend, query)
    assert result == {"ok": False, "error": "TypeError: Failed to fetch"}
    assert db_snapshot(server) == before
