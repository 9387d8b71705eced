"""The console in Chromium with rotating refresh tokens and its devices list (issue 25):

- two tabs of one sign-in (a tab opened from another starts with a copy of its sessionStorage)
  refresh at the same moment, and again one after the other: neither ever sends a refresh token
  the other used up, so the server never sees a reuse and both stay signed in;
- "Devices that get notifications" lists the account's push subscriptions, this browser named as
  such, and removes one with its Remove button;
- turning notifications on with a sign-in older than 10 minutes (403 reauthentication_required)
  says so in words and offers to sign in again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .browser import launch_browser
from .conftest import ServerProcess, make_account
from .test_console_browser import sign_in
from .test_console_push_browser import FAKE_PUSH_MANAGER, subscriptions, until
from .test_stolen_token import old_tokens, push_body
from .test_webpush import FAST, PushService

pytestmark = pytest.mark.timeout(120)

SESSION = "() => JSON.parse(sessionStorage.getItem('medreq.session'))"
START_REFRESH = "() => { window.__refreshed = import('/static/api.js').then((m) => m.refreshNow()); }"
ME = "() => import('/static/api.js').then((m) => m.api.me()).then((me) => me.id, (e) => e.status)"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


def test_two_tabs_of_one_sign_in_refresh_without_locking_each_other_out(browser: Any, server: ServerProcess) -> None:
    from playwright.sync_api import expect

    pharmacy = make_account(server.url, "pharmacy", name="Two Tabs Pharmacy")
    context = browser.new_context()
    try:
        first = context.new_page()
        first.goto(server.url + "/")
        sign_in(first, pharmacy.username, pharmacy.password)
        expect(first.locator("#screen-pharmacy")).to_be_visible(timeout=10_000)
        with context.expect_page() as opened:
            first.evaluate("() => { window.open('/', '_blank'); }")
        second = opened.value
        expect(second.locator("#screen-pharmacy")).to_be_visible(timeout=10_000)
        signed_in = first.evaluate(SESSION)["refresh"]
        assert second.evaluate(SESSION)["refresh"] == signed_in  # the copied session

        # both at once
        for page in (first, second):
            page.evaluate(START_REFRESH)
        assert [page.evaluate("() => window.__refreshed") for page in (first, second)] == [True, True]
        held = {page.evaluate(SESSION)["refresh"] for page in (first, second)}
        assert len(held) == 1 and signed_in not in held  # one rotation, and both tabs hold its token

        # one after the other: the second tab takes the first's new token, never sends its own
        for page in (second, first):
            page.evaluate(START_REFRESH)
            assert page.evaluate("() => window.__refreshed") is True
        for page in (first, second):
            assert page.evaluate(ME) == pharmacy.id
            expect(page.locator("#screen-pharmacy")).to_be_visible()
        [newest] = {page.evaluate(SESSION)["refresh"] for page in (first, second)}
        # the server saw no reuse: the tabs' token is the sign-in's live one
        assert httpx.post(f"{server.url}/auth/refresh", json={"refresh": newest}, timeout=10).status_code == 200
    finally:
        context.close()


def test_the_owner_sees_and_removes_the_devices_that_get_notifications(
    browser: Any, server_factory: Any
) -> None:
    from playwright.sync_api import expect

    server: ServerProcess = server_factory(FAST)
    pharmacy = make_account(server.url, "pharmacy", name="Device Pharmacy")
    push = PushService()
    mine = push.subscription()
    context = browser.new_context(permissions=["notifications"])
    try:
        context.add_init_script(FAKE_PUSH_MANAGER % json.dumps(mine))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        sign_in(page, pharmacy.username, pharmacy.password)
        devices = page.get_by_role("region", name="Devices that get notifications")
        expect(devices.get_by_text("This browser")).to_be_visible(timeout=10_000)  # subscribed on its own
        # someone else's browser, signed in as this pharmacy
        other = httpx.post(
            f"{server.url}/push/subscriptions", json=push_body("http://127.0.0.1:9/someone-else"),
            headers=pharmacy.headers, timeout=10,
        )
        assert other.status_code == 201, other.text
        page.reload()
        expect(devices.get_by_role("listitem")).to_have_count(2, timeout=10_000)
        stranger = devices.get_by_role("listitem").filter(has_text="A browser using 127.0.0.1:9")
        expect(stranger).to_be_visible()
        stranger.get_by_role("button", name="Remove").click()
        expect(devices.get_by_role("listitem")).to_have_count(1, timeout=10_000)
        expect(devices.get_by_text("This browser")).to_be_visible()
        until(lambda: subscriptions(server) == 1)
        listed = httpx.get(f"{server.url}/push/subscriptions", headers=pharmacy.headers, timeout=10).json()
        assert [s["endpoint"] for s in listed["results"]] == [mine["endpoint"]]
        # and this browser too
        devices.get_by_role("button", name="Remove this browser").click()
        expect(devices.get_by_text("No device gets notifications")).to_be_visible(timeout=10_000)
        until(lambda: subscriptions(server) == 0)
        assert errors == []
    finally:
        context.close()
        push.close()


def test_a_sign_in_too_old_to_add_a_device_is_asked_to_sign_in_again(
    browser: Any, server_factory: Any
) -> None:
    from playwright.sync_api import expect

    server: ServerProcess = server_factory(FAST)
    pharmacy = make_account(server.url, "pharmacy", name="Old Session Pharmacy")
    access, refresh = old_tokens(server, pharmacy, signed_in_ago=601)
    account = {"id": pharmacy.id, "username": pharmacy.username, "role": "pharmacy", "name": pharmacy.name,
               "phone": None, "status": "active"}
    now_ms = int(time.time() * 1000)
    stored = {"account": account, "refresh": refresh, "access": access, "lastEventId": None,
              "expiresAt": now_ms + 3_600_000, "issuedAt": now_ms}
    push = PushService()
    context = browser.new_context()  # no permission yet: the button is offered
    try:
        context.add_init_script(FAKE_PUSH_MANAGER % json.dumps(push.subscription()))
        page = context.new_page()
        page.goto(server.url + "/static/favicon.svg")  # the origin, to hold the session
        page.evaluate("(s) => sessionStorage.setItem('medreq.session', JSON.stringify(s))", stored)
        page.goto(server.url + "/")
        button = page.get_by_role("button", name="Turn on sound and notifications")
        expect(button).to_be_visible(timeout=10_000)
        context.grant_permissions(["notifications"], origin=server.url)
        button.click()
        devices = page.get_by_role("region", name="Devices that get notifications")
        expect(devices.get_by_role("alert")).to_contain_text("sign in again with your password", ignore_case=True)
        again = devices.get_by_role("button", name="Sign in again")
        expect(again).to_be_focused()
        assert subscriptions(server) == 0
        again.click()
        expect(page.locator("#signin-form")).to_be_visible(timeout=10_000)
        expect(page.locator("#signin-error")).to_contain_text("Sign in with your password")
        sign_in(page, pharmacy.username, pharmacy.password)
        # a fresh sign-in: the console subscribes again on its own (permission granted)
        expect(devices.get_by_text("This browser")).to_be_visible(timeout=10_000)
        until(lambda: subscriptions(server) == 1)
    finally:
        context.close()
        push.close()
