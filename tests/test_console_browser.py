"""The web console at `/`, in Chromium: both sides end to end, a server killed and restarted
mid-session, and axe-core on every screen (with screenshots, desktop and phone-sized)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .browser import ALERT_SPIES, artifacts_dir, launch_browser, prescription_png, serious_violations, shoot
from .conftest import ServerProcess
from .operator_accounts import operator_account

pytestmark = pytest.mark.timeout(180)

PATIENT_PASSWORD = "alice-pass-1"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_dir(tmp_path_factory)


@pytest.fixture
def expect() -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    return expect


def new_page(browser: Any, server: ServerProcess, *, pharmacy: bool = False) -> Any:
    context = browser.new_context(
        viewport={"width": 1280, "height": 860},
        permissions=["notifications", "microphone"] if pharmacy else [],
    )
    context.add_init_script(ALERT_SPIES)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.sockets = sockets
    page.goto(server.url + "/")
    return page


def sign_in(page: Any, username: str, password: str) -> None:
    form = page.locator("#signin-form")
    form.get_by_label("Username").fill(username)
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name="Sign in").click()


def register_patient(page: Any, username: str, *, navigate: bool = True) -> None:
    if navigate:
        page.get_by_role("link", name="Create one").click()
    form = page.locator("#register-form")
    form.get_by_label("a patient").check()
    form.get_by_label("Your name").fill("Alice Patient")
    form.get_by_label("Phone").fill("+1 555 0100")
    form.get_by_label("Username").fill(username)
    form.get_by_label("Password").fill(PATIENT_PASSWORD)
    form.get_by_role("button", name="Create account").click()


def thread_texts(page: Any) -> list[str]:
    return list(page.locator(".thread li:not(.empty) .text").all_inner_texts())


def test_patient_and_pharmacy_end_to_end_across_a_server_kill(
    browser: Any, server: ServerProcess, artifacts: Path, expect: Any
) -> None:
    shop = operator_account(server, "pharmacy", "LifeCare Pharmacy")
    pharmacy = new_page(browser, server, pharmacy=True)
    sign_in(pharmacy, shop.username, shop.password)
    expect(pharmacy.locator("#incoming-title")).to_be_visible()
    expect(pharmacy.locator("#conn")).to_have_attribute("data-state", "live")

    patient = new_page(browser, server)
    receipts: list[str] = []  # the `read` frames the patient's page sends
    patient.on(
        "websocket",
        lambda ws: ws.on("framesent", lambda frame: receipts.append(frame) if '"type":"read"' in str(frame) else None),
    )
    register_patient(patient, "alice")
    expect(patient.locator("#new-title")).to_be_visible()
    expect(patient.locator("#conn")).to_have_attribute("data-state", "live")

    # the patient sends a request with a prescription image, previewed first
    form = patient.locator("#new-request")
    form.get_by_label("LifeCare Pharmacy · online").check()  # presence (§6)
    form.get_by_label("Medicine name").fill("Amoxicillin 500mg")
    form.get_by_label("Quantity").fill("2")
    form.get_by_label("Prescription image").set_input_files(
        {"name": "prescription.png", "mimeType": "image/png", "buffer": prescription_png()}
    )
    expect(patient.locator("#nr-preview")).to_be_visible()
    form.get_by_label("Note").fill("Twice a day, please")
    shoot(patient, artifacts, "patient-new-request")
    form.get_by_role("button", name="Send request").click()
    expect(patient.locator("#p-list .req")).to_have_count(1)
    expect(patient.locator("#p-list .badge")).to_have_text("Pending")

    # the pharmacy sees it live, with a chime and a desktop notification
    incoming = pharmacy.locator("#ph-list .req")
    expect(incoming).to_have_count(1)
    expect(incoming).to_contain_text("Amoxicillin 500mg")
    assert pharmacy.evaluate("window.__notifications") == ["New request from Alice Patient"]
    assert pharmacy.evaluate("window.__tones") >= 2
    incoming.click()
    image = pharmacy.get_by_role("img", name="Prescription for request 1")
    expect(image).to_be_visible()
    loaded = "img => img.complete ? img.naturalWidth : new Promise(r => { img.onload = () => r(img.naturalWidth); })"
    assert image.evaluate(loaded) == 320

    patient.locator("#p-list .req").click()
    expect(patient.get_by_text("Waiting for the pharmacy's answer…")).to_be_visible()

    # a message each way, with typing shown and a read receipt
    pharmacy.get_by_label("Message", exact=True).press_sequentially("Generic is fine?", delay=20)
    expect(patient.get_by_text("LifeCare Pharmacy is typing…")).to_be_visible()
    pharmacy.get_by_role("button", name="Send", exact=True).click()
    expect(patient.locator(".thread li.theirs .text")).to_have_text(["Generic is fine?"])
    expect(patient.get_by_text("LifeCare Pharmacy is typing…")).to_be_hidden()
    expect(pharmacy.locator(".thread li.mine .seen")).to_have_count(1)  # the patient read it
    patient.get_by_label("Message", exact=True).fill("Yes, thank you")
    patient.get_by_role("button", name="Send", exact=True).click()
    expect(pharmacy.locator(".thread li.theirs .text")).to_have_text(["Yes, thank you"])
    # a receipt per message read, not one answering each `read` event of its own (a loop that
    # ran until the rate limit refused the patient's message)
    assert len(receipts) <= 5, receipts

    # the pharmacy records a voice reply (Chromium's fake microphone) and accepts
    pharmacy.get_by_label("Message to the patient").fill("Ready for pickup after 5 pm")
    pharmacy.get_by_role("button", name="Record a voice message").click()
    expect(pharmacy.get_by_role("button", name="Stop recording")).to_be_visible()
    pharmacy.wait_for_timeout(1200)  # a second of fake-microphone audio to record
    pharmacy.get_by_role("button", name="Stop recording").click()
    expect(pharmacy.get_by_label("Your recorded voice message")).to_be_visible()
    shoot(pharmacy, artifacts, "pharmacy-answer")
    pharmacy.get_by_role("button", name="Accept").click()
    expect(pharmacy.locator("#ph-list .badge")).to_have_text("Accepted")

    # the patient sees the answer live and its audio can play through
    expect(patient.locator("#p-list .badge")).to_have_text("Accepted")
    expect(patient.locator(".answer-text")).to_have_text("Ready for pickup after 5 pm")
    audio = patient.locator("audio.voice")
    expect(audio).to_have_count(1)
    assert patient.evaluate(
        """() => new Promise((resolve) => {
            const audio = document.querySelector("audio.voice");
            if (audio.readyState >= 4) return resolve(true);
            audio.addEventListener("canplaythrough", () => resolve(true), { once: true });
            audio.addEventListener("error", () => resolve(audio.error && audio.error.message), { once: true });
        })"""
    )
    shoot(patient, artifacts, "patient-answer")
    shoot(pharmacy, artifacts, "pharmacy-request")

    # kill -9 mid-session: both pages say so, then catch up with nothing lost or doubled
    opened = {page: len(page.sockets) for page in (patient, pharmacy)}
    server.kill()
    for page in (patient, pharmacy):
        expect(page.locator("#conn")).to_have_text("Reconnecting…")
    server.start()
    request_id = 1
    for account, text in ((shop, "Bring your card"), (None, "See you at 5")):
        token = account.access if account else _token(server, "alice", PATIENT_PASSWORD)
        sent = httpx.post(
            f"{server.url}/medicine/request/{request_id}/messages/",
            json={"text": text},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert sent.status_code == 201, sent.text
    # what each missed while it was away: the other party's message (a sender's own other
    # devices get no `message` event, docs/protocol.md §4), then one more sent live from each page
    seen = {
        "patient": ["Generic is fine?", "Yes, thank you", "Bring your card"],
        "pharmacy": ["Generic is fine?", "Yes, thank you", "See you at 5"],
    }
    for name, page in (("patient", patient), ("pharmacy", pharmacy)):
        expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=30_000)
        expect(page.locator(".thread li .text")).to_have_text(seen[name])
    patient.get_by_label("Message", exact=True).fill("On my way")
    patient.get_by_role("button", name="Send", exact=True).click()
    for page in (patient, pharmacy):
        expect(page.locator(".thread li .text").last).to_have_text("On my way")
    for name, page in (("patient", patient), ("pharmacy", pharmacy)):
        page.wait_for_timeout(300)  # anything doubled would have arrived by now
        assert thread_texts(page) == [*seen[name], "On my way"]
        assert page.locator(".req-list .req").count() == 1
        assert page.js_errors == []
        # every socket since the kill resumed where the page had got to
        assert len(page.sockets) > opened[page]
        assert all(re.search(r"[?&]after=\d+", url) for url in page.sockets[opened[page] :])

    # signing out revokes the session and returns to the sign-in screen
    patient.get_by_role("button", name="Sign out").click()
    expect(patient.locator("#signin-title")).to_be_visible()
    assert patient.evaluate("sessionStorage.getItem('medreq.session')") is None


def _token(server: ServerProcess, username: str, password: str) -> str:
    body = httpx.post(f"{server.url}/auth/token", json={"username": username, "password": password}).json()
    return str(body["access"])


def test_every_console_screen_passes_axe_and_is_photographed(
    browser: Any, server: ServerProcess, artifacts: Path, expect: Any
) -> None:
    shop = operator_account(server, "pharmacy", "LifeCare Pharmacy")
    problems: dict[str, list[str]] = {}

    def check(page: Any, name: str) -> None:
        problems[name] = serious_violations(page)
        shoot(page, artifacts, name)

    page = new_page(browser, server)
    expect(page.locator("#signin-title")).to_be_visible()
    check(page, "sign-in")
    page.locator("#signin-form").get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-username-error")).to_have_text("Enter your username.")
    expect(page.locator("#signin-password-error")).to_have_text("Enter your password.")
    check(page, "sign-in-error")

    page.get_by_role("link", name="Create one").click()
    page.locator("#register-form").get_by_label("a pharmacy").check()
    expect(page.get_by_text("Pharmacy name")).to_be_visible()
    check(page, "register")
    page.locator("#register-form").get_by_label("a patient").check()
    page.locator("#register-form").get_by_label("Username").fill("x")
    page.locator("#register-form").get_by_label("Password").fill("short")
    page.locator("#register-form").get_by_label("Your name").fill("Bob")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#register-password-error")).to_have_text("Password must be at least 8 characters.")
    check(page, "register-error")

    register_patient(page, "bob", navigate=False)
    expect(page.locator("#new-title")).to_be_visible()
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    check(page, "patient-empty")
    form = page.locator("#new-request")
    form.get_by_label("LifeCare Pharmacy").check()
    form.get_by_label("Medicine name").fill("Ibuprofen 200mg")
    form.get_by_role("button", name="Send request").click()
    page.locator("#p-list .req").click()
    expect(page.get_by_role("button", name="Cancel request")).to_be_visible()
    check(page, "patient-request")

    # keyboard only: the phone layout's back link returns focus to the list
    page.set_viewport_size({"width": 390, "height": 844})
    page.keyboard.press("Escape")
    expect(page.locator("#p-list .req")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#detail-title")).to_be_focused()
    page.set_viewport_size({"width": 1280, "height": 860})

    shop_page = new_page(browser, server, pharmacy=True)
    sign_in(shop_page, shop.username, shop.password)
    expect(shop_page.locator("#ph-list .req")).to_have_count(1)
    check(shop_page, "pharmacy-list")
    shop_page.locator("#ph-list .req").click()
    expect(shop_page.get_by_role("button", name="Accept")).to_be_visible()
    check(shop_page, "pharmacy-request-pending")

    # the patient cancels; the pharmacy sees it live
    page.get_by_role("button", name="Cancel request").click()
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(page.locator("#p-list .badge")).to_have_text("Cancelled")
    expect(shop_page.get_by_text("The patient cancelled this request.")).to_be_visible()
    expect(shop_page.get_by_role("button", name="Accept")).to_have_count(0)
    check(shop_page, "pharmacy-request-cancelled")

    docs = new_page(browser, server)
    docs.goto(server.url + "/docs")
    expect(docs.locator(".opblock").first).to_be_visible()
    shoot(docs, artifacts, "docs")

    assert {name: found for name, found in problems.items() if found} == {}
    for p in (page, shop_page, docs):
        assert p.js_errors == []


def test_the_console_renews_its_access_token_before_it_expires(
    browser: Any, server_factory: Any, expect: Any
) -> None:
    server: ServerProcess = server_factory({"MEDREQ_ACCESS_TOKEN_TTL": "6"})
    operator_account(server, "pharmacy", "LifeCare Pharmacy")
    page = new_page(browser, server)
    register_patient(page, "carol")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    read = "() => JSON.parse(sessionStorage.getItem('medreq.session'))"
    first = page.evaluate(read)
    deadline = time.monotonic() + 20
    while page.evaluate(read)["access"] == first["access"] and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    renewed = page.evaluate(read)
    assert renewed["access"] != first["access"]
    assert renewed["expiresAt"] > first["expiresAt"]
    # once the first token has expired, REST and the socket still work on the renewed one
    page.wait_for_timeout(max(0, first["expiresAt"] - time.time() * 1000) + 500)
    form = page.locator("#new-request")
    form.get_by_label("LifeCare Pharmacy").check()
    form.get_by_label("Medicine name").fill("Paracetamol")
    form.get_by_role("button", name="Send request").click()
    expect(page.locator("#p-list .badge")).to_have_text("Pending")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert page.locator("#signin-title").is_hidden()
    assert page.js_errors == []
