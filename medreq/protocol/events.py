"""Server → client WebSocket frames (docs/protocol.md §4): the events, and the replies to a
client's messages (`ack`, `pong`, `error`) and `resync_required`; all in one union, `ServerFrame`,
told apart by `type`.

The server builds events in `medreq.service.events`, each from a dict of its fields that
tests/test_event_builders.py holds to exactly its model's (the models ignore unknown keys, so a
misspelt one would send its field absent), and stores them as JSON text; the client parses them
with `parse_event`, which keeps the exact object the server sent in `raw` (what
``medreq listen --json`` prints). An unknown type, or an event that does not match its model,
becomes a plain `Event`, so a newer server never breaks an older client.

`UNREAD` names the events that are news from the other party: a request's `unread` counts them,
Web Push notifies them, and the web console reads the set from its page (`web/rest/pages.py`).

Every event field is always sent (`null` when empty; the schema lists them all as required)
except `trace_id`, sent when the change that caused the event had one (docs/protocol.md §4).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from .fields import CancelReason, CorrelationId, Outbound
from .rest import ErrorDetail, MessageOut, RequestOut

OPTIONAL_ON_THE_WIRE = ("trace_id",)
"""Event fields that may be absent; every other one is always sent."""


RAW = "_raw"  # where `parse_event` keeps what the server sent


class Event(Outbound):
    """Any server event; the base of the typed ones and the type of unknown ones."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    #: the account's event counter; null for events never stored (`typing`, `presence`)
    event_id: int | None = None
    timestamp: str | None = None
    #: the trace id of the HTTP request or socket message that caused the event
    trace_id: str | None = None

    @property
    def raw(self) -> dict[str, Any]:
        """The event exactly as the server sent it (as `parse_event` received it).

        Kept in pydantic's private-attribute slot by `parse_event`, not declared as a
        `PrivateAttr`: a declared one is initialised on every model built, and the server
        builds three events per full cycle (6.9 → 2.3 µs a `model_validate` with timeit)."""
        private = self.__pydantic_private__
        if private and RAW in private:
            return private[RAW]  # type: ignore[no-any-return]
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class TypedEvent(Event):
    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)


class NewRequestEvent(TypedEvent):
    """To a pharmacy: a patient sent it a request."""

    type: Literal["new_request"] = "new_request"
    request_id: int
    patient_id: int | None = None
    patient_name: str | None = None
    patient_phone: str | None = None
    quantity: int | None = None
    medicine_name: str | None = None
    note: str | None = None
    #: a signed link to the prescription, or null
    image_url: str | None = None
    #: how many pharmacies the patient asked at once (1 for a single request; docs/protocol.md §3, groups)
    asked_pharmacies: int = 1


class PharmacyResponseEvent(TypedEvent):
    """To a patient: the pharmacy answered a request."""

    type: Literal["pharmacy_response"] = "pharmacy_response"
    request_id: int
    status: Literal["ACCEPTED", "REJECTED"]
    message: str | None = None
    #: a signed link to the pharmacy's voice answer, or null
    audio_url: str | None = None
    pharmacy_id: int | None = None
    pharmacy_name: str | None = None
    #: the offer (docs/protocol.md §3, groups), each null when not given
    price: str | None = None
    currency: str | None = None
    ready_at: str | None = None


class RequestUpdatedEvent(TypedEvent):
    """To the account that answered, cancelled or chose a request, on all its connections (for a
    choice, one per request it changed: the chosen one and each it cancelled)."""

    type: Literal["request_updated"] = "request_updated"
    request_id: int
    status: Literal["ACCEPTED", "REJECTED", "CANCELLED"] | None = None


class RequestCancelledEvent(TypedEvent):
    """To a pharmacy: the patient cancelled a pending request, or chose another pharmacy of its group."""

    type: Literal["request_cancelled"] = "request_cancelled"
    request_id: int
    patient_id: int | None = None
    #: patient_cancelled, or another_pharmacy_chosen (docs/protocol.md §3, groups)
    reason: CancelReason | None = None


class RequestChosenEvent(TypedEvent):
    """To a pharmacy: the patient chose its accepted answer among the pharmacies it asked."""

    type: Literal["request_chosen"] = "request_chosen"
    request_id: int


class MessageEvent(TypedEvent):
    """A chat message on a request from the other party (``from_`` is its account id)."""

    type: Literal["message"] = "message"
    request_id: int
    message_id: int | None = None
    from_: int | None = Field(default=None, alias="from")
    text: str = ""


class TypingEvent(TypedEvent):
    """The other party started or stopped typing (never stored, has no ``event_id``)."""

    type: Literal["typing"] = "typing"
    request_id: int
    from_: int | None = Field(default=None, alias="from")
    state: Literal["start", "stop"] = "start"


class ReadEvent(TypedEvent):
    """The other party read a request's thread up to ``up_to_event_id``."""

    type: Literal["read"] = "read"
    request_id: int
    by: int | None = None
    up_to_event_id: int | None = None


