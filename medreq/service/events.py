"""Events: what each state change tells whom (docs/protocol.md §4), and their delivery (§5).

Builders return an `Event`: the protocol model of the event (`medreq.protocol.events`) and its
fields, lacking only the per-account `event_id`; `Tx.append_event` stores `event.build(event_id)`
in the transaction of the change, and `PendingEvents` publishes it to the hub once that committed.
Stored events name their media as ``media:<kind>:<name>``; `render` swaps those for freshly
signed URLs, issued to the account the event is for, whenever an event is sent, so a replayed
event never carries an expired link. A `new_request` replayed or sent by webhook once its request
is CANCELLED is sent `withdrawn`: without the patient's phone and prescription (§8, "Minimum
necessary").
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..hub import Hub
from ..media import MediaStore
from ..protocol import (
    MessageEvent,
    NewRequestEvent,
    PharmacyResponseEvent,
    PresenceEvent,
    ReadEvent,
    RequestCancelledEvent,
    RequestChosenEvent,
    RequestUpdatedEvent,
    TargetAddedEvent,
    TypedEvent,
    TypingEvent,
    to_text,
)
from ..protocol.events import UNREAD
from ..storage import utc_text
from ..telemetry import metrics
from ..telemetry.tracing import current_trace_id

_MEDIA_REF = re.compile(r'"media:(image|audio):([A-Za-z0-9_.-]+)"')


def iso(value: Any) -> str | None:
    return utc_text(value) if value is not None else None


def media_ref(kind: str, name: str | None) -> str | None:
    return f"media:{kind}:{name}" if name else None


def render(text: str, media: MediaStore, *, to: int, ttl: int | None = None) -> str:
    """The stored event text with its media references turned into URLs signed for account `to`
    (the one the event is for), under the configured base (a socket `rebase`s them to the address
    its client used), valid `ttl` seconds (default: the media store's)."""
    if '"media:' not in text:
        return text
    return _MEDIA_REF.sub(
        lambda m: json.dumps(media.url(m.group(1), m.group(2), to=to, base=media.base_url, ttl=ttl)),  # type: ignore[arg-type]
        text,
    )


#: the start of every stored `new_request` (the model's first field is `type`)
NEW_REQUEST_PREFIX = '{"type":"new_request",'


def withdrawn(text: str) -> str:
    """A stored `new_request` as its pharmacy gets it once the request is CANCELLED: no phone,
    no prescription (any other event is returned as is)."""
    if not text.startswith(NEW_REQUEST_PREFIX):
        return text
    event = NewRequestEvent.model_validate_json(text)
    return to_text(event.model_copy(update={"patient_phone": None, "image_url": None}))


@dataclass(frozen=True, slots=True)
class Event:
    """An event before it has its per-account `event_id` (given when it is stored)."""

    model: type[TypedEvent]
    type: str
    timestamp: str
    fields: dict[str, Any]
    request_id: int | None = None

    def build(self, event_id: int | None) -> TypedEvent:
        """The event's model, validated from a plain dict: pydantic-core does that faster than
        `model_construct` or keyword arguments (measured: loadtests/serialize_cost.py)."""
        fields = {"type": self.type, "event_id": event_id, "timestamp": self.timestamp, **self.fields}
        trace_id = current_trace_id()  # of the HTTP request or socket that caused it (tracing.py)
        if trace_id is not None:
            fields["trace_id"] = trace_id
        return self.model.model_validate(fields)

    def text(self, event_id: int | None) -> str:
        return to_text(self.build(event_id))


def new_request(row: Any, timestamp: str) -> Event:
    fields = {
        "request_id": row.id,
        "patient_id": row.patient_id,
        "patient_name": row.patient_name,
        "patient_phone": row.patient_phone,
        "quantity": row.quantity,
        "medicine_name": row.medicine_name,
        "note": row.note,
        "image_url": media_ref("image", row.image_name),
        "asked_pharmacies": row.asked_pharmacies,
    }
    return Event(NewRequestEvent, "new_request", timestamp, fields, row.id)


def pharmacy_response(row: Any, timestamp: str) -> Event:
    fields = {
        "request_id": row.id,
        "status": row.status,
        "message": row.response_message,
        "audio_url": media_ref("audio", row.response_audio_name),
        "pharmacy_id": row.pharmacy_id,
        "pharmacy_name": row.pharmacy_name,
        "price": row.response_price,
        "currency": row.response_currency,
        "ready_at": iso(row.response_ready_at),
    }
    return Event(PharmacyResponseEvent, "pharmacy_response", timestamp, fields, row.id)


def request_updated(request_id: int, status: str, timestamp: str) -> Event:
    fields = {"request_id": request_id, "status": status}
    return Event(RequestUpdatedEvent, "request_updated", timestamp, fields, request_id)


def request_cancelled(request_id: int, patient_id: int, reason: str, timestamp: str) -> Event:
    """To the pharmacy: `reason` is patient_cancelled or another_pharmacy_chosen (§8)."""
    fields = {"request_id": request_id, "patient_id": patient_id, "reason": reason}
    return Event(RequestCancelledEvent, "request_cancelled", timestamp, fields, request_id)


def request_chosen(request_id: int, timestamp: str) -> Event:
    """To the pharmacy whose accepted answer the patient chose among its group (§8)."""
    return Event(RequestChosenEvent, "request_chosen", timestamp, {"request_id": request_id}, request_id)


def message(request_id: int, sender_id: int, text: str, message_id: int, timestamp: str) -> Event:
    fields = {"request_id": request_id, "message_id": message_id, "from": sender_id, "text": text}
    return Event(MessageEvent, "message", timestamp, fields, request_id)


#: events worth a notification on a device (Web Push): those left unread; the rest (`request_updated`
#: echoes the account's own answer, `read`, `typing`, `presence`) only matter to an open app
NOTIFYING = UNREAD


def notifies(event: Event, account_id: int) -> bool:
    """Whether `event` should reach `account_id`'s devices by Web Push (not its own messages)."""
    return event.type in NOTIFYING and event.fields.get("from") != account_id


def target_added(channel: str, url: str, subscription_id: int | None, timestamp: str) -> Event:
    """To the account itself: a new place its events go (`url`'s origin only: a path may be secret)."""
    parts = urlsplit(url)
    fields = {
        "channel": channel,
        "target": f"{parts.scheme}://{parts.netloc}",
        "subscription_id": subscription_id,
    }
    return Event(TargetAddedEvent, "target_added", timestamp, fields)


def typing(request_id: int, sender_id: int, state: str, timestamp: str) -> Event:
    """Not stored, so it never gets an event_id (built with None)."""
    fields = {"request_id": request_id, "from": sender_id, "state": state}
    return Event(TypingEvent, "typing", timestamp, fields, request_id)


def presence(pharmacy_id: int, online: bool, timestamp: str) -> Event:
    """Not stored, so it never gets an event_id (built with None), like `typing`."""
    return Event(PresenceEvent, "presence", timestamp, {"pharmacy_id": pharmacy_id, "online": online})


def read(request_id: int, reader_id: int, up_to: int, timestamp: str) -> Event:
    fields = {"request_id": request_id, "by": reader_id, "up_to_event_id": up_to}
    return Event(ReadEvent, "read", timestamp, fields, request_id)


class PendingEvents:
    """Events stored in a transaction, published to the hub once it committed."""

    def __init__(self, hub: Hub, media: MediaStore, bell: asyncio.Event | None = None) -> None:
        self._hub = hub
        self._media = media
        self._pending: list[tuple[int, int, str]] = []
        self._bell = bell
        #: set when the transaction also queued webhook or push rows: the deliverer is woken after
        #: the commit instead of finding them at its next poll (up to a second later)
        self.queued_deliveries = False

    def add(self, account_id: int, event_id: int, text: str) -> None:
        self._pending.append((account_id, event_id, text))

    async def publish(self) -> None:
        pending, self._pending = self._pending, []
        metrics.events_stored(len(pending))  # counted once committed: a rolled-back one never publishes
        await self._hub.publish_all(
            [
                (account_id, event_id, render(text, self._media, to=account_id))
                for account_id, event_id, text in pending
            ]
        )
        metrics.events_published(len(pending))
        if self.queued_deliveries and self._bell is not None:
            self._bell.set()
