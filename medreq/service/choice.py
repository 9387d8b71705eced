"""Choosing one pharmacy's answer among a group (docs/protocol.md §3, groups).

`POST /medicine/request/{id}/choose/`: in one transaction the request is marked `chosen` and
every other request of its group still PENDING or ACCEPTED becomes CANCELLED with
`another_pharmacy_chosen` (storage/groups.py says how concurrent choices and answers are kept
apart). The chosen pharmacy gets `request_chosen`, each cancelled one `request_cancelled` with its
`reason`, and the patient's connections `request_updated` for every request the choice changed.
Events are stored in the order of their accounts' ids, all at once (`Core.emit_all`: a counter
bump per account, one insert), and two choices touching the same pharmacies lock those
accounts' counters in the same order (no deadlock on PostgreSQL).
"""

from __future__ import annotations

from typing import Any

from ..media import MediaStore
from ..protocol import RequestOut
from ..protocol.errors import Conflict, Forbidden, NotFound
from ..storage import Store, Tx, groups, queries, utcnow
from . import events
from .base import Caller, Core
from .views import iso, request_view


class Choice:
    def __init__(self, core: Core, store: Store, media: MediaStore) -> None:
        self._core = core
        self._store = store
        self._media = media

    async def choose(self, caller: Caller, request_id: int) -> RequestOut:
        """The patient picks an ACCEPTED request of one of its groups; the rest are cancelled.
        Choosing the chosen request again is answered the same; anything else is 409."""
        if not caller.is_patient:
            raise Forbidden("only the patient who sent a request can choose it")
        try:
            row, unread, pending = await self._choose(caller, request_id)
        except Exception as exc:
            if not groups.lost_a_race(exc):
                raise
            # PostgreSQL broke a lock cycle (or a serialization conflict) with a concurrent answer
            # or cancel, rolling this choice back whole: once more, on what that one committed
            row, unread, pending = await self._choose(caller, request_id)
        await pending.publish()
        return request_view(row, self._media, unread=unread, viewer=caller.id)

    async def _choose(self, caller: Caller, request_id: int) -> tuple[Any, int, events.PendingEvents]:
        """The choice's transaction; the chosen row, the caller's unread count on it, and the
        events to publish (a `PendingEvents` of its own: a rolled-back attempt's events never go out)."""
        pending = self._core.pending_events()

        def choose(tx: Tx) -> tuple[Any, int]:
            row = groups.request_row(tx.conn, request_id)
            if row is None or row.patient_id != caller.id:
                raise NotFound(f"request {request_id} not found")
            if row.group_id is None:
                raise Conflict(f"request {request_id} is not one of a group: there is nothing to choose from")
            group = groups.lock_group(tx.conn, row.group_id)  # concurrent choices wait here
            assert group is not None  # the request's foreign key
            if group.chosen_request_id is not None:
                if group.chosen_request_id != request_id:
                    raise Conflict(
                        f"request {group.chosen_request_id} of group {row.group_id} is already chosen"
                    )
                current = queries.request(tx.conn, request_id)  # chosen before: the same answer
                return current, queries.unread_count(tx.conn, caller.id, request_id)
            now = utcnow()
            changed = tx.update_request(
                request_id,
                only_if_status="ACCEPTED",
                only_if={"patient_id": caller.id},
                chosen=True,
                updated_at=now,
            )
            if changed is None:
                status = groups.request_row(tx.conn, request_id).status
                raise Conflict(f"request {request_id} is {status}: only an ACCEPTED request can be chosen")
            groups.set_chosen(tx.conn, row.group_id, request_id)
            cancelled = groups.cancel_others(tx.conn, row.group_id, request_id, now)
            chosen = self._core.named(tx.conn, changed)
            stamp = iso(now) or ""
            sends: list[tuple[int, events.Event]] = [
                (chosen.pharmacy_id, events.request_chosen(request_id, stamp)),
                (caller.id, events.request_updated(request_id, "ACCEPTED", stamp)),
            ]
            for other in cancelled:
                reason = groups.ANOTHER_CHOSEN
                sends.append(
                    (other.pharmacy_id, events.request_cancelled(other.id, caller.id, reason, stamp))
                )
                sends.append((caller.id, events.request_updated(other.id, "CANCELLED", stamp)))
            sends.sort(key=lambda send: send[0])  # stable: each account's in order
            self._core.emit_all(tx, pending, sends)
            return chosen, queries.unread_count(tx.conn, caller.id, request_id)

        row, unread = await self._store.write(choose)
        return row, unread, pending