class PresenceEvent(TypedEvent):
    """To a patient: a pharmacy of one of its pending requests came online or went offline
    (never stored, has no ``event_id``)."""

    type: Literal["presence"] = "presence"
    pharmacy_id: int
    online: bool


class TargetAddedEvent(TypedEvent):
    """To the account itself, on all its connections: a webhook was set or a Web Push subscription
    added, so every device of the owner learns where the account's events now also go."""

    type: Literal["target_added"] = "target_added"
    channel: Literal["webhook", "push"]
    #: the new target's origin (scheme://host[:port]); never its path, which may hold a secret
    target: str
    #: push: the new subscription's id (`DELETE /push/subscriptions/{id}` removes it); else null
    subscription_id: int | None = None


ServerEvent = Annotated[
    NewRequestEvent
    | PharmacyResponseEvent
    | RequestUpdatedEvent
    | RequestCancelledEvent
    | RequestChosenEvent
    | MessageEvent
    | TypingEvent
    | ReadEvent
    | PresenceEvent
    | TargetAddedEvent,
    Field(discriminator="type"),
]
EVENT_MODELS: tuple[type[TypedEvent], ...] = get_args(get_args(ServerEvent)[0])
EVENT_TYPES: dict[str, type[Event]] = {model.model_fields["type"].default: model for model in EVENT_MODELS}

UNREAD: frozenset[str] = frozenset(
    {"new_request", "pharmacy_response", "request_cancelled", "request_chosen", "message"}
)
"""The events that are news from the other party: what a request's `unread` counts (docs/protocol.md
§3), and what reaches an account's devices by Web Push (§5). An account's own echoes
(`request_updated` after it answered, cancelled or chose), `read` receipts, `typing`, `presence`
and `target_added` are nothing left to read."""


# --- replies ---------------------------------------------------------------------------------


class AckFrame(Outbound):
    """The answer to a client message that carried an `id` (echoed as `ref`). Its other fields
    depend on the message: `response` → `request_id`, `data`; `message` → `request_id`,
    `message`; `read` → `request_id`, `up_to_event_id`; `resume` → `after`, `replayed`;
    `auth` → `expires_at`."""

    type: Literal["ack"] = "ack"
    ref: CorrelationId = None
    request_id: int | None = None
    #: `response`: the answered request
    data: RequestOut | None = None
    #: `message`: the stored message
    message: MessageOut | None = None
    #: `read`: the stored read mark
    up_to_event_id: int | None = None
    #: `resume`: the `after` asked for, and how many events were replayed
    after: int | None = None
    replayed: int | None = None
    #: `auth`: when the socket's new token expires (Unix seconds)
    expires_at: int | None = None


class PongFrame(Outbound):
    """The answer to `ping`: `last_event_id` is the last event sent on this socket (where a
    client that connected without `after` can resume from)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    type: Literal["pong"] = "pong"
    ref: CorrelationId = None
    last_event_id: int = 0


class ErrorFrame(Outbound):
    """A client message failed; the socket stays open. `ref` is the message's `id`."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    type: Literal["error"] = "error"
    error: ErrorDetail
    ref: CorrelationId = None


class ResyncRequiredFrame(Outbound):
    """A replay asked for events already pruned: the first one still kept is `oldest_event_id`
    (reload with REST, then carry on)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    type: Literal["resync_required"] = "resync_required"
    oldest_event_id: int


ServerFrame = Annotated[
    NewRequestEvent
    | PharmacyResponseEvent
    | RequestUpdatedEvent
    | RequestCancelledEvent
    | RequestChosenEvent
    | MessageEvent
    | TypingEvent
    | ReadEvent
    | PresenceEvent
    | TargetAddedEvent
    | AckFrame
    | PongFrame
    | ErrorFrame
    | ResyncRequiredFrame,
    Field(discriminator="type"),
]
"""Every frame a server sends on a socket."""
SERVER_FRAME: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)
SERVER_FRAME_MODELS: tuple[type[Outbound], ...] = get_args(get_args(ServerFrame)[0])
REPLY_TYPES: tuple[str, ...] = ("ack", "pong", "error")


def parse_event(data: dict[str, Any]) -> Event:
    """Build the typed event for ``data`` (a generic `Event` when the type is unknown)."""
    cls = EVENT_TYPES.get(str(data.get("type")), Event)
    try:
        event = cls.model_validate(data)
    except ValidationError:
        event = Event.model_validate(_generic(data))
    object.__setattr__(event, "__pydantic_private__", {RAW: data})  # frozen: see `Event.raw`
    return event


def _generic(data: dict[str, Any]) -> dict[str, Any]:
    event_id, timestamp, trace_id = data.get("event_id"), data.get("timestamp"), data.get("trace_id")
    return {k: v for k, v in data.items() if k not in ("type", "event_id", "timestamp", "trace_id")} | {
        "type": str(data.get("type")),
        "event_id": event_id if isinstance(event_id, int) and not isinstance(event_id, bool) else None,
        "timestamp": timestamp if isinstance(timestamp, str) else None,
        "trace_id": trace_id if isinstance(trace_id, str) else None,
    }
