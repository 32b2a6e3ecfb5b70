"""The 404 and 405 pages in Chromium: the portal's own page, with a way back."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import make_user
from tests.e2e.conftest import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_missing_page_and_a_wrong_method_have_a_way_back(page: Any) -> None:
    make_user("alice", ["alice-lensing"])
    sign_in(page, "alice")
    page.goto("/vms/")
    page.evaluate("window.location.href = '/vms/999999/'")  # a link to a VM that is not there
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    screenshot(page, "error-404")
    page.get_by_test_id("error-back").click()
    expect(page).to_have_url(page.url.split("/vms/")[0] + "/vms/")

    response = page.goto("/operations/system-check/")
    assert response is not None and response.status == 405
    expect(page.get_by_role("heading", name="This address does not answer a GET request")).to_be_visible()
    screenshot(page, "error-405")
    page.get_by_test_id("error-home").click()
    expect(page.get_by_role("heading", name="Welcome, alice")).to_be_visible()
