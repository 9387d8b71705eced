"""The pieces of the inbox screen: header counters, the request table, the detail pane, the
message thread, the connection status bar. Each renders plain data; none talks to the server."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from medreq.client import RequestDetail, RequestOut

from .backend import Link
from .media import MediaInfo
from .model import Inbox, age, parse_time

STATUS_STYLE = {"PENDING": "bold yellow", "ACCEPTED": "green", "REJECTED": "red", "CANCELLED": "dim"}
COLUMNS = (("#", "id", 5), ("Patient", "patient", 13), ("Phone", "phone", 12), ("Qty", "qty", 4),
           ("Medicine", "medicine", 16), ("Age", "age", 4), ("Status", "status", 9))  # fmt: skip
# A wider terminal gives its spare columns to the medicine name first (up to MEDICINE_MAX, enough
# for "Amoxicillin/clavulanic acid 875/125mg"), then to the patient's name (up to PATIENT_MAX).
MEDICINE_MAX = 40
PATIENT_MAX = 28


#: why a request was cancelled (`cancel_reason`, `request_cancelled`'s `reason`), in words
CANCEL_REASONS = {
    "patient_cancelled": "the patient cancelled it",
    "another_pharmacy_chosen": "the patient chose another pharmacy",
}


def status_text(status: str) -> Text:
    return Text(status.title(), style=STATUS_STYLE.get(status, ""))


def request_status(request: RequestOut) -> Text:
    """The table's status cell: "Chosen" for the accepted answer the patient took."""
    if request.chosen and request.status == "ACCEPTED":
        return Text("Chosen", style="bold green")
    return status_text(request.status)


class HeaderBar(Static):
    """Title, pharmacy name and the pending / accepted / rejected counters."""

    def show(self, pharmacy: str, counts: dict[str, int]) -> None:
        text = Text.assemble(("℞ medreq inbox", "bold"), " · ", (pharmacy, "italic"))
        text.truncate(34, overflow="ellipsis")
        text.pad_right(35 - text.cell_len)
        text.append_text(
            Text.assemble(
                (f"{counts.get('PENDING', 0)} pending", STATUS_STYLE["PENDING"]),
                " · ",
                (f"{counts.get('ACCEPTED', 0)} accepted", STATUS_STYLE["ACCEPTED"]),
                " · ",
                (f"{counts.get('REJECTED', 0)} rejected", STATUS_STYLE["REJECTED"]),
            )
        )
        self.update(text)


