"""Rows → the wire models of docs/protocol.md §2–§3 (`<Request>`, accounts), from `medreq.protocol`."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ..media import MediaStore
from ..protocol import (
    MAX_ID,
    AccessOut,
    AccountOut,
    MessageOut,
    MessagePostedOut,
    PharmacyListOut,
    PharmacyOut,
    PushSubscriptionOut,
    RequestCreatedOut,
    RequestDetailOut,
    RequestListOut,
    RequestOut,
    ResponseSentOut,
    TokenOut,
    WebhookAccountOut,
    WebhookDeliveryOut,
)
from ..protocol.errors import Invalid
from ..storage import utc_text


def iso(value: datetime | None) -> str | None:
    return utc_text(value) if value is not None else None


def stamp(value: datetime) -> str:
    """A time that is always there (`created_at`), in ISO 8601 UTC."""
    return utc_text(value)


def account_view(row: Any) -> AccountOut:
    return AccountOut(**_account_fields(row))


def _account_fields(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "username": row.username,
        "role": row.role,
        "name": row.name,
        "phone": row.phone,
        "status": row.status,
    }


def webhook_account_view(
    row: Any, *, with_secret: bool = False, secret: str | None = None
) -> WebhookAccountOut:
    """The caller's account with its webhook; the secret only in the answer that set it."""
    fields = _account_fields(row)
    if with_secret:
        fields["webhook_secret"] = secret
    return WebhookAccountOut(**fields, webhook_url=row.webhook_url, webhook_payload=row.webhook_payload)


def tokens_view(access: str, refresh: str, expires_in: int, row: Any) -> TokenOut:
    return TokenOut(
        access=access, refresh=refresh, token_type="bearer", expires_in=expires_in, account=account_view(row)
    )


def access_view(access: str, expires_in: int, refresh: str) -> AccessOut:
    return AccessOut(access=access, refresh=refresh, token_type="bearer", expires_in=expires_in)


def pharmacy_list(rows: Iterable[Any], online: set[int]) -> PharmacyListOut:
    return PharmacyListOut(
        results=[PharmacyOut(id=row.id, name=row.name, online=row.id in online) for row in rows]
    )


def delivery_view(row: Any) -> WebhookDeliveryOut:
    return WebhookDeliveryOut(
        id=row.id,
        channel=row.channel,
        event_id=row.event_id,
        type=row.type,
        status=row.status,
        attempts=row.attempts,
        last_status=row.last_status,
        last_error=row.last_error,
        next_attempt_at=iso(row.next_attempt_at) if row.status == "pending" else None,
        last_attempt_at=iso(row.last_attempt_at),
        created_at=stamp(row.created_at),
        delivered_at=iso(row.delivered_at),
    )


def push_subscription_view(row: Any) -> PushSubscriptionOut:
    return PushSubscriptionOut(id=row.id, endpoint=row.endpoint, created_at=stamp(row.created_at))


# `<Request>` is on the hot path (every create and answer): it is validated from one nested dict
# in one call into pydantic-core, faster than building its parts as models one by one, and
# together with `to_json` no slower than the `json.dumps` of the same dict it replaced
# (measured: loadtests/serialize_cost.py).


def request_view(row: Any, media: MediaStore, *, unread: int, viewer: int) -> RequestOut:
    """`<Request>` as account `viewer` (the caller) sees it; `unread` is the caller's count
    (`queries.unread_counts`), so each caller's own."""
    return RequestOut.model_validate(_request_fields(row, media, unread, viewer))


def _request_fields(row: Any, media: MediaStore, unread: int, viewer: int) -> dict[str, Any]:
    # minimum necessary (docs/protocol.md §3, groups): once CANCELLED, for whatever reason, the pharmacy
    # no longer gets the patient's phone or any file (`delivery.may_see` refuses its old links)
    withheld = row.status == "CANCELLED" and viewer != row.patient_id
    response = None
    if row.status in ("ACCEPTED", "REJECTED"):
        response = {
            "status": row.status,
            "message": row.response_message,
            "audio_url": None if withheld else media.url("audio", row.response_audio_name, to=viewer),
            "responded_at": stamp(row.responded_at),
            "price": row.response_price,
            "currency": row.response_currency,
            "ready_at": iso(row.response_ready_at),
        }
    return {
        "id": row.id,
        "patient": {
            "id": row.patient_id,
            "name": row.patient_name,
            "phone": None if withheld else row.patient_phone,
        },
        "pharmacy": {"id": row.pharmacy_id, "name": row.pharmacy_name},  # no phone: not sent
        "quantity": row.quantity,
        "medicine_name": row.medicine_name,
        "note": row.note,
        "image_url": None if withheld else media.url("image", row.image_name, to=viewer),
        "status": row.status,
        "response": response,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "unread": unread,
        # §8: only the patient learns the group; a pharmacy never learns who else was asked
        "group": row.group_id if viewer == row.patient_id else None,
        "asked_pharmacies": row.asked_pharmacies,
        "chosen": bool(row.chosen),  # SQLite's raw path reads 0/1
        "cancel_reason": row.cancel_reason,
    }


def request_detail_view(
    row: Any, media: MediaStore, *, unread: int, viewer: int, thread: Iterable[Any]
) -> RequestDetailOut:
    """`<Request>` with its message thread."""
    fields = _request_fields(row, media, unread, viewer)
    fields["messages"] = [_message_fields(m) for m in thread]
    return RequestDetailOut.model_validate(fields)


def request_created(
    rows: Sequence[Any], media: MediaStore, *, unread: Sequence[int], viewer: int
) -> RequestCreatedOut:
    """The 201 of `POST /medicine/request/`: the first request in `data`, all of them (in the
    order the pharmacies were named) in `requests`, and their group (null for one pharmacy)."""
    requests = [_request_fields(row, media, count, viewer) for row, count in zip(rows, unread, strict=True)]
    return RequestCreatedOut.model_validate(
        {
            "message": "Medicine request sent successfully",
            "request_id": rows[0].id,
            "data": requests[0],
            "group": rows[0].group_id,
            "requests": requests,
        }
    )


def response_sent(request: RequestOut) -> ResponseSentOut:
    return ResponseSentOut(message="Response sent successfully", data=request)


def request_list(
    rows: Iterable[Any], media: MediaStore, unread: dict[int, int], next_cursor: str | None, *, viewer: int
) -> RequestListOut:
    results = [_request_fields(row, media, unread[row.id], viewer) for row in rows]
    return RequestListOut.model_validate({"results": results, "next": next_cursor})


def message_view(row: Any) -> MessageOut:
    return MessageOut.model_validate(_message_fields(row))


def _message_fields(row: Any) -> dict[str, Any]:
    return {"id": row.id, "from": row.sender_id, "text": row.text, "created_at": stamp(row.created_at)}


def message_posted(row: Any) -> MessagePostedOut:
    return MessagePostedOut(message=message_view(row))


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
