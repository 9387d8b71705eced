"""The web console in Chromium: unread badges from `<Request>.unread`, and pharmacies relabelled
online / offline live from `presence` events (docs/protocol.md §4)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .browser import launch_browser
from .conftest import ServerProcess, make_account
from .operator_accounts import PASSWORD, operator_account
from .test_console_browser import new_page, sign_in
from .wire import post_request

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


def test_unread_badge_and_pharmacy_presence(browser: Any, server: ServerProcess) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    shop = operator_account(server, "pharmacy", "LifeCare Pharmacy")
    patient = make_account(server.url, "patient", name="Alice Patient")
    request_id = post_request(server, patient, pharmacy=shop.id, medicine_name="Amoxicillin").json()["request_id"]

    patient_page = new_page(browser, server)
    sign_in(patient_page, patient.username, patient.password)
    option = patient_page.locator(f'#nr-pharmacy-list [data-pharmacy-id="{shop.id}"]')
    expect(option).to_have_text("LifeCare Pharmacy")  # offline

    pharmacy_page = new_page(browser, server, pharmacy=True)
    sign_in(pharmacy_page, shop.username, PASSWORD)
    expect(pharmacy_page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(pharmacy_page.locator("#ph-list .req .unread")).to_contain_text("1")  # from the list's `unread`
    expect(option).to_have_text("LifeCare Pharmacy · online")  # the presence event, live

    pharmacy_page.locator("#ph-list .req").click()  # opening it reports it read
    expect(pharmacy_page.locator("#ph-list .req .unread")).to_have_count(0)
    detail = f"{server.url}/medicine/request/{request_id}/"
    for _ in range(50):  # bounded: 5 s
        if httpx.get(detail, headers=shop.headers, timeout=10).json()["unread"] == 0:
            break
        pharmacy_page.wait_for_timeout(100)
    assert httpx.get(detail, headers=shop.headers, timeout=10).json()["unread"] == 0

    pharmacy_page.context.close()  # the pharmacy's only socket goes
    expect(option).to_have_text("LifeCare Pharmacy")
    assert patient_page.js_errors == []
