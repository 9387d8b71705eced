"""Rows → the wire shapes of docs/protocol.md §2–§3 (`<Request>`, accounts)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from ..errors import Invalid
from ..media import MediaStore
from ..schemas import MAX_ID
from ..storage import as_utc


def iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def account_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "username": row.username,
        "role": row.role,
        "name": row.name,
        "phone": row.phone,
        "status": row.status,
    }


def request_view(row: Any, media: MediaStore, *, unread: int) -> dict[str, Any]:
    """`<Request>`; `unread` is the caller's count (`queries.unread_counts`), so each caller's own."""
    response = None
    if row.status in ("ACCEPTED", "REJECTED"):
        response = {
            "status": row.status,
            "message": row.response_message,
            "audio_url": media.url("audio", row.response_audio_name),
            "responded_at": iso(row.responded_at),
        }
    return {
        "id": row.id,
        "patient": {"id": row.patient_id, "name": row.patient_name, "phone": row.patient_phone},
        "pharmacy": {"id": row.pharmacy_id, "name": row.pharmacy_name},
        "quantity": row.quantity,
        "medicine_name": row.medicine_name,
        "note": row.note,
        "image_url": media.url("image", row.image_name),
        "status": row.status,
        "response": response,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "unread": unread,
    }


def message_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "from": row.sender_id, "text": row.text, "created_at": iso(row.created_at)}


def encode_cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(f"before:{before_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        before_id = int(value)
        if prefix != "before" or not 1 <= before_id <= MAX_ID:
            raise ValueError(cursor)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid("cursor: is not a cursor this server issued", fields={"cursor": "invalid"}) from None
    return before_id
