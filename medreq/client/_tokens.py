"""Where the server is and which tokens this account holds: the state `MedreqClient` (REST)
and `LiveConnection` (WebSocket) share, so neither needs the other to reach it.

A JWT's times are read here without verifying it (the server verifies).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable

#: Called with (access, refresh) whenever the client gets new tokens.
TokenCallback = Callable[[str, str | None], None]
#: The (access, refresh) tokens saved where other processes of the same login save theirs.
StoredTokens = Callable[[], tuple[str | None, str | None]]

# refresh this many seconds before the access token's `exp`, rather than eat a 401
_EXPIRY_MARGIN = 10.0


class Session:
    """The server's URLs and the account's tokens.

    ``refresh`` is the call that gets new tokens (``POST /auth/refresh``, made by the REST
    client); `refresh_once` runs it at most once for any number of callers that found the same
    token stale, and `set_tokens` tells ``on_tokens`` about every new token.

    The server rotates refresh tokens: each works once, and one sent again revokes the whole
    sign-in (docs/security.md). So a refresh token is never sent twice from here: one refresh at a
    time per session, and, with ``stored_tokens`` (the CLI's profile file), tokens that another
    process of the same login saved after refreshing are taken up instead of refreshing again.
    """

    def __init__(
        self,
        base_url: str,
        refresh: Callable[[], Awaitable[object]],
        *,
        access: str | None = None,
        refresh_token: str | None = None,
        on_tokens: TokenCallback | None = None,
        stored_tokens: StoredTokens | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.access = access
        self.refresh_token = refresh_token
        self._refresh = refresh
        self._on_tokens = on_tokens
        self._stored_tokens = stored_tokens
        self._lock = asyncio.Lock()

    @property
    def ws_url(self) -> str:
        """The WebSocket base URL (``ws://`` or ``wss://``) of the server."""
        scheme, rest = self.base_url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest

    def set_tokens(self, access: str, refresh_token: str | None) -> None:
        self.access, self.refresh_token = access, refresh_token
        if self._on_tokens is not None:
            self._on_tokens(access, refresh_token)

    async def ensure_fresh(self) -> None:
        """Refresh the access token now if it is about to expire (per its ``exp``)."""
        _issued, expires = token_times(self.access)
        if expires is not None and self.refresh_token and expires - time.time() < _EXPIRY_MARGIN:
            await self.refresh_once(self.access)

    async def refresh_once(self, stale: str | None) -> None:
        """Refresh unless someone already replaced ``stale`` while this caller waited (in this
        process, or in another that saved newer tokens to ``stored_tokens``)."""
        async with self._lock:
            if self.access != stale:
                return
            if self._take_stored() and not self._expiring():
                return
            await self._refresh()

    def _take_stored(self) -> bool:
        """Take up stored tokens newer than ours: our refresh token was used up by their refresh."""
        if self._stored_tokens is None:
            return False
        access, refresh = self._stored_tokens()
        if not access or not refresh or refresh == self.refresh_token:
            return False
        theirs, ours = token_times(refresh)[0], token_times(self.refresh_token)[0]
        if theirs is None or (ours is not None and theirs < ours):
            return False  # older than ours: ours is the live one
        self.access, self.refresh_token = access, refresh
        return True

    def _expiring(self) -> bool:
        _issued, expires = token_times(self.access)
        return expires is not None and expires - time.time() < _EXPIRY_MARGIN


def token_times(token: str | None) -> tuple[float | None, float | None]:
    """``iat`` and ``exp`` of a JWT (None for each that is missing or unreadable)."""
    if not token or token.count(".") != 2:
        return None, None
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return None, None
    if not isinstance(claims, dict):
        return None, None
    values = [claims.get(name) for name in ("iat", "exp")]
    iat, exp = (float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None for v in values)
    return iat, exp
