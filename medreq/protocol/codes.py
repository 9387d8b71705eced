"""WebSocket close codes, and the one mapping error code → HTTP status → close code
(docs/protocol.md §1 and §4).

`ERROR_WIRE` is where a §1 error code gets its HTTP status and, where an error ends a socket,
its close code. `medreq.protocol.errors` (the tree of error classes) takes each class's `status` and
`close` from here, the HTTP layer answers with `exc.status`, the WebSocket layer closes with
`exc.close`, and the client maps a close code back to the error (`ERROR_BY_CLOSE`).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal, NamedTuple, get_args


class CloseCode(IntEnum):
    """Every code a medreq server closes a WebSocket with (meanings: `CLOSE_MEANINGS`)."""

    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404


CLOSE_MEANINGS: dict[CloseCode, str] = {
    CloseCode.GOING_AWAY: "the server is shutting down: reconnect and resume with `after`",
    CloseCode.POLICY_VIOLATION: "flooding past the rate limit, or a bad `after` in the URL",
    CloseCode.MESSAGE_TOO_BIG: "a frame over the size limit (sent by uvicorn, from the configured limit)",
    CloseCode.INTERNAL_ERROR: "an unexpected server error",
    CloseCode.TRY_AGAIN_LATER: "the client was too slow to keep up: reconnect and resume with `after`",
    CloseCode.UNAUTHORIZED: "a missing, bad, expired or revoked access token (refresh it, then reconnect)",
    CloseCode.FORBIDDEN: "the token's account is not this path's account or role, or the page's origin is refused",
    CloseCode.NOT_FOUND: "no WebSocket endpoint at this path",
}
assert set(CLOSE_MEANINGS) == set(CloseCode)


ErrorCode = Literal[
    "invalid_json",
    "validation_error",
    "unauthorized",
    "forbidden",
    "reauthentication_required",
    "not_found",
    "method_not_allowed",
    "conflict",
    "payload_too_large",
    "unsupported_media_type",
    "rate_limited",
    "headers_too_large",
    "internal",
    "unavailable",
]
ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)


class ErrorWire(NamedTuple):
    status: int
    """The HTTP status of a REST answer with this code."""
    close: CloseCode | None
    """The close code when this error ends a socket; None when it never does (on a socket it is
    an `error` frame and the socket stays open)."""


ERROR_WIRE: dict[str, ErrorWire] = {
    "invalid_json": ErrorWire(400, None),
    "validation_error": ErrorWire(422, CloseCode.POLICY_VIOLATION),  # only a bad `after` closes
    "unauthorized": ErrorWire(401, CloseCode.UNAUTHORIZED),
    "forbidden": ErrorWire(403, CloseCode.FORBIDDEN),
    "reauthentication_required": ErrorWire(403, None),  # REST only: sign in with the password again
    "not_found": ErrorWire(404, CloseCode.NOT_FOUND),
    "method_not_allowed": ErrorWire(405, None),  # HTTP only
    "conflict": ErrorWire(409, None),
    "payload_too_large": ErrorWire(413, CloseCode.MESSAGE_TOO_BIG),
    "unsupported_media_type": ErrorWire(415, None),
    "rate_limited": ErrorWire(429, CloseCode.POLICY_VIOLATION),  # past the flood limit
    "headers_too_large": ErrorWire(431, None),  # HTTP only, then the connection closes
    "internal": ErrorWire(500, CloseCode.INTERNAL_ERROR),
    "unavailable": ErrorWire(503, CloseCode.TRY_AGAIN_LATER),  # connection limits; a slow consumer
}
assert set(ERROR_WIRE) == set(ERROR_CODES)

#: close code → the error it means, for the codes that name one error (the 44xx ones): the client
#: raises these instead of reconnecting
ERROR_BY_CLOSE: dict[int, str] = {
    wire.close: code for code, wire in ERROR_WIRE.items() if wire.close is not None and wire.close >= 4000
}
