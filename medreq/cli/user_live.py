"""The long-running user commands: `listen`, and `request --wait`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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

# with --wait, check the request over REST after a reconnect this often (an answer sent while
# the link was down is replayed only when the stream had seen an event id to resume from)
_WAIT_TICK = 2.0


class CommandTimeout(CommandError):
    code = "timeout"
    default_message = "timed out"


def _state_printer(profile: str) -> Callable[[ConnectionState, float | None], None]:
    """Link changes on stderr (stdout stays events only, for --json pipelines): one line as
    the link drops, with the client's first retry delay, and one as it comes back."""
    was: list[ConnectionState] = []

    def show(state: ConnectionState, retry_in: float | None) -> None:
        if was and was[-1] == state:
            return  # a further attempt of the same outage
        if state == "open":
            err.print("[green]reconnected[/]" if was else f"[dim]listening \\[profile {profile}]…[/]")
        elif state == "reconnecting":
            wait = f" in {retry_in:.1f}s" if retry_in is not None else ""
            err.print(f"[yellow]connection lost, reconnecting{wait}…[/]")
        was.append(state)

    return show


async def listen_events(
    profile: str, after: int | None, *, as_json: bool, count: int | None, seconds: float | None
) -> None:
    """Print events until ``count`` were printed or ``timeout`` passed; save each event id."""
    store = ProfileStore()
    printed = 0
    try:
        async with (
            asyncio.timeout(seconds),
            session(profile) as (client, _),
            client.connect(after=after, on_state=_state_printer(profile)) as conn,
        ):
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


def _print_event(event: Event, as_json: bool) -> None:
    if as_json:
        echo_json(event.raw)
    else:
        out.print(event_line(event), soft_wrap=True)


async def wait_for_answer(
    client: MedreqClient,
    send: Callable[[], Awaitable[int]],
    save_audio: Path | None,
    seconds: float | None,
    as_json: bool,
) -> None:
    """Connect, send the request, print the pharmacy's answer when it comes."""
    try:
        async with asyncio.timeout(seconds), client.connect() as conn:
            request_id = await send()
            with _waiting(request_id, seconds):
                event = await _next_answer(client, conn, request_id)
            _print_event(event, as_json)
            if save_audio is not None and event.audio_url:
                path = await client.download_to(event.audio_url, save_audio)
                err.print(f"audio saved to {path}")
    except TimeoutError:
        raise CommandTimeout(f"no answer from the pharmacy within {seconds:g}s") from None


@contextmanager
def _waiting(request_id: int, seconds: float | None) -> Iterator[None]:
    """A spinner with the time waited on a terminal; one line on stderr otherwise."""
    limit = f", giving up after {seconds:g}s" if seconds else ""
    text = f"waiting for the pharmacy's answer to request {request_id}{limit} (Ctrl-C to stop)"
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


async def _next_answer(client: MedreqClient, conn: LiveConnection, request_id: int) -> PharmacyResponseEvent:
    seen_reconnects = 0
    while True:
        try:
            event = await conn.next_event(_WAIT_TICK)
        except TimeoutError:
            if conn.reconnects == seen_reconnects:
                continue
            seen_reconnects = conn.reconnects
            answer = await _answer_from_rest(client, request_id)
            if answer is None:
                continue
            event = answer
        if isinstance(event, PharmacyResponseEvent) and event.request_id == request_id:
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
    )
