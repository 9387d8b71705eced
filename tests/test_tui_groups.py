"""The inbox, live, when the patient asked several pharmacies at once (docs/protocol.md §3, groups): a
request the patient chose elsewhere shows cancelled with its reason, one it chose shows chosen."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

pytest.importorskip("textual")

from textual.widgets import Static

from medreq.tui import Backend, InboxApp

from .conftest import Account, ServerProcess, make_account
from .test_tui_inbox import FAST, inbox_ready, save_profile, until

pytestmark = pytest.mark.shared_server


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config"
    monkeypatch.setenv("MEDREQ_CONFIG_DIR", str(path))
    return path


def ask(server: ServerProcess, patient: Account, *pharmacies: Account) -> list[int]:
    """One request to each pharmacy, in one group; their ids in the order named."""
    fields = [("pharmacy", str(p.id)) for p in pharmacies] + [("quantity", "1"), ("medicine_name", "Insulin")]
    files = [(name, (None, value)) for name, value in fields]
    response = httpx.post(f"{server.url}/medicine/request/", headers=patient.headers, files=files)
    assert response.status_code == 201, response.text
    return [int(r["id"]) for r in response.json()["requests"]]


def post(server: ServerProcess, account: Account, path: str, data: dict[str, str] | None = None) -> None:
    response = httpx.post(f"{server.url}{path}", headers=account.headers, data=data)
    assert response.status_code == 200, response.text


async def test_the_inbox_shows_live_why_a_request_closed_or_that_it_was_chosen(server: ServerProcess) -> None:
    patient = make_account(server.url, "patient", "Bea")
    desk, rival = make_account(server.url, "pharmacy"), make_account(server.url, "pharmacy")
    save_profile(server, desk)
    app = InboxApp(Backend("desk", backoff=FAST))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await inbox_ready(pilot)
        lost, theirs = await asyncio.to_thread(ask, server, patient, desk, rival)
        await until(pilot, lambda: lost in screen.inbox.requests, what="the live request")
        detail = str(screen.query_one("#detail", Static).render())
        assert "Asked     2 pharmacies: the patient picks one" in detail
        await asyncio.to_thread(post, server, rival, "/medicine/response/", {"request_id": str(theirs), "status": "ACCEPTED"})  # fmt: skip
        await asyncio.to_thread(post, server, patient, f"/medicine/request/{theirs}/choose/")
        await until(pilot, lambda: screen.inbox.requests[lost].status == "CANCELLED", what="the cancel")
        assert screen.inbox.requests[lost].cancel_reason == "another_pharmacy_chosen"
        assert f"Request #{lost} was cancelled: the patient chose another pharmacy" in screen.notices
        detail = str(screen.query_one("#detail", Static).render())
        assert "Cancelled the patient chose another pharmacy" in detail

        won, other = await asyncio.to_thread(ask, server, patient, desk, rival)
        await until(pilot, lambda: won in screen.inbox.requests, what="the second request")
        await asyncio.to_thread(post, server, desk, "/medicine/response/", {"request_id": str(won), "status": "ACCEPTED", "price": "9.90"})  # fmt: skip
        await asyncio.to_thread(post, server, patient, f"/medicine/request/{won}/choose/")
        await until(pilot, lambda: screen.inbox.requests[won].chosen, what="the choice")
        assert f"Request #{won}: the patient chose your offer, prepare it" in screen.notices
        table = screen.query_one("#requests")
        assert table.get_row_at(0)[0].plain.lstrip("●") == str(won)
        assert table.get_row_at(0)[-1].plain == "Chosen"
        await pilot.press("up", "up")
        await until(
            pilot, lambda: "9.90" in str(screen.query_one("#detail", Static).render()), what="the offer"
        )
        detail = str(screen.query_one("#detail", Static).render())
        assert "Chosen    the patient chose your offer: prepare it" in detail
        assert other not in screen.inbox.requests  # the rival's request: never this pharmacy's
