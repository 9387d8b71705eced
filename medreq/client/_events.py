"""Typed server → client events (docs/protocol.md §4), parsed by their ``type``.

Every event keeps the exact object the server sent in ``raw`` (what ``medreq listen --json``
prints); unknown types and events that do not match their model become a plain `Event`, so a
newer server never breaks an older client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError


class Event(BaseModel):
    """Any server event; the base of the typed ones and the type of unknown ones."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    type: str
    event_id: int | None = None
    timestamp: str | None = None
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def raw(self) -> dict[str, Any]:
        """The event exactly as the server sent it."""
        return self._raw


class NewRequestEvent(Event):
    """To a pharmacy: a patient sent it a request."""

    type: Literal["new_request"] = "new_request"
    request_id: int
    patient_name: str | None = None
    patient_phone: str | None = None
    quantity: int | None = None
    image_url: str | None = None
    patient_id: int | None = None
    medicine_name: str | None = None
    note: str | None = None


class PharmacyResponseEvent(Event):
    """To a patient: the pharmacy answered a request."""

    type: Literal["pharmacy_response"] = "pharmacy_response"
    request_id: int
    status: str
    message: str | None = None
    audio_url: str | None = None
    pharmacy_name: str | None = None
    pharmacy_id: int | None = None


class RequestCancelledEvent(Event):
    """To a pharmacy: the patient cancelled a pending request."""

    type: Literal["request_cancelled"] = "request_cancelled"
    request_id: int


class MessageEvent(Event):
    """A chat message on a request from the other party (``from_`` is its account id)."""

    type: Literal["message"] = "message"
    request_id: int
    from_: int | None = Field(default=None, alias="from")
    text: str = ""


class TypingEvent(Event):
    """The other party started or stopped typing (never stored, has no ``event_id``)."""

    type: Literal["typing"] = "typing"
    request_id: int
    from_: int | None = Field(default=None, alias="from")
    state: Literal["start", "stop"] = "start"


class ReadEvent(Event):
    """The other party read a request's thread up to ``up_to_event_id``."""

    type: Literal["read"] = "read"
    request_id: int
    by: int | None = None
    up_to_event_id: int | None = None


class PresenceEvent(Event):
    """To a patient: a pharmacy of one of its pending requests came online or went offline
    (never stored, has no ``event_id``)."""

    type: Literal["presence"] = "presence"
    pharmacy_id: int
    online: bool


class RequestUpdatedEvent(Event):
    """To the account that answered or cancelled a request, on all its connections."""

    type: Literal["request_updated"] = "request_updated"
    request_id: int
    status: str | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        NewRequestEvent,
        PharmacyResponseEvent,
        RequestCancelledEvent,
        MessageEvent,
        TypingEvent,
        ReadEvent,
        RequestUpdatedEvent,
        PresenceEvent,
    )
}


def parse_event(data: dict[str, Any]) -> Event:
    """Build the typed event for ``data`` (a generic `Event` when the type is unknown)."""
    cls = EVENT_TYPES.get(str(data.get("type")), Event)
    try:
        event = cls.model_validate(data)
    except ValidationError:
        event = Event.model_validate(_generic(data))
    event._raw = data
    return event


def _generic(data: dict[str, Any]) -> dict[str, Any]:
    event_id, timestamp = data.get("event_id"), data.get("timestamp")
    return {k: v for k, v in data.items() if k not in ("type", "event_id", "timestamp")} | {
        "type": str(data.get("type")),
        "event_id": event_id if isinstance(event_id, int) and not isinstance(event_id, bool) else None,
        "timestamp": timestamp if isinstance(timestamp, str) else None,
    }
