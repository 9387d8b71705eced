"""`LiveConnection`: one account's WebSocket that survives drops, and talks both ways.

The connection owns a reader task. It opens the socket (``?token=…&after=<last event_id>``),
confirms it with a ``ping``/``pong`` round trip (the server closes 4401/4403/4404 before
answering a bad one), then routes every frame: ``ack``/``pong``/``error`` replies resolve the
sender's future by ``ref``; events go, deduplicated by ``event_id``, to the queue that
``async for event in conn`` reads. What the stream knows (refs awaiting replies, the last event
id, the early frames of a new socket, the link's state, the backoff) is a `_session.LiveSession`,
which does no I/O; this module is the sockets, the tasks and the clock around it. When the socket drops, the task reconnects with backoff and
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
    AuthIn,
    ClientMessage,
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
from medreq.protocol.errors import Forbidden, MedreqError, NotFound, Unauthorized
from medreq.protocol.events import Event

from ._acks import Ack, MessageAck, ReadAck, ResponseAck, ResumeAck
from ._backoff import Backoff
from ._errors import ConnectionLost, TransportError
from ._session import ConnectionState, LiveSession, Reply, close_error, ends_stream
from ._tokens import Session, token_times

log = logging.getLogger("medreq.client")

#: ``on_state(state, retry_in)``: ``retry_in`` is the pause before the next attempt, in seconds,
#: or None (open, closed, or an attempt under way).
StateCallback = Callable[[ConnectionState, float | None], None]
_END = object()
_RENEW_LEAD = 60.0  # renew a socket's token this long before it expires (or at 80 % of its life)
_RENEW_MIN_WAIT = 0.5

__all__ = ["ConnectionState", "LiveConnection", "StateCallback"]


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
        self.stream = LiveSession(after=after, backoff=backoff)
        self.reply_timeout = reply_timeout
        self.open_timeout = open_timeout
        self.on_state = on_state
        self.retry_first = retry_first
        self._path = ""
        self._find_path = path
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._open = asyncio.Event()
        self._waiters: dict[int, asyncio.Future[Reply]] = {}
        self._task: asyncio.Task[None] | None = None
        self._latest: ClientConnection | None = None  # the newest socket, closed by aclose()
        self._closing = False
        self._socket_token: str | None = None  # the access token the server holds this socket to
        self._renewer: asyncio.Task[None] | None = None

    # --- what the stream knows (`LiveSession`) --------------------------------------------------

    @property
    def last_event_id(self) -> int | None:
        """The last event received and queued for the reader, where this connection resumes
        after a drop (an event queued but not yet handed out counts too)."""
        return self.stream.last_event_id

    @last_event_id.setter
    def last_event_id(self, value: int | None) -> None:
        self.stream.last_event_id = value

    @property
    def backoff(self) -> Backoff:
        return self.stream.backoff

    @property
    def state(self) -> ConnectionState:
        return self.stream.state

    @property
    def retry_in(self) -> float | None:
        return self.stream.retry_in

    @property
    def reconnects(self) -> int:
        return self.stream.reconnects

    @property
    def duplicates_dropped(self) -> int:
        return self.stream.duplicates_dropped

    @property
    def last_error(self) -> MedreqError | None:
        """Why the last attempt to open a socket failed."""
        return self.stream.last_error

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
            if self.stream.error is not None:
                raise self.stream.error
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
            await ws.send(to_text(frame))  # no id: never answered
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
        ref: int | None = None
        try:
            while True:  # a frame that could not be sent was not applied: send it on the next link
                ws = await self._wait_open(deadline)
                if ref is not None:
                    self.stream.forget(ref)
                    self._waiters.pop(ref, None)
                outgoing = self.stream.request(message)
                ref = cast(int, outgoing.ref)
                future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
                self._waiters[ref] = future
                try:
                    await ws.send(outgoing.text)
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
            if ref is not None:
                self.stream.forget(ref)
                self._waiters.pop(ref, None)
        return reply.result()

    async def _wait_open(self, deadline: float) -> ClientConnection:
        while True:
            if self.stream.error is not None:
                raise self.stream.error
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
                error = close_error(ws.close_code, ws.close_reason)
                if ends_stream(error):
                    self._finish(error)
                    return
                if self._closing:
                    return
                ws = await self._open_with_retries("reconnecting", at_once=False)
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
        self.stream.opened()
        self._ws = ws
        self._set_state("open")
        self._open.set()
        for item in self.stream.early():
            self._deliver(item)
        try:
            async for frame in ws:
                self._deliver(self.stream.receive(frame))
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            await _close_quietly(ws)
            raise
        finally:
            self._ws = None
            self._open.clear()
            self._fail(self.stream.link_lost(), ConnectionLost())

    async def _open_with_retries(self, state: ConnectionState, *, at_once: bool) -> ClientConnection:
        """A new socket, trying until one opens (or the server refuses this account for good);
        ``state`` is reported with the pause before each attempt, then with None during it."""
        wait = not at_once
        while True:
            if wait:
                delay = self.stream.retry_delay()
                self._set_state(state, delay)
                await asyncio.sleep(delay)
            wait = True
            self._set_state(state)
            try:
                return await self._connect()
            except TransportError as exc:
                log.debug("connection attempt failed: %s", exc)
                self.stream.last_error = exc
            except (Unauthorized, Forbidden, NotFound):
                raise
            except Exception as exc:  # anything odd while the server restarts: try again
                log.debug("connection attempt failed", exc_info=True)
                self.stream.last_error = TransportError(f"{type(exc).__name__}: {exc}")

    async def _connect(self) -> ClientConnection:
        """Open and confirm one socket, refreshing the token once on 4401."""
        if not self._path:
            self._path = await self._find_path()
        for retry in range(2):
            await self.session.ensure_fresh()
            token = self.session.access
            url = f"{self.session.ws_url}{self._path}?{urlencode(self.stream.query(token))}"
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
                error = close_error(ws.close_code, ws.close_reason)
                if isinstance(error, Unauthorized) and retry == 0 and self.session.refresh_token:
                    await self.session.refresh_once(token)
                    continue
                raise error from None
        raise Unauthorized("the server refused the access token")

    async def _confirm(self, ws: ClientConnection) -> None:
        """Ping until pong; frames before it (a replay) wait in the session until the socket is in use."""
        await ws.send(self.stream.probe().text)
        while not self.stream.receive_opening(await ws.recv()):
            pass

    def _deliver(self, item: Event | Reply | None) -> None:
        """A reply to its waiting sender; an event to the reader's queue."""
        if isinstance(item, Reply):
            future = self._waiters.get(item.ref)
            if future is not None and not future.done():
                future.set_result(item)
        elif item is not None:
            self._queue.put_nowait(item)

    def _fail(self, refs: list[int], error: MedreqError) -> None:
        for ref in refs:
            future = self._waiters.get(ref)
            if future is not None and not future.done():
                future.set_exception(error)
                future.exception()  # retrieved here: a caller that gave up must not warn

    def _finish(self, error: MedreqError | None) -> None:
        lost = self.stream.finish(error)
        if lost is None:
            return
        self._fail(lost, error or TransportError("the connection is closed"))
        self._set_state("closed")
        self._open.set()  # wake senders so they see the end
        self._queue.put_nowait(_END)

    def _set_state(self, state: ConnectionState, retry_in: float | None = None) -> None:
        if self.stream.set_state(state, retry_in) and self.on_state is not None:
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


async def _close_quietly(ws: ClientConnection | None) -> None:
    if ws is not None:
        with contextlib.suppress(Exception):
            await ws.close()