class RequestTable(DataTable[Any]):
    """Requests newest first; live arrivals marked ● until looked at."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.widths = {key: width for _, key, width in COLUMNS}
        self.shown: tuple[list[RequestOut], set[int], datetime] | None = None
        self._add_columns()

    def _add_columns(self) -> None:
        for label, key, _ in COLUMNS:
            self.add_column(label, key=key, width=self.widths[key])

    def on_resize(self) -> None:
        widths = self.widths_for(self.size.width)
        if widths != self.widths:
            selected = self.selected_id()
            self.widths = widths
            self.clear(columns=True)
            self._add_columns()
            if self.shown is not None:
                self.show(*self.shown, selected=selected)

    def widths_for(self, total: int) -> dict[str, int]:
        """Column widths for a table ``total`` cells wide (one cell kept for the scrollbar)."""
        widths = {key: width for _, key, width in COLUMNS}
        spare = total - 1 - sum(widths.values()) - 2 * self.cell_padding * len(widths)
        for key, most in (("medicine", MEDICINE_MAX), ("patient", PATIENT_MAX)):
            grow = max(0, min(spare, most - widths[key]))
            widths[key] += grow
            spare -= grow
        return widths

    def show(
        self, requests: list[RequestOut], fresh: set[int], now: datetime, *, selected: int | None = None
    ) -> None:
        """Redraw every row, keeping the cursor on the same request when it is still shown."""
        self.shown = (requests, fresh, now)
        selected = selected if selected is not None else self.selected_id()
        self.clear()
        for request in requests:
            new = request.id in fresh
            style = "bold" if new else ""
            # ● marks a live arrival, or a request with events not yet read (docs/protocol.md §3 unread)
            mark = new or request.unread > 0
            self.add_row(
                Text(f"●{request.id}" if mark else str(request.id), style="bold yellow" if mark else ""),
                Text(request.patient.name, style=style, overflow="ellipsis", no_wrap=True),
                Text(request.patient.phone or "", style=style),
                Text(str(request.quantity), style=style, justify="right"),
                Text(
                    request.medicine_name or "(prescription)", style=style, overflow="ellipsis", no_wrap=True
                ),
                Text(age(request.created_at, now), style=style),
                request_status(request),
                key=str(request.id),
            )
        if selected is not None and str(selected) in self.rows:
            self.move_cursor(row=self.get_row_index(str(selected)), scroll=False)

    def selected_id(self) -> int | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return int(key) if key is not None else None


class DetailPane(Static):
    """Everything about the selected request: fields, prescription, answer."""

    def show(
        self,
        request: RequestOut | None,
        detail: RequestDetail | None,
        media: MediaInfo | str | None,
        now: datetime,
    ) -> None:
        if request is None:
            self.update(Text("No request selected.", style="dim"))
            return
        shown = detail or request
        lines = Text()
        lines.append(f"Request #{shown.id}  ", style="bold")
        lines.append_text(status_text(shown.status))
        ago = age(shown.created_at, now)
        lines.append(
            f" · {_when(shown.created_at, now)}, {'just now' if ago == 'now' else ago + ' ago'}\n",
            style="dim",
        )
        phone = f"  {shown.patient.phone}" if shown.patient.phone else ""
        lines.append(f"Patient   {shown.patient.name}{phone}\n")
        lines.append(f"Medicine  {shown.medicine_name or '(see prescription)'} × {shown.quantity}\n")
        if shown.note:
            lines.append(f"Note      {shown.note}\n")
        if shown.image_url:
            if isinstance(media, MediaInfo):
                rx = Text(media.describe())  # the footer says [o] opens it
            else:
                rx = Text(media or "loading…", style="dim")
            lines.append("Rx        ")
            lines.append_text(rx)
            lines.append("\n")
        else:
            lines.append("Rx        none attached\n", style="dim")
        if shown.response is not None:
            answer = shown.response
            lines.append("Answer    ")
            lines.append_text(status_text(answer.status))
            lines.append(f" {_when(answer.responded_at, now)}: {answer.message or '(no message)'}")
            if answer.price is not None:
                lines.append(f" · {answer.price} {answer.currency or ''}".rstrip())
            if answer.ready_at:
                lines.append(f" · ready {_when(answer.ready_at, now)}")
            if answer.audio_url:
                lines.append("  ♪ audio")
            lines.append("\n")
        if shown.asked_pharmacies > 1 and request.status in ("PENDING", "ACCEPTED"):
            lines.append(f"Asked     {shown.asked_pharmacies} pharmacies: the patient picks one\n", style="dim")
        if request.chosen and request.status == "ACCEPTED":
            lines.append("Chosen    the patient chose your offer: prepare it\n", style="bold green")
        reason = request.cancel_reason or (shown.cancel_reason if shown.status == "CANCELLED" else None)
        if request.status == "CANCELLED" and reason:
            lines.append(f"Cancelled {CANCEL_REASONS.get(reason, reason)}\n", style="bold")
        if request.unread:
            lines.append(f"Unread    {request.unread} new\n", style="bold yellow")
        lines.rstrip()
        self.update(lines)


class ThreadPane(Static):
    """The messages with the patient, like the console's thread: theirs on the left, ours on
    the right with "Seen" once the patient's read receipt covers them, and "… is typing"."""

    def show(self, inbox: Inbox, request: RequestOut | None, loaded: bool, now: datetime) -> None:
        if request is None:
            self.update(Text("Messages: select a request.", style="dim"))
            return
        name = request.patient.name
        parts: list[RenderableType] = [Text(f"Messages with {name}", style="bold")]
        messages = inbox.thread(request.id)
        if not messages:
            parts.append(Text("No messages yet: [m] to write one." if loaded else "loading…", style="dim"))
        for message in messages:
            mine = inbox.mine(message)
            meta = Text.assemble(
                ("You" if mine else name, "bold"), (f" · {_when(message.created_at, now)}", "dim")
            )
            if inbox.seen(request.id, message):
                meta.append(" · Seen", style="green")
            body = Text(message.text)
            meta.justify = body.justify = "right" if mine else "left"
            parts += [meta, body]
        if inbox.is_typing(request.id):
            parts.append(Text(f"{name} is typing…", style="italic dim"))
        self.update(Group(*parts))


class MessageBox(Input):
    """The box under the thread: Enter sends to the selected request's patient, Esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Send"),
        Binding("escape", "screen.leave_search", "Back to the list"),
    ]


class StatusBar(Static):
    """connected / reconnecting in Ns / offline, ticking once a second."""

    def on_mount(self) -> None:
        self.link = Link("connecting")
        self.url = ""
        self.note = ""
        self.set_interval(1.0, self.refresh_text)

    def show(self, link: Link | None = None, *, url: str | None = None, note: str | None = None) -> None:
        if link is not None:
            self.link = link
        if url is not None:
            self.url = url
        if note is not None:
            self.note = note
        self.refresh_text()

    def refresh_text(self) -> None:
        link = self.link
        wait = f" in {max(0, round(link.retry_at - time.monotonic()))}s" if link.retry_at else ""
        text = Text()
        if link.state == "connected":
            text.append("● connected", style="bold green")
        elif link.state == "connecting":
            text.append("◌ connecting…", style="yellow")
        elif link.state == "reconnecting":
            text.append(f"◌ reconnecting{wait}", style="bold yellow")
        else:
            text.append("✖ offline", style="bold red")
            if wait and not link.fatal:  # first: a long reason must not hide the countdown
                text.append(f" (retry{wait})", style="red")
            if link.error:
                text.append(f": {link.error}", style="red")
        if self.url:
            text.append(f"  {self.url}", style="dim")
        if self.note:
            text.append(f"  {self.note}")
        text.no_wrap, text.overflow = True, "ellipsis"
        self.update(text)


def _when(value: str | None, now: datetime | None = None) -> str:
    """Local time: just the hour on the day of ``now``, the date too otherwise."""
    stamp = parse_time(value)
    if stamp is None:
        return "?"
    local = stamp.astimezone()
    today = now is not None and local.date() == now.astimezone().date()
    return local.strftime("%H:%M" if today else "%Y-%m-%d %H:%M")
