"""The inbox's other screens: the answer form, the login form, the key help, and the wait for a
server that cannot be reached."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, OptionList, Static

from medreq.client import AccountOut, MedreqError, RequestOut

from .backend import Answer, InboxError, Link
from .widgets import StatusBar

TEMPLATES: dict[str, tuple[str, ...]] = {
    "ACCEPTED": (
        "Ready for pickup",
        "Ready for pickup after 5 pm",
        "Available tomorrow morning",
        "Partly in stock, please call us",
    ),
    "REJECTED": (
        "Out of stock",
        "Prescription unreadable, please send a clearer photo",
        "A valid prescription is required",
        "We do not stock this medicine",
    ),
}

Send = Callable[[int, Answer, str | None, Path | None], Awaitable[RequestOut]]


@dataclass(frozen=True)
class Sent:
    """What the answer form hands back once the server acknowledged the answer."""

    request: RequestOut


class AnswerScreen(ModalScreen[Sent | None]):
    """Accept or reject one request: a message (quick replies with ↑/↓), an optional audio
    file, Enter to send. The form stays open on an error and shows it."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("up", "template(-1)", "Previous reply", show=False),
        Binding("down", "template(1)", "Next reply", show=False),
        Binding("ctrl+s", "send", "Send"),
    ]

    def __init__(self, request: RequestOut, status: Answer, send: Send) -> None:
        super().__init__()
        self.request = request
        self.status: Answer = status
        self.send = send
        self.templates = TEMPLATES[status]
        self.busy = False
        self.changed: str | None = None

    def compose(self) -> ComposeResult:
        verb = "Accept" if self.status == "ACCEPTED" else "Reject"
        what = self.request.medicine_name or "prescription"
        with Vertical(id="answer", classes=self.status.lower()):
            yield Label(
                Text.assemble(
                    (f"{verb} request #{self.request.id}", "bold"),
                    f" · {what} × {self.request.quantity} · {self.request.patient.name}",
                ),
                id="answer-title",
            )
            yield Input(self.templates[0], placeholder="Message to the patient", id="message")
            yield OptionList(*self.templates, id="templates")
            yield Input(placeholder="Audio file (optional): /path/to/reply.ogg", id="audio")
            yield Static("", id="answer-warning")
            yield Static("", id="answer-status")
            with Horizontal(id="answer-buttons"):
                yield Button(f"{verb} ⏎", id="send", variant="success" if verb == "Accept" else "error")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#templates", OptionList).highlighted = 0
        self.query_one("#message", Input).focus()

    def action_template(self, step: int) -> None:
        options = self.query_one("#templates", OptionList)
        index = ((options.highlighted or 0) + step) % len(self.templates)
        options.highlighted = index
        self._use_template(index)

    @on(OptionList.OptionHighlighted, "#templates")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._use_template(event.option_index)

    @on(OptionList.OptionSelected, "#templates")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self._use_template(event.option_index)
        self.query_one("#message", Input).focus()

    def _use_template(self, index: int) -> None:
        """Put a template in the message, selected: typing replaces it, arrows keep and edit it."""
        message = self.query_one("#message", Input)
        message.value = self.templates[index]
        message.select_all()

    def answered_elsewhere(self, status: str) -> None:
        """The request changed under the form (another device answered, or the patient cancelled).
        While our own answer is on its way, this may be that answer: say so only if it fails."""
        self.changed = status
        if not self.busy:
            self._show_changed()

    def _show_changed(self) -> None:
        if self.changed:
            self.query_one("#answer-warning", Static).update(
                Text(
                    f"⚠ Request #{self.request.id} is now {self.changed.title()} (changed elsewhere)",
                    style="bold yellow",
                )
            )

    @on(Input.Submitted)
    @on(Button.Pressed, "#send")
    def action_send(self) -> None:
        if self.busy:
            return
        message = self.query_one("#message", Input).value.strip() or None
        audio_text = self.query_one("#audio", Input).value.strip()
        audio = Path(audio_text).expanduser() if audio_text else None
        if audio is not None and not audio.is_file():
            self._status(Text(f"✖ no such audio file: {audio}", style="bold red"))
            return
        self._submit(message, audio)

    @work(exclusive=True, group="answer")
    async def _submit(self, message: str | None, audio: Path | None) -> None:
        self.busy = True
        self.query_one("#send", Button).disabled = True
        self._status(Text("Sending…", style="dim"))
        try:
            request = await self.send(self.request.id, self.status, message, audio)
        except MedreqError as exc:
            self._status(Text(f"✖ {exc.code}: {exc.message}", style="bold red"))
            self.busy = False
            self._show_changed()
            self.query_one("#send", Button).disabled = False
            return
        self.dismiss(Sent(request))

    def _status(self, text: Text) -> None:
        self.query_one("#answer-status", Static).update(text)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


