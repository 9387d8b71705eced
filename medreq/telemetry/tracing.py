"""The trace id of the HTTP request or WebSocket connection being served.

Every HTTP request and every WebSocket connection gets one: the client's (or the proxy's)
`X-Request-ID` when it is a plain token of at most 64 characters, otherwise a fresh random
one. It is echoed in the `X-Request-ID` response header, written on the request's log line,
and stored as `trace_id` in every event the request or connection causes, so a pharmacy's
`new_request` can be followed back to the patient's `POST`. The field is `trace_id`, not
`request_id`: that name already means the medicine request's id in every event.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar, Token
from dataclasses import dataclass

HEADER = "x-request-id"
# No dots: a JWT (three dot-separated parts) never passes as a trace id into logs or events.
_VALID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(slots=True)
class Trace:
    trace_id: str
    account_id: int | None = None
    role: str | None = None


_current: ContextVar[Trace | None] = ContextVar("medreq_trace", default=None)


def accept(header: str | None) -> str:
    """The client's id when it is acceptable, otherwise a new one."""
    if header and _VALID.fullmatch(header):
        return header
    return os.urandom(16).hex()


def begin(header: str | None) -> tuple[Trace, Token[Trace | None]]:
    trace = Trace(accept(header))
    return trace, _current.set(trace)


def end(token: Token[Trace | None]) -> None:
    _current.reset(token)


def current() -> Trace | None:
    return _current.get()


def current_trace_id() -> str | None:
    trace = _current.get()
    return trace.trace_id if trace is not None else None


def identify(account_id: int, role: str) -> None:
    """Name the account the current request or connection acts for (for its log line)."""
    trace = _current.get()
    if trace is not None:
        trace.account_id = account_id
        trace.role = role
