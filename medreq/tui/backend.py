"""What the inbox needs from the server, over `medreq.client`: a small adapter the app is given.

`Backend` logs in (from a stored profile, the CLI's, or a login form), reads requests, answers
them (over the live WebSocket, or REST when an audio file goes with the answer), posts thread
messages and typing notices, and runs the live connection, reporting each event and every change of the link: the client reconnects and
says when it will try next (``on_state``), the backend only translates that for the status bar.
Tests give the app a fake with the same methods to draw snapshots from fixed data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medreq.client import (
    AccountOut,
    Backoff,
    ConnectionState,
    Event,
    LiveConnection,
    MedreqClient,
    MedreqError,
    Profile,
    ProfileStore,
    RequestDetail,
    RequestOut,
    Unauthorized,
)

LinkState = Literal["connecting", "connected", "reconnecting", "offline"]
Answer = Literal["ACCEPTED", "REJECTED"]


class InboxError(Exception):
    """A failure the inbox finds itself, never sent by a server: kept out of the wire's
    `medreq.protocol.errors` tree (no HTTP status, no close code); shown like one, by its ``message``."""

    default_message = "the inbox cannot go on"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class NotAPharmacy(InboxError):
    default_message = "this is a patient account: `medreq inbox` is for pharmacy accounts"


@dataclass(frozen=True)
class Link:
    """The live connection as the status bar shows it."""

    state: LinkState
    retry_at: float | None = None  # time.monotonic() of the next attempt
    error: str | None = None
    fatal: bool = False


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
        """Report the request read up to the last event seen (docs/protocol.md §4 `read`), over the
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

    # --- the thread -----------------------------------------------------------------------------

    async def send_message(self, request_id: int, text: str) -> dict[str, Any]:
        """Post a message on the request's thread, over the live socket (its ``ack``) or over
        REST when there is no live link; the message as the server stored it."""
        conn = self.conn
        if conn is not None and conn.connected:
            message = (await conn.send_message(request_id, text)).get("message")
        else:
            message = (await self._api().post_message(request_id, text)).get("message")
        return dict(message) if isinstance(message, dict) else {}

    async def typing(self, request_id: int, state: Literal["start", "stop"]) -> None:
        """Tell the patient this pharmacy is (no longer) typing; nothing when offline."""
        conn = self.conn
        if conn is not None and conn.connected:
            await conn.typing(request_id, state)

    # --- the live connection --------------------------------------------------------------------

    async def run_live(self, on_event: Callable[[Event], None], on_link: Callable[[Link], None]) -> None:
        """Keep a live connection until cancelled (or refused for good). The client retries
        every drop, the first connection too, and resumes after the last event seen so nothing
        is missed while the link was down; its ``on_state`` becomes the status bar's `Link`."""
        conn = self._api().connect(
            backoff=self.backoff,
            retry_first=True,
            on_state=lambda state, retry_in: on_link(_link(conn, state, retry_in)),
        )
        on_link(Link("connecting"))
        try:
            async with conn:
                self.conn = conn
                async for event in conn:
                    on_event(event)
        except MedreqError as exc:  # refused (4401/4403/4404), or the connection failed for good
            on_link(Link("offline", error=exc.message, fatal=True))
        finally:
            self.conn = None


def _link(conn: LiveConnection, state: ConnectionState, retry_in: float | None) -> Link:
    retry_at = None if retry_in is None else time.monotonic() + retry_in
    if state == "open":
        return Link("connected")
    if state == "reconnecting":
        return Link("reconnecting", retry_at=retry_at)
    if state == "connecting" and retry_in is not None:  # never got through yet: say why
        error = conn.last_error.message if conn.last_error else None
        return Link("offline", retry_at=retry_at, error=error)
    return Link("connecting" if state == "connecting" else "offline")