Login = Callable[[str, str, str], Awaitable[AccountOut]]


class LoginScreen(ModalScreen[AccountOut]):
    """Server URL, username and password, for when no stored profile can be used."""

    BINDINGS = [Binding("escape", "app.quit", "Quit")]

    def __init__(self, login: Login, *, url: str, username: str = "", error: str | None = None) -> None:
        super().__init__()
        self.login = login
        self.url = url
        self.username = username
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="login"):
            yield Label(Text("℞ medreq inbox · pharmacy login", style="bold"))
            yield Input(self.url, placeholder="Server URL", id="url")
            yield Input(self.username, placeholder="Username", id="username")
            yield Input(placeholder="Password", password=True, id="password")
            yield Static(Text(self.error or "", style="bold red"), id="login-status")
            yield Button("Log in", id="login-button", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#password" if self.username else "#username", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#login-button")
    def submit(self) -> None:
        values = [self.query_one(f"#{name}", Input).value for name in ("url", "username", "password")]
        if not all(values):
            self._status(Text("URL, username and password are all needed", style="bold red"))
            return
        self._login(*values)

    @work(exclusive=True, group="login")
    async def _login(self, url: str, username: str, password: str) -> None:
        self._status(Text("Logging in…", style="dim"))
        try:
            account = await self.login(url, username, password)
        except (MedreqError, InboxError) as exc:
            self._status(Text(f"✖ {exc.message}", style="bold red"))
            return
        self.dismiss(account)

    def _status(self, text: Text) -> None:
        self.query_one("#login-status", Static).update(text)


HELP = """\
[b]medreq inbox[/b]: new requests arrive live at the top (● and a bell).

  [b]↑ ↓[/b]      select a request      [b]a[/b]  accept    [b]r[/b]  reject
  [b]m[/b]        write to the patient (the thread on the right): [b]Enter[/b] sends
  [b]o[/b]        open the prescription in the system viewer
  [b]f[/b]        filter by status      [b]/[/b]  search patient names
  [b]ctrl+r[/b]   reload from the server
  [b]d[/b]        dark / light theme     [b]q[/b]  quit

In the answer form: [b]↑ ↓[/b] quick replies, [b]Enter[/b] send, [b]Esc[/b] cancel.
An audio file (optional) goes with the answer; the patient is told at once.

[dim]Press Esc or ? to close.[/dim]"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        yield Static(HELP, id="help")


class WaitScreen(Screen[None]):
    """The stored profile's server does not answer: one status line (why, and the countdown to
    the next attempt) until it does, or until the pharmacist quits."""

    BINDINGS = [Binding("q", "app.quit", "Quit")]

    def __init__(self, link: Link) -> None:
        super().__init__()
        self.link = link

    def compose(self) -> ComposeResult:
        yield Static(Text("℞ medreq inbox · waiting for the server", style="bold"), id="header")
        yield StatusBar(id="wait-status")
        yield Footer()

    def on_mount(self) -> None:
        self.show(self.link)

    def show(self, link: Link) -> None:
        self.link = link
        self.query_one(StatusBar).show(link)
