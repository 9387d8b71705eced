"""Synthetic accounts: what the simulator and load tests register, and remove after a run.

`"synthetic": true` on register (when the server allows it, as it does by default) makes an
account that lives in a sandbox: it sees only synthetic pharmacies and can send requests only to
them, and no real account can see or send requests to it. So simulations never show up in real
listings, and removing a synthetic account with all its requests, messages, events and media
(`DELETE /auth/me`) can only ever remove data of synthetic accounts. A real account cannot be
removed this way, nor turned synthetic.
"""

from __future__ import annotations

from ..hub import Hub
from ..media import Kind, MediaStore
from ..protocol import PharmacyListOut
from ..protocol.errors import Forbidden
from ..storage import Store, queries
from .base import Caller
from .directory import Directory
from .views import pharmacy_list


class Sandbox:
    def __init__(self, store: Store, hub: Hub, media: MediaStore, directory: Directory) -> None:
        self._store = store
        self._hub = hub
        self._media = media
        self._directory = directory

    async def is_synthetic(self, account_id: int) -> bool:
        info = await self._directory.get(account_id)
        return info is not None and info.synthetic

    async def pharmacies_for(self, caller: Caller) -> PharmacyListOut:
        synthetic = await self.is_synthetic(caller.id)
        rows = await self._store.read(lambda c: queries.pharmacies(c, synthetic=synthetic))
        online = await self._hub.online([row.id for row in rows])
        return pharmacy_list(rows, online)

    async def remove_synthetic_account(self, caller: Caller) -> None:
        """Delete the caller's synthetic account and everything it took part in."""
        if not await self.is_synthetic(caller.id):
            raise Forbidden("only synthetic (simulation) accounts can be removed over the API")
        media = await self._store.write(lambda tx: tx.purge_account(caller.id))
        self._directory.forget(caller.id)
        for kind, name in media:
            path = self._media.path(_kind(kind), name)
            if path is not None:
                path.unlink(missing_ok=True)


def _kind(kind: str) -> Kind:
    return "image" if kind == "image" else "audio"
