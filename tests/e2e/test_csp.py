"""The Content-Security-Policy in a real browser: the handlers that replaced inline script still work."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from portal.models import KeyPair, Operation
from tests.conftest import make_user
from tests.e2e.conftest import sign_in


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_confirmations_and_filters_work_without_inline_script(page: Any) -> None:
    """data-confirm and data-autosubmit, which replaced the inline handlers, in a real browser."""
    alice = make_user("alice", ["alice-lensing"])
    key = KeyPair.objects.create(
        owner=alice, project=alice.projects.get(), name="o'brien <b>laptop</b>", public_key="ssh-ed25519 AAAA"
    )
    sign_in(page, "alice")
    page.goto("/vms/keypairs/")
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.get_by_role("button", name="Delete").click()
    page.wait_for_timeout(300)
    assert asked == ["Delete key pair o'brien <b>laptop</b>? VMs that have it keep it."]
    assert not Operation.objects.exists()
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Deleting key pair o'brien <b>laptop</b>.")).to_be_visible()
    assert Operation.objects.get().params == {"name": key.name}
    page.goto("/vms/")
    page.get_by_label("Status").select_option("shutoff")
    page.wait_for_url("**/vms/?*status=shutoff*")
