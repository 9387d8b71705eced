"""Presence (PROTOCOL.md §6): who is online, and telling patients when a pharmacy comes or goes.

The hub knows who holds a live connection on any worker and calls `presence_changed` on the
one worker that saw a change. A pharmacy's change is sent to every patient with a PENDING
request to it, as `{"type":"presence","event_id":null,"timestamp","pharmacy_id","online"}`:
not stored, not replayed, like `typing`. A patient's own presence is of no one's concern.
"""

from __future__ import annotations

from ..protocol import dumps
from ..storage import queries, utcnow
from . import events
from .base import ServiceBase
from .views import iso


class Presence(ServiceBase):
    async def presence_changed(self, account_id: int, online: bool) -> None:
        info = await self.directory.get(account_id)
        if info is None or info.role != "pharmacy":
            return
        patients = await self.store.read(lambda c: queries.pending_patients(c, account_id))
        if not patients:
            return
        text = dumps(events.presence(account_id, online, iso(utcnow()) or "").build(None))
        for patient_id in patients:
            await self.hub.publish(patient_id, None, text)
