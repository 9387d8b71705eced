"""The console's Web Push path in Chromium (docs/protocol.md §5): a pharmacy turns notifications on,
closes its tab, a patient sends a request, the server pushes the event (signed, encrypted) to a
push service of the test's own, and the console's service worker shows a notification that names
the request but no patient or medicine. Signing out unsubscribes the browser at the server.

Headless Chromium has no push service of its own, so the page's `PushManager` hands out the
test's subscription (its keys decrypt what the server sends), and the decrypted message reaches
the service worker through the DevTools protocol (`ServiceWorker.deliverPushMessage`), the same
event a push service would fire."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from .browser import launch_browser
from .conftest import ServerProcess, make_account
from .test_console_browser import sign_in
from .test_webpush import FAST, PushService
from .wire import post_request

pytestmark = pytest.mark.timeout(120)

# The test's subscription stands in for the browser's push service's (see the module docstring).
FAKE_PUSH_MANAGER = """
(() => {
  const subscription = %s;
  let subscribed = false;
  window.__pushLog = [];
  const make = () => ({
    endpoint: subscription.endpoint,
    options: { applicationServerKey: null },
    toJSON: () => subscription,
    unsubscribe: async () => { subscribed = false; window.__pushLog.push("unsubscribe"); return true; },
  });
  PushManager.prototype.subscribe = async function (options) {
    if (!options || !options.userVisibleOnly || !options.applicationServerKey) throw new Error("bad options");
    subscribed = true;
    window.__pushLog.push("subscribe");
    return make();
  };
  PushManager.prototype.getSubscription = async function () { return subscribed ? make() : null; };
})();
"""

NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.getRegistration("/");
  if (!registration) return [];
  const shown = await registration.getNotifications();
  return shown.map((n) => ({ title: n.title, body: n.body, tag: n.tag }));
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


def until(check: Callable[[], Any], timeout: float = 15.0, *, page: Any = None) -> Any:
    """`check()` once it is truthy; with a page, Playwright's own wait, which (unlike a sleep)
    lets the sync API deliver DevTools events meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"timed out waiting for {check}"
            return value
        if page is not None:
            page.wait_for_timeout(100)
        else:
            time.sleep(0.1)


def subscriptions(server: ServerProcess) -> int:
    import sqlite3

    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        return int(db.execute("select count(*) from push_subscriptions").fetchone()[0])
    finally:
        db.close()


def test_a_closed_console_gets_a_private_notification_and_sign_out_unsubscribes(
    browser: Any, server_factory: Any
) -> None:
    from playwright.sync_api import expect

    server: ServerProcess = server_factory(FAST)
    patient = make_account(server.url, "patient", name="Alice Secret", phone="+1 555 0199")
    pharmacy = make_account(server.url, "pharmacy", name="Corner Pharmacy")
    push = PushService()
    context = browser.new_context(permissions=["notifications"])
    try:
        context.add_init_script(FAKE_PUSH_MANAGER % json.dumps(push.subscription()))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        sign_in(page, pharmacy.username, pharmacy.password)
        expect(page.locator("#screen-pharmacy")).to_be_visible(timeout=10_000)
        # permission was granted before: the console subscribes on its own, no click needed
        until(lambda: subscriptions(server) == 1)
        assert page.evaluate("window.__pushLog") == ["subscribe"]
        worker = page.evaluate(
            "async () => (await navigator.serviceWorker.getRegistration('/')).active.scriptURL"
        )
        assert worker == server.url + "/sw.js"

        page.close()  # no console open: the next event goes out as a push
        time.sleep(0.5)  # the server notices the closed socket
        request_id = post_request(
            server, patient, pharmacy=pharmacy.id, medicine_name="Insulin glargine"
        ).json()["request_id"]
        [message] = until(lambda: push.messages)
        assert (message["type"], message["request_id"]) == ("new_request", request_id)

        # the push service hands the decrypted message to the browser's service worker
        page = context.new_page()
        page.goto(server.url + "/docs")  # same origin, no socket of its own
        cdp = context.new_cdp_session(page)
        registrations: list[dict[str, Any]] = []
        cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
        cdp.send("ServiceWorker.enable")
        until(lambda: registrations, page=page)
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": server.url + "/",
                "registrationId": registrations[0]["registrationId"],
                "data": json.dumps(message),
            },
        )
        [shown] = until(lambda: page.evaluate(NOTIFICATIONS))
        assert shown["title"] == "New medicine request"
        assert f"#{request_id}" in shown["body"]
        assert shown["tag"] == f"request-{request_id}"
        for secret in ("Alice", "Secret", "555", "Insulin"):  # nothing medical on a locked screen
            assert secret not in shown["title"] + shown["body"]

        # signing out forgets the browser at the server and at the push service
        page.goto(server.url + "/")  # a new tab: the session lives per tab (sessionStorage)
        sign_in(page, pharmacy.username, pharmacy.password)
        expect(page.locator("#screen-pharmacy")).to_be_visible(timeout=10_000)
        page.get_by_role("button", name="Sign out").click()
        expect(page.locator("#signin-form")).to_be_visible(timeout=10_000)
        until(lambda: subscriptions(server) == 0)
        assert "unsubscribe" in page.evaluate("window.__pushLog")
        assert errors == []
    finally:
        context.close()
        push.close()


def test_the_service_worker_is_served_at_the_root_with_a_closed_policy(server: ServerProcess) -> None:
    response = httpx.get(server.url + "/sw.js", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["content-security-policy"] == "default-src 'none'"
    assert "showNotification" in response.text
    console = httpx.get(server.url + "/", timeout=10)
    assert "worker-src 'self'" in console.headers["content-security-policy"]


def test_a_patient_turns_on_notifications_with_the_button(browser: Any, server_factory: Any) -> None:
    from playwright.sync_api import expect

    server: ServerProcess = server_factory(FAST)
    patient = make_account(server.url, "patient")
    push = PushService()
    context = browser.new_context()  # no permission yet: the button is offered
    try:
        context.add_init_script(FAKE_PUSH_MANAGER % json.dumps(push.subscription()))
        page = context.new_page()
        page.goto(server.url + "/")
        sign_in(page, patient.username, patient.password)
        button = page.get_by_role("button", name="Notify me when a pharmacy answers")
        expect(button).to_be_visible(timeout=10_000)
        assert subscriptions(server) == 0
        context.grant_permissions(["notifications"], origin=server.url)
        button.click()
        expect(page.get_by_text("also while this page is closed")).to_be_visible(timeout=10_000)
        expect(button).to_be_hidden()
        until(lambda: subscriptions(server) == 1)
    finally:
        context.close()
        push.close()
