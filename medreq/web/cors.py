"""Browsers on other origins (docs/protocol.md §1): CORS for HTTP, an `Origin` check for WebSockets.

With no origins configured (the default) nothing is added: browsers then allow only pages
served by this server itself. With a list, Starlette's `CORSMiddleware` answers preflights
and marks every HTTP response (REST, media, errors) readable by those origins; it wraps
the whole Starlette app, outside `ServerErrorMiddleware`, so even a 500 carries the headers
and the page can read the error body. Tokens travel in `Authorization`, never in cookies,
so credentials are never allowed, which is what makes `*` safe to offer.

WebSockets are dispatched before the middleware stack (see `app.MedreqApp`), so their
`Origin` is checked here, by `websocket_origin_allowed`: with a list configured, a handshake
from a page outside it (and not this server's own) is closed with 4403.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Scope

ALLOWED_HEADERS = ("Authorization", "Idempotency-Key", "Content-Type")
ALLOWED_METHODS = ("GET", "POST", "PUT", "DELETE")
EXPOSED_HEADERS = ("Retry-After",)
PREFLIGHT_MAX_AGE = 600


def with_cors(app: ASGIApp, origins: tuple[str, ...]) -> ASGIApp:
    """`app` behind CORS for `origins` (unchanged when there are none)."""
    if not origins:
        return app
    return CORSMiddleware(
        app,
        allow_origins=origins,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        allow_credentials=False,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE,
    )


def websocket_origin_allowed(scope: Scope, origins: tuple[str, ...]) -> bool:
    """Whether a WebSocket handshake may proceed: always without a list, a browser page
    served by this same host, or one whose `Origin` is in the list. Clients that send
    no `Origin` (not browsers: CLI, mobile apps) are not subject to it."""
    if not origins or "*" in origins:
        return True
    headers = Headers(scope=scope)
    origin = headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/").lower()
    if origin in origins:
        return True
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()
