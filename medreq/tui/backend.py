"""What the inbox needs from the server, over `medreq.client`: a small adapter the app is given.

`Backend` logs in (from a stored CLI profile or a login form), reads requests, answers them
(over the live WebSocket, or REST when an audio file goes with the answer) and runs the live
connection, reporting each event and every change of the link. Tests give the app a fake
with the same methods to draw snapshots from fixed data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from medreq.client import (
    AccountOut,
    Backoff,
    Event,
    Forbidden,
    LiveConnection,
    MedreqClient,
    MedreqError,
    NotFound,
    Profile,
    ProfileStore,
    RequestDetail,
    RequestOut,
    TransportError,
    Unauthorized,
)

LinkState = Literal["connecting", "connected", "reconnecting", "offline"]
Answer = Literal["ACCEPTED", "REJECTED"]


class NotAPharmacy(MedreqError):
    code = "not_a_pharmacy"
    status = 0
    default_message = "this is a patient account: `medreq inbox` is for pharmacy accounts"


@dataclass(frozen=True)
class Link:
    """The live connection as the status bar shows it."""

    state: LinkState
    retry_at: float | None = None  # time.monotonic() of the next attempt
    error: str | None = None
    fatal: bool = False


class _ObservedBackoff(Backoff):
    """A `Backoff` that tells the app each delay, for "reconnecting in Ns"."""

    def __init__(self, base: Backoff, on_delay: Callable[[float], None]) -> None:
        super().__init__(base.initial, base.factor, base.maximum, base.jitter)
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_on_delay", on_delay)

    def delay(self, attempt: int) -> float:
        seconds: float = self._base.delay(attempt)  # type: ignore[attr-defined]
        self._on_delay(seconds)  # type: ignore[attr-defined]
        return seconds


class Backend:
    """One pharmacy session. ``profile`` names the CLI profile to read and keep tokens in."""

    def __init__(self, profile: str = "default", *, backoff: Backoff | None = None) -> None:
        self.profile_name = profile
        self.store = ProfileStore()
        self.backoff = backoff or Backoff(initial=0.5, maximum=10.0)
        self.client: MedreqClient | None = None
        self.account: AccountOut | None = None
        self.conn: LiveConnection | None = None

    @property
    def url(self) -> str:
        return self.client.base_url if self.client else ""

    def stored_profile(self) -> Profile | None:
        return self.store.load(self.profile_name)

    # --- logging in -----------------------------------------------------------------------------

    async def resume(self) -> AccountOut | None:
        """Log in with the stored profile's tokens; None when there is no usable profile."""
        profile = self.stored_profile()
        if profile is None or not profile.access:
            return None
        if profile.role == "patient":
            raise NotAPharmacy(f"profile {self.profile_name!r} is the patient account {profile.username!r}")
        await self._replace_client(
            MedreqClient(
                profile.url, token=profile.access, refresh_token=profile.refresh, on_tokens=self._save
            )
        )
        assert self.client is not None
        try:
            account = await self.client.me()
        except Unauthorized:
            return None  # expired: the login form asks again
        return self._check(account)

    async def login(self, url: str, username: str, password: str) -> AccountOut:
        """Log in with a password and keep the tokens in the profile."""
        url = url.strip().rstrip("/")
        client = MedreqClient(url, on_tokens=self._save)
        try:
            tokens = await client.login(username.strip(), password)
        except BaseException:
            await client.aclose()
            raise
        account = tokens.account
        if account.role != "pharmacy":
            await client.aclose()
            self._check(account)
        await self._replace_client(client)
        self.store.save_login(self.profile_name, url, tokens)
        return self._check(account)

    def _check(self, account: AccountOut) -> AccountOut:
        if account.role != "pharmacy":
            raise NotAPharmacy(
                f"{account.username!r} is a patient account: `medreq inbox` is for pharmacy accounts"
            )
        self.account = account
        return account

    def _save(self, access: str, refresh: str | None) -> None:
        self.store.update(self.profile_name, access=access, refresh=refresh)

    async def _replace_client(self, client: MedreqClient) -> None:
        if self.client is not None:
            await self.client.aclose()
        self.client = client

    async def close_live(self) -> None:
        """Close the live socket with a close frame (``run_live`` then returns)."""
        if self.conn is not None:
            await self.conn.aclose()

    async def aclose(self) -> None:
        await self.close_live()
        if self.client is not None:
            await self.client.aclose()

    # --- requests -------------------------------------------------------------------------------

    def _api(self) -> MedreqClient:
        if self.client is None:
            raise Unauthorized("not logged in")
        return self.client

    async def load(self, limit: int = 200) -> list[RequestOut]:
        """The newest ``limit`` requests addressed to this pharmacy."""
        return [r async for r in self._api().iter_requests(limit=limit, page_size=100)]

    async def detail(self, request_id: int) -> RequestDetail:
        return await self._api().get_request(request_id)

    async def mark_read(self, request_id: int) -> bool:
        """Report the request read up to the last event seen (PROTOCOL.md §4 `read`), over the
        live socket; False when there is none (the count then stays on the server)."""
        conn = self.conn
        if conn is None or not conn.connected or not conn.last_event_id:
            return False
        await conn.read(request_id, conn.last_event_id)
        return True

    async def download(self, url: str) -> bytes:
        return await self._api().download(url)

    async def respond(
        self, request_id: int, status: Answer, message: str | None, audio: Path | None = None
    ) -> RequestOut:
        """Answer over the live socket; over REST when there is audio (the socket carries none)
        or no live link (REST may still get through)."""
        conn = self.conn
        if audio is None and conn is not None and conn.connected:
            return await conn.respond(request_id, status, message)
        sent = await self._api().respond(request_id, status, message, audio=audio)
        return sent.data

    # --- the live connection --------------------------------------------------------------------

    async def run_live(self, on_event: Callable[[Event], None], on_link: Callable[[Link], None]) -> None:
        """Keep a live connection until cancelled (or refused for good), resuming after the
        last event seen so nothing is missed while the link was down."""
        client = self._api()
        after: int | None = None
        attempt = 0

        def on_delay(seconds: float) -> None:
            on_link(Link("reconnecting", retry_at=time.monotonic() + seconds))

        def on_state(state: str) -> None:
            if state == "open":
                on_link(Link("connected"))

        while True:
            on_link(Link("connecting"))
            try:
                backoff = _ObservedBackoff(self.backoff, on_delay)
                async with client.connect(after=after, backoff=backoff, on_state=on_state) as conn:
                    self.conn = conn
                    attempt = 0
                    on_link(Link("connected"))
                    try:
                        async for event in conn:
                            on_event(event)
                    finally:
                        after = conn.last_event_id
                        self.conn = None
                return
            except (Unauthorized, Forbidden, NotFound) as exc:
                on_link(Link("offline", error=exc.message, fatal=True))
                return
            except TransportError as exc:
                delay = self.backoff.delay(attempt)
                attempt += 1
                on_link(Link("offline", retry_at=time.monotonic() + delay, error=exc.message))
                await asyncio.sleep(delay)
