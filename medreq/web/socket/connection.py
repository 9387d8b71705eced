"""One live socket's sending side: `Connection`, the hub's sink and the single writer of
everything sent on a socket (docs/protocol.md §4–§5).

Everything a socket is sent (events, replays, acks, errors, pongs) goes through `Connection`:
written at once when nothing is queued before it and the socket takes it without waiting (most
events and replies), otherwise queued for one sender task, so the order on the wire is the
order decided here:

- events are sent in `event_id` order with no gaps and no duplicates on this connection:
  an event below the last one sent is dropped; one beyond the next expected fills the gap
  from the store first (events are stored before they are published, so the gap is there);
- `?after=N` and `{"type":"resume","after":N}` replay stored events past N, then go live;
  a replay below the oldest kept event starts with `resync_required`.

The endpoint that receives (authentication, client messages) is `websocket.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ...auth import Claims
from ...protocol import (
    AckFrame,
    CloseCode,
    ErrorDetail,
    ErrorFrame,
    Outbound,
    PongFrame,
    ResyncRequiredFrame,
    to_text,
)
from ...protocol.errors import MedreqError
from ...service import Caller, MedreqService
from ...telemetry import metrics
from .. import wire_record
from ..guard import websocket as ws_guard
from ..guard.websocket import SocketControl

log = logging.getLogger("medreq.ws")

REPLAY_PAGE = 500


class Connection:
    """One socket: the hub's sink, and the single writer of everything sent on it.

    An event or a reply is written at once when it can be (`_send_at_once`); the rest waits
    in `queue`, and a sender task exists only while something waits there, so an idle
    connection costs no task beyond uvicorn's own, and no queue.

    A client too slow to keep up is dropped with 1013 (it resumes with `?after=`): when the
    queue holds `ws_queue_size` items, or the bytes it has not read yet (queue + the
    transport's buffer + the kernel's send queue) pass `ws_max_unsent`, or one send has
    waited `ws_send_timeout` seconds. Without that, a client that never read kept its socket
    with 2.2 MB queued long after the server had let go of it (docs/security.md). The close
    frame cannot get through a full buffer, so `ws_guard` resets the socket after a short
    grace, and the memory goes with it.
    """

    __slots__ = (
        "base",
        "caller",
        "claims",
        "closing",
        "control",
        "last_sent",
        "queue",
        "queue_size",
        "sender",
        "sending_since",
        "service",
        "unsent",
        "ws",
    )

    def __init__(
        self,
        ws: WebSocket,
        caller: Caller,
        claims: Claims,
        service: MedreqService,
        *,
        queue_size: int,
        base: str | None = None,
    ) -> None:
        self.ws = ws
        self.caller = caller
        self.claims = claims  # of the access token in force: the socket lives as long as it does
        self.service = service
        # media links in events are rendered under the configured base; this client's base
        self.base = service.client_base(base)
        self.last_sent = 0
        self.queue_size = queue_size
        self.queue: deque[tuple[str, Any, Any]] | None = None  # made on first use
        self.sender: asyncio.Task[None] | None = None
        self.closing = False
        self.unsent = 0  # bytes of the texts waiting in the queue
        self.sending_since = 0.0  # loop time the current send started; 0 when none is waiting
        self.control: SocketControl | None = ws.scope.get("extensions", {}).get(ws_guard.EXTENSION)
        if self.control is not None:  # a server shutdown closes through the queue, with 1001
            self.control.on_shutdown = self.shutdown  # a bound method: a lambda's closure cost 136 B more

    # --- the hub's side -----------------------------------------------------------------------

    async def attach(self, after: int | None) -> None:
        """Subscribe to the account's events: past `after` (the client's last event id, `?after=`),
        or from the present when it is None.

        Where it starts is set *before* subscribing. An event published while the subscription
        is being made (the hub awaits presence, and Redis a round trip) then goes out in order,
        with any gap before it read back from the store, and the catch-up that follows replays
        only what is past it. Started from 0 instead, such an event "filled the gap" with the
        account's whole history, and a resuming client's catch-up then sent part of it again.
        """
        if after is None:
            self.last_sent = await self.service.last_event_id(self.caller.id)
        else:
            self.last_sent = after
        await self.service.subscribe(self.caller.id, self)
        if after is not None:
            self.catch_up(None)  # past `last_sent`: whatever arrived meanwhile is not sent twice

    def deliver(self, event_id: int | None, text: str) -> None:
        if self.closing:
            return
        if self.queue is not None and len(self.queue) >= self.queue_size:
            self.drop_slow()
            return
        self._enqueue(("event", event_id, text))

    # --- everything else that is sent ---------------------------------------------------------

    def reply(self, frame: Outbound) -> None:
        """An `ack` or `error` (medreq.protocol.events), sent in turn with the events."""
        self._enqueue(("reply", None, to_text(frame)))

    def error(self, exc: MedreqError, ref: Any) -> None:
        self.reply(error_frame(exc, ref))

    def pong(self, ref: Any) -> None:
        """`pong` carries the last event id sent before it, so a client that connected
        without `after` (live only) learns where to resume from."""
        self._enqueue(("pong", None, ref))

    def catch_up(self, after: int | None, ref: Any = None, *, ack: bool = False) -> None:
        self._enqueue(("catch_up", after, (ref, ack)))

    def close(self, code: CloseCode, reason: str = "") -> None:
        if not self.closing:
            self.closing = True
            self._enqueue(("close", code, reason))

    def shutdown(self) -> None:
        self.close(CloseCode.GOING_AWAY, "server shutting down")

    def drop_slow(self) -> None:
        """Too slow to keep up: free what is queued and close 1013 without waiting behind it;
        the client resumes from its last event_id."""
        if self.closing:
            return
        if self.control is None:  # not under medreq's uvicorn protocol (tests in-process)
            self.close(CloseCode.TRY_AGAIN_LATER, "too slow, resume with after")
            return
        log.info("dropping a slow consumer (%d bytes unsent)", self.unsent + self.control.unsent_bytes())
        self.closing = True
        if self.queue is not None:
            self.queue.clear()
        self.unsent = 0
        if self.sender is not None:
            self.sender.cancel()
        self.control.drop(CloseCode.TRY_AGAIN_LATER, "too slow, resume with after")

    def _enqueue(self, item: tuple[str, Any, Any]) -> None:
        if self.sender is None and self._send_at_once(item):
            return
        if self.queue is None:
            self.queue = deque()
        self.queue.append(item)
        if isinstance(item[2], str):
            self.unsent += len(item[2])
        if self._too_slow():  # the kernel's queue is where a stuck client's data goes first
            self.drop_slow()
        elif self.sender is None:
            self.sender = asyncio.create_task(self._drain(self.queue))

    def _send_at_once(self, item: tuple[str, Any, Any]) -> bool:
        """Send an event or a reply right here, without a sender task, when nothing is queued
        before it and the socket takes it at once (`SocketControl.send_text_now`), as nearly
        every frame is taken. False: queue it as usual, for a task to send.

        A task per frame (created, scheduled, run through five awaits to a `send` that never
        waits) cost more than writing the frame: four per request → answer cycle.
        """
        kind, event_id, text = item
        control = self.control
        if control is None or self.closing or self.ws.application_state is not WebSocketState.CONNECTED:
            return False
        if kind == "event" and event_id is not None:
            if event_id <= self.last_sent:
                return True  # sent already (as `_send_event` drops it)
            if event_id > self.last_sent + 1:
                return False  # a gap to fill from the store first
            text = self.service.rebase(text, self.base)
        elif kind != "reply" and kind != "event":
            return False
        if control.unsent_over(self.service.limits.ws_max_unsent - len(text)):
            return False  # `_enqueue` drops the client
        try:
            if not control.send_text_now(text):
                return False
        except (RuntimeError, OSError):  # the peer is gone (as `_drain` sees it)
            self.closing = True
            return True
        recording = wire_record.recorder()  # a test aid, off unless MEDREQ_WIRE_RECORD is set
        if recording is not None:
            recording.frame(self.ws.scope, text)
        if kind == "event" and event_id is not None:
            self.last_sent = event_id
            metrics.event_delivered(item[2])
        return True

    def _too_slow(self) -> bool:
        if self.closing or self.control is None:
            return False
        limits = self.service.limits  # not copied per connection: 10,000 of them idle
        if self.control.unsent_over(limits.ws_max_unsent - self.unsent):
            return True
        since = self.sending_since
        return since > 0 and asyncio.get_running_loop().time() - since > limits.ws_send_timeout

    async def _send(self, text: str) -> None:
        """Send one text; how long it waits on the client is what `_too_slow` measures."""
        self.sending_since = asyncio.get_running_loop().time()
        try:
            await self.ws.send_text(text)
        finally:
            self.sending_since = 0.0

    async def _drain(self, queue: deque[tuple[str, Any, Any]]) -> None:
        try:
            while queue:
                kind, arg, payload = queue.popleft()
                if isinstance(payload, str):
                    self.unsent -= len(payload)
                if kind == "event":
                    await self._send_event(arg, payload)
                elif kind == "reply":
                    await self._send(payload)
                elif kind == "pong":
                    pong = PongFrame(type="pong", ref=payload, last_event_id=self.last_sent)
                    await self._send(to_text(pong))
                elif kind == "catch_up":
                    replayed = await self._replay(after=arg)
                    ref, ack = payload
                    if ack:
                        await self._send(to_text(AckFrame(type="ack", ref=ref, after=arg, replayed=replayed)))
                elif kind == "close":
                    queue.clear()
                    if self.ws.application_state == WebSocketState.CONNECTED:
                        await self.ws.close(arg, payload)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closing = True  # the peer is gone; the receive loop sees the disconnect
            queue.clear()
        except Exception:
            log.exception("websocket sender failed")
            self.closing = True
            queue.clear()
            with contextlib.suppress(RuntimeError, OSError):
                await self.ws.close(CloseCode.INTERNAL_ERROR)
        finally:
            self.sender = None
            if not queue:
                self.queue = None  # an idle connection keeps no queue
                self.unsent = 0

    async def _send_event(self, event_id: int | None, text: str) -> None:
        if event_id is None:  # typing: not stored, not ordered
            await self._send(text)
            return
        if event_id <= self.last_sent:
            return
        if event_id > self.last_sent + 1:
            await self._replay(after=None, before=event_id)
        await self._send_stored(text)
        self.last_sent = event_id

    async def _send_stored(self, text: str) -> None:
        """Send a stored event, and observe how long after it was stored it was written."""
        await self._send(self.service.rebase(text, self.base))
        metrics.event_delivered(text)

    async def _replay(self, *, after: int | None, before: int | None = None) -> int:
        """Send stored events past `after` (default: the last sent) up to `before` (default: all)."""
        if after is not None:
            self.last_sent = after
        count = 0
        while True:
            page = await self.service.events_after(
                self.caller.id, self.last_sent, before=before, limit=REPLAY_PAGE
            )
            if page and page[0][0] > self.last_sent + 1:  # ids have no gaps: these were pruned (§5)
                resync = ResyncRequiredFrame(type="resync_required", oldest_event_id=page[0][0])
                await self.ws.send_text(to_text(resync))
            for event_id, text in page:
                await self._send_stored(text)
                self.last_sent = event_id
                count += 1
            if len(page) < REPLAY_PAGE:
                return count

    async def flush(self) -> None:
        """Wait until everything queued so far has been sent."""
        if self.sender is not None:
            await asyncio.shield(self.sender)

    async def stop(self) -> None:
        """After the socket ended: stop sending."""
        self.closing = True
        if self.queue is not None:
            self.queue.clear()
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sender


def error_frame(exc: MedreqError, ref: Any) -> ErrorFrame:
    """The §1 error of a failed client message, as an `error` frame (the socket stays open)."""
    return ErrorFrame(type="error", error=ErrorDetail(**exc.error()), ref=ref)


async def close_all(connections: set[Connection], code: CloseCode = CloseCode.GOING_AWAY) -> None:
    """Close every live socket (server shutdown): each client sees `code`."""
    for connection in list(connections):
        connection.close(code, "server shutting down")
