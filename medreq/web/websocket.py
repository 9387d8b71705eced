"""The WebSocket endpoint (docs/protocol.md §4–§5): `/ws/user/{id}/` and `/ws/pharmacy/{id}/`.

A `Connection` is the hub's sink for one socket. Everything it sends (events, replays,
acks, errors, pongs) goes through one queue drained by one sender task, so the order on
the wire is the order decided here:

- events are sent in `event_id` order with no gaps and no duplicates on this connection:
  an event below the last one sent is dropped; one beyond the next expected fills the gap
  from the store first (events are stored before they are published, so the gap is there);
- `?after=N` and `{"type":"resume","after":N}` replay stored events past N, then go live.

A socket lives as long as its access token: `{"type":"auth","token"}` extends it, and
`sessions.watch` closes it with 4401 at expiry or when the account is disabled or its tokens
revoked (on any worker).

Close codes: 4401 bad, expired or revoked token, 4403 wrong account or role, 4404 unknown path, 1001 server
shutdown, 1008 flooding, 1009 frame too large (by uvicorn), 1013 a client too slow to keep up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from pydantic import ValidationError
from starlette.routing import Match, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .. import metrics
from ..auth import Claims, bearer_token
from ..errors import Forbidden, InvalidJSON, MedreqError, RateLimited
from ..errors import Invalid as InvalidInput
from ..schemas import (
    CLIENT_MESSAGE,
    CLIENT_MESSAGE_TYPES,
    MAX_ID,
    AuthIn,
    MessageIn,
    PingIn,
    ReadIn,
    ResponseIn,
    ResumeIn,
    TypingIn,
    dumps,
    validation_error,
)
from ..service import Caller, MedreqService
from . import (
    convertors,  # noqa: F401  (registers the `id` convertor of the routes below)
    json_limits,
    ws_guard,
)
from .cors import websocket_origin_allowed
from .origin import client_base_url
from .ws_guard import SocketControl

log = logging.getLogger("medreq.ws")

CLOSE_SHUTDOWN = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
REPLAY_PAGE = 500


class Connection:
    """One socket: the hub's sink, and the single writer of everything sent on it.

    Outgoing items wait in `outbox`; a sender task exists only while there is something
    to send, so an idle connection costs no task beyond uvicorn's own, and no queue.

    A client too slow to keep up is dropped with 1013 (it resumes with `?after=`): when the
    outbox holds `ws_queue_size` items, or the bytes it has not read yet (outbox + the
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
        "outbox",
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
        self.base = service.media.client_base(base)
        self.last_sent = 0
        self.queue_size = queue_size
        self.outbox: deque[tuple[str, Any, Any]] | None = None  # made on first use
        self.sender: asyncio.Task[None] | None = None
        self.closing = False
        self.unsent = 0  # bytes of the texts waiting in the outbox
        self.sending_since = 0.0  # loop time the current send started; 0 when none is waiting
        self.control: SocketControl | None = ws.scope.get("extensions", {}).get(ws_guard.EXTENSION)

    # --- the hub's side -----------------------------------------------------------------------

    def deliver(self, event_id: int | None, text: str) -> None:
        if self.closing:
            return
        if self.outbox is not None and len(self.outbox) >= self.queue_size:
            self.drop_slow()
            return
        self._enqueue(("event", event_id, text))

    # --- everything else that is sent ---------------------------------------------------------

    def reply(self, message: dict[str, Any]) -> None:
        self._enqueue(("reply", None, dumps(message)))

    def error(self, exc: MedreqError, ref: Any) -> None:
        self.reply({"type": "error", "error": exc.error(), "ref": ref})

    def pong(self, ref: Any) -> None:
        """`pong` carries the last event id sent before it, so a client that connected
        without `after` (live only) learns where to resume from."""
        self._enqueue(("pong", None, ref))

    def catch_up(self, after: int | None, ref: Any = None, *, ack: bool = False) -> None:
        self._enqueue(("catch_up", after, (ref, ack)))

    def close(self, code: int, reason: str = "") -> None:
        if not self.closing:
            self.closing = True
            self._enqueue(("close", code, reason))

    def drop_slow(self) -> None:
        """Too slow to keep up: free what is queued and close 1013 without waiting behind it;
        the client resumes from its last event_id."""
        if self.closing:
            return
        if self.control is None:  # not under medreq's uvicorn protocol (tests in-process)
            self.close(CLOSE_TRY_AGAIN, "too slow, resume with after")
            return
        log.info("dropping a slow consumer (%d bytes unsent)", self.unsent + self.control.unsent_bytes())
        self.closing = True
        if self.outbox is not None:
            self.outbox.clear()
        self.unsent = 0
        if self.sender is not None:
            self.sender.cancel()
        self.control.drop(CLOSE_TRY_AGAIN, "too slow, resume with after")

    def _enqueue(self, item: tuple[str, Any, Any]) -> None:
        if self.outbox is None:
            self.outbox = deque()
        self.outbox.append(item)
        if isinstance(item[2], str):
            self.unsent += len(item[2])
        if self._too_slow():  # one ioctl: the kernel's queue is where a stuck client's data goes first
            self.drop_slow()
        elif self.sender is None:
            self.sender = asyncio.create_task(self._drain(self.outbox))

    def _too_slow(self) -> bool:
        if self.closing or self.control is None:
            return False
        settings = self.service.settings  # not copied per connection: 10,000 of them idle
        if self.unsent + self.control.unsent_bytes() > settings.ws_max_unsent:
            return True
        since = self.sending_since
        return since > 0 and asyncio.get_running_loop().time() - since > settings.ws_send_timeout

    async def _send(self, text: str) -> None:
        """Send one text; how long it waits on the client is what `_too_slow` measures."""
        self.sending_since = asyncio.get_running_loop().time()
        try:
            await self.ws.send_text(text)
        finally:
            self.sending_since = 0.0

    async def _drain(self, outbox: deque[tuple[str, Any, Any]]) -> None:
        try:
            while outbox:
                kind, arg, payload = outbox.popleft()
                if isinstance(payload, str):
                    self.unsent -= len(payload)
                if kind == "event":
                    await self._send_event(arg, payload)
                elif kind == "reply":
                    await self._send(payload)
                elif kind == "pong":
                    await self._send(dumps({"type": "pong", "ref": payload, "last_event_id": self.last_sent}))
                elif kind == "catch_up":
                    replayed = await self._replay(after=arg)
                    ref, ack = payload
                    if ack:
                        await self._send(
                            dumps({"type": "ack", "ref": ref, "after": arg, "replayed": replayed})
                        )
                elif kind == "close":
                    outbox.clear()
                    if self.ws.application_state == WebSocketState.CONNECTED:
                        await self.ws.close(arg, payload)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closing = True  # the peer is gone; the receive loop sees the disconnect
            outbox.clear()
        except Exception:
            log.exception("websocket sender failed")
            self.closing = True
            outbox.clear()
            with contextlib.suppress(RuntimeError, OSError):
                await self.ws.close(1011)
        finally:
            self.sender = None
            if not outbox:
                self.outbox = None  # an idle connection keeps no queue
                self.unsent = 0

    async def _send_event(self, event_id: int | None, text: str) -> None:
        if event_id is None:  # typing: not stored, not ordered
            await self._send(text)
            return
        if event_id <= self.last_sent:
            return
        if event_id > self.last_sent + 1:
            await self._replay(after=None, before=event_id)
        await self._send(self.service.media.rebase(text, self.base))
        self.last_sent = event_id

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
                await self.ws.send_text(dumps({"type": "resync_required", "oldest_event_id": page[0][0]}))
            for event_id, text in page:
                await self._send(self.service.media.rebase(text, self.base))
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
        if self.outbox is not None:
            self.outbox.clear()
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sender


class Endpoint:
    """Handles one socket from handshake to close."""

    def __init__(self, role: str) -> None:
        self.role = role

    async def handle(self, ws: WebSocket) -> None:
        await ws.accept()
        app_state = ws.app.state
        service: MedreqService = app_state.service
        token = bearer_token(ws.headers.get("authorization")) or ws.query_params.get("token")
        try:
            caller, claims = await service.session(token)
        except MedreqError as exc:
            await ws.close(CLOSE_UNAUTHORIZED, exc.message)
            return
        if caller.id != ws.path_params["account_id"] or caller.role != self.role:
            await ws.close(CLOSE_FORBIDDEN, "this socket belongs to another account")
            return
        try:
            after = _after_param(ws.query_params.get("after"))
        except MedreqError as exc:
            await ws.send_text(dumps({"type": "error", "error": exc.error(), "ref": None}))
            await ws.close(CLOSE_POLICY, exc.message)
            return

        app_state.observer.ws_opened(caller.id, caller.role)  # its log line, trace and gauge
        connection = Connection(
            ws,
            caller,
            claims,
            service,
            queue_size=service.settings.ws_queue_size,
            base=client_base_url(ws.scope),
        )
        connections: set[Connection] = app_state.connections
        # Without `after`, the socket starts at the present: learn the account's last event id
        # *before* subscribing. The other order let a live event arrive while the id was being
        # read, find last_sent = 0 and "fill the gap" with the account's whole history.
        if after is None:
            connection.last_sent = await service.last_event_id(caller.id)
        connections.add(connection)
        await service.hub.subscribe(caller.id, connection)
        try:
            if after is not None:
                connection.catch_up(after)
            with service.media.for_client(connection.base):  # links in acks and replies
                await self._receive(connection, app_state)
        except (WebSocketDisconnect, OSError):
            pass
        finally:
            connections.discard(connection)
            app_state.ws_limiter.forget(("ws", id(connection)))
            await service.hub.unsubscribe(caller.id, connection)
            await connection.stop()

    async def _receive(self, connection: Connection, app_state: Any) -> None:
        ws, limiter = connection.ws, app_state.ws_limiter
        flood = 0
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", errors="replace")
            ref = None
            data: dict[str, Any] = {}
            try:
                # per connection, not per account: one flooding socket must not silence the
                # account's other devices (REST stays per account)
                limiter.hit(("ws", id(connection)))
                data = _decode(raw, app_state.settings.max_json_depth)
                ref = _ref(data.get("id"))
                await self._handle(connection, _validate(data), ref)
                metrics.ws_message(data["type"], "ok")
                flood = 0
            except RateLimited as exc:
                metrics.ws_message(None, exc.code)
                flood += 1
                if flood > app_state.settings.ws_flood_limit:
                    connection.close(CLOSE_POLICY, "rate limit exceeded")
                    await connection.flush()
                    return
                connection.error(exc, ref)
            except MedreqError as exc:
                metrics.ws_message(data.get("type") if data else "invalid", exc.code)
                connection.error(exc, ref)

    async def _handle(self, connection: Connection, message: Any, ref: Any) -> None:
        service = connection.service
        caller = connection.caller
        if isinstance(message, PingIn):
            connection.pong(ref)
        elif isinstance(message, ResponseIn):
            view = await service.respond(caller, message.request_id, message.status, message.message)
            connection.reply({"type": "ack", "ref": ref, "request_id": message.request_id, "data": view})
        elif isinstance(message, ResumeIn):
            connection.catch_up(message.after, ref, ack=True)
        elif isinstance(message, MessageIn):
            result = await service.post_message(caller, message.request_id, message.text)
            connection.reply({"type": "ack", "ref": ref, "request_id": message.request_id, **result})
        elif isinstance(message, TypingIn):
            await service.typing(caller, message.request_id, message.state)
        elif isinstance(message, ReadIn):
            result = await service.mark_read(caller, message.request_id, message.up_to_event_id)
            connection.reply({"type": "ack", "ref": ref, "request_id": message.request_id, **result})
        elif isinstance(message, AuthIn):
            fresh_caller, claims = await service.session(message.token)
            if fresh_caller.id != caller.id:
                raise Forbidden("that token belongs to another account")
            connection.claims = claims  # the socket now lives until this token expires
            connection.reply({"type": "ack", "ref": ref, "expires_at": claims.expires_at})


def _after_param(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    # isascii: str.isdigit() is true for "²" and "٥", and int() fails on the first (an unhandled
    # error that dropped the socket); 19 digits bound int()'s work to what an event id can be
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > MAX_ID:
        raise InvalidInput("after: must be a non-negative integer", fields={"after": "must be an integer"})
    return int(raw)


def _ref(value: Any) -> str | int | None:
    """The `id` to echo as `ref`: only one that can be sent back. A lone surrogate ("\\ud800" in
    the JSON) cannot be encoded as UTF-8: echoing it made the sender fail and close 1011."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return None
        return value
    return value if isinstance(value, int) else None


def _decode(raw: str, max_depth: int = json_limits.DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    data = json_limits.loads(raw, max_depth=max_depth, what="message")
    if not isinstance(data, dict):
        raise InvalidJSON("message must be a JSON object")
    return data


def _validate(data: dict[str, Any]) -> Any:
    kind = data.get("type")
    if kind not in CLIENT_MESSAGE_TYPES:
        known = ", ".join(CLIENT_MESSAGE_TYPES)
        raise InvalidInput(
            f"type: unknown message type {kind!r} (expected one of {known})",
            fields={"type": "unknown message type"},
        )
    try:
        return CLIENT_MESSAGE.validate_python(data)
    except ValidationError as exc:
        error = validation_error(exc)
        # drop the discriminator prefix pydantic puts on field paths ("response.request_id")
        fields = {k.split(".", 1)[-1]: v for k, v in (error.fields or {}).items()}
        first, text = next(iter(fields.items()))
        raise InvalidInput(f"{first}: {text}", fields=fields) from None


async def refuse_origin(ws: WebSocket) -> None:
    """A page from an origin outside the configured list (cross-site WebSocket hijacking)."""
    await ws.accept()
    await ws.close(CLOSE_FORBIDDEN, "this origin may not open WebSockets here")


async def unknown_path(ws: WebSocket) -> None:
    await ws.accept()
    await ws.close(CLOSE_NOT_FOUND, "no such WebSocket endpoint")


patient_endpoint = Endpoint("patient").handle
pharmacy_endpoint = Endpoint("pharmacy").handle

routes = [
    WebSocketRoute("/ws/user/{account_id:id}/", patient_endpoint),
    WebSocketRoute("/ws/user/{account_id:id}", patient_endpoint),
    WebSocketRoute("/ws/pharmacy/{account_id:id}/", pharmacy_endpoint),
    WebSocketRoute("/ws/pharmacy/{account_id:id}", pharmacy_endpoint),
    WebSocketRoute("/{path:path}", unknown_path),
]


async def dispatch(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """Run a WebSocket straight on its endpoint, outside Starlette's middleware stack.

    A socket lives for hours, and every frame of the stack above its handler stays
    suspended with it: skipping Starlette's routing and exception middlewares saves about
    5 KB per idle socket (measured with `loadtests/ws_floor.py`). Nothing here needs them:
    the endpoints handle their own errors and close with their own codes.
    """
    watch = app.state.observer.watch(scope, receive, send)  # trace id, close code, log line
    receive, send = watch.receive, watch.send
    try:
        for route in routes:
            match, child_scope = route.matches(scope)
            if match == Match.FULL:
                scope.update(child_scope)
                scope["app"] = app
                scope["route"] = route  # its template names the socket in logs and metrics
                if not websocket_origin_allowed(scope, app.state.ws_origins):
                    await refuse_origin(WebSocket(scope, receive, send))
                    return
                await route.endpoint(WebSocket(scope, receive, send))
                return
    finally:
        watch.finish(scope)


async def close_all(connections: set[Connection], code: int = CLOSE_SHUTDOWN) -> None:
    """Close every live socket (server shutdown): each client sees `code`."""
    for connection in list(connections):
        connection.close(code, "server shutting down")
