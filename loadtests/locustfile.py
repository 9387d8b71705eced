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

Accounts are registered as synthetic: real patients never see them, and every one is removed
with all it made when the test stops (``--keep-accounts`` keeps them). A ``429`` waits its
``Retry-After`` and is retried, not failed; each wait is counted in Locust's statistics as
``RATE Retry-After wait``. So the file runs against a server with its default limits; for
measurements, run the server with rate limits off (``--no-rate-limit``), or the limiter is what
gets measured: one pharmacy answering many patients soon meets its per-account WebSocket limit.
Past 256 users, lift the per-address connection cap too
(``MEDREQ_MAX_CONNECTIONS_PER_CLIENT=0``): every user connects from this machine's one address.
Shapes: ``MEDREQ_SHAPE``
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

from medreq.simulate.accounts import Account, NewAccount, Role, sign_up
from medreq.simulate.samples import png

sys.path.insert(0, str(Path(__file__).parent))
SHAPE = os.environ.get("MEDREQ_SHAPE", "").strip().lower()
if SHAPE == "steady":
    from shapes import SteadyShape  # noqa: F401  (Locust picks up the imported shape class)
elif SHAPE == "spike":
    from shapes import SpikeShape  # noqa: F401
elif SHAPE:
    raise SystemExit(f"MEDREQ_SHAPE must be steady or spike, not {SHAPE!r}")

PASSWORD = "load-test-password"
MAX_RETRY_WAIT = 30.0  # seconds: a Retry-After beyond this is a server telling us to stop
NOTE_PREFIX = "lt:"  # "lt:<send time, epoch seconds>"
#: Pharmacy accounts online, shared by the users of this Locust process.
PHARMACIES: list[int] = []
#: Every account this process made: (access, refresh) tokens, to remove them at the end.
ACCOUNTS: list[dict[str, str]] = []
_names = itertools.count(1)
_run = uuid.uuid4().hex[:6]


IMAGES = [png(8, 8, (16, 128, 240)), png(64, 32, (16, 128, 240)), png(200, 120, (16, 128, 240))]


def retry_after(response: Any) -> float | None:
    """For a 429: how long the server asks us to wait (counted in Locust's stats); else None."""
    if response.status_code != 429:
        return None
    try:
        wait = min(MAX_RETRY_WAIT, max(0.05, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        wait = 1.0
    events.request.fire(
        request_type="RATE", name="Retry-After wait", response_time=wait * 1000, response_length=0,
        exception=None, context={},
    )  # fmt: skip
    return wait


def post_waiting(client: Any, url: str, **kwargs: Any) -> Any:
    """POST, waiting out 429s (a 429 is marked a success: the server asked us to wait, we did)."""
    deadline = time.monotonic() + 120
    while True:
        with client.post(url, catch_response=True, **kwargs) as response:
            wait = retry_after(response)
            if wait is None or time.monotonic() > deadline:
                return response
            response.success()
        gevent.sleep(wait)


def register(client: Any, role: Role) -> Account:
    """Register (synthetic) and log in a fresh account through ``client`` (Locust's HTTP session)."""
    username = f"lt-{_run}-{role[:2]}{next(_names)}"
    new = NewAccount(username, PASSWORD, role, f"Load {role} {username}", synthetic=True)

    def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        response = post_waiting(client, path, json=body, name=path)
        return response.status_code, response.json() if response.ok else response.text

    account = sign_up(post, new)
    ACCOUNTS.append({"access": account.access, "refresh": account.refresh})
    return account


class PatientUser(HttpUser):
    weight = 4
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        account = register(self.client, "patient")
        self.client.headers.update(account.headers)
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
            wait = retry_after(response)
            if wait is not None:
                response.success()  # asked to slow down: this user waits before its next task
                gevent.sleep(wait)
            elif response.status_code != 201:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")

    @task(1)
    def list_requests(self) -> None:
        with self.client.get(
            "/medicine/request/?limit=20", name="/medicine/request/ [GET]", catch_response=True
        ) as response:
            wait = retry_after(response)
            if wait is not None:
                response.success()
                gevent.sleep(wait)


class PharmacyUser(User):
    """One pharmacy with one WebSocket; every answer goes over the socket."""

    weight = 1
    accept_ratio = 0.8

    def on_start(self) -> None:
        from locust.clients import HttpSession

        self.http = HttpSession(base_url=self.host, request_event=self.environment.events.request, user=self)
        account = register(self.http, "pharmacy")
        self.account_id = account.id
        ws_base = self.host.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        url = f"{ws_base}{account.ws_path}?token={account.access}&after=0"
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
            if kind == "error" and message["error"].get("code") == "rate_limited":
                # a socket error carries no Retry-After: wait a second (the bucket's refill), answer again
                self._fire_ms("RATE", "Retry-After wait", 1000.0, 0)
                gevent.sleep(1.0)
                self._answer(request_id)
                return
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


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--keep-accounts",
        action="store_true",
        default=False,
        help="keep the synthetic accounts this run made (default: remove them and all they made)",
    )


@events.test_start.add_listener
def _hello(environment: Any, **_: Any) -> None:
    if environment.host is None:
        raise SystemExit("pass --host http://127.0.0.1:PORT (a medreq server)")


@events.test_stop.add_listener
def _remove_accounts(environment: Any, **_: Any) -> None:
    """Remove every synthetic account this process made, with all their requests and media."""
    if getattr(environment.parsed_options, "keep_accounts", False) or not ACCOUNTS:
        return
    import requests

    removed = 0
    with requests.Session() as http:
        for tokens in list(ACCOUNTS):
            if _remove(http, environment.host, tokens):
                removed += 1
                ACCOUNTS.remove(tokens)
    print(f"medreq: removed {removed} synthetic accounts; {len(ACCOUNTS)} left", file=sys.stderr)


def _remove(http: Any, host: str, tokens: dict[str, str]) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            response = http.delete(
                f"{host}/auth/me", headers={"Authorization": f"Bearer {tokens['access']}"}, timeout=10
            )
        except OSError:
            return False
        if response.status_code == 401:  # the access token expired in a long run
            refreshed = http.post(f"{host}/auth/refresh", json={"refresh": tokens["refresh"]}, timeout=10)
            if refreshed.status_code != 200:
                return False
            tokens["access"] = refreshed.json()["access"]
            tokens["refresh"] = refreshed.json()["refresh"]  # the one sent is used up (rotation)
            continue
        wait = retry_after(response)
        if wait is None:
            return response.status_code == 204
        gevent.sleep(wait)
    return False
