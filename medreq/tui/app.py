"""`InboxApp`: the pharmacy counter screen (issue 4). Logs in, then shows `InboxScreen`."""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from medreq.client import (
    AccountOut,
    Event,
    MedreqError,
    MessageEvent,
    NewRequestEvent,
    RequestCancelledEvent,
    RequestDetail,
    RequestOut,
    RequestUpdatedEvent,
)

from .backend import Answer, Backend, Link, NotAPharmacy
from .media import MediaInfo, inspect, open_in_viewer
from .model import Clock, Inbox, utcnow
from .screens import AnswerScreen, HelpScreen, LoginScreen, Sent
from .styles import CSS
from .widgets import DetailPane, HeaderBar, RequestTable, StatusBar

DEFAULT_URL = "http://127.0.0.1:8000"
FRESH_SECONDS = 120.0


class InboxScreen(Screen[None]):
    """Table of requests, detail of the selected one, live from the WebSocket."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "answer('ACCEPTED')", "Accept"),
        Binding("r", "answer('REJECTED')", "Reject"),
        Binding("o", "open_rx", "Open Rx"),
        Binding("f", "cycle_filter", "Filter"),
        Binding("slash", "search", "Search"),
        Binding("question_mark", "help", "Help"),
        Binding("d", "toggle_theme", "Theme"),
        Binding("q", "app.quit", "Quit"),
        Binding("ctrl+r", "reload", "Reload", show=False),
        Binding("escape", "leave_search", "Table", show=False),
    ]

    @dataclass
    class LiveEvent(Message):
        event: Event

    @dataclass
    class LinkChanged(Message):
        link: Link

    def __init__(self, backend: Any, *, clock: Clock = utcnow) -> None:
        super().__init__()
        self.backend = backend
        self.clock = clock
        self.inbox = Inbox(clock=clock)
        self.details: dict[int, RequestDetail] = {}
        self.media: dict[int, MediaInfo | str] = {}
        self.link = Link("connecting")
        self.answer_form: AnswerScreen | None = None
        #: every notice shown (tests read it; toasts are off in headless runs)
        self.notices: list[str] = []
        self.bells = 0

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with Horizontal(id="filters"):
            yield Static(id="filter-label")
            yield Input(placeholder="/ search patient name", id="search")
        yield RequestTable(id="requests")
        with VerticalScroll(id="detail-scroll"):
            yield DetailPane(id="detail")
        yield StatusBar(id="status")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one(StatusBar).show(url=self.backend.url)
        self.query_one(RequestTable).focus()
        self.redraw()
        self.set_interval(30, self.redraw)  # ages move on
        self.reload(announce=False)
        self.run_worker(
            self.backend.run_live(self.post_message_event, self.post_message_link), name="live", group="live"
        )

    async def on_unmount(self) -> None:
        # close the socket here, awaited: the live worker is only cancelled, not awaited
        await self.backend.close_live()

    def post_message_event(self, event: Event) -> None:
        self.post_message(self.LiveEvent(event))

    def post_message_link(self, link: Link) -> None:
        self.post_message(self.LinkChanged(link))

    # --- data in --------------------------------------------------------------------------------

    @work(exclusive=True, group="reload")
    async def reload(self, announce: bool = True) -> None:
        """Read the newest requests over REST and merge them (the first load, and after every
        reconnect, so a gap in the event stream can never hide a request)."""
        try:
            requests = await self.backend.load()
        except MedreqError as exc:
            self.notice(f"could not load requests: {exc.message}", severity="error")
            return
        new = self.inbox.merge(requests)
        for request in requests:
            cached = self.details.get(request.id)
            if cached is not None and cached.status != request.status:
                del self.details[request.id]
        if announce and new:
            for request_id in new:
                self.mark_fresh(request_id)
            self.ring(f"{len(new)} new request(s) while offline")
        self.redraw()

    @on(LiveEvent)
    def _live_event(self, message: LiveEvent) -> None:
        event = message.event
        changed = self.inbox.apply(event)
        if isinstance(event, NewRequestEvent) and changed is not None:
            self.mark_fresh(changed)
            who = event.patient_name or "a patient"
            self.ring(f"New request #{event.request_id} from {who}: {event.medicine_name or 'prescription'}")
        elif isinstance(event, RequestUpdatedEvent | RequestCancelledEvent) and changed is not None:
            self.details.pop(changed, None)
            status = self.inbox.requests[changed].status
            form = self.answer_form
            if form is not None and form.request.id == changed:
                form.answered_elsewhere(status)
            if isinstance(event, RequestCancelledEvent):
                self.notice(f"Request #{changed} was cancelled by the patient", severity="warning")
        elif isinstance(event, MessageEvent):
            self.details.pop(event.request_id, None)
            self.notice(f"Message on #{event.request_id}: {event.text}")
        self.redraw()

    @on(LinkChanged)
    def _link_changed(self, message: LinkChanged) -> None:
        was = self.link.state
        self.link = message.link
        self.query_one(StatusBar).show(message.link)
        if message.link.state == "connected" and was in ("reconnecting", "offline"):
            self.reload()

    def mark_fresh(self, request_id: int) -> None:
        """Highlight a request that just arrived, for `FRESH_SECONDS` or until it is answered."""
        self.inbox.fresh.add(request_id)

        def fade() -> None:
            self.inbox.fresh.discard(request_id)
            self.redraw()

        self.set_timer(FRESH_SECONDS, fade)

    # --- drawing --------------------------------------------------------------------------------

    def redraw(self) -> None:
        account = self.backend.account
        self.query_one(HeaderBar).show(account.name if account else "", self.inbox.counts())
        label = (self.inbox.status_filter or "all").title()
        self.query_one("#filter-label", Static).update(Text.assemble("[f] ", (label, "bold"), " │ "))
        self.query_one(RequestTable).show(self.inbox.visible(), self.inbox.fresh, self.clock())
        self.show_detail()

    def selected(self) -> RequestOut | None:
        request_id = self.query_one(RequestTable).selected_id()
        return self.inbox.requests.get(request_id) if request_id is not None else None

    def show_detail(self) -> None:
        request = self.selected()
        pane = self.query_one(DetailPane)
        if request is None:
            pane.show(None, None, None, self.clock())
            return
        pane.show(request, self.details.get(request.id), self.media.get(request.id), self.clock())
        if request.id not in self.details:
            self.fetch_detail(request.id)
        if request.unread:
            self.report_read(request.id)

    @work(exclusive=True, group="read")
    async def report_read(self, request_id: int) -> None:
        """The selected request is being looked at: tell the server, so its unread count (here,
        in the console, on other screens) drops to zero."""
        try:
            sent = await self.backend.mark_read(request_id)
        except MedreqError:
            return
        if sent and self.inbox.mark_read(request_id):
            self.redraw()

    @work(exclusive=True, group="detail")
    async def fetch_detail(self, request_id: int) -> None:
        try:
            detail = await self.backend.detail(request_id)
        except MedreqError as exc:
            self.media.setdefault(request_id, f"cannot load the request: {exc.message}")
            return
        self.details[request_id] = detail
        self.inbox.upsert(detail)
        if detail.image_url and request_id not in self.media:
            try:
                self.media[request_id] = inspect(await self.backend.download(detail.image_url))
            except MedreqError as exc:
                self.media[request_id] = f"cannot download: {exc.message}"
        selected = self.selected()
        if selected is not None and selected.id == request_id:
            self.redraw()

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    # --- actions --------------------------------------------------------------------------------

    def action_answer(self, status: Answer) -> None:
        request = self.selected()
        if request is None:
            self.notice("No request selected", severity="warning")
            return
        if not self.inbox.is_open(request.id):
            self.notice(f"Request #{request.id} is already {request.status.title()}", severity="warning")
            return
        self.inbox.fresh.discard(request.id)
        self.answer_form = AnswerScreen(request, status, self.backend.respond)
        self.app.push_screen(self.answer_form, self._answered)

    def _answered(self, sent: Sent | None) -> None:
        self.answer_form = None
        if sent is None:
            return
        request = sent.request
        self.inbox.requests[request.id] = request
        self.details.pop(request.id, None)
        self.notice(f"✓ Request #{request.id} {request.status.lower()} (acknowledged over {sent.via})")
        self.query_one(StatusBar).show(note=f"✓ #{request.id} {request.status.lower()}")
        self.redraw()

    @work(exclusive=True, group="open")
    async def action_open_rx(self) -> None:
        request = self.selected()
        if request is None or not request.image_url:
            self.notice("No prescription file on this request", severity="warning")
            return
        try:
            data = await self.backend.download(request.image_url)
        except MedreqError as exc:
            self.notice(f"cannot download the prescription: {exc.message}", severity="error")
            return
        info = inspect(data)
        self.media[request.id] = info
        path = await asyncio.to_thread(save_media, f"request-{request.id}{info.extension}", data)
        if await asyncio.to_thread(open_in_viewer, path):
            self.notice(f"Opened {path}")
        else:
            self.notice(f"Saved to {path} (no viewer found: install xdg-utils)", severity="warning")

    def action_cycle_filter(self) -> None:
        self.inbox.cycle_filter()
        self.redraw()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_leave_search(self) -> None:
        self.query_one(RequestTable).focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.inbox.search = event.value
        self.redraw()

    @on(Input.Submitted, "#search")
    def _search_done(self) -> None:
        self.query_one(RequestTable).focus()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.app.action_toggle_dark()

    def action_reload(self) -> None:
        self.reload()

    # --- telling the pharmacist -----------------------------------------------------------------

    def ring(self, text: str) -> None:
        self.bells += 1
        self.app.bell()
        self.notice(text, title="New request")

    def notice(self, text: str, *, severity: str = "information", title: str = "") -> None:
        self.notices.append(text)
        self.app.notify(text, title=title, severity=severity)  # type: ignore[arg-type]


class InboxApp(App[None]):
    """``InboxApp(Backend("pharmacy")).run()``; a fake backend and a fixed ``clock`` for snapshots."""

    CSS = CSS
    TITLE = "medreq inbox"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, backend: Any, *, clock: Clock = utcnow) -> None:
        super().__init__()
        self.backend = backend
        self.clock = clock
        self.inbox_screen: InboxScreen | None = None

    async def on_mount(self) -> None:
        self.start()

    @work(exclusive=True, group="start")
    async def start(self) -> None:
        try:
            account = await self.backend.resume()
        except NotAPharmacy as exc:
            self.ask_login(f"{exc.message}; log in with a pharmacy account")
            return
        except MedreqError as exc:
            self.ask_login(exc.message)
            return
        if account is None:
            self.ask_login(None)
        else:
            self.open_inbox(account)

    def ask_login(self, error: str | None) -> None:
        profile = self.backend.stored_profile()
        screen = LoginScreen(
            self.backend.login,
            url=profile.url if profile else DEFAULT_URL,
            username=profile.username if profile and profile.role == "pharmacy" else "",
            error=error,
        )
        self.push_screen(screen, self.open_inbox)

    def open_inbox(self, account: AccountOut | None) -> None:
        if account is None:
            return
        self.inbox_screen = InboxScreen(self.backend, clock=self.clock)
        self.push_screen(self.inbox_screen)

    async def on_unmount(self) -> None:
        await self.backend.aclose()


def save_media(name: str, data: bytes) -> Path:
    """Write a downloaded file where a viewer can open it (a private folder under the temp dir)."""
    folder = Path(tempfile.gettempdir()) / f"medreq-inbox-{os.getuid() if hasattr(os, 'getuid') else 0}"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def run_inbox(profile: str) -> None:
    InboxApp(Backend(profile)).run()
