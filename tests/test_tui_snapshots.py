"""SVG snapshots of the inbox at 80×24 and 200×50, from fixed data (a fake backend, a frozen clock, UTC),
so they never depend on ids, timestamps or the machine's time zone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual")

from textual.pilot import Pilot
from textual.widgets import Input

from medreq.client import (
    AccountOut,
    Event,
    MessageEvent,
    NewRequestEvent,
    ReadEvent,
    RequestDetail,
    RequestOut,
    TypingEvent,
)
from medreq.protocol import PartyOut, ResponseOut
from medreq.tui import InboxApp, Link
from medreq.tui.screens import HelpScreen
from medreq.tui.widgets import RequestTable

from .conftest import png

NOW = datetime(2026, 2, 24, 18, 30, tzinfo=UTC)
PHARMACY = PartyOut(id=2, name="LifeCare Pharmacy")
ROWS = [
    # id, patient, phone, quantity, medicine, minutes ago, status, answer
    (7, "Alice Patient", "+1-555-0100", 2, "Amoxicillin 500mg", 0.1, "PENDING", None),
    (6, "Bob Okafor", "+1-555-0142", 1, None, 4, "PENDING", None),
    (5, "Chen Wei", "+1-555-0199", 30, "Metformin 850mg", 26, "ACCEPTED", "Ready for pickup"),
    (4, "Dana Lopez", None, 1, "Insulin glargine", 95, "REJECTED", "Out of stock"),
    (3, "Alice Patient", "+1-555-0100", 3, "Ibuprofen 400mg", 190, "ACCEPTED", "Ready for pickup"),
    (2, "Emil Novak", "+1-555-0123", 1, "Salbutamol inhaler", 1500, "CANCELLED", None),
]


def stamp(minutes_ago: float) -> str:
    return datetime.fromtimestamp(NOW.timestamp() - minutes_ago * 60, UTC).isoformat()


def make_request(row: tuple[Any, ...]) -> RequestDetail:
    rid, name, phone, quantity, medicine, minutes, status, answer = row
    response = ResponseOut(status=status, message=answer, responded_at=stamp(minutes - 1)) if answer else None
    return RequestDetail(
        id=rid,
        patient=PartyOut(id=100 + rid, name=name, phone=phone),
        pharmacy=PHARMACY,
        quantity=quantity,
        medicine_name=medicine,
        note="Please call when ready" if rid == 7 else None,
        image_url=f"http://pharmacy.test/media/prescriptions/rx{rid}.png",
        status=status,
        response=response,
        created_at=stamp(minutes),
        updated_at=stamp(minutes),
        messages=[{"id": 1, "from": 107, "text": "Is it in stock?", "created_at": stamp(0.05)}]
        if rid == 7
        else [],
    )


class FakeBackend:
    """The `medreq.tui.Backend` surface the app uses, over fixed data."""

    url = "http://pharmacy.test"

    def __init__(self, *, arrivals: bool = True) -> None:
        self.account = AccountOut(id=2, username="lifecare", role="pharmacy", name=PHARMACY.name)
        self.requests = {row[0]: make_request(row) for row in ROWS}
        self.loaded = asyncio.Event()
        self.typed: list[tuple[int, str]] = []
        self.live: list[Event] = [
            NewRequestEvent(
                event_id=9,
                request_id=8,
                patient_name="Farah Haddad",
                patient_phone="+1-555-0177",
                quantity=1,
                medicine_name="Atorvastatin 20mg",
                timestamp=NOW.isoformat(),
            )
        ][: 1 if arrivals else 0]

    def stored_profile(self) -> None:
        return None

    async def resume(self) -> AccountOut:
        return self.account

    async def load(self) -> list[RequestOut]:
        self.loaded.set()
        return list(self.requests.values())

    async def detail(self, request_id: int) -> RequestDetail:
        return self.requests[request_id]

    async def download(self, url: str) -> bytes:
        return png(640, 480)

    async def mark_read(self, request_id: int) -> bool:
        return False  # counts stay as loaded: snapshots do not send

    async def respond(
        self, request_id: int, status: str, message: str | None, audio: Path | None
    ) -> RequestOut:
        raise AssertionError("snapshots do not send")

    async def send_message(self, request_id: int, text: str) -> dict[str, Any]:
        raise AssertionError("snapshots do not send")

    async def typing(self, request_id: int, state: str) -> None:
        self.typed.append((request_id, state))

    async def run_live(self, on_event: Callable[[Event], None], on_link: Callable[[Link], None]) -> None:
        on_link(Link("connected"))
        await self.loaded.wait()
        for event in self.live:
            on_event(event)
        await asyncio.Event().wait()

    async def close_live(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


async def settle(pilot: Pilot[Any]) -> None:
    """Until the table is loaded, the live arrivals shown and request 7's prescription inspected."""
    for _ in range(200):
        screen = pilot.app.inbox_screen  # type: ignore[attr-defined]
        arrived = screen is not None and all(
            e.request_id in screen.inbox.requests for e in screen.backend.live
        )
        if arrived and screen.inbox.requests and 7 in screen.media:
            break
        await pilot.pause(0.01)
    await pilot.pause()


SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((200, 50), id="200x50")]


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_snapshot(snap_compare: Any, utc: None, size: tuple[int, int]) -> None:
    assert snap_compare(InboxApp(FakeBackend(), clock=lambda: NOW), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_answer_form_snapshot(snap_compare: Any, utc: None, size: tuple[int, int]) -> None:
    async def open_form(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("a", "down")
        await settle(pilot)

    app = InboxApp(FakeBackend(arrivals=False), clock=lambda: NOW)
    assert snap_compare(app, terminal_size=size, run_before=open_form)


def thread_backend() -> FakeBackend:
    """Request 7's thread: the patient asked, we answered, then live: the patient read our
    answer (Seen), wrote again, and is typing a third message."""
    backend = FakeBackend(arrivals=False)
    backend.requests[7].messages.append(
        {"id": 2, "from": 2, "text": "Yes, 2 boxes left", "created_at": stamp(0.04)}
    )
    backend.live = [
        ReadEvent(event_id=10, request_id=7, by=107, up_to_event_id=3, timestamp=stamp(0.03)),
        MessageEvent(
            event_id=11,
            request_id=7,
            message_id=3,
            text="Great, I'll come at 6",
            timestamp=stamp(0.02),
            **{"from": 107},
        ),
        TypingEvent(request_id=7, state="start", timestamp=stamp(0.01), **{"from": 107}),
    ]
    return backend


async def thread_ready(pilot: Pilot[Any]) -> None:
    """Request 7 selected, its thread loaded and the live receipt, message and typing applied."""
    for _ in range(200):
        screen = pilot.app.inbox_screen  # type: ignore[attr-defined]
        if screen is not None and len(screen.inbox.thread(7)) == 3 and screen.inbox.is_typing(7):
            break
        await pilot.pause(0.01)
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_thread_snapshot(snap_compare: Any, utc: None, size: tuple[int, int]) -> None:
    """The thread beside the request, like the console's: the patient's messages, ours marked
    Seen, "… is typing", and a reply being written in the message box."""

    async def write(pilot: Pilot[Any]) -> None:
        await thread_ready(pilot)
        await pilot.press("m", *"See you then")
        await pilot.pause()

    app = InboxApp(thread_backend(), clock=lambda: NOW)
    assert snap_compare(app, terminal_size=size, run_before=write)


@pytest.mark.parametrize(("size", "full"), [((80, 24), 18), ((120, 30), 18), ((200, 50), 18)])
async def test_medicine_names_are_shown_in_full_where_they_fit(
    utc: None, size: tuple[int, int], full: int
) -> None:
    """The medicine column takes the terminal's spare width: no name of the fixture is cut."""
    app = InboxApp(FakeBackend(), clock=lambda: NOW)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RequestTable)
        assert table.widths["medicine"] >= full  # "Salbutamol inhaler"
        names = [str(table.get_cell(str(row[0]), "medicine")) for row in ROWS]
        assert "Salbutamol inhaler" in names
        assert table.virtual_size.width <= size[0]


async def test_typing_in_the_answer_form_replaces_the_quick_reply(utc: None) -> None:
    app = InboxApp(FakeBackend(arrivals=False), clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await pilot.pause()
        message = app.screen.query_one("#message", Input)
        assert message.value == "Ready for pickup"
        await pilot.press(*"Come at 5")
        assert message.value == "Come at 5"
        await pilot.press("down")  # the next quick reply, selected again
        await pilot.press(*"!")
        assert message.value == "!"
        await pilot.press("down", "end", *" today")
        assert message.value.endswith(" today") and len(message.value) > len(" today")


async def test_help_and_theme_toggle(utc: None) -> None:
    app = InboxApp(FakeBackend(), clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        theme = app.theme
        await pilot.press("d")
        assert app.theme != theme
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert app.screen is app.inbox_screen
