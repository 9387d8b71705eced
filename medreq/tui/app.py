"""`InboxApp`: the pharmacy counter screen (issue 4). Logs in, then shows `InboxScreen`.

While the server cannot be reached the app waits on `WaitScreen`, one status line that counts
down to the next attempt (with backoff), until the server answers or the pharmacist quits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
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
    RequestChosenEvent,
    RequestDetail,
    RequestOut,
    RequestUpdatedEvent,
    TransportError,
    TypingEvent,
)

from .backend import Answer, Backend, Link, NotAPharmacy
from .media import MediaInfo, inspect, open_in_viewer
from .model import TYPING_SHOWN, Clock, Inbox, utcnow
from .screens import AnswerScreen, HelpScreen, LoginScreen, Sent, WaitScreen
from .styles import CSS
from .widgets import DetailPane, HeaderBar, MessageBox, RequestTable, StatusBar, ThreadPane

DEFAULT_URL = "http://127.0.0.1:8000"
FRESH_SECONDS = 120.0
TYPING_IDLE = 3.0  # seconds without a keystroke before the patient is told we stopped typing


class InboxScreen(Screen[None]):
    """Table of requests, detail of the selected one, live from the WebSocket."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "answer('ACCEPTED')", "Accept"),
        Binding("r", "answer('REJECTED')", "Reject"),
        Binding("m", "write_message", "Message"),
        Binding("o", "open_rx", "Open Rx"),
        Binding("f", "cycle_filter", "Filter"),
        Binding("slash", "search", "Search"),
        Binding("question_mark", "help", "Help"),
        Binding("d", "toggle_theme", "Theme", show=False),
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
        self.inbox = Inbox(clock=clock, me=backend.account.id if backend.account else None)
        self.details: dict[int, RequestDetail] = {}
        self.media: dict[int, MediaInfo | str] = {}
        self.link = Link("connecting")
        self.answer_form: AnswerScreen | None = None
        #: every notice shown (tests read it; toasts are off in headless runs)
        self.notices: list[str] = []
        self.bells = 0
        #: the request the message box writes to, and unsent drafts of the others
        self.reply_to: int | None = None
        self.drafts: dict[int, str] = {}
        self.typing_sent: int | None = None  # the request we told the patient we type on
        self.typing_timer: Any = None
        self.thread_shown: tuple[int | None, int] = (None, 0)

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with Horizontal(id="filters"):
            yield Static(id="filter-label")
            yield Input(placeholder="/ search patient name", id="search")
        yield RequestTable(id="requests")
        with Horizontal(id="lower"):
            with VerticalScroll(id="detail-scroll"):
                yield DetailPane(id="detail")
            with Vertical(id="thread-box"):
                with VerticalScroll(id="thread-scroll"):
                    yield ThreadPane(id="thread")
                yield MessageBox(placeholder="[m] write a message", id="reply", max_length=2000)
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
            self.notice(f"Could not load the requests: {exc.message}", severity="error")
            return
        new = self.inbox.merge(requests)
        for request in requests:
            cached = self.details.get(request.id)
            if cached is not None and cached.status != request.status:
                del self.details[request.id]
        if announce and new:
            for request_id in new:
                self.mark_fresh(request_id)
            self.ring(f"{len(new)} new request{'s' if len(new) > 1 else ''} came in while you were offline")
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
            if isinstance(event, RequestCancelledEvent) and event.reason == "another_pharmacy_chosen":
                self.notice(f"Request #{changed} was cancelled: the patient chose another pharmacy")
            elif isinstance(event, RequestCancelledEvent):
                self.notice(f"Request #{changed} was cancelled by the patient", severity="warning")
        elif isinstance(event, RequestChosenEvent) and changed is not None:
            self.details.pop(changed, None)
            self.app.bell()
            self.notice(f"Request #{changed}: the patient chose your offer, prepare it", title="Chosen")
        elif isinstance(event, MessageEvent) and changed is not None:
            selected = self.selected()
            if selected is None or selected.id != changed:  # else it shows in the thread
                who = self.inbox.requests[changed].patient.name
                self.notice(event.text, title=f"Message from {who} (request #{changed})")
        elif isinstance(event, TypingEvent) and changed is not None:
            self.set_timer(TYPING_SHOWN.total_seconds() + 0.1, self.redraw)  # its time runs out
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

    @property
    def closing(self) -> bool:
        """The screen is going away (a worker may finish after its widgets were removed)."""
        return not self.is_attached or not self.query(RequestTable)

    def redraw(self) -> None:
        if self.closing:
            return
        account = self.backend.account
        self.query_one(HeaderBar).show(account.name if account else "", self.inbox.counts())
        label = (self.inbox.status_filter or "all").title()
        self.query_one("#filter-label", Static).update(Text.assemble("[f] ", (label, "bold"), " │ "))
        self.query_one(RequestTable).show(self.inbox.visible(), self.inbox.fresh, self.clock())
        self.show_detail()

    def selected(self) -> RequestOut | None:
        if self.closing:
            return None
        request_id = self.query_one(RequestTable).selected_id()
        return self.inbox.requests.get(request_id) if request_id is not None else None

    def show_detail(self) -> None:
        request = self.selected()
        pane = self.query_one(DetailPane)
        self.show_thread(request)
        if request is None:
            pane.show(None, None, None, self.clock())
            return
        pane.show(request, self.details.get(request.id), self.media.get(request.id), self.clock())
        if request.id not in self.details:
            self.fetch_detail(request.id)
        if request.unread:
            self.report_read(request.id)

    def show_thread(self, request: RequestOut | None) -> None:
        """The selected request's thread, and the message box addressed to its patient (a draft
        written to another patient is kept aside for when that request is selected again)."""
        box = self.query_one("#reply", Input)
        request_id = request.id if request is not None else None
        if request_id != self.reply_to:
            if self.reply_to is not None and box.value.strip():
                self.drafts[self.reply_to] = box.value
            self.stop_typing()
            self.reply_to = request_id
            box.value = self.drafts.pop(request_id, "") if request_id is not None else ""
            box.disabled = request is None
            box.placeholder = f"[m] message {request.patient.name}" if request else "[m] write a message"
        loaded = request_id is not None and request_id in self.details
        self.query_one(ThreadPane).show(self.inbox, request, loaded, self.clock())
        shown = (request_id, len(self.inbox.threads.get(request_id or 0, {})))
        if shown != self.thread_shown:  # another request, or a new message: show the latest
            self.thread_shown = shown
            self.query_one("#thread-scroll", VerticalScroll).scroll_end(animate=False)

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
        self.inbox.add_messages(request_id, detail.messages)
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
        verb = "accepted" if request.status == "ACCEPTED" else "rejected"
        self.notice(f"Answer sent: request #{request.id} {verb}. {request.patient.name} is told now.")
        self.query_one(StatusBar).show(note=f"✓ #{request.id} {request.status.lower()}")
        self.redraw()

    def action_write_message(self) -> None:
        if self.selected() is None:
            self.notice("No request selected", severity="warning")
            return
        self.query_one("#reply", Input).focus()

    @on(Input.Changed, "#reply")
    def _reply_changed(self, event: Input.Changed) -> None:
        """Tell the patient we are typing (once), and that we stopped after a pause."""
        if self.reply_to is None or not event.value.strip():
            self.stop_typing()
            return
        if self.typing_sent != self.reply_to:
            self.stop_typing()
            self.typing_sent = self.reply_to
            self.send_typing(self.reply_to, "start")
        if self.typing_timer is not None:
            self.typing_timer.stop()
        self.typing_timer = self.set_timer(TYPING_IDLE, self.stop_typing)

    def stop_typing(self) -> None:
        if self.typing_timer is not None:
            self.typing_timer.stop()
            self.typing_timer = None
        if self.typing_sent is not None:
            self.send_typing(self.typing_sent, "stop")
            self.typing_sent = None

    @work(group="typing")
    async def send_typing(self, request_id: int, state: str) -> None:
        with contextlib.suppress(MedreqError):  # a hint only: never worth an error
            await self.backend.typing(request_id, state)

    @on(Input.Submitted, "#reply")
    def _reply_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self.reply_to is None:
            return
        self.stop_typing()
        self.send_reply(self.reply_to, text)

    @work(group="reply")
    async def send_reply(self, request_id: int, text: str) -> None:
        box = self.query_one("#reply", Input)
        box.disabled = True
        try:
            message = await self.backend.send_message(request_id, text)
        except MedreqError as exc:
            self.notice(f"Message not sent: {exc.message}", severity="error")
            return
        finally:
            box.disabled = self.reply_to is None
        self.inbox.add_messages(request_id, [message])
        if self.reply_to == request_id and box.value.strip() == text:
            box.value = ""
        else:
            self.drafts.pop(request_id, None)
        self.notice("Message sent")
        self.redraw()
        if self.reply_to == request_id:
            box.focus()

    @work(exclusive=True, group="open")
    async def action_open_rx(self) -> None:
        request = self.selected()
        if request is None or not request.image_url:
            self.notice("No prescription file on this request", severity="warning")
            return
        try:
            data = await self.backend.download(request.image_url)
        except MedreqError as exc:
            self.notice(f"Could not download the prescription: {exc.message}", severity="error")
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
        self.query_one(RequestTable).focus()  # from the search or the message box

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
        """Log in with the stored profile; while its server cannot be reached, wait on one
        status line and try again with backoff (until it answers, or the pharmacist quits)."""
        attempt = 0
        waiting: WaitScreen | None = None
        error: str | None = None
        while True:
            try:
                account = await self.backend.resume()
            except TransportError as exc:
                delay = self.backend.backoff.delay(attempt)
                attempt += 1
                link = Link("offline", retry_at=time.monotonic() + delay, error=exc.message)
                if waiting is None:
                    waiting = WaitScreen(link)
                    await self.push_screen(waiting)
                else:
                    waiting.show(link)
                await asyncio.sleep(delay)
                continue
            except NotAPharmacy as exc:
                account, error = None, f"{exc.message}; log in with a pharmacy account"
            except MedreqError as exc:
                account, error = None, exc.message
            break
        if waiting is not None:
            await self.pop_screen()  # awaited: the inbox pushed next must not be what it pops
        if account is None:
            self.ask_login(error)
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
