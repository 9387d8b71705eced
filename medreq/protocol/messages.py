"""Client → server WebSocket messages (docs/protocol.md §4): one union, told apart by `type`.

Each may carry an `id` of the client's choosing; its reply (`ack`, `pong` or `error`) echoes it
as `ref`. `CLIENT_MESSAGE_TYPES` is read from the union, so a new message needs only its model.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, TypeAdapter

from .fields import MAX_ID, Answer, CorrelationId, Currency, DbId, Inbound, Price, ReadyAt, Text


class WsIn(Inbound):
    id: CorrelationId = None


class PingIn(WsIn):
    """Is the link alive? Answered by `pong` with the last event id sent."""

    type: Literal["ping"]


class ResponseIn(WsIn):
    """A pharmacy answers a pending request (as `POST /medicine/response/`); answered by `ack`
    with the updated `<Request>` in `data`."""

    type: Literal["response"]
    request_id: DbId
    status: Answer
    message: Text | None = Field(default=None, max_length=2000)
    #: the offer, as on `POST /medicine/response/` (docs/protocol.md §3, groups)
    price: Price | None = None
    currency: Currency | None = None
    ready_at: ReadyAt | None = None


class ResumeIn(WsIn):
    """Replay every stored event after `after`, then `ack` with how many were replayed."""

    type: Literal["resume"]
    after: int = Field(ge=0, le=MAX_ID)


class MessageIn(WsIn):
    """A chat message on a request (either party); answered by `ack` with the stored message."""

    type: Literal["message"]
    request_id: DbId
    text: Text = Field(min_length=1, max_length=2000)


class TypingIn(WsIn):
    """Typing started or stopped; never answered, never stored."""

    type: Literal["typing"]
    request_id: DbId
    state: Literal["start", "stop"]


class ReadIn(WsIn):
    """The caller read a request's thread up to an event; answered by `ack`."""

    type: Literal["read"]
    request_id: DbId
    up_to_event_id: int = Field(ge=0, le=MAX_ID)


class AuthIn(WsIn):
    """A fresh access token for this socket, sent before the current one expires."""

    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096)


ClientMessage = Annotated[
    PingIn | ResponseIn | ResumeIn | MessageIn | TypingIn | ReadIn | AuthIn, Field(discriminator="type")
]
CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
CLIENT_MESSAGE_MODELS: tuple[type[WsIn], ...] = get_args(get_args(ClientMessage)[0])
CLIENT_MESSAGE_TYPES: tuple[str, ...] = tuple(
    get_args(model.model_fields["type"].annotation)[0] for model in CLIENT_MESSAGE_MODELS
)
