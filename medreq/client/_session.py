"""`LiveSession`: what one account's live stream knows, with no I/O (as websockets keeps its
protocol in a class that never touches a socket). `_live.LiveConnection` owns the sockets, the
tasks and the clock, and tells the session what happened; the session says what to send and
what to hand out:

- sending: `request` gives the frame of a message with a fresh ``id`` and waits for its reply;
- opening a socket: `query` (``?after=`` the last event seen), `probe` (the ``ping`` that
  confirms the socket), `receive_opening` (frames before its ``pong``, kept for later), then
  `opened` and `early`, which hands out what came before the ``pong``;
- receiving: `receive` turns a frame into the reply to a waiting message, a new event (each
  ``event_id`` once: an event already seen is dropped), or nothing;
- the link going down: `link_lost` (the messages whose reply will not come), `retry_delay`
  (the backoff), `finish` (the stream is over); `close_error` and `ends_stream` say what a
  close code means and whether it is worth reconnecting;
- the link's state for ``on_state``: `set_state`, which says whether it changed.

Not to be confused with `_tokens.Session`, the server's URLs and the account's tokens.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, Literal, cast

from medreq.protocol import ERROR_BY_CLOSE, REPLY_TYPES, ClientMessage, CloseCode, PingIn, to_text
from medreq.protocol.errors import ERRORS_BY_CODE, MedreqError, Unauthorized, error_from_body
from medreq.protocol.events import Event, parse_event

from ._acks import Ack
from ._backoff import Backoff
from ._errors import TransportError

#: "connecting" until the first socket opens, "open", "reconnecting" while it is down, "closed".
ConnectionState = Literal["connecting", "open", "reconnecting", "closed"]


@dataclass(frozen=True)
class Outgoing:
    """A frame to send: its ``id`` (``ref`` in the reply) and its JSON text."""

    ref: int | str
    text: str


@dataclass(frozen=True)
class Reply:
    """The server's answer (``ack``, ``pong`` or ``error``) to the message sent with ``ref``."""

    ref: int
    frame: dict[str, Any]

    def result(self) -> Ack:
        """The ``ack`` (or ``pong``); an ``error`` raises the `medreq.protocol.errors` class it names."""
        if self.frame.get("type") == "error":
            raise error_from_body(self.frame)
        return cast(Ack, self.frame)


