"""Locust load test for medreq: patients over HTTP, pharmacies over a WebSocket.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000            # web UI
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless -u 40 -r 10 --run-time 1m
    MEDREQ_SHAPE=spike locust -f loadtests/locustfile.py --host ... --headless   # a LoadTestShape

- `PatientUser` (HttpUser): registers, logs in, posts requests (half with a real small PNG,
  the send time embedded in ``note``), lists its requests.
- `PharmacyUser` (a custom User): registers, holds one WebSocket (``websockets.sync.client``,
  which works under Locust's gevent monkey-patching: its reader thread becomes a greenlet),
  answers every ``new_request`` over the socket, and reports to Locust's statistics:
  ``WS new_request delivery`` (patient's send time → event received) and ``WS response ack``
  (answer sent → ack received), through ``environment.events.request.fire``.

The server should run with rate limits off (``MEDREQ_RATE_LIMIT_ENABLED=false``); without
them, a single pharmacy soon hits its per-account WebSocket limit. Past 256 users, lift the
per-address connection cap too (``MEDREQ_MAX_CONNECTIONS_PER_CLIENT=0``): every user connects
from this machine's one address. Shapes: ``MEDREQ_SHAPE``
= ``steady`` or ``spike`` (see loadtests/shapes.py), or none (use ``-u``/``-r``).
Clocks: delivery latency compares ``time.time()`` of the patient and of the pharmacy, so run
every Locust process on one machine (or with synchronised clocks).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from locust import HttpUser, User, between, events, task
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from medreq.samples import png

sys.path.insert(0, str(Path(__file__).parent))
SHAPE = os.environ.get("MEDREQ_SHAPE", "").strip().lower()
if SHAPE == "steady":
    from shapes import SteadyShape  # noqa: F401  (Locust picks up the imported shape class)
elif SHAPE == "spike":
    from shapes import SpikeShape  # noqa: F401
elif SHAPE:
    raise SystemExit(f"MEDREQ_SHAPE must be steady or spike, not {SHAPE!r}")

PASSWORD = "load-test-password"
NOTE_PREFIX = "lt:"  # "lt:<send time, epoch seconds>"
#: Pharmacy accounts online, shared by the users of this Locust process.
PHARMACIES: list[int] = []
_names = itertools.count(1)
_run = uuid.uuid4().hex[:6]


IMAGES = [png(8, 8, (16, 128, 240)), png(64, 32, (16, 128, 240)), png(200, 120, (16, 128, 240))]


def register(client: Any, role: str) -> dict[str, Any]:
    """Register and log in a fresh account through ``client`` (Locust's HTTP session)."""
    username = f"lt-{_run}-{role[:2]}{next(_names)}"
    body = {"username": username, "password": PASSWORD, "role": role, "name": f"Load {role} {username}"}
    client.post("/auth/register", json=body, name="/auth/register").raise_for_status()
    tokens = client.post("/auth/token", json={"username": username, "password": PASSWORD}, name="/auth/token")
    tokens.raise_for_status()
    return dict(tokens.json())


class PatientUser(HttpUser):
    weight = 4
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        tokens = register(self.client, "patient")
        self.client.headers["Authorization"] = f"Bearer {tokens['access']}"
        deadline = time.monotonic() + 30
        while not PHARMACIES and time.monotonic() < deadline:
            gevent.sleep(0.1)

    @task(4)
    def send_request(self) -> None:
        if not PHARMACIES:
            return
        fields = {
            "pharmacy": str(random.choice(PHARMACIES)),
            "quantity": str(random.randint(1, 5)),
            "note": f"{NOTE_PREFIX}{time.time():.6f}",
        }
        files = None
        if random.random() < 0.5:
            files = {"image": ("prescription.png", random.choice(IMAGES), "image/png")}
        else:
            fields["medicine_name"] = "Amoxicillin 500mg"
        with self.client.post(
            "/medicine/request/",
            data=fields,
            files=files,
            name="/medicine/request/ [POST]",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")

    @task(1)
    def list_requests(self) -> None:
        self.client.get("/medicine/request/?limit=20", name="/medicine/request/ [GET]")


class PharmacyUser(User):
    """One pharmacy with one WebSocket; every answer goes over the socket."""

    weight = 1
    accept_ratio = 0.8

    def on_start(self) -> None:
        from locust.clients import HttpSession

        self.http = HttpSession(base_url=self.host, request_event=self.environment.events.request, user=self)
        tokens = register(self.http, "pharmacy")
        self.account_id = int(tokens["account"]["id"])
        ws_base = self.host.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        url = f"{ws_base}/ws/pharmacy/{self.account_id}/?token={tokens['access']}&after=0"
        self._stack = contextlib.ExitStack()
        start = time.perf_counter()
        try:
            self.ws = self._stack.enter_context(connect(url, open_timeout=10, max_size=2**20))
        except Exception as exc:
            self._fire("WS", "connect", start, exc)
            raise
        self._fire("WS", "connect", start)
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[float, int]] = {}  # ref → (sent at, request_id)
        PHARMACIES.append(self.account_id)

    def on_stop(self) -> None:
        with contextlib.suppress(ValueError):
            PHARMACIES.remove(self.account_id)
        self._stack.close()

    @task
    def serve_patients(self) -> None:
        """Read frames for up to a second; answer each new request at once."""
        deadline = time.monotonic() + 1.0
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = self.ws.recv(timeout=left)
            except TimeoutError:
                return
            except ConnectionClosed as exc:
                self._fire("WS", "connection", time.perf_counter(), exc)
                self.stop()
                return
            self._on_frame(json.loads(frame))

    def _on_frame(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "new_request":
            note = message.get("note") or ""
            if note.startswith(NOTE_PREFIX):
                sent = float(note.removeprefix(NOTE_PREFIX))
                self._fire_ms("WS", "new_request delivery", (time.time() - sent) * 1000, len(note))
            self._answer(int(message["request_id"]))
        elif kind in ("ack", "error") and isinstance(message.get("ref"), int):
            sent_at, request_id = self._pending.pop(message["ref"], (None, 0))
            if sent_at is None:
                return
            error = None
            if kind == "error":
                error = RuntimeError(f"request {request_id}: {message['error'].get('code')}")
            self._fire("WS", "response ack", sent_at, error)

    def _answer(self, request_id: int) -> None:
        ref = next(self._ids)
        status = "ACCEPTED" if random.random() < self.accept_ratio else "REJECTED"
        frame = {"type": "response", "id": ref, "request_id": request_id, "status": status, "message": "ok"}
        self._pending[ref] = (time.perf_counter(), request_id)
        self.ws.send(json.dumps(frame))

    def _fire(self, kind: str, name: str, started: float, exc: BaseException | None = None) -> None:
        self._fire_ms(kind, name, (time.perf_counter() - started) * 1000, 0, exc)

    def _fire_ms(
        self, kind: str, name: str, ms: float, length: int, exc: BaseException | None = None
    ) -> None:
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=ms,
            response_length=length,
            exception=exc,
            context={},
        )


@events.test_start.add_listener
def _hello(environment: Any, **_: Any) -> None:
    if environment.host is None:
        raise SystemExit("pass --host http://127.0.0.1:PORT (a medreq server with rate limits off)")
