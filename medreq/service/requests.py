"""Medicine requests and their answers (docs/protocol.md §3), and the files that come with them.

An upload (a prescription image, a pharmacy's audio answer) arrives as an `Upload`: it is saved
before the change (bounded and sniffed by `media.MediaStore.save`) and removed again when the
change fails or turns out to be an idempotent replay, so no file outlives a change that did not
happen."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy.engine import Connection

from ..config import Limits
from ..media import Kind, MediaStore, StoredMedia
from ..protocol import ListQuery, RequestCreatedOut, RequestDetailOut, RequestForm, RequestListOut, RequestOut
from ..protocol.errors import Forbidden, Invalid
from ..storage import Store, Tx, groups, queries, utcnow
from ..storage.pgfast import ROW_ID_MARK, FastPath
from . import events
from .base import Caller, Core, Offer, Upload
from .directory import Directory
from .views import (
    decode_cursor,
    encode_cursor,
    iso,
    request_created,
    request_detail_view,
    request_list,
    request_view,
)

PATIENT_CANCELLED = "patient_cancelled"


class Requests:
    def __init__(
        self,
        core: Core,
        store: Store,
        media: MediaStore,
        directory: Directory,
        limits: Limits,
        default_currency: str,
    ) -> None:
        self._core = core
        self._store = store
        self._media = media
        self._directory = directory
        self._limits = limits
        self._default_currency = default_currency  # docs/protocol.md §3, groups: a price's, when none is named
        # request id → its patient (which never changes), for the fast path's answer statement,
        # which names whom its event is for; a miss costs one read
        self._patients: dict[int, int] = {}

    async def _save(self, kind: Kind, field: str, upload: Upload | None, limit: int) -> StoredMedia | None:
        if upload is None:
            return None
        return await self._media.save(kind, field, upload.chunks, limit=limit)

    async def create_request(
        self,
        caller: Caller,
        form: RequestForm,
        image: Upload | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> tuple[RequestCreatedOut, bool]:
        """Create a request and tell its pharmacy. Returns (the 201 body, created?).

        With an idempotency key already used by this caller, nothing is created and the
        first request is returned (created = False); its `image` is not kept.
        """
        stored = await self._save("image", "image", image, self._limits.max_image_bytes)
        try:
            body, created = await self._create(caller, form, stored, idempotency_key)
        except BaseException:
            self._media.discard(stored)
            raise
        if not created:
            self._media.discard(stored)
        return body, created

    async def _create(
        self, caller: Caller, form: RequestForm, image: StoredMedia | None, idempotency_key: str | None
    ) -> tuple[RequestCreatedOut, bool]:
        await self._check_can_request(caller, form, has_image=image is not None)
        fast = self._store.fast
        single = len(form.pharmacy) == 1
        if (
            fast is not None
            and single
            and not (idempotency_key and await fast.idempotent_request(caller.id, idempotency_key))
        ):
            done = await self._create_fast(fast, caller, form, image, idempotency_key)
            if done is not None:
                return done
            # the key was stored meanwhile by a concurrent retry: the plain path replays that request
        pending = self._core.pending_events()

        def create(tx: Tx) -> tuple[list[Any], bool, list[int]]:
            if idempotency_key:
                existing = tx.idempotent_request(caller.id, idempotency_key)
                if existing is not None:  # the whole group the key was first used for
                    first = queries.request(tx.conn, existing)
                    rows = list(queries.group_requests(tx.conn, first.group_id)) if first.group_id else [first]
                    return rows, False, [queries.unread_count(tx.conn, caller.id, row.id) for row in rows]
            now = utcnow()
            group_id = None if single else groups.insert_group(tx.conn, caller.id, now)
            rows = []
            for pharmacy_id in form.pharmacy:
                values = self._new_request(caller, form, image, now, pharmacy_id=pharmacy_id, group_id=group_id)
                rows.append(self._core.named(tx.conn, tx.insert_request(values)))
            if idempotency_key:
                tx.remember_idempotency_key(caller.id, idempotency_key, rows[0].id)
            stamp = iso(now) or ""
            self._core.emit_all(tx, pending, [(row.pharmacy_id, events.new_request(row, stamp)) for row in rows])
            return rows, True, [0] * len(rows)  # a new request has no events for its patient yet

        rows, created, unread = await self._store.write(create)
        await pending.publish()
        return request_created(rows, self._media, unread=unread, viewer=caller.id), created

    async def _create_fast(
        self, fast: FastPath, caller: Caller, form: RequestForm, image: StoredMedia | None, key: str | None
    ) -> tuple[RequestCreatedOut, bool] | None:
        """`_create`'s new request (to one pharmacy) as one statement (storage/pgfast.py)."""
        pending = self._core.pending_events()
        now = utcnow()
        values = self._new_request(caller, form, image, now, pharmacy_id=form.pharmacy[0], group_id=None)
        patient = await self._directory.get(caller.id)
        assert patient is not None  # `_check_can_request`
        draft = SimpleNamespace(
            **values, id=ROW_ID_MARK, patient_name=patient.name, patient_phone=patient.phone
        )
        event = await self._core.hot_event(
            values["pharmacy_id"], events.new_request(draft, iso(now) or ""), row_key="request_id"
        )
        done = await fast.create_request(values, event, idempotency_key=key)
        if done is None:
            return None
        row, stored = done
        self._core.stored(pending, [event], [stored])
        self._remember_patient(row.id, caller.id)
        await pending.publish()
        record = await self._core.record(row)
        return request_created([record], self._media, unread=[0], viewer=caller.id), True

    @staticmethod
    def _new_request(
        caller: Caller,
        form: RequestForm,
        image: StoredMedia | None,
        now: Any,
        *,
        pharmacy_id: int,
        group_id: int | None,
    ) -> dict[str, Any]:
        return {
            "patient_id": caller.id,
            "pharmacy_id": pharmacy_id,
            "quantity": form.quantity,
            "medicine_name": form.medicine_name or None,
            "note": form.note or None,
            "image_name": image.name if image else None,  # one file for the whole group
            "status": "PENDING",
            "created_at": now,
            "updated_at": now,
            "group_id": group_id,
            "asked_pharmacies": len(form.pharmacy),
        }

    def _answer(
        self, status: str, message: str | None, audio: StoredMedia | None, offer: Offer | None, now: Any
    ) -> dict[str, Any]:
        """The columns an answer sets, on either path; a price without a currency is in the
        server's default currency (docs/protocol.md §3, groups)."""
        offer = offer or Offer()
        currency = offer.currency or (self._default_currency if offer.price is not None else None)
        return {
            "status": status,
            "response_message": message or None,
            "response_audio_name": audio.name if audio else None,
            "responded_at": now,
            "updated_at": now,
            "response_price": offer.price,
            "response_currency": currency,
            "response_ready_at": datetime.fromisoformat(offer.ready_at) if offer.ready_at else None,
        }

    def _remember_patient(self, request_id: int, patient_id: int) -> None:
        if len(self._patients) >= 100_000:
            self._patients.clear()
        self._patients[request_id] = patient_id

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
        limit = self._limits.max_pharmacies_per_request
        if len(form.pharmacy) > limit:
            text = f"at most {limit} pharmacies per request"
            raise Invalid(f"pharmacy: {text}, not {len(form.pharmacy)}", fields={"pharmacy": text})
        caller_info = await self._directory.get(caller.id)
        seen: set[int] = set()
        for pharmacy_id in form.pharmacy:
            if pharmacy_id in seen:
                raise Invalid(
                    f"pharmacy {pharmacy_id}: named more than once", fields={"pharmacy": "named more than once"}
                )
            seen.add(pharmacy_id)
            pharmacy = await self._directory.get(pharmacy_id)
            if (
                pharmacy is None
                or pharmacy.role != "pharmacy"
                or not pharmacy.is_active  # unknown, pending approval or disabled alike
                or caller_info is None
                or pharmacy.synthetic != caller_info.synthetic  # the simulation sandbox (service/sandbox.py)
            ):
                raise Invalid(f"pharmacy {pharmacy_id}: no such pharmacy", fields={"pharmacy": "no such pharmacy"})

    async def respond(
        self,
        caller: Caller,
        request_id: int,
        status: str,
        message: str | None = None,
        audio: Upload | None = None,
        offer: Offer | None = None,
    ) -> RequestOut:
        """Answer a pending request addressed to the caller, with an optional `offer` (§8): the
        patient gets `pharmacy_response`, every connection of the pharmacy `request_updated`."""
        stored = await self._save("audio", "audio", audio, self._limits.max_audio_bytes)
        try:
            return await self._respond(caller, request_id, status, message, stored, offer)
        except BaseException:
            self._media.discard(stored)
            raise

    async def _respond(
        self,
        caller: Caller,
        request_id: int,
        status: str,
        message: str | None,
        audio: StoredMedia | None,
        offer: Offer | None,
    ) -> RequestOut:
        if not caller.is_pharmacy:
            raise Forbidden("only pharmacies can answer requests")
        if self._store.fast is not None:
            return await self._respond_fast(self._store.fast, caller, request_id, status, message, audio, offer)
        pending = self._core.pending_events()

        def answer(tx: Tx) -> tuple[Any, int] | None:
            now = utcnow()
            changed = tx.update_request(
                request_id,
                only_if_status="PENDING",
                only_if={"pharmacy_id": caller.id},
                **self._answer(status, message, audio, offer, now),
            )
            if changed is None:
                return None
            row = self._core.named(tx.conn, changed)
            stamp = iso(now) or ""
            # both events by one insert (`emit_all`): an answer is a group's most frequent write
            self._core.emit_all(
                tx,
                pending,
                [
                    (row.patient_id, events.pharmacy_response(row, stamp)),
                    (caller.id, events.request_updated(row.id, status, stamp)),
                ],
            )
            return row, queries.unread_count(tx.conn, caller.id, row.id)

        done = await self._store.write(answer)
        if done is None:
            raise await self._core.why_unchanged(caller, request_id)
        await pending.publish()
        return request_view(done[0], self._media, unread=done[1], viewer=caller.id)

    async def _respond_fast(
        self,
        fast: FastPath,
        caller: Caller,
        request_id: int,
        status: str,
        message: str | None,
        audio: StoredMedia | None,
        offer: Offer | None,
    ) -> RequestOut:
        """`_respond` as one statement (storage/pgfast.py). The statement names the patient its
        event is for, so the patient is known first: remembered from the request's creation on
        this worker, or read."""
        patient_id = self._patients.get(request_id) or await fast.request_patient(request_id, caller.id)
        pharmacy = await self._directory.get(caller.id)
        if patient_id is None or pharmacy is None:
            raise await self._core.why_unchanged(caller, request_id)
        pending = self._core.pending_events()
        now = utcnow()
        stamp = iso(now) or ""
        values = self._answer(status, message, audio, offer, now)
        draft = SimpleNamespace(**values, id=request_id, pharmacy_id=caller.id, pharmacy_name=pharmacy.name)
        to_patient = await self._core.hot_event(patient_id, events.pharmacy_response(draft, stamp))
        to_caller = await self._core.hot_event(caller.id, events.request_updated(request_id, status, stamp))
        done = await fast.answer_request(
            request_id,
            caller_id=caller.id,
            patient_id=patient_id,
            only_if_status="PENDING",
            values=values,
            to_patient=to_patient,
            to_caller=to_caller,
        )
        if done is None:
            raise await self._core.why_unchanged(caller, request_id)
        row, stored, unread = done
        self._patients.pop(request_id, None)  # answered: never again
        self._core.stored(pending, [to_patient, to_caller], stored)
        await pending.publish()
        return request_view(await self._core.record(row), self._media, unread=unread, viewer=caller.id)

    async def cancel(self, caller: Caller, request_id: int) -> RequestOut:
        """The patient withdraws a pending request; its pharmacy gets `request_cancelled`."""
        if not caller.is_patient:
            raise Forbidden("only the patient who sent a request can cancel it")
        pending = self._core.pending_events()

        def cancel(tx: Tx) -> tuple[Any, int] | None:
            now = utcnow()
            changed = tx.update_request(
                request_id,
                only_if_status="PENDING",
                only_if={"patient_id": caller.id},
                status="CANCELLED",
                cancel_reason=PATIENT_CANCELLED,
                updated_at=now,
            )
            if changed is None:
                return None
            row = self._core.named(tx.conn, changed)
            stamp = iso(now) or ""
            cancelled = events.request_cancelled(row.id, caller.id, PATIENT_CANCELLED, stamp)
            self._core.emit(tx, pending, row.pharmacy_id, cancelled)
            self._core.emit(tx, pending, caller.id, events.request_updated(row.id, "CANCELLED", stamp))
            return row, queries.unread_count(tx.conn, caller.id, row.id)

        done = await self._store.write(cancel)
        if done is None:
            raise await self._core.why_unchanged(caller, request_id)
        await pending.publish()
        return request_view(done[0], self._media, unread=done[1], viewer=caller.id)

    async def list_requests(self, caller: Caller, query: ListQuery) -> RequestListOut:
        """The caller's requests, newest first: a patient's own, or those addressed to a pharmacy."""
        before_id = decode_cursor(query.cursor) if query.cursor else None
        owner = {"patient_id": caller.id} if caller.is_patient else {"pharmacy_id": caller.id}

        def read(c: Connection) -> tuple[Sequence[Any], dict[int, int]]:
            if query.group is not None and not caller.is_patient:
                return [], {}  # a pharmacy's requests show no group (§8)
            rows = queries.requests(
                c, **owner, status=query.status, group_id=query.group, before_id=before_id, limit=query.limit + 1
            )
            return rows, queries.unread_counts(c, caller.id, [row.id for row in rows[: query.limit]])

        rows, unread = await self._store.read(read)
        page = rows[: query.limit]
        next_cursor = encode_cursor(page[-1].id) if len(rows) > query.limit else None
        return request_list(page, self._media, unread, next_cursor, viewer=caller.id)

    async def request_detail(self, caller: Caller, request_id: int) -> RequestDetailOut:
        row = await self._core.visible_request(caller, request_id)
        unread = await self._store.read(lambda c: queries.unread_count(c, caller.id, request_id))
        thread = await self._store.read(lambda c: queries.thread(c, request_id))
        return request_detail_view(row, self._media, unread=unread, viewer=caller.id, thread=thread)
