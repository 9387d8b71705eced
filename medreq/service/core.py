"""The domain service: accounts, medicine requests, answers, and the events they cause.

It knows nothing of HTTP or WebSockets: transports parse input into `schemas` models,
call a method with the authenticated `Caller`, and render the dict or the `MedreqError`.
Every state change stores its events in the same transaction (`Tx.append_event`) and
publishes them only after the commit (`Outbox`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import auth
from ..config import Settings
from ..errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from ..hub import Hub
from ..media import Kind, MediaStore, StoredMedia
from ..schemas import ListQuery, RegisterIn, RequestForm, TokenIn
from ..storage import Store, Tx, utcnow
from . import events
from .events import Outbox
from .views import account_view, decode_cursor, encode_cursor, iso, message_view, request_view


@dataclass(frozen=True)
class Caller:
    id: int
    role: str
    name: str

    @property
    def is_patient(self) -> bool:
        return self.role == "patient"

    @property
    def is_pharmacy(self) -> bool:
        return self.role == "pharmacy"


class MedreqService:
    def __init__(
        self, settings: Settings, store: Store, hub: Hub, media: MediaStore, tokens: auth.TokenIssuer
    ) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.media = media
        self.tokens = tokens

    # --- accounts (§2) ------------------------------------------------------------------------

    async def register(self, data: RegisterIn, *, by_operator: bool = False) -> dict[str, Any]:
        if not (self.settings.open_registration or by_operator):
            raise Forbidden("registration is closed on this server")
        if await self.store.account_by_username(data.username) is not None:
            raise Conflict("username is taken", fields={"username": "is taken"})
        password_hash = await auth.hash_password_async(data.password, n=self.settings.scrypt_n)
        async with self.store.transaction() as tx:
            row = await tx.create_account(
                username=data.username,
                password_hash=password_hash,
                role=data.role,
                name=data.name,
                phone=data.phone or None,
            )
        return account_view(row)

    async def issue_tokens(self, data: TokenIn) -> dict[str, Any]:
        row = await self.store.account_by_username(data.username)
        stored_hash = row.password_hash if row is not None else None
        if not await auth.verify_or_waste(data.password, stored_hash, n=self.settings.scrypt_n):
            raise Unauthorized("wrong username or password")
        assert row is not None
        return {
            "access": self.tokens.issue(row.id, row.role, "access"),
            "refresh": self.tokens.issue(row.id, row.role, "refresh"),
            "token_type": "bearer",
            "expires_in": self.tokens.access_ttl,
            "account": account_view(row),
        }

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        claims = self.tokens.verify(refresh_token, "refresh")
        row = await self.store.account(claims.account_id)
        if row is None:
            raise Unauthorized("account no longer exists")
        return {
            "access": self.tokens.issue(row.id, row.role, "access"),
            "token_type": "bearer",
            "expires_in": self.tokens.access_ttl,
        }

    async def authenticate(self, token: str | None) -> Caller:
        """The caller an access token names; Unauthorized when missing, bad, expired or orphaned."""
        if not token:
            raise Unauthorized("missing bearer token")
        claims = self.tokens.verify(token, "access")
        row = await self.store.account(claims.account_id)
        if row is None:
            raise Unauthorized("account no longer exists")
        return Caller(row.id, row.role, row.name)

    async def me(self, caller: Caller) -> dict[str, Any]:
        row = await self.store.account(caller.id)
        if row is None:
            raise Unauthorized("account no longer exists")
        return account_view(row)

    async def pharmacies(self) -> dict[str, Any]:
        return {"results": [{"id": row.id, "name": row.name} for row in await self.store.pharmacies()]}

    # --- medicine requests (§3) ---------------------------------------------------------------

    async def check_can_request(self, caller: Caller, form: RequestForm, *, has_image: bool) -> None:
        """Every rule that does not need the image's bytes; run before storing the upload."""
        if not caller.is_patient:
            raise Forbidden("only patients can send medicine requests")
        if form.patient is not None and form.patient != caller.id:
            raise Forbidden("patient must be your own account id")
        if not has_image and not form.medicine_name:
            raise Invalid(
                "image: is required unless medicine_name is given",
                fields={"image": "is required unless medicine_name is given"},
            )
        pharmacy = await self.store.account(form.pharmacy)
        if pharmacy is None or pharmacy.role != "pharmacy":
            raise Invalid("pharmacy: no such pharmacy", fields={"pharmacy": "no such pharmacy"})

    async def create_request(
        self,
        caller: Caller,
        form: RequestForm,
        image: StoredMedia | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Create a request and tell its pharmacy. Returns (the 201 body, created?).

        With an idempotency key already used by this caller, nothing is created and the
        first request is returned (created = False); the caller should discard `image`.
        """
        await self.check_can_request(caller, form, has_image=image is not None)
        outbox = Outbox(self.hub, self.media)
        async with self.store.transaction() as tx:
            if idempotency_key:
                existing = await tx.idempotent_request(caller.id, idempotency_key)
                if existing is not None:
                    row = await tx.request(existing)
                    return self._created_body(row), False
            now = utcnow()
            request_id = await tx.insert_request(
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
                await tx.remember_idempotency_key(caller.id, idempotency_key, request_id)
            row = await tx.request(request_id)
            await self._emit(tx, outbox, row.pharmacy_id, events.new_request(row, iso(now) or ""))
        await outbox.publish()
        return self._created_body(row), True

    def _created_body(self, row: Any) -> dict[str, Any]:
        return {
            "message": "Medicine request sent successfully",
            "request_id": row.id,
            "data": request_view(row, self.media),
        }

    async def check_can_respond(self, caller: Caller, request_id: int) -> Any:
        """The rules for answering that hold before any upload is stored."""
        if not caller.is_pharmacy:
            raise Forbidden("only pharmacies can answer requests")
        row = await self.store.request(request_id)
        if row is None:
            raise NotFound(f"request {request_id} not found")
        if row.pharmacy_id != caller.id:
            raise Forbidden("this request is addressed to another pharmacy")
        if row.status != "PENDING":
            raise Conflict(f"request {request_id} is already {row.status}")
        return row

    async def respond(
        self,
        caller: Caller,
        request_id: int,
        status: str,
        message: str | None = None,
        audio: StoredMedia | None = None,
    ) -> dict[str, Any]:
        """Answer a pending request; the patient gets `pharmacy_response`, the pharmacy's
        other connections `request_updated`."""
        await self.check_can_respond(caller, request_id)
        outbox = Outbox(self.hub, self.media)
        async with self.store.transaction() as tx:
            now = utcnow()
            changed = await tx.update_request(
                request_id,
                only_if_status="PENDING",
                status=status,
                response_message=message or None,
                response_audio_name=audio.name if audio else None,
                responded_at=now,
                updated_at=now,
            )
            if not changed:  # answered or cancelled since the check above
                current = await tx.request(request_id)
                raise Conflict(f"request {request_id} is already {current.status if current else 'gone'}")
            row = await tx.request(request_id)
            stamp = iso(now) or ""
            await self._emit(tx, outbox, row.patient_id, events.pharmacy_response(row, stamp))
            await self._emit(tx, outbox, caller.id, events.request_updated(row.id, status, stamp))
        await outbox.publish()
        return request_view(row, self.media)

    async def list_requests(self, caller: Caller, query: ListQuery) -> dict[str, Any]:
        before_id = decode_cursor(query.cursor) if query.cursor else None
        owner = {"patient_id": caller.id} if caller.is_patient else {"pharmacy_id": caller.id}
        rows = await self.store.requests(
            **owner, status=query.status, before_id=before_id, limit=query.limit + 1
        )
        page = rows[: query.limit]
        more = len(rows) > query.limit
        return {
            "results": [request_view(row, self.media) for row in page],
            "next": encode_cursor(page[-1].id) if more else None,
        }

    async def request_detail(self, caller: Caller, request_id: int) -> dict[str, Any]:
        row = await self._visible_request(caller, request_id)
        view = request_view(row, self.media)
        view["messages"] = [message_view(m) for m in await self.store.messages(request_id)]
        return view

    async def _visible_request(self, caller: Caller, request_id: int) -> Any:
        row = await self.store.request(request_id)
        if row is None or caller.id not in (row.patient_id, row.pharmacy_id):
            raise NotFound(f"request {request_id} not found")
        return row

    async def cancel(self, caller: Caller, request_id: int) -> dict[str, Any]:
        """The patient withdraws a pending request; its pharmacy gets `request_cancelled`."""
        row = await self._visible_request(caller, request_id)
        if row.patient_id != caller.id:
            raise Forbidden("only the patient who sent a request can cancel it")
        outbox = Outbox(self.hub, self.media)
        async with self.store.transaction() as tx:
            now = utcnow()
            if not await tx.update_request(
                request_id, only_if_status="PENDING", status="CANCELLED", updated_at=now
            ):
                current = await tx.request(request_id)
                raise Conflict(f"request {request_id} is already {current.status if current else 'gone'}")
            row = await tx.request(request_id)
            stamp = iso(now) or ""
            await self._emit(tx, outbox, row.pharmacy_id, events.request_cancelled(row.id, caller.id, stamp))
            await self._emit(tx, outbox, caller.id, events.request_updated(row.id, "CANCELLED", stamp))
        await outbox.publish()
        return request_view(row, self.media)

    async def post_message(self, caller: Caller, request_id: int, text: str) -> dict[str, Any]:
        """A thread message from one party; the other gets `message`."""
        row = await self._visible_request(caller, request_id)
        other = row.pharmacy_id if caller.id == row.patient_id else row.patient_id
        outbox = Outbox(self.hub, self.media)
        async with self.store.transaction() as tx:
            stored = await tx.insert_message(request_id=request_id, sender_id=caller.id, text=text)
            stamp = iso(stored.created_at) or ""
            await self._emit(tx, outbox, other, events.message(request_id, caller.id, text, stored.id, stamp))
        await outbox.publish()
        return {"message": message_view(stored)}

    async def typing(self, caller: Caller, request_id: int, state: str) -> None:
        """Tell the other party someone is typing: not stored, not replayed, no event_id."""
        row = await self._visible_request(caller, request_id)
        other = row.pharmacy_id if caller.id == row.patient_id else row.patient_id
        event = {
            "type": "typing",
            "event_id": None,
            "timestamp": iso(utcnow()),
            "request_id": request_id,
            "from": caller.id,
            "state": state,
        }
        await self.hub.publish(other, None, json.dumps(event, separators=(",", ":")))

    async def mark_read(self, caller: Caller, request_id: int, up_to_event_id: int) -> dict[str, Any]:
        """Record how far the caller has read a request's events; the other party gets `read`."""
        row = await self._visible_request(caller, request_id)
        if up_to_event_id > await self.store.last_event_id(caller.id):
            raise Invalid(
                "up_to_event_id: is beyond your last event", fields={"up_to_event_id": "beyond last event"}
            )
        other = row.pharmacy_id if caller.id == row.patient_id else row.patient_id
        outbox = Outbox(self.hub, self.media)
        async with self.store.transaction() as tx:
            mark = await tx.set_read_mark(caller.id, request_id, up_to_event_id)
            if mark == up_to_event_id:
                stamp = iso(utcnow()) or ""
                await self._emit(tx, outbox, other, events.read(request_id, caller.id, mark, stamp))
        await outbox.publish()
        return {"up_to_event_id": mark}

    # --- events (§4, §5) ----------------------------------------------------------------------

    @staticmethod
    async def _emit(tx: Tx, outbox: Outbox, account_id: int, event: events.Event) -> None:
        event_id, text = await tx.append_event(account_id, event)
        outbox.add(account_id, event_id, text)

    async def events_after(
        self, account_id: int, after: int, *, before: int | None = None, limit: int = 1000
    ) -> list[tuple[int, str]]:
        """Stored events of an account after `after` (and before `before`), rendered for sending."""
        stored = await self.store.events_after(account_id, after, before=before, limit=limit)
        return [(event_id, events.render(text, self.media)) for event_id, text in stored]

    async def last_event_id(self, account_id: int) -> int:
        return await self.store.last_event_id(account_id)

    # --- media (§3) ---------------------------------------------------------------------------

    async def media_file(
        self,
        kind: Kind,
        name: str,
        *,
        exp: str | None,
        sig: str | None,
        caller_token: Callable[[], str | None],
    ) -> Any:
        """The path of a stored file the caller may read: a valid signature, or a participant's token."""
        path = self.media.path(kind, name)
        if exp is not None or sig is not None or not caller_token():
            self.media.check_signature(kind, name, exp, sig)
        else:
            caller = await self.authenticate(caller_token())
            owner = await self.store.request_by_media(kind, name)
            if owner is None or caller.id not in (owner.patient_id, owner.pharmacy_id):
                raise Forbidden("only the request's patient and pharmacy may read this file")
        if path is None:
            raise NotFound("no such file")
        return path
