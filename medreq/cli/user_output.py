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
    from medreq.client import Event, MedreqError, PharmacyOut, RequestCreatedOut, RequestOut

out = console()
err = console(stderr=True)

STATUS_STYLE = {"PENDING": "yellow", "ACCEPTED": "green", "REJECTED": "red", "CANCELLED": "dim"}
#: why a request was cancelled (`cancel_reason`, `request_cancelled`'s `reason`), in words
CANCEL_REASONS = {
    "patient_cancelled": "cancelled by the patient",
    "another_pharmacy_chosen": "the patient chose another pharmacy",
}


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


def request_status(request: RequestOut) -> str:
    """The status cell: ``ACCEPTED ✓ chosen``, ``CANCELLED (the patient chose another pharmacy)``."""
    text = status_text(request.status)
    if request.chosen:
        text += " [bold green]✓ chosen[/]"
    if request.status == "CANCELLED" and request.cancel_reason == "another_pharmacy_chosen":
        text += f" [dim]({escape(CANCEL_REASONS[request.cancel_reason])})[/]"
    return text


def created_text(created: RequestCreatedOut) -> str:
    """What `medreq request` prints: the request id, or the group and each pharmacy's request."""
    if created.group is None:
        data = created.data
        return f"Request [bold]{created.request_id}[/] sent to {escape(data.pharmacy.name)} ({status_text(data.status)})"
    lines = [f"Request group [bold]{escape(str(created.group))}[/] sent to {len(created.requests)} pharmacies:"]
    lines += [
        f"  request [bold]{r.id}[/] → {escape(r.pharmacy.name)} ({status_text(r.status)})" for r in created.requests
    ]
    lines.append(
        f"[dim]`medreq requests --group {escape(str(created.group))}` shows their answers; "
        "`medreq choose REQUEST_ID` takes one.[/]"
    )
    return "\n".join(lines)


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
    grouped = any(request.group is not None for request in requests)
    columns = ["ID", *(["Group"] if grouped else []), other, "Qty", "Medicine", "Status", "Age", "Unread"]
    table = Table(*columns, title="Medicine requests")
    for request in requests:
        if role == "patient":
            party = request.pharmacy.name
        elif role == "pharmacy":
            party = request.patient.name + (f" ({request.patient.phone})" if request.patient.phone else "")
        else:
            party = f"{request.patient.name} → {request.pharmacy.name}"
        group = [escape(str(request.group)) if request.group is not None else ""] if grouped else []
        table.add_row(
            str(request.id),
            *group,
            escape(party),
            str(request.quantity),
            escape(request.medicine_name or ("prescription image" if request.image_url else "")),
            request_status(request),
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
        RequestChosenEvent,
        RequestUpdatedEvent,
        TypingEvent,
    )

    if isinstance(event, NewRequestEvent):
        who = event.patient_name or f"patient {event.patient_id}"
        phone = f" ({event.patient_phone})" if event.patient_phone else ""
        what = f"{event.quantity} × {event.medicine_name}" if event.medicine_name else f"qty {event.quantity}"
        note = f" · note: {event.note}" if event.note else ""
        image = f" · image: {event.image_url}" if event.image_url else ""
        asked = event.asked_pharmacies
        shopping = f" · asked {asked} pharmacies, the patient picks one" if asked and asked > 1 else ""
        return f"request {event.request_id} from {who}{phone} · {what}{note}{image}{shopping}"
    if isinstance(event, PharmacyResponseEvent):
        who = event.pharmacy_name or f"pharmacy {event.pharmacy_id}"
        message = f": {event.message}" if event.message else ""
        price = f" · {event.price} {event.currency or ''}".rstrip() if event.price is not None else ""
        ready = f" · ready {_when(event.ready_at)}" if event.ready_at else ""
        audio = f" · audio: {event.audio_url}" if event.audio_url else ""
        return f"request {event.request_id} {event.status} by {who}{message}{price}{ready}{audio}"
    if isinstance(event, RequestCancelledEvent):
        if event.reason == "another_pharmacy_chosen":
            return f"request {event.request_id} cancelled: {CANCEL_REASONS[event.reason]}"
        return f"request {event.request_id} cancelled by the patient"
    if isinstance(event, RequestChosenEvent):
        return f"request {event.request_id} chosen: the patient takes your offer"
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


def _when(timestamp: str | None) -> str:
    """A time to come, in local time: ``17:30`` today, else ``2026-02-25 17:30``."""
    try:
        when = datetime.fromisoformat(str(timestamp)).astimezone()
    except ValueError:
        return str(timestamp)
    same_day = when.date() == datetime.now().astimezone().date()
    return when.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")


def _clock(timestamp: str | None) -> str:
    try:
        return datetime.fromisoformat(str(timestamp)).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return "--:--:--"
