"""Reading a JWT's times on the client, without verifying it (the server verifies)."""

from __future__ import annotations

import base64
import binascii
import json


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
