"""The web console's layout as a new user meets it, at 1280×800 and at 390×844 (issue 24).

Every screen is walked at both sizes and audited: nothing `hidden` is displayed (a stylesheet
rule once showed the patient's "Yes, cancel it" before anyone asked to cancel); what focus or a
scroll brings into view is not under the sticky top bar; every Tab stop shows a focus ring of at
least 3:1 against its surface; axe-core finds nothing serious. Along the way: field messages in
words next to each field, a "nothing selected" placeholder, a PDF prescription as a link, the
patient's list in view, unread badges and times on one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .browser import (
    artifacts_dir,
    covered,
    focused_covered,
    hidden_but_shown,
    launch_browser,
    serious_violations,
    tab_through,
)
from .conftest import ServerProcess
from .operator_accounts import PASSWORD, operator_account
from .test_console_browser import sign_in

pytestmark = pytest.mark.timeout(240)

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
PDF = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_dir(tmp_path_factory)


class Audit:
    """Audits a page screen by screen; collects every problem with the screen's name."""

    def __init__(self, artifacts: Path, size: str) -> None:
        self.artifacts = artifacts
        self.size = size
        self.problems: list[str] = []

    def add(self, screen: str, found: list[str] | str | None) -> None:
        for line in [found] if isinstance(found, str) else found or []:
            self.problems.append(f"{self.size} {screen}: {line}")

    def screen(self, page: Any, name: str, *, tab: bool = True) -> None:
        """The screen as it is: nothing hidden shown, focus in view, axe clean; then Tab through it."""
        page.evaluate("() => { const t = document.getElementById('toast'); if (t) t.hidden = true; }")
        page.screenshot(path=str(self.artifacts / f"layout-{name}-{self.size}.png"))
        self.add(name, hidden_but_shown(page))
        self.add(name, focused_covered(page))
        self.add(name, serious_violations(page))
        if tab:
            self.add(name, tab_through(page))


