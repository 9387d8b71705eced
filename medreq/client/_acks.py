"""What the server answers to a socket message (``ack``) and to a posted message, as the JSON
objects they are on the wire (docs/protocol.md §4): `TypedDict`s, so a caller reads them as
before (``ack["request_id"]``) and a type checker knows each key.

`medreq.protocol.AckFrame` is the one model of every ``ack``: its fields depend on the message
answered. These name the keys each message's ``ack`` carries; `AckFrame` stays the contract.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

# one message of a request's thread (`medreq.protocol.MessageOut`); ``from`` is a keyword, so
# the functional form
ThreadMessage = TypedDict("ThreadMessage", {"id": int, "from": int, "text": str, "created_at": str})


class Ack(TypedDict):
    """The answer to a socket message that carried an ``id`` (echoed as ``ref``)."""

    type: Literal["ack"]
    ref: str | int | None


class ResponseAck(Ack):
    """To ``response``: the answered request (a `medreq.protocol.RequestOut` as JSON)."""

    request_id: int
    data: dict[str, Any]


class MessageAck(Ack):
    """To ``message``: the message as stored."""

    request_id: int
    message: ThreadMessage


class ReadAck(Ack):
    """To ``read``: the read mark as stored."""

    request_id: int
    up_to_event_id: int


class ResumeAck(Ack):
    """To ``resume``: the ``after`` asked for, and how many events were replayed."""

    after: int
    replayed: int


class AuthAck(Ack):
    """To ``auth``: when the socket's new token expires (Unix seconds)."""

    expires_at: int


class MessagePosted(TypedDict):
    """``POST /medicine/request/{id}/messages/`` (`medreq.protocol.MessagePostedOut` as JSON)."""

    message: ThreadMessage
