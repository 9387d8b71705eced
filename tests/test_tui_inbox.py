"""`medreq inbox` against a real server on loopback, driven by Textual's Pilot."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

pytest.importorskip("textual")

from textual.pilot import Pilot
from textual.widgets import Input, Static

from medreq.client import Backoff, Profile, ProfileStore
from medreq.tui import Backend, InboxApp, InboxScreen
from medreq.tui.screens import AnswerScreen, LoginScreen, WaitScreen

from .conftest import Account, ServerProcess
from .wire import open_ws, post_request, post_response, recv_json

pytestmark = pytest.mark.shared_server

FAST = Backoff(initial=0.1, factor=2.0, maximum=0.5, jitter=0.0)


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config"
    monkeypatch.setenv("MEDREQ_CONFIG_DIR", str(path))
    return path


def save_profile(server: ServerProcess, account: Account, name: str = "desk") -> None:
    ProfileStore().save(
        Profile(
            name=name,
            url=server.url,
            username=account.username,
            account_id=account.id,
            role=account.role,
            account_name=account.name,
            access=account.access,
            refresh=account.refresh,
        )
    )


async def until(pilot: Pilot[Any], check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Let the app run until ``check()`` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


async def inbox_ready(pilot: Pilot[Any]) -> InboxScreen:
    """The inbox screen once its socket is open."""
    app: InboxApp = pilot.app  # type: ignore[assignment]
    screen = await until(pilot, lambda: app.inbox_screen, what="the inbox screen")
    await until(pilot, lambda: screen.link.state == "connected", what="the live connection")
    return screen  # type: ignore[no-any-return]


async def next_news(ws: Any) -> dict[str, Any]:
    """The patient's next event other than a read receipt (the inbox reports what it shows) or
    the pharmacy's presence (its inbox connecting)."""
    while (event := await recv_json(ws))["type"] in ("read", "presence"):
        pass
    return event


async def create(server: ServerProcess, patient: Account, pharmacy: Account, **fields: Any) -> int:
    response = await asyncio.to_thread(post_request, server, patient, pharmacy=pharmacy.id, **fields)
    assert response.status_code == 201, response.text
    return int(response.json()["request_id"])


def form_text(form: AnswerScreen, widget_id: str) -> str:
    return str(form.query_one(widget_id, Static).render())


async def test_request_posted_by_patient_appears_live(
    server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes
) -> None:
    save_profile(server, pharmacy)
    older = await create(server, patient, pharmacy, medicine_name="Paracetamol")
    app = InboxApp(Backend("desk", backoff=FAST))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await inbox_ready(pilot)
        await until(pilot, lambda: older in screen.inbox.requests, what="the listed request")
        assert screen.bells == 0

        request_id = await create(
            server, patient, pharmacy, image=png_bytes, medicine_name="Amoxicillin", quantity=3
        )
        await until(pilot, lambda: request_id in screen.inbox.requests, what="the live request")
        table = screen.query_one("#requests")
        assert table.get_row_at(0)[0].plain == f"●{request_id}"  # newest first, highlighted
        assert table.get_row_at(1)[0].plain == str(older)
        assert [c.plain for c in table.get_row_at(0)[1:5]] == [
            patient.name,
            patient.phone,
            "3",
            "Amoxicillin",
        ]
        assert screen.bells == 1
        assert any(f"#{request_id}" in notice for notice in screen.notices)
        assert screen.inbox.counts()["PENDING"] == 2

        # the detail pane shows the prescription once it has been read
        await pilot.press("up", "up")
        await until(pilot, lambda: request_id in screen.media, what="the prescription")
        detail = str(screen.query_one("#detail", Static).render())
        assert "PNG 2×2 px" in detail
        assert "Amoxicillin × 3" in detail

        # search and filter narrow the table
        await pilot.press("slash", *"zzz")
        assert table.row_count == 0
        await pilot.press("backspace", "backspace", "backspace", "escape", "f", "f")
        assert screen.inbox.status_filter == "ACCEPTED"
        assert table.row_count == 0