class LiveSession:
    """The state of one live stream across all its sockets; see the module docstring."""

    def __init__(self, *, after: int | None = None, backoff: Backoff | None = None) -> None:
        # the last event received and handed out (queued for the reader), where the stream
        # resumes after a drop; an event queued but not yet read counts too, so a caller that
        # abandons the connection resumes a new one after the last event it handled
        # (`medreq listen` saves that one; the simulator's actors keep `handled_through`)
        self.last_event_id = after
        self.backoff = backoff or Backoff()
        self.state: ConnectionState = "connecting"
        self.retry_in: float | None = None
        self.reconnects = 0
        self.duplicates_dropped = 0
        #: why the last attempt to open a socket failed
        self.last_error: MedreqError | None = None
        #: why the stream ended (None: closed by the caller, or not ended)
        self.error: MedreqError | None = None
        self.finished = False
        self._ids = itertools.count(1)
        self._awaiting: set[int] = set()
        self._probe: str | None = None
        self._early: list[str | bytes] = []
        self._mark: int | None = None  # ``last_event_id`` of the opening pong
        self._was_open = False
        self._attempt = 0

    # --- sending --------------------------------------------------------------------------------

    def request(self, message: ClientMessage) -> Outgoing:
        """The frame for ``message`` with a fresh ``id``; `receive` hands out its reply."""
        ref = next(self._ids)
        self._awaiting.add(ref)
        return Outgoing(ref, to_text(message.model_copy(update={"id": ref})))

    def forget(self, ref: int | str) -> None:
        """Nobody waits for this reply any more (answered, timed out, or sent again)."""
        if isinstance(ref, int):
            self._awaiting.discard(ref)

    # --- opening a socket -----------------------------------------------------------------------

    def query(self, token: str | None) -> dict[str, Any]:
        """The query string of a new socket: the token, and where to resume."""
        query: dict[str, Any] = {"token": token or ""}
        if self.last_event_id is not None:
            query["after"] = self.last_event_id
        return query

    def probe(self) -> Outgoing:
        """The ``ping`` that confirms a new socket (the server closes a refused one before
        answering it); frames before its ``pong`` (a replay) are kept until `opened`."""
        ref = f"open-{next(self._ids)}"
        self._probe, self._early = ref, []
        return Outgoing(ref, to_text(PingIn(type="ping", id=ref)))

    def receive_opening(self, frame: str | bytes) -> bool:
        """True for the probe's ``pong``: the socket is confirmed."""
        data = _decode(frame)
        if data is not None and data.get("type") == "pong" and data.get("ref") == self._probe:
            mark = data.get("last_event_id")
            self._mark = mark if isinstance(mark, int) and not isinstance(mark, bool) else None
            return True
        self._early.append(frame)
        return False

    def opened(self) -> None:
        """The confirmed socket is in use: count a reconnect (before the replay is handed out, so
        a reader sees the count with the events), and start the backoff over."""
        if self._was_open:
            self.reconnects += 1
        self._was_open = True
        self._attempt = 0

    def early(self) -> list[Event | Reply]:
        """What came before the ``pong`` of the socket just opened, as `receive` would give it.

        A stream that started live-only has no event id to resume from until its first event;
        if the server says where the account's events stand (``last_event_id`` in the opening
        ``pong``), it starts from there, so a drop before the first event loses nothing. Only
        after the early frames: that mark counts the events sent before the ``pong``, which
        would otherwise be dropped as already seen."""
        early, self._early = self._early, []
        items = [item for item in map(self.receive, early) if item is not None]
        if self.last_event_id is None:
            self.last_event_id = self._mark
        self._mark = None
        return items

    # --- receiving ------------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> Event | Reply | None:
        """A frame of the open socket: the reply to a waiting message, an event not seen yet,
        or None (not JSON, a reply nobody waits for, an event already seen)."""
        data = _decode(frame)
        if data is None:
            return None
        if data.get("type") in REPLY_TYPES:
            ref = data.get("ref")
            if isinstance(ref, int) and ref in self._awaiting:
                self._awaiting.discard(ref)
                return Reply(ref, data)
            return None
        event = parse_event(data)
        if event.event_id is not None:
            if self.last_event_id is not None and event.event_id <= self.last_event_id:
                self.duplicates_dropped += 1
                return None
            self.last_event_id = event.event_id
        return event

    # --- the link going down --------------------------------------------------------------------

    def link_lost(self) -> list[int]:
        """The socket is gone: the messages sent on it whose reply will never come."""
        lost, self._awaiting = sorted(self._awaiting), set()
        return lost

    def retry_delay(self) -> float:
        """The pause before the next attempt to open a socket (longer each time, until one opens)."""
        delay = self.backoff.delay(self._attempt)
        self._attempt += 1
        return delay

    def finish(self, error: MedreqError | None) -> list[int] | None:
        """The stream is over (``error``: why; None: closed by the caller). The messages whose
        reply will not come, or None if it was already over."""
        if self.finished:
            return None
        self.finished, self.error = True, error
        return self.link_lost()

    def set_state(self, state: ConnectionState, retry_in: float | None = None) -> bool:
        """Record the link's state; whether it changed (``on_state`` hears only changes)."""
        if (state, retry_in) == (self.state, self.retry_in):
            return False
        self.state, self.retry_in = state, retry_in
        return True


def ends_stream(error: MedreqError) -> bool:
    """Whether a socket closed for ``error`` ends the stream: 4403/4404 will not get better by
    retrying; a dropped link will, and so may 4401 (with a fresh token)."""
    return not isinstance(error, TransportError | Unauthorized)


def _decode(frame: str | bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(frame)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


_CLOSE_MESSAGES: dict[int, str] = {
    CloseCode.UNAUTHORIZED: "the server refused the access token",
    CloseCode.FORBIDDEN: "this account may not open this WebSocket",
    CloseCode.NOT_FOUND: "unknown WebSocket path",
}


def close_error(code: int | None, reason: str | None) -> MedreqError:
    """The error a close code stands for (`medreq.protocol.ERROR_BY_CLOSE`: 4401, 4403, 4404);
    any other close is a `TransportError` (the connection reconnects)."""
    detail = f" ({reason})" if reason else ""
    error = ERROR_BY_CLOSE.get(code) if code is not None else None
    if code is None or error is None:
        return TransportError(f"connection closed (code {code}){detail}")
    message = _CLOSE_MESSAGES.get(code, f"closed with {code}")
    return ERRORS_BY_CODE[error](message + detail)
