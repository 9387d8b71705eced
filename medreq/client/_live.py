"""`LiveConnection`: one account's WebSocket that survives drops, and talks both ways.

The connection owns a reader task. It opens the socket (``?token=…&after=<last event_id>``),
confirms it with a ``ping``/``pong`` round trip (the server closes 4401/4403/4404 before
answering a bad one), then routes every frame: ``ack``/``pong``/``error`` replies resolve the
sender's future by ``ref``; events go, deduplicated by ``event_id``, to the queue that
``async for event in conn`` reads. When the socket drops, the task reconnects with backoff and
jitter and resumes after the last event it saw, so the stream misses nothing and repeats
nothing, while ``respond``/``send_message``/``read``/``ping`` wait for the link to come back
(a frame already sent when the link broke raises `ConnectionLost`: its fate is unknown).

``on_state(state, retry_in)`` hears every change of the link, with the seconds until the next
attempt while it is down, so a UI can show "reconnecting in 3s" without a loop of its own.
The connection reaches the server through a `_tokens.Session` (URLs and tokens, shared with
the REST client) and a ``path`` coroutine that names its socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, Literal, cast
from urllib.parse import urlencode

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from medreq.protocol import (
    ERROR_BY_CLOSE,
    REPLY_TYPES,
    AuthIn,
    ClientMessage,
    CloseCode,
    MessageIn,
    PingIn,
    ReadIn,
    RequestOut,
    ResponseIn,
    ResumeIn,
    TypingIn,
    to_text,
    validation_error,
)
from medreq.protocol.errors import (
    ERRORS_BY_CODE,
    Forbidden,
    MedreqError,
    NotFound,
    Unauthorized,
    error_from_body,
)
from medreq.protocol.events import Event, parse_event

from ._acks import Ack, MessageAck, ReadAck, ResponseAck, ResumeAck
from ._backoff import Backoff
from ._errors import ConnectionLost, TransportError
from ._tokens import Session, token_times

log = logging.getLogger("medreq.client")

#: "connecting" until the first socket opens, "open", "reconnecting" while it is down, "closed".
ConnectionState = Literal["connecting", "open", "reconnecting", "closed"]
#: ``on_state(state, retry_in)``: ``retry_in`` is the pause before the next attempt, in seconds,
#: or None (open, closed, or an attempt under way).
StateCallback = Callable[[ConnectionState, float | None], None]
_END = object()
_RENEW_LEAD = 60.0  # renew a socket's token this long before it expires (or at 80 % of its life)
_RENEW_MIN_WAIT = 0.5


class LiveConnection:
    """Use as ``async with client.connect(after=n) as conn:``; see the module docstring."""

    def __init__(
        self,
        session: Session,
        path: Callable[[], Awaitable[str]],
        *,
        after: int | None = None,
        backoff: Backoff | None = None,
        reply_timeout: float = 10.0,
        open_timeout: float = 10.0,
        on_state: StateCallback | None = None,
        retry_first: bool = False,
    ) -> None:
        self.session = session
        # the last event received and queued for the reader, where this connection resumes
        # after a drop; an event queued but not yet handed out counts too, so a caller that
        # abandons the connection resumes a new one after the last event it handled
        # (`medreq listen` saves that one; the simulator's actors keep `handled_through`)
        self.last_event_id = after
        self.backoff = backoff or Backoff()
        self.reply_timeout = reply_timeout
        self.open_timeout = open_timeout
        self.on_state = on_state
        self.retry_first = retry_first
        self.state: ConnectionState = "connecting"
        self.retry_in: float | None = None
        self.reconnects = 0
        self.duplicates_dropped = 0
        self.last_error: MedreqError | None = None
        self._path = ""
        self._find_path = path
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._open = asyncio.Event()
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._early: list[str | bytes] = []
        self._latest: ClientConnection | None = None  # the newest socket, closed by aclose()
        self._closing = False
        self._error: MedreqError | None = None
        self._socket_token: str | None = None  # the access token the server holds this socket to
        self._renewer: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> LiveConnection:
        ws = None if self.retry_first else await self._connect()  # then its errors go to the caller
        self._task = asyncio.create_task(self._run(ws), name="medreq-live")
        if self.session.refresh_token:
            self._renewer = asyncio.create_task(self._renew(), name="medreq-renew")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closing = True
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            await asyncio.wait({renewer}, timeout=1.0)
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()  # repeated: a cancel racing a finished wait_for() can be swallowed
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled():
            task.exception()  # already reported through the iterator
        await _close_quietly(self._latest)
        self._finish(None)

    @property
    def connected(self) -> bool:
        return self._ws is not None

    # --- receiving ------------------------------------------------------------------------------

    def __aiter__(self) -> LiveConnection:
        return self

    async def __anext__(self) -> Event:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # every later call ends too
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    async def next_event(self, timeout: float | None = None) -> Event:  # noqa: ASYNC109
        """The next event; `TimeoutError` after ``timeout`` seconds, `StopAsyncIteration` once closed."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    # --- sending --------------------------------------------------------------------------------

    async def respond(
        self,
        request_id: int,
        status: Literal["ACCEPTED", "REJECTED"],
        message: str | None = None,
        *,
        price: str | None = None,
        currency: str | None = None,
        ready_at: str | None = None,
    ) -> RequestOut:
        """Answer a request over the socket (as ``POST /medicine/response/``, with an optional
        offer: ``price``, ``currency``, ``ready_at``); the updated request."""
        offer = {"price": price, "currency": currency, "ready_at": ready_at}
        with _invalid_as_medreq():
            frame = ResponseIn(
                type="response",
                request_id=request_id,
                status=status,
                message=message,
                **{k: v for k, v in offer.items() if v is not None},  # sent only when given
            )
        reply = cast(ResponseAck, await self._request(frame))
        return RequestOut.model_validate(reply["data"])

    async def send_message(self, request_id: int, text: str) -> MessageAck:
        """Post a chat message on a request; the server's ``ack``."""
        with _invalid_as_medreq():
            frame = MessageIn(type="message", request_id=request_id, text=text)
        return cast(MessageAck, await self._request(frame))

    async def read(self, request_id: int, up_to_event_id: int) -> ReadAck:
        """Tell the other party this account read the thread up to ``up_to_event_id``."""
        with _invalid_as_medreq():
            frame = ReadIn(type="read", request_id=request_id, up_to_event_id=up_to_event_id)
        return cast(ReadAck, await self._request(frame))

    async def typing(self, request_id: int, state: Literal["start", "stop"] = "start") -> bool:
        """Fire and forget (typing is never answered nor stored); False when offline."""
        with _invalid_as_medreq():
            frame = TypingIn(type="typing", request_id=request_id, state=state)
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(to_text(frame))
        except ConnectionClosed:
            return False
        return True

    async def ping(self) -> float:
        """Round-trip time of an application ``ping`` in seconds."""
        start = time.monotonic()
        await self._request(PingIn(type="ping"))
        return time.monotonic() - start

    async def resume(self, after: int) -> int:
        """Ask for every stored event after ``after`` again; how many the server replayed.
        Replayed events arrive through the iterator (those already seen are dropped)."""
        with _invalid_as_medreq():
            frame = ResumeIn(type="resume", after=after)
        reply = cast(ResumeAck, await self._request(frame))
        return int(reply.get("replayed", 0))

    async def _renew(self) -> None:
        """Keep the socket's access alive: shortly before its token expires, refresh it and send
        ``{"type":"auth","token"}`` (docs/protocol.md §4), so the server does not close it with 4401.
        If that fails, the server closes at expiry and the reconnect loop opens a new socket
        with a fresh token, resuming with ``after``: nothing is lost either way."""
        await self._open.wait()  # the first socket (set at the end too)
        while not self._closing:
            token = self._socket_token
            issued, expires = token_times(token)
            if expires is None:
                return
            lead = min(_RENEW_LEAD, (expires - (issued or expires)) * 0.2)
            await asyncio.sleep(max(_RENEW_MIN_WAIT, expires - lead - time.time()))
            if self._socket_token != token:
                continue  # reconnected meanwhile with a newer token
            try:
                await self.session.refresh_once(token)
                fresh = self.session.access
                if not fresh:
                    raise Unauthorized("the refresh gave no access token")
                with _invalid_as_medreq():
                    frame = AuthIn(type="auth", token=fresh)
                await self._request(frame)
                self._socket_token = fresh
            except MedreqError as exc:
                log.debug("in-band token renewal failed (%s); the socket will reconnect", exc)

    async def _request(self, message: ClientMessage) -> Ack:
        deadline = time.monotonic() + self.reply_timeout
        ref = next(self._ids)
        text = to_text(message.model_copy(update={"id": ref}))
        try:
            while True:  # a frame that could not be sent was not applied: send it on the next link
                ws = await self._wait_open(deadline)
                future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
                self._pending[ref] = future
                try:
                    await ws.send(text)
                    break
                except ConnectionClosed:
                    await asyncio.sleep(0)
            try:
                async with asyncio.timeout_at(_loop_time(deadline)):
                    reply = await future
            except TimeoutError:
                raise TransportError(
                    f"no answer to {message.type!r} within {self.reply_timeout:g}s",
                    url=self.session.base_url,
                ) from None
        finally:
            self._pending.pop(ref, None)
        if reply.get("type") == "error":
            raise error_from_body(reply)
        return cast(Ack, reply)

    async def _wait_open(self, deadline: float) -> ClientConnection:
        while True:
            if self._error is not None:
                raise self._error
            if self.state == "closed":
                raise TransportError("the connection is closed")
            if self._ws is not None:
                return self._ws
            try:
                async with asyncio.timeout_at(_loop_time(deadline)):
                    await self._open.wait()
            except TimeoutError:
                raise TransportError("not connected to the server", url=self.session.base_url) from None

    # --- the reader task ------------------------------------------------------------------------

    async def _run(self, ws: ClientConnection | None) -> None:
        try:
            if ws is None:
                ws = await self._open_with_retries("connecting", at_once=True)
            while True:
                await self._read(ws)
                error = _close_error(ws.close_code, ws.close_reason)
                if not isinstance(error, TransportError | Unauthorized):
                    self._finish(error)  # 4403/4404 will not get better by retrying
                    return
                if self._closing:
                    return
                ws = await self._open_with_retries("reconnecting", at_once=False)
                self.reconnects += 1  # before the replay is handed out: a reader sees it with the events
        except MedreqError as exc:
            self._finish(exc)
        except Exception as exc:  # never die silently: the iterator would wait forever
            log.exception("live connection failed")
            self._finish(TransportError(f"live connection failed: {type(exc).__name__}: {exc}"))

    async def _read(self, ws: ClientConnection) -> None:
        """Route the frames of one socket until it closes (closing it if we are cancelled)."""
        if self._closing:
            await _close_quietly(ws)
            return
        self._ws = ws
        self._set_state("open")
        self._open.set()
        early, self._early = self._early, []
        for frame in early:
            self._dispatch(frame)
        try:
            async for frame in ws:
                self._dispatch(frame)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            await _close_quietly(ws)
            raise
        finally:
            self._ws = None
            self._open.clear()
            self._fail_pending(ConnectionLost())

    async def _open_with_retries(self, state: ConnectionState, *, at_once: bool) -> ClientConnection:
        """A new socket, trying until one opens (or the server refuses this account for good);
        ``state`` is reported with the pause before each attempt, then with None during it."""
        attempt = 0
        wait = not at_once
        while True:
            if wait:
                delay = self.backoff.delay(attempt)
                attempt += 1
                self._set_state(state, delay)
                await asyncio.sleep(delay)
            wait = True
            self._set_state(state)
            try:
                return await self._connect()
            except TransportError as exc:
                log.debug("connection attempt %d failed: %s", attempt, exc)
                self.last_error = exc
            except (Unauthorized, Forbidden, NotFound):
                raise
            except Exception as exc:  # anything odd while the server restarts: try again
                log.debug("connection attempt failed", exc_info=True)
                self.last_error = TransportError(f"{type(exc).__name__}: {exc}")

    async def _connect(self) -> ClientConnection:
        """Open and confirm one socket, refreshing the token once on 4401."""
        if not self._path:
            self._path = await self._find_path()
        for retry in range(2):
            await self.session.ensure_fresh()
            token = self.session.access
            query: dict[str, Any] = {"token": token or ""}
            if self.last_event_id is not None:
                query["after"] = self.last_event_id
            url = f"{self.session.ws_url}{self._path}?{urlencode(query)}"
            log.debug("connecting to %s%s after=%s", self.session.ws_url, self._path, self.last_event_id)
            try:
                ws = await ws_connect(url, open_timeout=self.open_timeout, proxy=None)
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                raise TransportError(
                    f"cannot reach {self.session.ws_url}: {exc or type(exc).__name__}",
                    url=self.session.base_url,
                ) from exc
            self._latest = ws
            self._socket_token = token
            try:
                async with asyncio.timeout(self.open_timeout):
                    await self._confirm(ws)
                log.debug("connected, last event id %s", self.last_event_id)
                return ws
            except asyncio.CancelledError:
                await _close_quietly(ws)
                raise
            except TimeoutError:
                await _close_quietly(ws)
                raise TransportError("the server accepted the WebSocket but did not answer a ping") from None
            except ConnectionClosed:
                error = _close_error(ws.close_code, ws.close_reason)
                if isinstance(error, Unauthorized) and retry == 0 and self.session.refresh_token:
                    await self.session.refresh_once(token)
                    continue
                raise error from None
        raise Unauthorized("the server refused the access token")

    async def _confirm(self, ws: ClientConnection) -> None:
        """Ping until pong; frames before it (a replay) wait in `_early` until the socket is in use."""
        ref = f"open-{next(self._ids)}"
        self._early = []
        await ws.send(to_text(PingIn(type="ping", id=ref)))
        while True:
            frame = await ws.recv()
            data = _decode(frame)
            if data is not None and data.get("type") == "pong" and data.get("ref") == ref:
                self._adopt_high_water_mark(data)
                return
            self._early.append(frame)

    def _adopt_high_water_mark(self, data: dict[str, Any]) -> None:
        """A stream that started live-only has no event id to resume from until its first
        event; if the server says where the account's events stand (``last_event_id`` in the
        opening ``pong``), start from there so a drop before the first event loses nothing."""
        mark = data.get("last_event_id")
        if self.last_event_id is None and isinstance(mark, int) and not isinstance(mark, bool):
            self.last_event_id = mark

    def _dispatch(self, frame: str | bytes) -> None:
        data = _decode(frame)
        if data is None:
            return
        if data.get("type") in REPLY_TYPES:
            ref = data.get("ref")
            future = self._pending.get(ref) if isinstance(ref, int) else None
            if future is not None and not future.done():
                future.set_result(data)
            return
        event = parse_event(data)
        if event.event_id is not None:
            if self.last_event_id is not None and event.event_id <= self.last_event_id:
                self.duplicates_dropped += 1
                return
            self.last_event_id = event.event_id
        self._queue.put_nowait(event)

    def _fail_pending(self, error: MedreqError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved here: a caller that gave up must not warn

    def _finish(self, error: MedreqError | None) -> None:
        if self.state == "closed":
            return
        self._error = error
        self._fail_pending(error or TransportError("the connection is closed"))
        self._set_state("closed")
        self._open.set()  # wake senders so they see the end
        self._queue.put_nowait(_END)

    def _set_state(self, state: ConnectionState, retry_in: float | None = None) -> None:
        if (state, retry_in) != (self.state, self.retry_in):
            self.state, self.retry_in = state, retry_in
            if self.on_state is not None:
                self.on_state(state, retry_in)


@contextlib.contextmanager
def _invalid_as_medreq() -> Iterator[None]:
    """A message the protocol's model refuses raises the `Invalid` the server would answer
    (same fields, same text: the server judges with the same model), before anything is sent."""
    try:
        yield
    except ValidationError as exc:
        raise validation_error(exc) from None


def _loop_time(deadline: float) -> float:
    """A `time.monotonic()` deadline on the event loop's clock."""
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())


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


def _close_error(code: int | None, reason: str | None) -> MedreqError:
    """The error a close code stands for (`medreq.protocol.ERROR_BY_CLOSE`: 4401, 4403, 4404);
    any other close is a `TransportError` (the connection reconnects)."""
    detail = f" ({reason})" if reason else ""
    error = ERROR_BY_CLOSE.get(code) if code is not None else None
    if code is None or error is None:
        return TransportError(f"connection closed (code {code}){detail}")
    message = _CLOSE_MESSAGES.get(code, f"closed with {code}")
    return ERRORS_BY_CODE[error](message + detail)


async def _close_quietly(ws: ClientConnection | None) -> None:
    if ws is not None:
        with contextlib.suppress(Exception):
            await ws.close()