async def test_accept_with_message_reaches_patient(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    save_profile(server, pharmacy)
    app = InboxApp(Backend("desk", backoff=FAST))
    async with app.run_test(size=(80, 24)) as pilot, open_ws(server, patient) as patient_ws:
        screen = await inbox_ready(pilot)
        request_id = await create(server, patient, pharmacy, medicine_name="Amoxicillin")
        await until(pilot, lambda: request_id in screen.inbox.requests)

        await pilot.press("a")  # the accept form, first quick reply filled in
        form = await until(pilot, lambda: screen.answer_form)
        await pilot.press("down")  # the second quick reply
        assert form.query_one("#message", Input).value == "Ready for pickup after 5 pm"
        await pilot.press("enter")
        await until(pilot, lambda: screen.answer_form is None, what="the ack")

        answer = await next_news(patient_ws)
        assert answer["type"] == "pharmacy_response"
        assert (answer["request_id"], answer["status"]) == (request_id, "ACCEPTED")
        assert answer["message"] == "Ready for pickup after 5 pm"
        assert screen.inbox.requests[request_id].status == "ACCEPTED"
        assert f"Answer sent: request #{request_id} accepted. {patient.name} is told now." in screen.notices

        await pilot.press("r")  # answered: no second answer
        assert screen.answer_form is None
        assert "already Accepted" in screen.notices[-1]


async def test_answer_with_audio_goes_over_rest(
    server: ServerProcess, patient: Account, pharmacy: Account, wav_bytes: bytes, tmp_path: Path
) -> None:
    save_profile(server, pharmacy)
    audio = tmp_path / "reply.wav"
    audio.write_bytes(wav_bytes)
    app = InboxApp(Backend("desk", backoff=FAST))
    async with app.run_test(size=(80, 24)) as pilot, open_ws(server, patient) as patient_ws:
        screen = await inbox_ready(pilot)
        request_id = await create(server, patient, pharmacy, medicine_name="Insulin")
        await until(pilot, lambda: request_id in screen.inbox.requests)
        await pilot.press("r")
        form = await until(pilot, lambda: screen.answer_form)
        form.query_one("#audio", Input).value = str(audio)
        await pilot.press("enter")
        await until(pilot, lambda: screen.answer_form is None, what="the REST answer")
        answer = await next_news(patient_ws)
        assert (answer["status"], answer["message"]) == ("REJECTED", "Out of stock")
        assert answer["audio_url"]  # the upload went over REST: a socket carries no audio
        assert f"Answer sent: request #{request_id} rejected. {patient.name} is told now." in screen.notices


async def test_answer_to_request_answered_elsewhere_shows_conflict(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    save_profile(server, pharmacy)
    app = InboxApp(Backend("desk", backoff=FAST))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await inbox_ready(pilot)
        request_id = await create(server, patient, pharmacy, medicine_name="Amoxicillin")
        await until(pilot, lambda: request_id in screen.inbox.requests)
        await pilot.press("a")
        form = await until(pilot, lambda: screen.answer_form)

        # another device of the same pharmacy answers first
        other = await asyncio.to_thread(
            post_response, server, pharmacy, request_id=request_id, status="REJECTED"
        )
        assert other.status_code == 200, other.text
        await pilot.press("enter")
        await until(pilot, lambda: "conflict" in form_text(form, "#answer-status"), what="the 409")
        assert f"request {request_id} is already REJECTED" in form_text(form, "#answer-status")
        assert screen.answer_form is form  # the form stays open to show the error

        # the other device's answer arrives live (request_updated) and is shown
        await until(pilot, lambda: screen.inbox.requests[request_id].status == "REJECTED")
        await until(pilot, lambda: "changed elsewhere" in form_text(form, "#answer-warning"))
        await pilot.press("escape")
        await until(pilot, lambda: screen.answer_form is None)
        assert screen.query_one("#requests").get_row_at(0)[6].plain == "Rejected"
        await pilot.press("a")
        assert screen.answer_form is None
        assert "already Rejected" in screen.notices[-1]


class FirstRetryLate(Backoff):
    """Wait 10 s before the first reconnect (restarting the server and posting a request take
    about 2 s, and up to 8 s on a loaded machine), then retry quickly: a request is posted
    while the inbox is reconnecting."""

    def delay(self, attempt: int) -> float:
        return 10.0 if attempt == 0 else 0.2


@pytest.mark.own_server
async def test_reconnect_after_restart_shows_every_request(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    save_profile(server, pharmacy)
    app = InboxApp(Backend("desk", backoff=FirstRetryLate()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await inbox_ready(pilot)
        before = await create(server, patient, pharmacy, medicine_name="Before")
        await until(pilot, lambda: before in screen.inbox.requests)

        await asyncio.to_thread(server.stop)
        await until(pilot, lambda: screen.link.state in ("reconnecting", "offline"), what="the drop")
        status = str(screen.query_one("#status", Static).render())
        assert "reconnecting in" in status or "offline" in status

        await asyncio.to_thread(server.start)
        during = await create(server, patient, pharmacy, medicine_name="During")
        posted_while_reconnecting = screen.link.state != "connected"
        await until(pilot, lambda: screen.link.state == "connected", timeout=15, what="the reconnect")
        after = await create(server, patient, pharmacy, medicine_name="After")

        await until(
            pilot,
            lambda: {before, during, after} <= set(screen.inbox.requests),
            what="every request",
        )
        table = screen.query_one("#requests")
        assert [table.get_row_at(i)[4].plain for i in range(3)] == ["After", "During", "Before"]
        assert posted_while_reconnecting, "the server took longer to restart than the first retry delay"


async def test_login_form_refuses_patient_then_accepts_pharmacy(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    app = InboxApp(Backend("new-desk", backoff=FAST))
    async with app.run_test(size=(80, 24)) as pilot:
        login = await until(pilot, lambda: isinstance(app.screen, LoginScreen) and app.screen)
        login.query_one("#url", Input).value = server.url
        login.query_one("#username", Input).value = patient.username
        login.query_one("#password", Input).value = patient.password
        await pilot.press("enter")
        status = login.query_one("#login-status", Static)
        await until(pilot, lambda: "patient account" in str(status.render()), what="the refusal")

        login.query_one("#username", Input).value = pharmacy.username
        login.query_one("#password", Input).value = pharmacy.password
        await pilot.press("enter")
        screen = await inbox_ready(pilot)
        assert screen.backend.account.id == pharmacy.id
    stored = ProfileStore().load("new-desk")
    assert stored is not None and stored.role == "pharmacy" and stored.access


async def test_open_prescription_without_viewer_saves_it(
    server: ServerProcess,
    patient: Account,
    pharmacy: Account,
    png_bytes: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("medreq.tui.media.shutil.which", lambda name: None)
    save_profile(server, pharmacy)
    app = InboxApp(Backend("desk", backoff=FAST))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await inbox_ready(pilot)
        request_id = await create(server, patient, pharmacy, image=png_bytes)
        await until(pilot, lambda: request_id in screen.inbox.requests)
        await pilot.press("o")
        notice = await until(pilot, lambda: [n for n in screen.notices if "no viewer found" in n])
        saved = Path(notice[0].split("Saved to ", 1)[1].split(" (", 1)[0])
        assert await asyncio.to_thread(saved.read_bytes) == png_bytes
        await asyncio.to_thread(saved.unlink)


async def test_looking_at_a_request_reports_it_read(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    save_profile(server, pharmacy)
    app = InboxApp(Backend("desk", backoff=FAST))
    async with app.run_test(size=(80, 24)) as pilot, open_ws(server, patient) as patient_ws:
        screen = await inbox_ready(pilot)
        request_id = await create(server, patient, pharmacy, medicine_name="Amoxicillin")
        await until(pilot, lambda: request_id in screen.inbox.requests)
        await until(pilot, lambda: screen.inbox.requests[request_id].unread == 0, what="the read report")
        receipt = await recv_json(patient_ws)
        assert (receipt["type"], receipt["request_id"], receipt["by"]) == ("read", request_id, pharmacy.id)
        listed = await asyncio.to_thread(
            httpx.get, f"{server.url}/medicine/request/{request_id}/", headers=pharmacy.headers, timeout=10
        )
        assert listed.json()["unread"] == 0


def thread_text(screen: InboxScreen) -> str:
    """The thread as it reads on screen, on one line."""
    console = Console(width=120, file=io.StringIO(), record=True)
    console.print(screen.query_one("#thread", Static).content)
    return " ".join(console.export_text().split())


async def next_of(ws: Any, kind: str) -> dict[str, Any]:
    while (event := await recv_json(ws))["type"] != kind:
        pass
    return event


async def test_the_thread_shows_and_sends_messages_live(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    """Like the console: the patient's message appears in the thread as it is sent, the
    pharmacist answers from the message box (m, type, Enter), the patient gets it, and the
    patient's typing and read receipt show beside it."""
    save_profile(server, pharmacy)
    app = InboxApp(Backend("desk", backoff=FAST))
    async with app.run_test(size=(80, 24)) as pilot, open_ws(server, patient) as patient_ws:
        screen = await inbox_ready(pilot)
        request_id = await create(server, patient, pharmacy, medicine_name="Amoxicillin")
        await until(pilot, lambda: screen.reply_to == request_id, what="the request selected")
        await until(pilot, lambda: "No messages yet" in thread_text(screen), what="the empty thread")

        asked = await asyncio.to_thread(
            httpx.post,
            f"{server.url}/medicine/request/{request_id}/messages/",
            json={"text": "Is it in stock?"},
            headers=patient.headers,
            timeout=10,
        )
        assert asked.status_code == 201, asked.text
        await until(pilot, lambda: "Is it in stock?" in thread_text(screen), what="the live message")
        assert f"Messages with {patient.name} {patient.name} ·" in thread_text(screen)

        await patient_ws.send(json.dumps({"type": "typing", "request_id": request_id, "state": "start"}))
        await until(
            pilot, lambda: f"{patient.name} is typing…" in thread_text(screen), what="the typing line"
        )

        await pilot.press("m", *"Yes, 2 boxes left")
        typing = await next_of(patient_ws, "typing")  # the patient sees us typing too
        assert (typing["request_id"], typing["from"], typing["state"]) == (request_id, pharmacy.id, "start")
        await pilot.press("enter")
        got = await next_of(patient_ws, "message")
        assert (got["request_id"], got["from"], got["text"]) == (request_id, pharmacy.id, "Yes, 2 boxes left")
        await until(pilot, lambda: "Message sent" in screen.notices, what="the toast")
        assert not any("acknowledged" in notice or "WebSocket" in notice for notice in screen.notices)
        assert "You ·" in thread_text(screen) and "Yes, 2 boxes left" in thread_text(screen)
        assert screen.query_one("#reply", Input).value == ""
        assert "Seen" not in thread_text(screen)

        # the patient reads it: "Seen" under our message
        await patient_ws.send(
            json.dumps({"type": "read", "id": 1, "request_id": request_id, "up_to_event_id": got["event_id"]})
        )
        await until(pilot, lambda: "Seen" in thread_text(screen), what="the read receipt")

        stored = await asyncio.to_thread(
            httpx.get, f"{server.url}/medicine/request/{request_id}/", headers=patient.headers, timeout=10
        )
        assert [(m["from"], m["text"]) for m in stored.json()["messages"]] == [
            (patient.id, "Is it in stock?"),
            (pharmacy.id, "Yes, 2 boxes left"),
        ]


async def test_a_draft_stays_with_its_patient_when_another_request_is_selected(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    save_profile(server, pharmacy)
    app = InboxApp(Backend("desk", backoff=FAST))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await inbox_ready(pilot)
        first = await create(server, patient, pharmacy, medicine_name="First")
        await until(pilot, lambda: screen.reply_to == first)
        second = await create(server, patient, pharmacy, medicine_name="Second")
        await until(pilot, lambda: second in screen.inbox.requests)
        await pilot.press("m", *"for the first one", "escape", "up")
        await until(pilot, lambda: screen.reply_to == second, what="the other request")
        assert screen.query_one("#reply", Input).value == ""  # not sent to the wrong patient
        await pilot.press("down")
        await until(pilot, lambda: screen.reply_to == first)
        assert screen.query_one("#reply", Input).value == "for the first one"


class CountingBackend(Backend):
    attempts = 0

    async def resume(self) -> Any:
        self.attempts += 1
        return await super().resume()


@pytest.mark.own_server
async def test_the_inbox_waits_for_an_unreachable_server_and_opens_when_it_answers(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    """No login form and no error pile-up: one status line that retries with backoff."""
    save_profile(server, pharmacy)
    await asyncio.to_thread(server.stop)
    backend = CountingBackend("desk", backoff=FAST)
    app = InboxApp(backend)
    async with app.run_test(size=(80, 24)) as pilot:
        waiting = await until(
            pilot, lambda: isinstance(app.screen, WaitScreen) and app.screen, what="the wait"
        )
        status = waiting.query_one("#wait-status", Static)
        await until(pilot, lambda: "cannot reach" in str(status.render()), what="the reason")
        line = str(status.render())
        assert "offline" in line and server.url in line and "(retry in" in line
        await until(pilot, lambda: backend.attempts >= 3, what="the retries")
        assert app.screen is waiting  # still the one line: no login form, no pile of errors

        await asyncio.to_thread(server.start)
        screen = await inbox_ready(pilot)
        request_id = await create(server, patient, pharmacy, medicine_name="After the wait")
        await until(pilot, lambda: request_id in screen.inbox.requests, what="a live request")
        assert not [n for n in screen.notices if "cannot reach" in n]
