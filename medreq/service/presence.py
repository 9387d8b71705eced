"""Presence (docs/protocol.md §4): who is online, and telling patients when a pharmacy comes or goes.

The hub knows who holds a live connection on any worker and calls `presence_changed` on the
one worker that saw a change. A pharmacy's change is sent to every patient with a PENDING
request to it, as `{"type":"presence","event_id":null,"timestamp","pharmacy_id","online"}`:
not stored, not replayed, like `typing`. A patient's own presence is of no one's concern.
"""

from __future__ import annotations

from ..hub import Hub
from ..protocol import dumps
from ..storage import Store, queries, utcnow
from . import events
from .directory import Directory
from .views import iso


class Presence:
    def __init__(self, store: Store, hub: Hub, directory: Directory) -> None:
        self._store = store
        self._hub = hub
        self._directory = directory

    async def presence_changed(self, account_id: int, online: bool) -> None:
        info = await self._directory.get(account_id)
        if info is None or info.role != "pharmacy":
            return
        patients = await self._store.read(lambda c: queries.pending_patients(c, account_id))
        if not patients:
            return
        text = dumps(events.presence(account_id, online, iso(utcnow()) or "").build(None))
        for patient_id in patients:
            await self._hub.publish(patient_id, None, text)
