"""One set of unread events, `medreq.protocol.UNREAD`: what storage counts in `<Request>.unread`,
what the service pushes to devices, what the web console counts live (it reads the set from its
page) and what its service worker has words for."""

from __future__ import annotations

import re

import httpx
import pytest

from medreq.protocol import EVENT_TYPES, UNREAD
from medreq.service import events
from medreq.storage import queries
from medreq.web.rest import pages

from .conftest import ServerProcess

pytestmark = pytest.mark.shared_server

APP_JS = (pages.STATIC / "app.js").read_text(encoding="utf-8")


def test_unread_events_are_events_of_the_protocol() -> None:
    assert UNREAD.issubset(EVENT_TYPES)
    assert "request_updated" not in UNREAD and "read" not in UNREAD  # an account's own echoes and receipts


def test_storage_and_service_use_the_protocols_set() -> None:
    assert set(queries.UNREAD_TYPES) == UNREAD
    assert len(queries.UNREAD_TYPES) == len(UNREAD)
    assert events.NOTIFYING is UNREAD


def test_console_page_carries_the_protocols_set(server: ServerProcess) -> None:
    page = httpx.get(f"{server.url}/", timeout=10).text
    [content] = re.findall(r'<meta name="medreq-unread" content="([^"]*)">', page)
    assert set(content.split(" ")) == UNREAD
    # and the console takes its set from there, not from a list of its own
    assert 'document.querySelector(\'meta[name="medreq-unread"]\')' in APP_JS
    assert not any(all(f'"{kind}"' in line for kind in UNREAD) for line in APP_JS.splitlines())


def test_service_worker_has_words_for_every_pushed_event(server: ServerProcess) -> None:
    worker = httpx.get(f"{server.url}/sw.js", timeout=10).text
    table = re.search(r"^const TEXT = \{\n(.*?)^\};", worker, flags=re.M | re.S)
    assert table is not None
    assert set(re.findall(r"^  (\w+): ", table.group(1), flags=re.M)) == UNREAD


def test_a_console_page_without_the_tag_is_refused() -> None:
    with pytest.raises(ValueError, match="medreq-unread"):
        pages.console_page("<!doctype html><title>medreq console</title>")
