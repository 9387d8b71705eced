"""The pages for people: the console at `/` and `/docs`, served from the package, offline."""

from __future__ import annotations

import re

import httpx

from .conftest import ServerProcess
from .wire import error_code


def test_console_page_allows_only_its_own_scripts(server: ServerProcess) -> None:
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert f"ws://127.0.0.1:{server.port}" in policy
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, flags=re.S)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere


def test_console_files_are_served_with_their_types(server: ServerProcess) -> None:
    for name, kind in [
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
        ("favicon.svg", "image/svg"),
    ]:
        answer = httpx.get(f"{server.url}/static/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].startswith(kind), name
    for path in ("/static/nothing.js", "/static/../config.py", "/static/%2e%2e/config.py"):
        missing = httpx.get(f"{server.url}{path}")
        assert missing.status_code == 404, path
        assert error_code(missing) == "not_found"
    assert error_code(httpx.post(f"{server.url}/")) == "method_not_allowed"


def test_docs_are_served_offline_from_bundled_swagger_ui(server: ServerProcess) -> None:
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200
    assert "https://" not in docs.text and "http://" not in docs.text
    assert 'href="/asyncapi.json"' in docs.text  # linked now that the server publishes one
    assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', docs.text)
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(assets)
    for asset in assets:
        assert httpx.get(f"{server.url}{asset}").status_code == 200, asset
    assert "script-src 'self'" in docs.headers["content-security-policy"]


def test_docs_link_the_protocol_reference_rendered_as_html(server: ServerProcess) -> None:
    docs = httpx.get(f"{server.url}/docs")
    assert 'href="/docs/protocol"' in docs.text
    page = httpx.get(f"{server.url}/docs/protocol")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'") and "script-src" not in policy
    assert "<script" not in page.text
    assert '<h1 id="the-medreq-protocol">The medreq protocol</h1>' in page.text
    assert "<table>" in page.text and "<code>POST /medicine/request/</code>" in page.text
    assert "Bearer &lt;access token&gt;" in page.text  # the document's <…> placeholders are text
    # the document's own links to its sections land on a heading
    anchors = set(re.findall(r' id="([^"]+)"', page.text))
    targets = set(re.findall(r'href="#([^"]+)"', page.text))
    assert targets and targets <= anchors, targets - anchors
    assert {"errors", "6-the-main-flow-three-ways", "close-codes"} <= anchors


def test_markdown_rendering_escapes_html_and_drops_unsafe_links() -> None:
    from medreq.web.rest.pages import render_markdown

    shown = render_markdown(
        "# Errors\n\n## Errors\n\n<script>alert(1)</script>\n\n"
        "[x](javascript:alert(1)) [ok](#errors) <img src=x onerror=alert(1)>\n\n"
        "| a | b |\n|---|---|\n| `<b>` | 2 |\n"
    )
    assert "<script" not in shown and "&lt;script&gt;" in shown
    assert "[x](javascript:alert(1))" in shown  # left as text, never a link
    assert 'href="javascript' not in shown and "<img" not in shown
    assert '<h1 id="errors">' in shown and '<h2 id="errors-1">' in shown  # as GitHub numbers repeats
    assert "<td><code>&lt;b&gt;</code></td>" in shown
