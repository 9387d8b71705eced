"""Where a client reached the server: the base of the media links it is sent.

Only the `Host` header counts for now. `X-Forwarded-Host`/`-Proto` are not read, because any
client can send them: they are to be honoured only from proxies the operator names (a
`trusted_proxies` setting), and `client_base_url` is the one place to add that.
"""

from __future__ import annotations

import re

from starlette.types import Scope

# a DNS name or IPv4 address, or a bracketed IPv6 address, then an optional port: nothing that
# could break out of a URL (no '/', '@', '?', '#', spaces or quotes)
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$"
)


def client_base_url(scope: Scope) -> str | None:
    """``scheme://host[:port]`` the client used (from the `Host` header), or None if unusable."""
    host = None
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1").strip()
            break
    if not host or len(host) > 261 or not _HOST.match(host):
        return None
    secure = scope.get("scheme") in ("https", "wss")
    return f"{'https' if secure else 'http'}://{host}"
