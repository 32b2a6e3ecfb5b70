"""Signing in with CADC credentials in a real browser: the real cadcutils client against a local CADC server."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from tests.cadc_server import CadcTestServer, cadc_server  # noqa: F401 (fixture)
from tests.e2e.conftest import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_it_signs_in_with_cadc_and_shows_the_certificate(
    page: Any,
    cadc_server: CadcTestServer,  # noqa: F811 (the fixture imported above)
    settings: Any,
) -> None:
    settings.IDENTITY_BACKEND = "cadc"
    settings.CADC_REGISTRY_URL = cadc_server.registry_url
    settings.CADC_TIMEOUT = 5
    page.goto("/accounts/login/")
    expect(page.get_by_text("CADC username")).to_be_visible()
    expect(page.get_by_text("never stores your password")).to_be_visible()

    sign_in(page, "alice", "wrong")
    expect(page.get_by_test_id("login-error")).to_contain_text("do not match")

    cadc_server.unavailable.add("gms")
    sign_in(page, "alice", "alice-pw")
    expect(page.get_by_test_id("login-error")).to_contain_text("not answering")
    cadc_server.unavailable.discard("gms")

    sign_in(page, "alice", "alice-pw")
    expect(page.get_by_role("heading", name="Welcome, alice")).to_be_visible()
    page.get_by_test_id("user-menu").click()
    expect(page.get_by_text("Signed in with CADC")).to_be_visible()
    expect(page.locator(".dropdown-menu.show")).to_contain_text("certificate")
    screenshot(page, "cadc-01-signed-in")
    assert not User.objects.get(username="alice").has_usable_password()