def new_page(browser: Any, server: ServerProcess, size: str, *, pharmacy: bool = False) -> Any:
    context = browser.new_context(
        viewport=SIZES[size], permissions=["notifications", "microphone"] if pharmacy else []
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    page.goto(server.url + "/")
    return page


def field_messages(page: Any, form: str) -> dict[str, str]:
    """Each field message of a form by the name of the field it describes, checked to sit right
    under that field and to be tied to it with aria-describedby."""
    return dict(
        page.evaluate(
            """(form) => [...document.querySelectorAll(`${form} .field-error`)].map((line) => {
                const input = document.querySelector(`${form} [aria-describedby~="${line.id}"]`);
                if (!input) return [`(no field for ${line.id})`, line.textContent];
                // a fieldset of checkboxes answers for its field (aria-invalid is no group's attribute)
                const name = input.dataset.fieldFor || input.name;
                if (input.nextElementSibling !== line) return [`(${name}: not under its field)`, line.textContent];
                if (input.tagName !== "FIELDSET" && input.getAttribute("aria-invalid") !== "true") return [`(${name}: not aria-invalid)`, line.textContent];
                return [name, line.textContent];
            })""",
            form,
        )
    )


@pytest.mark.parametrize("size", list(SIZES))
def test_every_screen_hides_what_is_hidden_and_keeps_focus_clear_of_the_top_bar(
    browser: Any, server: ServerProcess, artifacts: Path, size: str
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    audit = Audit(artifacts, size)
    shop = operator_account(server, "pharmacy", "LifeCare Pharmacy")
    page = new_page(browser, server, size)

    # sign in: empty, each field says what it needs
    expect(page.locator("#signin-title")).to_be_visible()
    audit.screen(page, "sign-in")
    page.locator("#signin-form").get_by_role("button", name="Sign in").click()
    assert field_messages(page, "#signin-form") == {
        "username": "Enter your username.",
        "password": "Enter your password.",
    }
    expect(page.locator("#signin-username")).to_be_focused()
    audit.screen(page, "sign-in-empty", tab=False)

    # register: empty, then what the server refuses (422, then 409), each in words under its field
    page.get_by_role("link", name="Create one").click()
    form = page.locator("#register-form")
    expect(form).to_be_visible()
    audit.screen(page, "register")
    form.get_by_role("button", name="Create account").click()
    assert field_messages(page, "#register-form") == {
        "name": "Enter your name.",
        "username": "Choose a username.",
        "password": "Choose a password.",
    }
    expect(page.locator("#register-error")).to_have_text("3 fields need a change: see the message under each.")
    expect(page.locator("#register-name")).to_be_focused()
    audit.screen(page, "register-empty")
    form.get_by_label("Your name").fill("Alice Patient")
    form.get_by_label("Username").fill("x")
    form.get_by_label("Password").fill("short")
    form.get_by_role("button", name="Create account").click()
    expect(page.locator("#register-username-error")).to_contain_text("must be")
    assert field_messages(page, "#register-form") == {
        "username": "Username must be 3-64 characters of letters, digits, '_', '.' or '-'.",
        "password": "Password must be at least 8 characters.",
    }
    assert page.locator("#register-name").get_attribute("aria-invalid") is None
    assert page.locator("#register-username").get_attribute("aria-describedby") == (
        "register-username-error register-username-hint"
    )
    audit.screen(page, "register-refused", tab=False)
    username = f"alice-{size}"
    httpx.post(
        f"{server.url}/auth/register",
        json={"role": "patient", "name": "Taken", "username": username, "password": "long-enough-1"},
        timeout=10,
    ).raise_for_status()
    form.get_by_label("Username").fill(username)
    form.get_by_label("Password").fill("long-enough-1")
    form.get_by_role("button", name="Create account").click()
    expect(page.locator("#register-username-error")).to_have_text("Username is taken.")
    assert field_messages(page, "#register-form") == {"username": "Username is taken."}
    username = f"alice2-{size}"
    form.get_by_label("Username").fill(username)
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")  # where the button is, on a phone
    form.get_by_role("button", name="Create account").click()

    # the patient's console: focus on "New request", in view below the top bar
    expect(page.locator("#new-title")).to_be_focused()
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    audit.add("patient-new", focused_covered(page))
    nothing = page.locator("#p-nothing")
    if size == "desktop":
        expect(nothing).to_be_visible()
        expect(nothing).to_contain_text("Select a request to see its details")
    else:
        expect(nothing).to_be_hidden()  # the phone shows one column: the list, or the open request
    new_request = page.locator("#new-request")
    new_request.get_by_role("button", name="Send request").click()
    assert field_messages(page, "#new-request") == {"pharmacy": "Choose a pharmacy."}
    new_request.get_by_label("LifeCare Pharmacy").check()
    new_request.get_by_role("button", name="Send request").click()
    assert field_messages(page, "#new-request") == {"image": "Add a prescription image or the medicine's name."}
    audit.screen(page, "patient-new")

    # a PDF prescription is previewed as a link, never as a (broken) image
    new_request.get_by_label("Prescription image").set_input_files(
        {"name": "prescription.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    expect(page.get_by_role("link", name="PDF prescription — open")).to_be_visible()
    expect(page.locator("#nr-preview")).to_be_hidden()
    audit.add("patient-pdf-preview", hidden_but_shown(page))
    new_request.get_by_role("button", name="Send request").click()
    sent = page.locator("#p-list .req")
    expect(sent).to_have_count(1)
    expect(sent).to_be_focused()  # the form folds away and the request sent is shown in the list
    expect(new_request).to_be_hidden()
    audit.add("patient-sent", focused_covered(page))

    # more requests, as over days: signed in again, the list comes first, in view
    patient = httpx.post(
        f"{server.url}/auth/token", json={"username": username, "password": "long-enough-1"}, timeout=10
    ).json()
    headers = {"Authorization": f"Bearer {patient['access']}"}
    for number in range(8):
        made = httpx.post(
            f"{server.url}/medicine/request/",
            data={"pharmacy": str(shop.id), "quantity": "1", "medicine_name": f"Medicine {number}"},
            headers=headers,
            timeout=10,
        )
        assert made.status_code == 201, made.text
    page.reload()
    expect(page.locator("#p-list .req")).to_have_count(9)
    expect(page.locator("#mine-title")).to_be_focused()
    expect(page.locator("#nr-fold")).to_have_attribute("aria-expanded", "false")
    assert covered(page.locator("#p-list .req").first) is None  # the list is above the fold
    audit.screen(page, "patient-list")
    fold = page.get_by_role("button", name="New request")
    fold.click()  # unfolds, at the field to fill first
    expect(new_request).to_be_visible()
    expect(page.locator("#nr-pharmacy-list input").first).to_be_focused()
    fold.click()
    expect(new_request).to_be_hidden()
    expect(fold).to_have_attribute("aria-expanded", "false")

    # the oldest (the PDF one), at the list's end: its heading and what is above it come into view
    oldest = page.locator("#p-list .req").last
    oldest.scroll_into_view_if_needed()
    oldest.click()
    expect(page.locator("#detail-title")).to_be_focused()
    expect(nothing).to_be_hidden()
    audit.add("patient-request", covered(page.locator("#p-detail .detail-status")))
    if size == "phone":
        back = page.get_by_role("button", name="← Back to the list")
        expect(back).to_be_visible()
        audit.add("patient-request", covered(back))
    expect(page.get_by_role("link", name="PDF prescription — open")).to_be_visible()
    assert page.locator("#p-detail img").count() == 0
    # cancelling asks first: nothing of the question is on screen until asked
    confirm = page.get_by_role("button", name="Yes, cancel it")
    expect(confirm).to_be_hidden()
    audit.screen(page, "patient-request")
    page.get_by_role("button", name="Cancel request").click()
    expect(confirm).to_be_visible()
    audit.add("patient-cancel-asked", hidden_but_shown(page))
    page.get_by_role("button", name="Keep it").click()
    expect(confirm).to_be_hidden()
    expect(page.locator("#p-detail .detail-status")).to_contain_text("Pending")
    if size == "phone":
        page.get_by_role("button", name="← Back to the list").click()
        expect(page.locator("#p-list .req").last).to_be_focused()
        audit.add("patient-back", focused_covered(page))

    # the pharmacy: unread badges and times on one line, the placeholder, the answer form
    shop_page = new_page(browser, server, size, pharmacy=True)
    sign_in(shop_page, shop.username, PASSWORD)
    expect(shop_page.locator("#incoming-title")).to_be_focused()
    expect(shop_page.locator("#ph-list .req .unread")).to_have_count(9)
    if size == "desktop":
        expect(shop_page.locator("#ph-nothing")).to_contain_text("Select a request to see its details")
    for badge in shop_page.locator("#ph-list .req .unread").all():
        box = badge.bounding_box()
        assert box is not None and box["height"] <= 24 and box["width"] >= box["height"] - 1, box
    lines = shop_page.evaluate(
        "() => [...document.querySelectorAll('#ph-list time')].map((t) => [getComputedStyle(t).whiteSpace, t.getClientRects().length])"
    )
    assert lines and all(line == ["nowrap", 1] for line in lines), lines
    audit.screen(shop_page, "pharmacy-list")
    shop_page.locator("#ph-list .req").last.scroll_into_view_if_needed()
    shop_page.locator("#ph-list .req").last.click()
    expect(shop_page.locator("#detail-title")).to_be_focused()
    expect(shop_page.get_by_role("button", name="Accept")).to_be_visible()
    expect(shop_page.get_by_role("link", name="PDF prescription — open")).to_be_visible()
    assert shop_page.locator("#ph-detail img").count() == 0
    expect(shop_page.get_by_label("Your recorded voice message")).to_be_hidden()  # no empty player
    audit.add("pharmacy-request", covered(shop_page.locator("#ph-detail .detail-status")))
    audit.screen(shop_page, "pharmacy-request")

    assert audit.problems == []
    assert page.js_errors == [] and shop_page.js_errors == []


@pytest.mark.parametrize("size", list(SIZES))
def test_a_pharmacy_awaiting_approval_sees_its_screen_in_view(
    browser: Any, server_factory: Any, artifacts: Path, size: str
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    server: ServerProcess = server_factory({"MEDREQ_PHARMACY_REGISTRATION": "approval"})
    audit = Audit(artifacts, size)
    page = new_page(browser, server, size)
    page.get_by_role("link", name="Create one").click()
    form = page.locator("#register-form")
    form.get_by_label("a pharmacy").check()
    expect(page.get_by_text("receives requests only once an operator has approved it")).to_be_visible()
    form.get_by_role("button", name="Create account").click()
    assert field_messages(page, "#register-form")["name"] == "Enter the pharmacy's name."
    audit.screen(page, "register-pharmacy", tab=False)
    form.get_by_label("Pharmacy name").fill("New Corner Pharmacy")
    form.get_by_label("Username").fill(f"corner-{size}")
    form.get_by_label("Password").fill("corner-pass-1")
    form.get_by_role("button", name="Create account").click()
    expect(page.locator("#pending-title")).to_be_focused()
    audit.screen(page, "pending")
    assert audit.problems == []
    assert page.js_errors == []
