"""The web console in Chromium when a patient asks several pharmacies at once and chooses one
(docs/protocol.md, asking several pharmacies; issue 27), at 1280×800 and at 390×844.

Three pharmacies, each on its own page: two accept (one with an offer typed into its answer form,
one with a voice message and a price sent over REST), the third is still pending when the patient
chooses. The patient's one card for the group shows every answer as it arrives; after the choice
the other two read "Closed: you chose …", and their pharmacies see "The patient chose another
pharmacy" with the prescription and the patient's phone gone from the screen at once (and gone
from the server's answers and media too). Every new screen is audited as the layout test does:
nothing hidden shown, focus clear of the top bar, a focus ring of 3:1, axe clean.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from medreq.simulate.accounts import Account
from medreq.simulate.samples import wav

from .browser import ALERT_SPIES, artifacts_dir, hidden_but_shown, launch_browser, prescription_png
from .conftest import ServerProcess, make_account
from .operator_accounts import operator_account
from .test_console_browser import sign_in
from .test_console_layout_browser import SIZES, Audit

pytestmark = [pytest.mark.shared_server, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_dir(tmp_path_factory)


def new_page(browser: Any, server: ServerProcess, size: str, account: Account) -> Any:
    """A signed-in console page of its own browser context (its own session storage)."""
    context = browser.new_context(
        viewport=SIZES[size],
        timezone_id="UTC",
        permissions=["notifications", "microphone"] if account.role == "pharmacy" else [],
    )
    context.add_init_script(ALERT_SPIES)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    page.goto(server.url + "/")
    sign_in(page, account.username, account.password)
    return page


def card(page: Any, name: str) -> Any:
    """The patient's card of one pharmacy's answer in the open group."""
    return page.locator("#p-detail li.offer").filter(has=page.get_by_role("heading", name=name, exact=True))


@pytest.mark.parametrize("size", list(SIZES))
def test_a_patient_asks_three_pharmacies_and_chooses_one_the_others_close_live(
    browser: Any, server: ServerProcess, artifacts: Path, size: str
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    audit = Audit(artifacts, size)
    names = {key: f"{key.title()} Pharmacy {size}" for key in ("north", "south", "east")}
    shops = {key: operator_account(server, "pharmacy", name) for key, name in names.items()}
    patient = make_account(server.url, "patient", name="Alice Patient", phone="+1 555 0100")
    shop_pages = {key: new_page(browser, server, size, shop) for key, shop in shops.items()}
    for page in shop_pages.values():
        expect(page.locator("#conn")).to_have_attribute("data-state", "live")

    # the patient ticks the three (each marked online), with a prescription image
    page = new_page(browser, server, size, patient)
    expect(page.locator("#new-title")).to_be_focused()
    form = page.locator("#new-request")
    for name in names.values():
        form.get_by_label(f"{name} · online").check()
    expect(page.locator("#nr-pharmacies-hint")).to_contain_text("3 ticked")
    form.get_by_label("Medicine name").fill("Amoxicillin 500mg")
    form.get_by_label("Quantity").fill("2")
    form.get_by_label("Prescription image").set_input_files(
        {"name": "prescription.png", "mimeType": "image/png", "buffer": prescription_png()}
    )
    audit.screen(page, "group-new-request")
    form.get_by_role("button", name="Send request").click()

    # one entry for the group, focused; three requests on the server, one per pharmacy
    entry = page.locator("#p-list .req-group")
    expect(entry).to_have_count(1)
    expect(entry).to_be_focused()
    expect(entry).to_contain_text("3 pharmacies")
    expect(entry.locator(".badge")).to_have_text("Pending")
    assert page.locator("#p-list .req").count() == 1
    stored = httpx.get(f"{server.url}/medicine/request/", headers=patient.headers, timeout=10).json()[
        "results"
    ]
    assert sorted(r["pharmacy"]["id"] for r in stored) == sorted(shop.id for shop in shops.values())
    group = stored[0]["group"]
    assert group is not None and {r["group"] for r in stored} == {group}

    # the patient opens the group before anyone answers: one card per pharmacy, all waiting
    entry.click()
    expect(page.locator("#detail-title")).to_be_focused()
    expect(page.locator("#p-detail li.offer")).to_have_count(3)
    for name in names.values():
        expect(card(page, name)).to_contain_text("Waiting for its answer…")
    expect(page.locator("#group-status")).to_have_text("Sent to 3 pharmacies: waiting for their answers…")

    # each pharmacy sees its own request: how many were asked, the prescription and the phone
    image_urls = {}
    for key, shop_page in shop_pages.items():
        shop_page.locator("#ph-list .req").click()
        expect(shop_page.locator("#detail-title")).to_be_focused()
        facts = shop_page.locator("#ph-detail > .facts")
        expect(facts).to_contain_text("3 pharmacies at once")
        expect(facts).to_contain_text("+1 555 0100")
        image = shop_page.locator("#ph-detail img.rx")
        expect(image).to_be_visible()
        image_urls[key] = image.get_attribute("src")
    assert all(image_urls.values())

    # North accepts in its console with an offer: a price and when it is ready
    north = shop_pages["north"]
    north.get_by_label("Message to the patient").fill("In stock, ready this afternoon")
    north.get_by_label("Price").fill("12.50")
    north.get_by_label("Currency").fill("eur")
    north.get_by_label("Ready for pickup").fill("2031-03-04T17:30")
    audit.screen(north, "group-pharmacy-offer-form")
    north.get_by_role("button", name="Accept").click()
    expect(north.locator("#ph-detail .detail-status .badge")).to_have_text("Accepted")

    # the patient sees it arrive live: status, words, the offer, and Choose
    north_card = card(page, names["north"])
    expect(north_card.locator(".badge")).to_have_text("Accepted")
    expect(north_card.locator(".answer-text")).to_have_text("In stock, ready this afternoon")
    expect(north_card.locator(".offer-terms")).to_contain_text("12.50")
    # typed in the pharmacy's local time (UTC in these browsers), stored with its offset
    expect(north_card.locator(".offer-terms time")).to_have_attribute(
        "datetime", re.compile(r"^2031-03-04T17:30(:00)?(\+00:00|Z)$")
    )
    expect(north_card.get_by_role("button", name=f"Choose {names['north']}")).to_be_visible()

    # South accepts over REST with a voice message and a price
    answered = httpx.post(
        f"{server.url}/medicine/response/",
        data={
            "request_id": str(_request_of(stored, shops["south"])),
            "status": "ACCEPTED",
            "text_message": "We have it",
            "price": "11.00",
            "currency": "EUR",
        },
        files={"audio": ("reply.wav", wav(), "audio/wav")},
        headers=shops["south"].headers,
        timeout=10,
    )
    assert answered.status_code == 200, answered.text
    south_card = card(page, names["south"])
    expect(south_card.locator(".badge")).to_have_text("Accepted")
    expect(south_card.locator("audio.voice")).to_have_count(1)
    expect(south_card.get_by_text("Voice message")).to_be_visible()
    expect(south_card.locator(".offer-terms")).to_contain_text("11.00")
    expect(card(page, names["east"])).to_contain_text("Waiting for its answer…")
    expect(page.locator("#group-status")).to_have_text("2 of 3 accepted, 1 yet to answer: choose one.")
    expect(entry.locator(".badge")).to_have_text("2 accepted")
    audit.screen(page, "group-answers")

    # choosing asks first; nothing of the question shows until asked
    yes = north_card.get_by_role("button", name="Yes, choose it")
    expect(yes).to_be_hidden()
    north_card.get_by_role("button", name=f"Choose {names['north']}").click()
    expect(yes).to_be_focused()
    audit.add("group-choose-asked", hidden_but_shown(page))
    yes.click()

    # chosen: the others close at once and say so; no Choose is left
    expect(page.locator("#group-status")).to_have_text(f"You chose {names['north']}.")
    expect(north_card.locator(".badge")).to_have_text("Chosen")
    expect(north_card).to_contain_text("You chose this pharmacy")
    for key in ("south", "east"):
        expect(card(page, names[key]).locator(".closed-note")).to_have_text(
            f"Closed: you chose {names['north']}."
        )
        expect(card(page, names[key]).locator(".badge")).to_have_text("Cancelled")
    expect(page.locator("#p-detail").get_by_role("button", name="Choose", exact=False)).to_have_count(0)
    expect(entry.locator(".badge")).to_have_text("Chosen")
    audit.screen(page, "group-chosen")

    # the chosen pharmacy is told, live, with a chime and a notification
    expect(north.locator("#ph-detail .chosen-note")).to_have_text(
        "The patient chose your offer: expect them."
    )
    expect(north.locator("#ph-detail .detail-status .badge")).to_have_text("Chosen")
    assert "Alice Patient chose your offer" in north.evaluate("window.__notifications")
    audit.screen(north, "group-pharmacy-chosen")

    # the other two, the accepted one and the pending one, are closed live and lose the
    # prescription and the phone from the screen at once
    for key in ("south", "east"):
        shop_page = shop_pages[key]
        expect(shop_page.locator("#ph-detail .closed-note")).to_have_text(
            "The patient chose another pharmacy."
        )
        expect(shop_page.locator("#ph-detail .detail-status .badge")).to_have_text("Cancelled")
        expect(shop_page.locator("#ph-detail img")).to_have_count(0)
        expect(shop_page.locator("#ph-detail .prescription")).to_have_text(
            "The prescription is no longer shown: this request is closed."
        )
        expect(shop_page.locator("#ph-detail > .facts")).not_to_contain_text("+1 555 0100")
        expect(shop_page.locator("#ph-detail")).not_to_contain_text("null")
    expect(shop_pages["east"].get_by_role("button", name="Accept")).to_have_count(0)
    audit.screen(shop_pages["east"], "group-pharmacy-closed")

    # and from the server: the links they were given stop working, and a fresh page shows none
    for key in ("south", "east"):
        assert httpx.get(image_urls[key], timeout=10).status_code == 403
        shop_page = shop_pages[key]
        shop_page.reload()
        shop_page.locator("#ph-list .req").click()
        expect(shop_page.locator("#ph-detail .closed-note")).to_have_text(
            "The patient chose another pharmacy."
        )
        expect(shop_page.locator("#ph-detail img")).to_have_count(0)
        expect(shop_page.locator("#ph-detail > .facts")).not_to_contain_text("+1 555 0100")
    assert httpx.get(image_urls["north"], timeout=10).status_code == 200

    # a pharmacy's own thread with the patient is one click away, and leads back to every answer
    card(page, names["south"]).get_by_role("button", name=f"Messages with {names['south']}").click()
    expect(page.locator("#detail-title")).to_be_focused()
    expect(page.locator("#p-detail .closed-note")).to_have_text(f"Closed: you chose {names['north']}.")
    audit.screen(page, "group-member")
    page.get_by_role("button", name="See every pharmacy's answer").click()
    expect(page.locator("#p-detail li.offer")).to_have_count(3)
    expect(page.locator("#detail-title")).to_be_focused()

    # a second page of the patient, opened afresh, shows the same
    again = new_page(browser, server, size, patient)
    again.locator("#p-list .req-group").click()
    expect(again.locator("#group-status")).to_have_text(f"You chose {names['north']}.")
    expect(card(again, names["east"]).locator(".closed-note")).to_have_text(
        f"Closed: you chose {names['north']}."
    )

    assert audit.problems == []
    for p in (page, again, *shop_pages.values()):
        assert p.js_errors == []
        p.context.close()


def _request_of(requests: list[dict[str, Any]], shop: Account) -> int:
    return int(next(r["id"] for r in requests if r["pharmacy"]["id"] == shop.id))


def test_the_patient_ticks_at_most_five_and_learns_a_lower_limit_from_the_server(
    browser: Any, server_factory: Any
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    server: ServerProcess = server_factory(
        {"MEDREQ_PHARMACY_REGISTRATION": "open", "MEDREQ_MAX_PHARMACIES_PER_REQUEST": "2"}
    )
    names = [f"Pharmacy {n}" for n in range(1, 7)]
    for name in names:
        make_account(server.url, "pharmacy", name=name)
    patient = make_account(server.url, "patient", name="Bob Patient")
    page = new_page(browser, server, "desktop", patient)
    form = page.locator("#new-request")
    boxes = [form.get_by_label(name, exact=True) for name in names]
    expect(boxes[0]).to_be_visible()

    # five ticked, the console's own limit (the server's default): the sixth waits, disabled
    for box in boxes[:5]:
        box.check()
    expect(boxes[5]).to_be_disabled()
    expect(page.locator("#nr-pharmacies-hint")).to_contain_text("5 ticked, the most one request can go to")
    boxes[4].uncheck()
    expect(boxes[5]).to_be_enabled()
    boxes[3].uncheck()

    # this server takes two: its 422 is shown under the list, nothing is sent, and the list obeys it
    form.get_by_label("Medicine name").fill("Ibuprofen")
    form.get_by_role("button", name="Send request").click()
    expect(page.locator("#nr-pharmacies-error")).to_have_text("Pharmacies: at most 2 pharmacies per request.")
    expect(page.locator("#nr-pharmacies")).to_have_attribute(
        "aria-describedby", re.compile("nr-pharmacies-error")
    )
    expect(boxes[0]).to_be_focused()
    expect(page.locator("#nr-pharmacies-hint")).to_have_text(
        "3 ticked, but one request can go to at most 2: untick 1."
    )
    expect(boxes[3]).to_be_disabled()
    listed = httpx.get(f"{server.url}/medicine/request/", headers=patient.headers, timeout=10).json()
    assert listed["results"] == []

    boxes[2].uncheck()
    form.get_by_role("button", name="Send request").click()
    entry = page.locator("#p-list .req-group")
    expect(entry).to_contain_text("2 pharmacies")
    expect(page.locator("#nr-pharmacies-error")).to_have_count(0)
    assert page.js_errors == []
    page.context.close()
