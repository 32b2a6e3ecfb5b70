from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import make_user
from tests.e2e.conftest import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_it_signs_in_switches_project_runs_an_operation_and_signs_out(
    page: Any, celery_worker_process: Any
) -> None:
    make_user("alice", ["alice-lensing", "alice-survey"])
    page.goto("/")
    assert "/accounts/login/" in page.url
    screenshot(page, "foundation-01-login")

    sign_in(page, "alice", "wrong password")
    expect(page.get_by_test_id("login-error")).to_contain_text("do not match")

    sign_in(page, "alice")
    expect(page.get_by_role("heading", name="Welcome, alice")).to_be_visible()
    expect(page.get_by_test_id("current-project")).to_have_text("alice-lensing")

    page.click("#project-switcher button.dropdown-toggle")
    page.get_by_role("button", name="alice-survey").click()
    expect(page.get_by_test_id("current-project")).to_have_text("alice-survey")
    page.reload()
    expect(page.get_by_test_id("current-project")).to_have_text("alice-survey")

    page.get_by_test_id("system-check").click()
    row = page.locator(".op-row").first
    expect(row.get_by_test_id("op-state")).to_have_text("Succeeded", timeout=30000)
    expect(row.locator(".progress-bar")).to_have_attribute("style", "width: 100%")
    expect(page.locator("#activity-panel")).to_have_attribute("data-polling", "false")
    screenshot(page, "foundation-02-dashboard")
    page.set_viewport_size({"width": 1280, "height": 800})
    screenshot(page, "foundation-03-dashboard-laptop")

    page.get_by_test_id("user-menu").click()
    page.get_by_role("button", name="Sign out").click()
    assert "/accounts/login/" in page.url
    page.goto("/")
    assert "/accounts/login/" in page.url
