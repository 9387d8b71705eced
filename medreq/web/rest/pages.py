"""Pages for people: the web console at `/`, the API docs at `/docs` and the protocol
reference at `/docs/protocol`, all offline.

Everything a page loads is served from here: the console's own files from `static/`, and
Swagger UI from the `swagger-ui-bundle-v2` package's bundled copy (no CDN, so `/docs`
works on a machine with no internet). The console handles medical data, so its page
carries a Content-Security-Policy that allows scripts from this server only (no inline
script, no eval) and connections only back to this server.

`/docs/protocol` is docs/protocol.md rendered to HTML by markdown-it-py (CommonMark with
tables; rich's own dependency), with raw HTML escaped, not passed through, and its link
validation (no `javascript:` and the like); the page runs no script at all. Headings get
GitHub's anchors, so the document's own `#…` links work. It is read from the source tree
beside the package (a checkout, or an editable install); where there is none, `/docs` does
not link it and the route answers 404.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope
from swagger_ui_bundle import swagger_ui_path

from ...protocol import UNREAD

STATIC = Path(__file__).parent.parent / "static"
UNREAD_META = '<meta name="medreq-unread" content="">'


def console_page(page: str) -> str:
    """index.html with what the console takes from the protocol filled in: the events a request's
    `unread` counts (`UNREAD`, in its `medreq-unread` meta tag; the page may run no inline script),
    so the console counts live what the server counts stored."""
    if UNREAD_META not in page:
        raise ValueError(f"the console page lacks {UNREAD_META}")
    unread = " ".join(sorted(UNREAD))
    return page.replace(UNREAD_META, f'<meta name="medreq-unread" content="{unread}">')


# read and filled once: no disk I/O nor work per visit
CONSOLE_PAGE = console_page((STATIC / "index.html").read_text(encoding="utf-8"))
SERVICE_WORKER = (STATIC / "sw.js").read_text(encoding="utf-8")
_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def console_policy(request: Request) -> str:
    """CSP for the console: itself, WebSockets back to this host, media from the public URL."""
    media = _origin(request.app.state.settings.public_url)
    host = request.headers.get("host", "")
    sockets = ""
    if _HOST.match(host):
        scheme = "wss" if request.url.scheme == "https" else "ws"
        sockets = f" {scheme}://{host}"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' blob: data: {media}".rstrip(),
            f"media-src 'self' blob: {media}".rstrip(),
            f"connect-src 'self'{sockets} {media}".rstrip(),
            "manifest-src 'self'",
            "worker-src 'self'",  # sw.js: Web Push notifications while no tab is open
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


async def console(request: Request) -> Response:
    return HTMLResponse(
        CONSOLE_PAGE, headers={**COMMON_HEADERS, "Content-Security-Policy": console_policy(request)}
    )


async def service_worker(request: Request) -> Response:
    """The console's service worker, served at the root so its scope is the whole console.

    It fetches nothing, so its own policy allows nothing; browsers recheck it on every visit
    (no-cache) so a fixed worker reaches everyone at once."""
    return Response(
        SERVICE_WORKER,
        media_type="text/javascript",
        headers={**COMMON_HEADERS, "Content-Security-Policy": "default-src 'none'"},
    )


DOCS_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        # Swagger UI sets style attributes from its scripts (measured: it renders unstyled parts
        # otherwise); styles cannot run code, scripts stay 'self' only.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>medreq API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="stylesheet" href="/static/docs.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head><body>
<header class="docs-links"><strong>medreq API</strong>
<a href="/openapi.json">OpenAPI description</a>{asyncapi}{protocol}
<a href="/">Web console</a></header>
<main id="swagger-ui"><p>Loading the API description&hellip; The raw document is at
<a href="/openapi.json">/openapi.json</a>.</p></main>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body></html>"""


def _has_route(request: Request, path: str) -> bool:
    return any(getattr(route, "path", None) == path for route in request.app.routes)


async def docs(request: Request) -> Response:
    asyncapi = ""
    if _has_route(request, "/asyncapi.json"):
        asyncapi = '\n<a href="/asyncapi.json">AsyncAPI description (WebSockets)</a>'
    protocol = '\n<a href="/docs/protocol">Protocol reference</a>' if PROTOCOL_MD.is_file() else ""
    return HTMLResponse(
        DOCS_PAGE.format(asyncapi=asyncapi, protocol=protocol),
        headers={**COMMON_HEADERS, "Content-Security-Policy": DOCS_POLICY},
    )


PROTOCOL_MD = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
PROTOCOL_POLICY = "; ".join(
    [
        "default-src 'none'",  # no script of any kind
        "style-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
PROTOCOL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>medreq protocol</title>
<link rel="stylesheet" href="/static/docs.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head><body>
<header class="docs-links"><strong>medreq protocol</strong>
<a href="/docs">API reference</a>
<a href="/openapi.json">OpenAPI description</a>
<a href="/">Web console</a></header>
<main class="protocol">
{body}
</main>
</body></html>"""


def render_markdown(text: str) -> str:
    """Markdown to HTML: CommonMark and tables, raw HTML escaped, unsafe links dropped by
    markdown-it's own validation, headings with GitHub's anchor ids."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    seen: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            slug = _slug(tokens[index + 1].children or [])
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            token.attrSet("id", f"{slug}-{count}" if count else slug)
    return str(md.renderer.render(tokens, md.options, {}))


def _slug(children: list[Any]) -> str:
    """GitHub's heading anchor: the heading's text, lower case, punctuation dropped, spaces to -."""
    text = "".join(child.content for child in children if child.type in ("text", "code_inline"))
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@functools.cache
def _protocol_html() -> str:
    return PROTOCOL_PAGE.format(body=render_markdown(PROTOCOL_MD.read_text(encoding="utf-8")))


async def protocol(request: Request) -> Response:
    """docs/protocol.md as a page (rendered once, on first visit)."""
    if not PROTOCOL_MD.is_file():
        from ...protocol.errors import NotFound

        raise NotFound("the protocol reference is not installed with this server (see docs/protocol.md)")
    return HTMLResponse(
        _protocol_html(), headers={**COMMON_HEADERS, "Content-Security-Policy": PROTOCOL_POLICY}
    )


STATIC_POLICY = "default-src 'none'; frame-ancestors 'none'"


class ConsoleFiles(StaticFiles):
    """The console's files (`/static/…`), each with the pages' common headers and a policy that
    allows nothing to a file opened on its own (an SVG, a script shown as text), and no frame.
    The console page itself is only `/`: `/static/index.html` redirects there, so it never runs
    without the console's policy or where another site could frame it."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if PurePosixPath(path).name == "index.html":
            return RedirectResponse("/", status_code=308, headers=COMMON_HEADERS)
        response = await super().get_response(path, scope)
        for name, value in {**COMMON_HEADERS, "Content-Security-Policy": STATIC_POLICY}.items():
            response.headers.setdefault(name, value)
        return response


routes: list[BaseRoute] = [
    Route("/", console, methods=["GET"]),
    Route("/sw.js", service_worker, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    Route("/docs/protocol", protocol, methods=["GET"]),
    Mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui"),
    Mount("/static", ConsoleFiles(directory=STATIC), name="static"),
]
