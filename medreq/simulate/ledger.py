"""The ledger: what the simulator sent, and what arrived where, exactly once or not.

Every request carries a simulator key in its ``note`` (``sim:<key>``), so the pharmacy side
can match a ``new_request`` even when it arrives before the ``201``. At the end:

- lost request: the server answered ``201`` (or the event proved it exists) and its
  pharmacy never got ``new_request``;
- lost answer: the server acknowledged the answer (``200``/``ack``, or a ``409`` on a retry
  of an attempt whose fate was unknown) and the patient never got ``pharmacy_response``;
- duplicated: the application saw the same request or answer twice (after the client's own
  ``event_id`` deduplication, which at-least-once delivery makes legitimate);
- unexpected: an event for a request the simulator never sent, or sent to the wrong account.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .stats import Latency

NOTE_PREFIX = "sim:"


@dataclass
class RequestRecord:
    key: str
    patient_id: int
    pharmacy_id: int
    started: float
    request_id: int | None = None
    created: float | None = None  # monotonic time of the 201
    failed: bool = False
    deliveries: int = 0
    answer_started: float | None = None
    answer_confirmed: bool = False
    answer_failed: bool = False
    answer_deliveries: int = 0


@dataclass
class Ledger:
    records: dict[str, RequestRecord] = field(default_factory=dict)
    by_id: dict[int, RequestRecord] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0
    skipped: int = 0  # arrivals the generator dropped because max_in_flight POSTs were open
    post_latency: Latency = field(default_factory=Latency)
    notify_latency: Latency = field(default_factory=Latency)  # POST start → new_request
    notify_after_201: Latency = field(default_factory=Latency)  # 201 → new_request (0 if before)
    answer_latency: Latency = field(default_factory=Latency)  # answer sent → pharmacy_response
    counts: Counter[str] = field(default_factory=Counter)

    # --- the patient's side ---------------------------------------------------------------------

    def request_started(self, key: str, patient_id: int, pharmacy_id: int) -> RequestRecord:
        record = RequestRecord(key, patient_id, pharmacy_id, time.monotonic())
        self.records[key] = record
        self.counts["sent"] += 1
        return record

    def request_created(self, record: RequestRecord, request_id: int) -> None:
        record.created = time.monotonic()
        self._bind(record, request_id)
        self.counts["created"] += 1
        self.post_latency.add(record.created - record.started)

    def request_failed(self, record: RequestRecord) -> None:
        record.failed = True
        self.counts["failed_requests"] += 1

    def answer_delivered(self, patient_id: int, request_id: int) -> None:
        now = time.monotonic()
        record = self.by_id.get(request_id)
        if record is None or record.patient_id != patient_id:
            self.unexpected += 1
            return
        record.answer_deliveries += 1
        if record.answer_deliveries == 1:
            self.counts["answer_delivered"] += 1
            if record.answer_started is not None:
                self.answer_latency.add(now - record.answer_started)

    # --- the pharmacy's side --------------------------------------------------------------------

    def request_delivered(self, pharmacy_id: int, request_id: int, note: str | None) -> RequestRecord | None:
        """Count a ``new_request``; the record when this is its first delivery (answer it)."""
        now = time.monotonic()
        key = note.removeprefix(NOTE_PREFIX) if note and note.startswith(NOTE_PREFIX) else None
        record = self.records.get(key) if key else None
        if record is None or record.pharmacy_id != pharmacy_id:
            self.unexpected += 1
            return None
        self._bind(record, request_id)
        record.deliveries += 1
        if record.deliveries > 1:
            return None
        self.counts["delivered"] += 1
        self.notify_latency.add(now - record.started)
        self.notify_after_201.add(max(0.0, now - record.created) if record.created else 0.0)
        return record

    def answer_started(self, record: RequestRecord) -> None:
        if record.answer_started is None:
            record.answer_started = time.monotonic()

    def answer_confirmed(self, record: RequestRecord, status: str) -> None:
        if not record.answer_confirmed:
            record.answer_confirmed = True
            self.counts["answered"] += 1
            self.counts[f"answered_{status.lower()}"] += 1

    def answer_failed(self, record: RequestRecord) -> None:
        record.answer_failed = True
        self.counts["failed_answers"] += 1

    def error(self, code: str) -> None:
        self.errors[code] += 1

    # --- totals ---------------------------------------------------------------------------------

    def _bind(self, record: RequestRecord, request_id: int) -> None:
        if record.request_id is None:
            record.request_id = request_id
            self.by_id[request_id] = record

    def _exists(self, record: RequestRecord) -> bool:
        return record.created is not None or record.deliveries > 0

    def in_flight(self) -> int:
        """Deliveries still owed: created requests not yet delivered, confirmed answers not yet
        delivered, plus answers started and not settled."""
        owed = 0
        for record in self.records.values():
            if self._exists(record) and record.deliveries == 0:
                owed += 1
            if record.answer_confirmed and record.answer_deliveries == 0:
                owed += 1
        return owed

    def lost(self) -> dict[str, int]:
        requests = sum(1 for r in self.records.values() if self._exists(r) and r.deliveries == 0)
        answers = sum(1 for r in self.records.values() if r.answer_confirmed and r.answer_deliveries == 0)
        return {"requests": requests, "answers": answers}

    def duplicated(self) -> dict[str, int]:
        requests = sum(max(0, r.deliveries - 1) for r in self.records.values())
        answers = sum(max(0, r.answer_deliveries - 1) for r in self.records.values())
        return {"requests": requests, "answers": answers}

    def unanswered(self) -> int:
        """Delivered requests whose answer was never confirmed (still thinking, or failed)."""
        return sum(1 for r in self.records.values() if r.deliveries and not r.answer_confirmed)

    def snapshot(self) -> dict[str, Any]:
        """Cheap live numbers for the progress display."""
        p50, p99 = self.notify_latency.recent()
        return {
            "sent": self.counts["sent"],
            "created": self.counts["created"],
            "delivered": self.counts["delivered"],
            "answered": self.counts["answered"],
            "answer_delivered": self.counts["answer_delivered"],
            "in_flight": max(0, self.counts["created"] - self.counts["delivered"])
            + max(0, self.counts["answered"] - self.counts["answer_delivered"]),
            "errors": sum(self.errors.values()),
            "p50": p50,
            "p99": p99,
        }
