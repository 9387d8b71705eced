"""The WebSocket endpoint (docs/protocol.md §4–§5): `/ws/user/{id}/` and `/ws/pharmacy/{id}/`.

`Endpoint.handle` authenticates a socket, makes its `Connection` (connection.py: the hub's sink
and the single writer of everything sent on it, in `event_id` order with no gaps) and reads
the client's messages until the socket ends.

A socket lives as long as its access token: `{"type":"auth","token"}` extends it, and
`sessions.watch` closes it with 4401 at expiry or when the account is disabled or its tokens
revoked (on any worker).

Close codes: `medreq.protocol.CloseCode` (4401 bad, expired or revoked token, 4403 wrong account,
role or origin, 4404 unknown path, 1001 server shutdown, 1008 flooding or a bad `after`, 1009 frame
too large (by uvicorn), 1011 an unexpected server error, 1013 a client too slow to keep up); an
error that ends a socket closes with its `close` code (`medreq.protocol.codes.ERROR_WIRE`).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.routing import Match, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from ...auth import bearer_token
from ...protocol import (
    CLIENT_MESSAGE,
    CLIENT_MESSAGE_TYPES,
    MAX_ID,
    AckFrame,
    AuthIn,
    CloseCode,
    MessageIn,
    PingIn,
    ReadIn,
    ResponseIn,
    ResumeIn,
    TypingIn,
    to_text,
    validation_error,
)
from ...protocol.errors import Forbidden, InvalidJSON, MedreqError, RateLimited, Unavailable
from ...protocol.errors import Invalid as InvalidInput
from ...protocol.operations import CHANNELS
from ...service import MedreqService, Offer
from ...telemetry import metrics
from .. import (
    convertors,  # noqa: F401  (registers the `id` convertor of the routes below)
    json_limits,
    wire_record,
)
from ..cors import websocket_origin_allowed
from ..observe import scope_header
from ..origin import client_base_url
from .connection import Connection, error_frame

log = logging.getLogger("medreq.ws")


class Endpoint:
    """Handles one socket from handshake to close."""

    def __init__(self, role: str) -> None:
        self.role = role

    async def handle(self, ws: WebSocket) -> None:
        # This frame, and _receive's, stay suspended for the socket's whole life: what the
        # handshake needed (token, query, claims) lives in _open's frame, which ends.
        connection = await self._open(ws)
        if connection is None:
            return
        app_state = ws.app.state
        service = connection.service
        try:
            await self._receive(connection, app_state)
        except (WebSocketDisconnect, OSError):
            pass
        finally:
            app_state.connections.discard(connection)
            app_state.ws_limiter.forget(("ws", id(connection)))
            await service.unsubscribe(connection.caller.id, connection)
            await connection.stop()

    async def _open(self, ws: WebSocket) -> Connection | None:
        """Accept, authenticate and subscribe the socket; None if it was refused (and closed)."""
        await ws.accept()
        scope = ws.scope
        app_state = ws.app.state
        service: MedreqService = app_state.service
        query = _query(scope)  # not ws.query_params / ws.headers: Starlette keeps those parsed
        token = bearer_token(scope_header(scope, b"authorization")) or query.get("token")
        try:
            caller, claims = await service.session(token)
        except MedreqError as exc:  # the database away for a moment (a failover): 1013, come back
            code = CloseCode.TRY_AGAIN_LATER if isinstance(exc, Unavailable) else CloseCode.UNAUTHORIZED
            await ws.close(code, exc.message)
            return None
        if caller.id != ws.path_params["id"] or caller.role != self.role:
            await ws.close(CloseCode.FORBIDDEN, "this socket belongs to another account")
            return None
        try:
            after = _after_param(query.get("after"))
        except MedreqError as exc:
            await ws.send_text(to_text(error_frame(exc, None)))
            await ws.close(CloseCode.POLICY_VIOLATION, exc.message)
            return None

        app_state.observer.ws_opened(caller.id, caller.role)  # its log line, trace and gauge
        connection = Connection(
            ws,
            caller,
            claims,
            service,
            queue_size=service.limits.ws_queue_size,
            base=client_base_url(scope),
        )
        _shed_handshake(scope)
        connections: set[Connection] = app_state.connections
        connections.add(connection)
        await connection.attach(after)
        return connection

    async def _receive(self, connection: Connection, app_state: Any) -> None:
        # the ASGI receive itself, not Starlette's `ws.receive` (one more suspended frame per
        # idle socket for a state check this loop does not need: it ends at the disconnect)
        receive = connection.ws._receive
        flood = 0
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            flood = await self._message(connection, app_state, message, flood)
            if flood < 0:
                return

    async def _message(self, connection: Connection, app_state: Any, message: Any, flood: int) -> int:
        """One client message; the flood count after it, or -1 when the socket was closed for it.

        A function of its own so that nothing of the last message (its text, the decoded JSON)
        stays referenced by the receive loop's frame while the socket idles."""
        raw = message.get("text")
        if raw is None:
            raw = (message.get("bytes") or b"").decode("utf-8", errors="replace")
        ref = None
        data: dict[str, Any] = {}
        with connection.service.for_client(connection.base):  # links in acks and replies
            try:
                # per connection, not per account: one flooding socket must not silence the
                # account's other devices (REST stays per account)
                app_state.ws_limiter.hit(("ws", id(connection)))
                data = _decode(raw, connection.service.limits.max_json_depth)
                ref = _ref(data.get("id"))
                await self._handle(connection, _validate(data), ref)
                metrics.ws_message(data["type"], "ok")
                return 0
            except RateLimited as exc:
                metrics.ws_message(None, exc.code)
                if flood + 1 > connection.service.limits.ws_flood_limit:
                    connection.close(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
                    await connection.flush()
                    return -1
                connection.error(exc, _early_ref(raw))
                return flood + 1
            except MedreqError as exc:
                metrics.ws_message(data.get("type") if data else "invalid", exc.code)
                connection.error(exc, ref)
                return flood

    async def _handle(self, connection: Connection, message: Any, ref: Any) -> None:
        service = connection.service
        caller = connection.caller
        if isinstance(message, PingIn):
            connection.pong(ref)
        elif isinstance(message, ResponseIn):
            offer = Offer(price=message.price, currency=message.currency, ready_at=message.ready_at)
            view = await service.respond(caller, message.request_id, message.status, message.message, None, offer)
            connection.reply(AckFrame(type="ack", ref=ref, request_id=message.request_id, data=view))
        elif isinstance(message, ResumeIn):
            connection.catch_up(message.after, ref, ack=True)
        elif isinstance(message, MessageIn):
            posted = await service.post_message(caller, message.request_id, message.text)
            connection.reply(
                AckFrame(type="ack", ref=ref, request_id=message.request_id, message=posted.message)
            )
        elif isinstance(message, TypingIn):
            await service.typing(caller, message.request_id, message.state)
        elif isinstance(message, ReadIn):
            result = await service.mark_read(caller, message.request_id, message.up_to_event_id)
            connection.reply(AckFrame(type="ack", ref=ref, request_id=message.request_id, **result))
        elif isinstance(message, AuthIn):
            fresh_caller, claims = await service.session(message.token)
            if fresh_caller.id != caller.id:
                raise Forbidden("that token belongs to another account")
            connection.claims = claims  # the socket now lives until this token expires
            connection.reply(AckFrame(type="ack", ref=ref, expires_at=claims.expires_at))


def _query(scope: Scope) -> dict[str, str]:
    """The query string as Starlette's `query_params` reads it (the last of a repeated name)."""
    return dict(parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1"), keep_blank_values=True))


def _shed_handshake(scope: Scope) -> None:
    """Drop the handshake's headers and query string from a live socket's scope.

    The scope lives as long as the socket, and nothing reads these after the socket is
    authenticated (its origin, token, `after` and Host were read by then): ≈ 1.1 KB of an idle
    socket, the headers as a list of byte pairs and the query string with its token."""
    scope["headers"] = []
    scope["query_string"] = b""


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


# An `id` near the start of a message (where clients put it: `{"type":…,"id":…}`): a string of at
# most 128 characters or an integer, as JSON.
_EARLY_ID = re.compile(r'"id"\s*:\s*("(?:[^"\\\x00-\x1f]|\\.){0,128}"|-?\d{1,19}(?![\d.eE]))')
EARLY_ID_WINDOW = 512


def _early_ref(raw: str) -> str | int | None:
    """The `id` of a message refused before it was parsed (rate limited), to echo as `ref`.

    A flooding client's messages are refused before the JSON is decoded, so the flood costs a
    limiter check each; only the first `EARLY_ID_WINDOW` characters are searched for `"id"`
    (docs/protocol.md: the error echoes `ref` when an `id` was sent)."""
    match = _EARLY_ID.search(raw, 0, EARLY_ID_WINDOW)
    if match is None:
        return None
    try:
        return _ref(json.loads(match.group(1)))
    except ValueError:
        return None


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
    await ws.close(CloseCode.FORBIDDEN, "this origin may not open WebSockets here")


async def unknown_path(ws: WebSocket) -> None:
    await ws.accept()
    await ws.close(CloseCode.NOT_FOUND, "no such WebSocket endpoint")


ENDPOINTS = {name: Endpoint(channel.role).handle for name, channel in CHANNELS.items()}
patient_endpoint, pharmacy_endpoint = ENDPOINTS["user"], ENDPOINTS["pharmacy"]

# each declared channel (medreq.protocol.operations), with and without its trailing slash
routes = [
    *(
        WebSocketRoute(path, ENDPOINTS[name])
        for name, channel in CHANNELS.items()
        for path in (channel.path, channel.path.rstrip("/"))
    ),
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
    recording = wire_record.recorder()  # a test aid, off unless MEDREQ_WIRE_RECORD is set
    if recording is not None:
        send = recording.websocket(scope, send)
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
