"""How user commands print: rich tables, one line per event, one line per error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from .console import console

if TYPE_CHECKING:  # the client is imported when a command runs (user_session's docstring)
    from medreq.client import Event, MedreqError, PharmacyOut, RequestOut

out = console()
err = console(stderr=True)

STATUS_STYLE = {"PENDING": "yellow", "ACCEPTED": "green", "REJECTED": "red", "CANCELLED": "dim"}


class CommandError(Exception):
    """A failure a command finds itself (a timeout, …), never sent by a server: kept out of
    the wire's `medreq.protocol.errors` tree, printed like one (``code: message``)."""

    code = "error"
    default_message = "the command failed"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


def fail(exc: MedreqError | CommandError) -> typer.Exit:
    """Print ``exc`` as one line on stderr; the exit to raise."""
    err.print(f"[bold red]error[/]: {escape(exc.code)}: {escape(exc.message)}", soft_wrap=True)
    return typer.Exit(1)


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False))


def status_text(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{escape(status)}[/]"


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """``timestamp`` as "42s", "5m", "3h", "2d" ago ("?" when unreadable)."""
    try:
        then = datetime.fromisoformat(str(timestamp))
    except ValueError:
        return "?"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def pharmacies_table(pharmacies: list[PharmacyOut]) -> Table:
    table = Table("ID", "Name", "Online", title="Pharmacies")
    for pharmacy in pharmacies:
        table.add_row(str(pharmacy.id), escape(pharmacy.name), "[green]●[/] online" if pharmacy.online else "")
    return table


def requests_table(requests: list[RequestOut], role: str | None) -> Table:
    other = {"patient": "Pharmacy", "pharmacy": "Patient"}.get(role or "", "Patient → Pharmacy")
    table = Table("ID", other, "Qty", "Medicine", "Status", "Age", "Unread", title="Medicine requests")
    for request in requests:
        if role == "patient":
            party = request.pharmacy.name
        elif role == "pharmacy":
            party = request.patient.name + (f" ({request.patient.phone})" if request.patient.phone else "")
        else:
            party = f"{request.patient.name} → {request.pharmacy.name}"
        table.add_row(
            str(request.id),
            escape(party),
            str(request.quantity),
            escape(request.medicine_name or ("prescription image" if request.image_url else "")),
            status_text(request.status),
            age(request.created_at),
            f"[bold yellow]{request.unread}[/]" if request.unread else "",
        )
    return table


def event_line(event: Event) -> str:
    """One rich-markup line describing ``event``."""
    head = f"[dim]#{event.event_id if event.event_id is not None else '-'} {_clock(event.timestamp)}[/] "
    head += f"[bold cyan]{escape(event.type)}[/] "
    return head + escape(_describe(event))


def _describe(event: Event) -> str:
    from medreq.client import (
        MessageEvent,
        NewRequestEvent,
        PharmacyResponseEvent,
        PresenceEvent,
        ReadEvent,
        RequestCancelledEvent,
        RequestUpdatedEvent,
        TypingEvent,
    )

    if isinstance(event, NewRequestEvent):
        who = event.patient_name or f"patient {event.patient_id}"
        phone = f" ({event.patient_phone})" if event.patient_phone else ""
        what = f"{event.quantity} × {event.medicine_name}" if event.medicine_name else f"qty {event.quantity}"
        note = f" · note: {event.note}" if event.note else ""
        image = f" · image: {event.image_url}" if event.image_url else ""
        return f"request {event.request_id} from {who}{phone} · {what}{note}{image}"
    if isinstance(event, PharmacyResponseEvent):
        who = event.pharmacy_name or f"pharmacy {event.pharmacy_id}"
        message = f": {event.message}" if event.message else ""
        audio = f" · audio: {event.audio_url}" if event.audio_url else ""
        return f"request {event.request_id} {event.status} by {who}{message}{audio}"
    if isinstance(event, RequestCancelledEvent):
        return f"request {event.request_id} cancelled by the patient"
    if isinstance(event, MessageEvent):
        return f"request {event.request_id} · from {event.from_}: {event.text}"
    if isinstance(event, TypingEvent):
        return f"request {event.request_id} · {event.from_} typing {event.state}"
    if isinstance(event, ReadEvent):
        return f"request {event.request_id} · read by {event.by} up to #{event.up_to_event_id}"
    if isinstance(event, PresenceEvent):
        return f"pharmacy {event.pharmacy_id} is {'online' if event.online else 'offline'}"
    if isinstance(event, RequestUpdatedEvent):
        return f"request {event.request_id} is now {event.status}"
    extra = {k: v for k, v in event.raw.items() if k not in ("type", "event_id", "timestamp")}
    return json.dumps(extra, ensure_ascii=False)


def _clock(timestamp: str | None) -> str:
    try:
        return datetime.fromisoformat(str(timestamp)).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return "--:--:--"
