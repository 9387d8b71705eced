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

A request asked of several pharmacies at once (docs/protocol.md §3, groups) is a `Group` of one record
per pharmacy, all with the same key: each pharmacy must get exactly one ``new_request`` (with
``asked_pharmacies`` the group's size); once the patient's choice is confirmed, the chosen
pharmacy exactly one ``request_chosen``, and every other one still open at the choice (not
rejected) exactly one ``request_cancelled`` with reason ``another_pharmacy_chosen``: a missing
one is lost, a second one duplicated, one to a rejected or unchosen request unexpected.
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
    answer_status: str | None = None
    answer_failed: bool = False
    #: the answer found its request cancelled by the patient's choice (409), or was never sent
    answer_superseded: bool = False
    answer_deliveries: int = 0
    group: Group | None = None
    chosen_deliveries: int = 0  # request_chosen events
    cancel_deliveries: int = 0  # request_cancelled events


@dataclass
class Group:
    """One POST: a request to each of ``members``' pharmacies (one member for a plain request)."""

    key: str
    members: list[RequestRecord]
    chosen: RequestRecord | None = None  # once the choice's 200 came back
    choosing: bool = False  # a choice is on its way (the patient makes one per group)

    def cancel_expected(self, record: RequestRecord) -> bool:
        """Whether ``record``'s pharmacy is owed a ``request_cancelled``: another one was chosen
        and this one was still open (pending or accepted: not rejected)."""
        if self.chosen is None or record is self.chosen:
            return False
        return not (record.answer_confirmed and record.answer_status == "REJECTED")


@dataclass
class Ledger:
    records: dict[str, RequestRecord] = field(default_factory=dict)  # by `_member(key, pharmacy)`
    groups: dict[str, Group] = field(default_factory=dict)  # by key
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

    def request_started(self, key: str, patient_id: int, pharmacy_ids: list[int]) -> Group:
        now = time.monotonic()
        members = [RequestRecord(key, patient_id, pharmacy_id, now) for pharmacy_id in pharmacy_ids]
        group = Group(key, members)
        for record in members:
            record.group = group
            self.records[_member(key, record.pharmacy_id)] = record
        self.groups[key] = group
        self.counts["sent"] += len(members)
        self.counts["groups" if len(members) > 1 else "single"] += 1
        return group

    def request_created(self, group: Group, request_ids: list[int]) -> None:
        now = time.monotonic()
        for record, request_id in zip(group.members, request_ids, strict=False):
            record.created = now
            self._bind(record, request_id)
            self.counts["created"] += 1
        self.post_latency.add(now - group.members[0].started)

    def request_failed(self, group: Group) -> None:
        for record in group.members:
            record.failed = True
            self.counts["failed_requests"] += 1

    def answer_delivered(self, patient_id: int, request_id: int) -> RequestRecord | None:
        """Count a ``pharmacy_response``; its record (None when unexpected)."""
        now = time.monotonic()
        record = self.by_id.get(request_id)
        if record is None or record.patient_id != patient_id:
            self.unexpected += 1
            return None
        record.answer_deliveries += 1
        if record.answer_deliveries == 1:
            self.counts["answer_delivered"] += 1
            if record.answer_started is not None:
                self.answer_latency.add(now - record.answer_started)
        return record

    def choice_confirmed(self, group: Group, record: RequestRecord) -> None:
        if group.chosen is None:
            group.chosen = record
            self.counts["chosen"] += 1

    def choice_failed(self) -> None:
        self.counts["failed_choices"] += 1

    # --- the pharmacy's side --------------------------------------------------------------------

    def request_delivered(
        self, pharmacy_id: int, request_id: int, note: str | None, asked_pharmacies: int = 1
    ) -> RequestRecord | None:
        """Count a ``new_request``; the record when this is its first delivery (answer it)."""
        now = time.monotonic()
        key = note.removeprefix(NOTE_PREFIX) if note and note.startswith(NOTE_PREFIX) else None
        record = self.records.get(_member(key, pharmacy_id)) if key else None
        if record is None or record.pharmacy_id != pharmacy_id:
            self.unexpected += 1
            return None
        if record.group is not None and asked_pharmacies != len(record.group.members):
            self.unexpected += 1  # the pharmacy must learn how many were asked (never whom)
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
            record.answer_status = status
            self.counts["answered"] += 1
            self.counts[f"answered_{status.lower()}"] += 1

    def answer_superseded(self, record: RequestRecord) -> None:
        """The patient chose another pharmacy before this one's answer went through."""
        if not record.answer_superseded:
            record.answer_superseded = True
            self.counts["answers_superseded"] += 1

    def chosen_delivered(self, pharmacy_id: int, request_id: int) -> None:
        """Count a ``request_chosen`` (checked against the confirmed choice at the end)."""
        record = self.by_id.get(request_id)
        if record is None or record.pharmacy_id != pharmacy_id:
            self.unexpected += 1
            return
        record.chosen_deliveries += 1
        if record.chosen_deliveries == 1:
            self.counts["chosen_delivered"] += 1

    def cancel_delivered(self, pharmacy_id: int, request_id: int, reason: str | None) -> RequestRecord | None:
        """Count a ``request_cancelled``; its record (None when unexpected). The simulated
        patients never cancel: the only reason is another pharmacy's being chosen."""
        record = self.by_id.get(request_id)
        if record is None or record.pharmacy_id != pharmacy_id or reason != "another_pharmacy_chosen":
            self.unexpected += 1
            return None
        record.cancel_deliveries += 1
        if record.cancel_deliveries == 1:
            self.counts["cancel_delivered"] += 1
        return record

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
        lost = self.lost()
        return owed + lost["chosen"] + lost["cancelled"]

    def lost(self) -> dict[str, int]:
        records = self.records.values()
        requests = sum(1 for r in records if self._exists(r) and r.deliveries == 0)
        answers = sum(1 for r in records if r.answer_confirmed and r.answer_deliveries == 0)
        chosen = sum(1 for g in self.groups.values() if g.chosen is not None and g.chosen.chosen_deliveries == 0)
        cancelled = sum(1 for r in records if _owed_cancel(r) and r.cancel_deliveries == 0)
        return {"requests": requests, "answers": answers, "chosen": chosen, "cancelled": cancelled}

    def duplicated(self) -> dict[str, int]:
        records = self.records.values()
        return {
            "requests": sum(max(0, r.deliveries - 1) for r in records),
            "answers": sum(max(0, r.answer_deliveries - 1) for r in records),
            "chosen": sum(max(0, r.chosen_deliveries - 1) for r in records),
            "cancelled": sum(max(0, r.cancel_deliveries - 1) for r in records),
        }

    def misdirected(self) -> int:
        """``request_chosen`` to a request that was not the one chosen, ``request_cancelled`` to
        one that was not owed it (the chosen one, a rejected one, a group with no choice)."""
        wrong = 0
        for record in self.records.values():
            group = record.group
            if record.chosen_deliveries and (group is None or group.chosen is not record):
                wrong += 1
            if record.cancel_deliveries and not _owed_cancel(record):
                wrong += 1
        return wrong

    def cancels_owed(self) -> int:
        return sum(1 for r in self.records.values() if _owed_cancel(r))

    def unanswered(self) -> int:
        """Delivered requests whose answer was never confirmed (still thinking, or failed), not
        counting those the patient's choice of another pharmacy closed first."""
        return sum(
            1
            for r in self.records.values()
            if r.deliveries and not r.answer_confirmed and not r.answer_superseded and not _owed_cancel(r)
        )

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


def _member(key: str, pharmacy_id: int) -> str:
    return f"{key}>{pharmacy_id}"


def _owed_cancel(record: RequestRecord) -> bool:
    return record.group is not None and record.group.cancel_expected(record)
