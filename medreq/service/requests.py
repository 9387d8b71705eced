"""Medicine requests and their answers (docs/protocol.md §3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from ..errors import Forbidden, Invalid
from ..media import StoredMedia
from ..protocol import ListQuery, RequestCreatedOut, RequestDetailOut, RequestForm, RequestListOut, RequestOut
from ..storage import Tx, queries, utcnow
from . import events
from .base import Caller, ServiceBase
from .views import (
    decode_cursor,
    encode_cursor,
    iso,
    request_created,
    request_detail_view,
    request_list,
    request_view,
)


class Requests(ServiceBase):
    async def create_request(
        self,
        caller: Caller,
        form: RequestForm,
        image: StoredMedia | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> tuple[RequestCreatedOut, bool]:
        """Create a request and tell its pharmacy. Returns (the 201 body, created?).

        With an idempotency key already used by this caller, nothing is created and the
        first request is returned (created = False); the caller should discard `image`.
        """
        await self._check_can_request(caller, form, has_image=image is not None)
        outbox = self.outbox()

        def create(tx: Tx) -> tuple[Any, bool, int]:
            if idempotency_key:
                existing = tx.idempotent_request(caller.id, idempotency_key)
                if existing is not None:
                    unread = queries.unread_counts(tx.conn, caller.id, [existing])[existing]
                    return queries.request(tx.conn, existing), False, unread
            now = utcnow()
            inserted = tx.insert_request(
                {
                    "patient_id": caller.id,
                    "pharmacy_id": form.pharmacy,
                    "quantity": form.quantity,
                    "medicine_name": form.medicine_name or None,
                    "note": form.note or None,
                    "image_name": image.name if image else None,
                    "status": "PENDING",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if idempotency_key:
                tx.remember_idempotency_key(caller.id, idempotency_key, inserted.id)
            row = self.named(tx.conn, inserted)
            self.emit(tx, outbox, row.pharmacy_id, events.new_request(row, iso(now) or ""))
            return row, True, 0  # a new request has no events for its patient yet

        row, created, unread = await self.store.write(create)
        await outbox.publish()
        return request_created(row, self.media, unread=unread), created

    async def _check_can_request(self, caller: Caller, form: RequestForm, *, has_image: bool) -> None:
        if not caller.is_patient:
            raise Forbidden("only patients can send medicine requests")
        if form.patient is not None and form.patient != caller.id:
            raise Forbidden("patient must be your own account id")
        if not has_image and not form.medicine_name:
            raise Invalid(
                "image: is required unless medicine_name is given",
                fields={"image": "is required unless medicine_name is given"},
            )
        pharmacy = await self.directory.get(form.pharmacy)
        caller_info = await self.directory.get(caller.id)
        if (
            pharmacy is None
            or pharmacy.role != "pharmacy"
            or not pharmacy.is_active
            or caller_info is None
            or pharmacy.synthetic != caller_info.synthetic  # the simulation sandbox (service/sandbox.py)
        ):
            raise Invalid("pharmacy: no such pharmacy", fields={"pharmacy": "no such pharmacy"})

    async def respond(
        self,
        caller: Caller,
        request_id: int,
        status: str,
        message: str | None = None,
        audio: StoredMedia | None = None,
    ) -> RequestOut:
        """Answer a pending request addressed to the caller: the patient gets
        `pharmacy_response`, every connection of the pharmacy `request_updated`."""
        if not caller.is_pharmacy:
            raise Forbidden("only pharmacies can answer requests")
        outbox = self.outbox()

        def answer(tx: Tx) -> tuple[Any, int] | None:
            now = utcnow()
            changed = tx.update_request(
                request_id,
                only_if_status="PENDING",
                only_if={"pharmacy_id": caller.id},
                status=status,
                response_message=message or None,
                response_audio_name=audio.name if audio else None,
                responded_at=now,
                updated_at=now,
            )
            if changed is None:
                return None
            row = self.named(tx.conn, changed)
            stamp = iso(now) or ""
            self.emit(tx, outbox, row.patient_id, events.pharmacy_response(row, stamp))
            self.emit(tx, outbox, caller.id, events.request_updated(row.id, status, stamp))
            return row, queries.unread_counts(tx.conn, caller.id, [row.id])[row.id]

        done = await self.store.write(answer)
        if done is None:
            raise await self.why_unchanged(caller, request_id)
        await outbox.publish()
        return request_view(done[0], self.media, unread=done[1])

    async def cancel(self, caller: Caller, request_id: int) -> RequestOut:
        """The patient withdraws a pending request; its pharmacy gets `request_cancelled`."""
        if not caller.is_patient:
            raise Forbidden("only the patient who sent a request can cancel it")
        outbox = self.outbox()

        def cancel(tx: Tx) -> tuple[Any, int] | None:
            now = utcnow()
            changed = tx.update_request(
                request_id,
                only_if_status="PENDING",
                only_if={"patient_id": caller.id},
                status="CANCELLED",
                updated_at=now,
            )
            if changed is None:
                return None
            row = self.named(tx.conn, changed)
            stamp = iso(now) or ""
            self.emit(tx, outbox, row.pharmacy_id, events.request_cancelled(row.id, caller.id, stamp))
            self.emit(tx, outbox, caller.id, events.request_updated(row.id, "CANCELLED", stamp))
            return row, queries.unread_counts(tx.conn, caller.id, [row.id])[row.id]

        done = await self.store.write(cancel)
        if done is None:
            raise await self.why_unchanged(caller, request_id)
        await outbox.publish()
        return request_view(done[0], self.media, unread=done[1])

    async def list_requests(self, caller: Caller, query: ListQuery) -> RequestListOut:
        """The caller's requests, newest first: a patient's own, or those addressed to a pharmacy."""
        before_id = decode_cursor(query.cursor) if query.cursor else None
        owner = {"patient_id": caller.id} if caller.is_patient else {"pharmacy_id": caller.id}

        def read(c: Connection) -> tuple[Sequence[Any], dict[int, int]]:
            rows = queries.requests(
                c, **owner, status=query.status, before_id=before_id, limit=query.limit + 1
            )
            return rows, queries.unread_counts(c, caller.id, [row.id for row in rows[: query.limit]])

        rows, unread = await self.store.read(read)
        page = rows[: query.limit]
        next_cursor = encode_cursor(page[-1].id) if len(rows) > query.limit else None
        return request_list(page, self.media, unread, next_cursor)

    async def request_detail(self, caller: Caller, request_id: int) -> RequestDetailOut:
        row = await self.visible_request(caller, request_id)
        unread = await self.store.read(lambda c: queries.unread_counts(c, caller.id, [request_id]))
        thread = await self.store.read(lambda c: queries.thread(c, request_id))
        return request_detail_view(row, self.media, unread=unread[request_id], thread=thread)
