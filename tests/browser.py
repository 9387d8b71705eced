"""Helpers for the browser tests: Debian's Chromium driven by Playwright, screenshots, axe-core.

Browser downloads are impossible here, so Playwright drives the system's `/usr/bin/chromium`
(`.ci/run` installs the Debian package when it is missing). Without it the browser tests skip
with the reason, except under CI=true, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import IN_CI

CHROMIUM = os.environ.get("MEDREQ_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if IN_CI:
        pytest.fail(f"{reason}; required under CI=true")
    pytest.skip(reason)


def launch_browser() -> Iterator[Any]:
    """One Chromium for a test module (a launch costs about a second)."""
    require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: MEDREQ_TEST_ARTIFACTS, else the session's pytest temp dir."""
    configured = os.environ.get("MEDREQ_TEST_ARTIFACTS")
    path = Path(configured) if configured else tmp_path_factory.getbasetemp() / "browser-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shoot(page: Any, directory: Path, name: str) -> None:
    """Screenshots of the page as it is now: desktop, then phone-sized (390×844)."""
    size = page.viewport_size or DESKTOP
    # the page as a person first sees it: scrolled to the top, no passing toast
    page.evaluate(
        "() => { window.scrollTo(0, 0); const t = document.getElementById('toast'); if (t) t.hidden = true; }"
    )
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(directory / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(directory / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(size)


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def prescription_png(width: int = 320, height: int = 200) -> bytes:
    """A PNG that looks a little like a prescription: a white page with grey lines of 'text'."""
    rows = []
    for y in range(height):
        line = (y // 14) % 2 == 1 and 20 < y < height - 20
        row = bytearray()
        for x in range(width):
            ink = line and 24 < x < width - 24 - (y * 37 % 90)
            row += bytes((90, 98, 110) if ink else (250, 251, 252))
        rows.append(b"\x00" + bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


# Spies installed before any page script runs: desktop notifications shown and tones played.
ALERT_SPIES = """
window.__notifications = [];
window.__tones = 0;
if (window.Notification) {
  const Real = window.Notification;
  window.Notification = new Proxy(Real, {
    construct(target, args) { window.__notifications.push(args[0]); return new target(...args); },
    get(target, key) { const value = Reflect.get(target, key, target); return typeof value === "function" ? value.bind(target) : value; },
  });
}
if (window.OscillatorNode) {
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) { window.__tones += 1; return start.apply(this, args); };
}
"""
