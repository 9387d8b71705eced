"""The long-running user commands: `listen`, and `request --wait`."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from medreq.client import (
    ConnectionState,
    Event,
    LiveConnection,
    MedreqClient,
    PharmacyResponseEvent,
    ProfileStore,
)

from .user_output import CommandError, echo_json, err, event_line, out, status_text
from .user_session import session

if TYPE_CHECKING:
    from rich.status import Status

# with --wait, check the request over REST after a reconnect this often (an answer sent while
# the link was down is replayed only when the stream had seen an event id to resume from)
_WAIT_TICK = 2.0


class CommandTimeout(CommandError):
    code = "timeout"
    default_message = "timed out"


class LinkStatus:
    """How `listen` shows its link on stderr (stdout stays events only, for --json pipelines).

    While the server cannot be reached, one status line, updated in place on a terminal:
    ``waiting for http://… — retry in 4 s (is `medreq serve` running?)``, counting down to the
    client's next attempt. Piped, one line per outage instead. Then ``listening`` (the first
    time) or ``reconnected``. The connection's ``on_state`` callback; `close` ends the line."""

    def __init__(self, profile: str, url: str) -> None:
        self.profile = profile
        self.url = url
        self.was_open = False
        self.down = False
        self.retry_at: float | None = None
        self.live: Status | None = None
        self.ticker: asyncio.Task[None] | None = None

    def __call__(self, state: ConnectionState, retry_in: float | None) -> None:
        if state == "open":
            self.close()
            err.print("[green]reconnected[/]" if self.was_open else f"[dim]listening \\[profile {self.profile}]…[/]")
            self.was_open, self.down = True, False
        elif state in ("connecting", "reconnecting"):
            self.retry_at = None if retry_in is None else time.monotonic() + retry_in
            if not self.down and (retry_in is not None or state == "reconnecting"):
                self.down = True
                self._start(state)
            self._update()

    def text(self) -> str:
        lost = "connection lost; " if self.was_open else ""
        if self.retry_at is None:
            when = "connecting…"
        else:
            when = f"retry in {max(0, math.ceil(self.retry_at - time.monotonic()))} s"
        return f"{lost}waiting for {self.url} — {when} (is `medreq serve` running?)"

    def _start(self, state: ConnectionState) -> None:
        if not err.is_terminal:
            if state == "reconnecting":
                err.print(f"connection lost, reconnecting to {escape(self.url)} with backoff…", soft_wrap=True)
            else:
                err.print(
                    f"waiting for {escape(self.url)} (is `medreq serve` running?); retrying with "
                    "backoff, Ctrl-C to stop",
                    soft_wrap=True,
                )
            return
        self.live = err.status(escape(self.text()))
        self.live.start()
        self.ticker = asyncio.get_running_loop().create_task(self._tick())

    def _update(self) -> None:
        if self.live is not None:
            self.live.update(escape(self.text()))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self._update()

    def close(self) -> None:
        ticker, self.ticker = self.ticker, None
        if ticker is not None:
            ticker.cancel()
        live, self.live = self.live, None
        if live is not None:
            live.stop()


async def listen_events(
    profile: str,
    after: int | None,
    *,
    as_json: bool,
    count: int | None,
    seconds: float | None,
    retry: bool = True,
) -> None:
    """Print events until ``count`` were printed or ``timeout`` passed; save each event id.
    ``retry``: wait for a server that cannot be reached yet (else fail at once)."""
    store = ProfileStore()
    printed = 0
    status: LinkStatus | None = None
    try:
        async with asyncio.timeout(seconds), session(profile) as (client, _):
            status = LinkStatus(profile, client.base_url)
            async with client.connect(after=after, on_state=status, retry_first=retry) as conn:
                async for event in conn:
                    _print_event(event, as_json)
                    if event.event_id is not None:
                        store.update(profile, last_event_id=event.event_id)
                    printed += 1
                    if count is not None and printed >= count:
                        return
    except TimeoutError:
        if count is not None:
            raise CommandTimeout(f"got {printed} of {count} events in {seconds:g}s") from None
    finally:
        if status is not None:
            status.close()


def _print_event(event: Event, as_json: bool) -> None:
    if as_json:
        echo_json(event.raw)
    else:
        out.print(event_line(event), soft_wrap=True)


async def wait_for_answer(
    client: MedreqClient,
    send: Callable[[], Awaitable[list[int]]],
    save_audio: Path | None,
    seconds: float | None,
    as_json: bool,
) -> None:
    """Connect, send the request, print each pharmacy's answer as it comes (every pharmacy's,
    when it went to several)."""
    answered = 0
    try:
        async with asyncio.timeout(seconds), client.connect() as conn:
            waiting = set(await send())
            total = len(waiting)
            with _waiting(sorted(waiting), seconds):
                while waiting:
                    event = await _next_answer(client, conn, waiting)
                    waiting.discard(event.request_id)
                    answered += 1
                    _print_event(event, as_json)
                    if save_audio is not None and event.audio_url:
                        path = await client.download_to(event.audio_url, save_audio)
                        err.print(f"audio saved to {path}")
    except TimeoutError:
        if answered:
            raise CommandTimeout(f"{total - answered} of {total} pharmacies did not answer within {seconds:g}s") from None
        raise CommandTimeout(f"no answer from the pharmacy within {seconds:g}s") from None


@contextmanager
def _waiting(request_ids: list[int], seconds: float | None) -> Iterator[None]:
    """A spinner with the time waited on a terminal; one line on stderr otherwise."""
    limit = f", giving up after {seconds:g}s" if seconds else ""
    if len(request_ids) == 1:
        what = f"the pharmacy's answer to request {request_ids[0]}"
    else:
        what = f"the pharmacies' answers to requests {', '.join(map(str, request_ids))}"
    text = f"waiting for {what}{limit} (Ctrl-C to stop)"
    if not err.is_terminal:
        err.print(text + "…")
        yield
        return
    with err.status(text + "…") as status:
        started = time.monotonic()

        async def tick() -> None:
            while True:
                await asyncio.sleep(1)
                status.update(f"{text}… {time.monotonic() - started:.0f}s")

        ticker = asyncio.get_running_loop().create_task(tick())
        try:
            yield
        finally:
            ticker.cancel()


async def _next_answer(
    client: MedreqClient, conn: LiveConnection, request_ids: set[int]
) -> PharmacyResponseEvent:
    """The next answer to one of ``request_ids`` (read over REST after a reconnect)."""
    seen_reconnects = 0
    while True:
        try:
            event = await conn.next_event(_WAIT_TICK)
        except TimeoutError:
            if conn.reconnects == seen_reconnects:
                continue
            seen_reconnects = conn.reconnects
            for request_id in sorted(request_ids):
                answer = await _answer_from_rest(client, request_id)
                if answer is not None:
                    return answer
            continue
        if isinstance(event, PharmacyResponseEvent) and event.request_id in request_ids:
            return event


async def _answer_from_rest(client: MedreqClient, request_id: int) -> PharmacyResponseEvent | None:
    request = await client.get_request(request_id)
    if request.response is None:
        if request.status != "PENDING":
            out.print(f"Request {request_id} is {status_text(request.status)}")
        return None
    return PharmacyResponseEvent(
        request_id=request.id,
        status=request.response.status,
        message=request.response.message,
        audio_url=request.response.audio_url,
        pharmacy_name=request.pharmacy.name,
        pharmacy_id=request.pharmacy.id,
        timestamp=request.response.responded_at,
        price=request.response.price,
        currency=request.response.currency,
        ready_at=request.response.ready_at,
    )
