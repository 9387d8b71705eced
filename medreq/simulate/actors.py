"""Simulated patients and pharmacies: one `MedreqClient` and one live connection each.

An actor keeps its WebSocket open for the whole run (closing and reopening it with
``?after=<last event_id handled>`` when it churns) and reports what it sees to the `Ledger`.
Patients post requests when the arrival process says so (to one pharmacy, or to several at
once: then they choose the first acceptance they hear of); pharmacies answer each new request
once, after a think time, over the WebSocket or over REST (always REST with audio), unless the
patient chose another pharmacy meanwhile.
Every retry loop is bounded by attempts and by the run's hard deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from medreq.client import (
    Backoff,
    Conflict,
    LiveConnection,
    MedreqClient,
    MedreqError,
    NewRequestEvent,
    PharmacyResponseEvent,
    RateLimited,
    RequestCancelledEvent,
    RequestChosenEvent,
    TransportError,
)

from .ledger import NOTE_PREFIX, Group, Ledger, RequestRecord
from .limits import connection_refusal
from .media import PRESCRIPTIONS, VOICE_REPLY
from .scenario import Scenario

MAX_ATTEMPTS = 8
#: Reconnect quickly: the simulator measures the server, not patience.
FAST_BACKOFF = Backoff(initial=0.05, factor=2.0, maximum=1.0, jitter=0.5)
MEDICINES = ["Amoxicillin 500mg", "Paracetamol 1g", "Ibuprofen 400mg", "Metformin 850mg", "Salbutamol"]


@dataclass
class RunState:
    """What every actor shares: the scenario, the ledger, the clock and the stop signals."""

    scenario: Scenario
    ledger: Ledger
    rng: random.Random
    run_id: str
    hard_deadline: float  # monotonic; nothing runs past it
    draining: asyncio.Event = field(default_factory=asyncio.Event)  # no more arrivals nor churn
    stopped: asyncio.Event = field(default_factory=asyncio.Event)  # close everything
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # posts and answers in flight
    connect_gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(64))
    setting_up: bool = True  # until every connection opened: a refusal stops the run
    refusal: MedreqError | None = None  # the first connection a server's cap refused in setup
    refused: asyncio.Event = field(default_factory=asyncio.Event)
    drops: int = 0
    reconnects: int = 0
    redelivered_dropped: int = 0
    _keys: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_key(self) -> str:
        return f"{self.run_id}-{next(self._keys)}"

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def remaining(self) -> float:
        return max(0.0, self.hard_deadline - time.monotonic())

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake up when the run stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopped.wait(), min(seconds, self.remaining()))


class Actor:
    role: Literal["patient", "pharmacy"]

    def __init__(self, state: RunState, client: MedreqClient, account_id: int, *, churns: bool) -> None:
        self.state = state
        self.client = client
        self.id = account_id
        self.churns = churns
        self.conn: LiveConnection | None = None
        self.online = asyncio.Event()
        self.rng = random.Random(state.rng.random())
        # the last event_id handled, where the next session resumes (fresh accounts: from the
        # first event). Not the connection's `last_event_id`: that counts what it has queued,
        # and an event queued just as the session's timer fired was never handled, yet the
        # next session resumed past it and the run reported it lost.
        self.handled_through = 0

    # --- the connection loop --------------------------------------------------------------------

    async def run(self) -> None:
        """Hold a connection until cancelled (the runner cancels every actor at the end)."""
        state, churn = self.state, self.state.scenario.churn
        failures = 0
        while state.remaining() > 0:
            voluntary = False
            conn = self.client.connect(after=self.handled_through, backoff=FAST_BACKOFF)
            try:
                async with state.connect_gate:  # thousands of handshakes at once would time out
                    await conn.__aenter__()
                try:
                    self.conn = conn
                    self.online.set()
                    failures = 0
                    session: float | None = None
                    if self.churns and churn.mode == "reconnect":
                        session = self.rng.expovariate(1.0 / churn.interval)
                    voluntary = await self._listen(conn, session)
                finally:
                    self.online.clear()
                    self.conn = None
                    state.reconnects += conn.reconnects
                    state.redelivered_dropped += conn.duplicates_dropped
                    await conn.aclose()
            except MedreqError as exc:  # the (re)connect failed, or the connection gave up
                refusal = connection_refusal(exc)
                state.ledger.error(f"ws_{refusal.code if refusal else exc.code}")
                if refusal is not None and state.setting_up and state.refusal is None:
                    state.refusal = refusal
                    state.refused.set()
                failures += 1
                await state.pause(FAST_BACKOFF.delay(failures))
                continue
            if voluntary:
                state.drops += 1
                await state.pause(self.rng.uniform(*churn.offline))

    async def _listen(self, conn: LiveConnection, session: float | None) -> bool:
        """Handle events; True when this session should drop now (churn), False when the
        connection ended by itself. No polling: thousands of idle actors cost nothing."""
        while True:
            try:
                async with asyncio.timeout(session):
                    async for event in conn:
                        self.handle(event)
                        if event.event_id is not None:
                            self.handled_through = event.event_id
                return False
            except TimeoutError:
                if not self.state.draining.is_set():
                    return True
                session = None  # draining: stay online until the end

    def handle(self, event: object) -> None:
        raise NotImplementedError

    async def wait_online(self) -> LiveConnection:
        deadline = min(self.state.remaining(), 15.0)
        await asyncio.wait_for(self.online.wait(), deadline)
        if self.conn is None:
            raise TransportError("offline")
        return self.conn


class Patient(Actor):
    role = "patient"

    def handle(self, event: object) -> None:
        if isinstance(event, PharmacyResponseEvent):
            record = self.state.ledger.answer_delivered(self.id, event.request_id)
            group = record.group if record is not None else None
            if (
                record is not None
                and group is not None
                and len(group.members) > 1
                and event.status == "ACCEPTED"
                and self.state.scenario.requests.choose == "first_accepted"
                and not group.choosing
            ):
                group.choosing = True
                self.state.spawn(self.choose(group, record))

    async def post(self, pharmacy_ids: list[int]) -> None:
        state, ledger, spec = self.state, self.state.ledger, self.state.scenario.requests
        key = state.next_key()
        group = ledger.request_started(key, self.id, pharmacy_ids)
        with_image = self.rng.random() < spec.image_share
        image = self.rng.choice(PRESCRIPTIONS) if with_image else None
        for attempt in range(MAX_ATTEMPTS):
            if state.remaining() <= 0:
                break
            try:
                created = await self.client.create_request(
                    pharmacy_ids,
                    self.rng.randint(1, spec.quantity_max),
                    image,
                    medicine_name=None if with_image else self.rng.choice(MEDICINES),
                    note=NOTE_PREFIX + key,
                    idempotency_key=key,
                    filename="prescription.png" if with_image else None,
                )
            except RateLimited as exc:
                ledger.error(exc.code)
                await state.pause(max(0.05, exc.retry_after))
            except TransportError as exc:  # its fate is unknown: retry with the same key
                ledger.error(exc.code)
                await state.pause(FAST_BACKOFF.delay(attempt))
            except MedreqError as exc:
                ledger.error(exc.code)
                break
            else:
                ledger.request_created(group, [r.id for r in created.requests] or [created.request_id])
                return
        ledger.request_failed(group)

    async def choose(self, group: Group, record: RequestRecord) -> None:
        """Take ``record``'s accepted answer; a retry of a choice whose fate is unknown is
        answered 200 again (choosing the same request twice is allowed)."""
        state, ledger = self.state, self.state.ledger
        request_id = record.request_id
        assert request_id is not None
        for attempt in range(MAX_ATTEMPTS):
            if state.remaining() <= 0:
                break
            try:
                await self.client.choose(request_id)
            except RateLimited as exc:
                ledger.error(exc.code)
                await state.pause(max(0.05, exc.retry_after))
            except TransportError as exc:
                ledger.error(exc.code)
                await state.pause(FAST_BACKOFF.delay(attempt))
            except MedreqError as exc:
                ledger.error(f"choose_{exc.code}")
                break
            else:
                ledger.choice_confirmed(group, record)
                return
        ledger.choice_failed()


class Pharmacy(Actor):
    role = "pharmacy"

    def __init__(self, state: RunState, client: MedreqClient, account_id: int, *, churns: bool) -> None:
        super().__init__(state, client, account_id, churns=churns)
        self.answering = asyncio.Semaphore(state.scenario.pharmacy.max_concurrent_answers)

    def handle(self, event: object) -> None:
        ledger = self.state.ledger
        if isinstance(event, NewRequestEvent):
            record = ledger.request_delivered(self.id, event.request_id, event.note, event.asked_pharmacies)
            if record is not None:
                self.state.spawn(self.answer(record))
        elif isinstance(event, RequestChosenEvent):
            ledger.chosen_delivered(self.id, event.request_id)
        elif isinstance(event, RequestCancelledEvent):
            ledger.cancel_delivered(self.id, event.request_id, event.reason)

    async def answer(self, record: RequestRecord) -> None:
        state, ledger, spec = self.state, self.state.ledger, self.state.scenario.pharmacy
        await state.pause(spec.think_time.sample(self.rng))
        if record.cancel_deliveries:  # the patient chose another pharmacy while we thought
            ledger.answer_superseded(record)
            return
        status: Literal["ACCEPTED", "REJECTED"] = (
            "ACCEPTED" if self.rng.random() < spec.accept_ratio else "REJECTED"
        )
        with_audio = self.rng.random() < spec.audio_share
        over_ws = not with_audio and self.rng.random() < spec.ws_share
        text = "Ready for pickup" if status == "ACCEPTED" else "Out of stock, sorry"
        request_id = record.request_id
        assert request_id is not None
        async with self.answering:
            ledger.answer_started(record)
            for attempt in range(MAX_ATTEMPTS):
                if state.remaining() <= 0:
                    break
                try:
                    if over_ws:
                        conn = await self.wait_online()
                        await conn.respond(request_id, status, text)
                    else:
                        await self.client.respond(
                            request_id,
                            status,
                            text,
                            audio=VOICE_REPLY if with_audio else None,
                            filename="reply.wav" if with_audio else None,
                        )
                except Conflict as exc:
                    # no longer pending: the patient chose another pharmacy, or an earlier
                    # attempt whose fate was unknown did apply; the request says which
                    outcome = await self._settled(request_id, status)
                    if outcome == "superseded":
                        ledger.answer_superseded(record)
                        return
                    if outcome == "confirmed" and attempt > 0:
                        ledger.answer_confirmed(record, status)
                        return
                    ledger.error(exc.code)
                    break
                except RateLimited as exc:
                    ledger.error(exc.code)
                    await state.pause(max(0.05, exc.retry_after))
                except (TransportError, TimeoutError) as exc:
                    ledger.error(getattr(exc, "code", "timeout"))
                    await state.pause(FAST_BACKOFF.delay(attempt))
                except MedreqError as exc:
                    ledger.error(exc.code)
                    break
                else:
                    ledger.answer_confirmed(record, status)
                    ledger.counts["answered_over_ws" if over_ws else "answered_over_rest"] += 1
                    if with_audio:
                        ledger.counts["answered_with_audio"] += 1
                    return
            ledger.answer_failed(record)

    async def _settled(self, request_id: int, status: str) -> Literal["superseded", "confirmed", "other"]:
        """Why an answer got 409: its request is cancelled, or already carries this answer."""
        for attempt in range(MAX_ATTEMPTS):
            if self.state.remaining() <= 0:
                break
            try:
                request = await self.client.get_request(request_id)
            except RateLimited as exc:
                await self.state.pause(max(0.05, exc.retry_after))
            except TransportError:
                await self.state.pause(FAST_BACKOFF.delay(attempt))
            except MedreqError:
                break
            else:
                if request.status == "CANCELLED":
                    return "superseded"
                if request.response is not None and request.response.status == status:
                    return "confirmed"
                return "other"
        return "other"
