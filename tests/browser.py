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
    # on a desktop the open request is a panel as tall as the window that scrolls on its own:
    # a window tall enough to show all of it (and at least DESKTOP's) makes the whole page
    page.set_viewport_size(DESKTOP)
    tall = page.evaluate(
        """() => Math.max(0, ...[...document.querySelectorAll(".col-detail")]
            .filter((panel) => panel.getClientRects().length)
            .map((panel) => Math.ceil(panel.getBoundingClientRect().top + window.scrollY + panel.scrollHeight + 24)))"""
    )
    page.set_viewport_size({**DESKTOP, "height": max(DESKTOP["height"], int(tall))})
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


# --- layout audits: what a sighted keyboard user would trip over ---------------------------------

_DESCRIBE = """
const describe = (n) => {
  if (!n) return "nothing";
  const cls = typeof n.className === "string" && n.className.trim() ? "." + n.className.trim().split(/\\s+/).join(".") : "";
  return `${n.tagName.toLowerCase()}${n.id ? "#" + n.id : ""}${cls}`;
};
"""

# Every element that is `hidden`, or inside one, must have no box (a stylesheet's `display`
# rule overriding the attribute shows what the page meant to hide).
_HIDDEN_BUT_SHOWN = (
    "() => {"
    + _DESCRIBE
    + """
  const found = [];
  for (const hidden of document.querySelectorAll("[hidden]")) {
    for (const node of [hidden, ...hidden.querySelectorAll("*")]) {
      if (node.getClientRects().length) found.push(`${describe(node)} is displayed inside hidden ${describe(hidden)}`);
    }
  }
  return found;
}"""
)

# The element's top edge must be in the viewport and not under anything else (the sticky top bar):
# document.elementFromPoint a few pixels inside its top-left corner must be it or inside it.
_COVERED = (
    "(el) => {"
    + _DESCRIBE
    + """
  const r = el.getBoundingClientRect();
  if (!r.width && !r.height) return `${describe(el)} has no box`;
  const x = r.left + Math.min(12, r.width / 2);
  const y = r.top + Math.min(4, r.height / 2);
  if (y < 0 || y >= innerHeight || x < 0 || x >= innerWidth) return `${describe(el)} is out of view (top at ${Math.round(r.top)})`;
  const hit = document.elementFromPoint(x, y);
  if (hit && (hit === el || el.contains(hit))) return null;
  return `${describe(el)} (top at ${Math.round(r.top)}) is covered by ${describe(hit)}`;
}"""
)

# The focused element's outline: drawn (not `none`, at least 2px) in a colour of at least 3:1
# against the surface it is drawn on (the first opaque background behind the element).
_RING = (
    "(el) => {"
    + _DESCRIBE
    + """
  const rgba = (text) => (text.match(/[\\d.]+/g) || []).map(Number).concat([1]).slice(0, 4);
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const style = getComputedStyle(el);
  if (style.outlineStyle === "none" || parseFloat(style.outlineWidth) < 2) return `${describe(el)} shows no focus outline`;
  const ring = rgba(style.outlineColor);
  let node = el.parentElement;
  let surface = [255, 255, 255, 1];
  while (node) {
    const bg = rgba(getComputedStyle(node).backgroundColor);
    if (bg[3] > 0) { surface = bg; break; }
    node = node.parentElement;
  }
  const [hi, lo] = [lum(ring), lum(surface)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  return ratio >= 3 ? null : `${describe(el)}'s focus ring ${style.outlineColor} on ${getComputedStyle(node || document.body).backgroundColor} is ${ratio.toFixed(2)}:1`;
}"""
)


def hidden_but_shown(page: Any) -> list[str]:
    """Elements that are `hidden` (or inside one) yet have a box on the page."""
    return list(page.evaluate(_HIDDEN_BUT_SHOWN))


def covered(locator: Any) -> str | None:
    """Why the element's top is not seen (out of view, or under the top bar), or None."""
    found = locator.evaluate(_COVERED)
    return None if found is None else str(found)


def focused_covered(page: Any) -> str | None:
    """`covered` for whatever has focus now (None when nothing does)."""
    found = page.evaluate(
        f"() => {{ const a = document.activeElement; return a && a !== document.body ? ({_COVERED})(a) : null; }}"
    )
    return None if found is None else str(found)


def tab_through(page: Any, limit: int = 80, first: str = ".skip") -> list[str]:
    """Tab through the page from its first stop (`first`, the skip link); every stop must show a
    ring of >= 3:1 and be in view, not under the top bar. Returns the problems, one line each."""
    page.keyboard.press("Shift")  # a key pressed: focus from here on is shown as from the keyboard
    page.evaluate(
        "(first) => { window.scrollTo(0, 0); window.__tabSeen = new Set(); document.querySelector(first).focus(); }",
        first,
    )
    problems: list[str] = []
    for step in range(limit):
        if step:
            page.keyboard.press("Tab")
        fresh = page.evaluate(
            "() => { const a = document.activeElement; if (!a || a === document.body || window.__tabSeen.has(a)) return false;"
            " window.__tabSeen.add(a); return true; }"
        )
        if not fresh:
            break
        for found in (page.evaluate(f"() => ({_RING})(document.activeElement)"), focused_covered(page)):
            if found:
                problems.append(str(found))
    return problems
