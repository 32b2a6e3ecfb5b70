"""The CANFAR tutorial's VM journey in a real browser: key, IP, launch, SSH command, snapshot, boot from it, delete."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from tests.cloud.conftest import public_key
from tests.e2e.conftest import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SLOW = 45000


def test_it_runs_the_vm_journey(
    page: Any, celery_worker_process: Any, session_cloud: Any, settings: Any
) -> None:
    settings.OPENSTACK_AUTH_URL = session_cloud.auth_url
    User.objects.create_user("demo", password="canfar-demo")
    sign_in(page, "demo", "canfar-demo")
    expect(page.get_by_role("heading", name="Welcome, demo")).to_be_visible()
    page.goto("/operations/")
    expect(page.locator(".op-row", has_text="Connect to the cloud").get_by_test_id("op-state")).to_have_text(
        "Succeeded", timeout=SLOW
    )
    page.goto("/")
    expect(page.get_by_test_id("current-project")).to_have_text("demo-lensing")
    expect(page.get_by_test_id("next-step")).to_contain_text("Import an SSH key")
    screenshot(page, "vms-01-dashboard")

    page.goto("/vms/keypairs/")
    page.fill("#id_name", "laptop")
    page.fill("#id_public_key", "not a key")
    page.get_by_test_id("import-key").click()
    expect(page.get_by_test_id("field-error")).to_contain_text("not a valid SSH public key")
    page.fill("#id_public_key", public_key())
    page.get_by_test_id("import-key").click()
    expect(page.locator("[data-keypair=laptop] [data-testid=fingerprint]")).to_have_text(
        re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$"), timeout=SLOW
    )  # as `ssh-keygen -l` shows it, not Nova's MD5
    screenshot(page, "vms-02-keypairs")

    page.goto("/vms/ips/")
    page.get_by_test_id("allocate-ip").click()
    expect(page.locator("[data-ip]")).to_have_count(1, timeout=SLOW)
    page.reload()
    expect(page.get_by_test_id("allocate-ip")).to_contain_text("Quota reached")
    screenshot(page, "vms-03-ips")

    page.goto("/vms/launch/")
    page.fill("#id_name", "pipeline")
    page.select_option("#id_source", label="canfar-ubuntu-20.04")
    page.check("#id_prepare_for_batch")
    screenshot(page, "vms-04-launch")
    page.get_by_test_id("launch-submit").click()
    row = page.locator("tr[data-vm=pipeline]")
    expect(row.get_by_test_id("vm-status")).to_contain_text("ACTIVE", timeout=SLOW)
    screenshot(page, "vms-05-list")

    row.get_by_role("link", name="pipeline").click()
    page.get_by_test_id("associate-ip").click()
    expect(page.get_by_test_id("ssh-command")).to_contain_text("ssh ubuntu@203.0.113.", timeout=SLOW)
    expect(page.get_by_test_id("ssh-hint")).to_contain_text("creates your account demo")  # prepared for batch
    expect(page.get_by_test_id("ssh-hint")).not_to_contain_text("canfar_create_user")
    page.locator("#id_name").fill("image-reduction-2023-08-21")
    page.get_by_test_id("create-snapshot").click()
    expect(page.get_by_test_id("snapshot-warning")).to_contain_text("Do not use the VM")
    expect(page.get_by_test_id("snapshot-status")).to_have_text("active", timeout=SLOW)
    expect(page.get_by_test_id("snapshot-warning")).to_have_count(0)  # gone without a reload
    screenshot(page, "vms-06-detail")

    page.goto("/vms/images/")
    snap = page.locator("tr[data-image='image-reduction-2023-08-21']")
    expect(snap.get_by_test_id("image-status")).to_have_text("active")
    screenshot(page, "vms-07-images")
    snap.get_by_role("link", name="Launch").click()
    page.fill("#id_name", "worker")
    page.get_by_test_id("launch-submit").click()
    expect(page.locator("tr[data-vm=worker]").get_by_test_id("vm-status")).to_contain_text(
        "ACTIVE", timeout=SLOW
    )

    page.check("tr[data-vm=pipeline] input[name=server]")
    page.check("tr[data-vm=worker] input[name=server]")
    page.locator("#bulk-delete").click()
    expect(page.locator("#confirm-delete-names")).to_contain_text("pipeline")
    page.get_by_test_id("confirm-delete").click()
    expect(page.locator("tr[data-vm]")).to_have_count(0, timeout=SLOW)
    expect(page.get_by_text("No VMs in demo-lensing yet")).to_be_visible()
    screenshot(page, "vms-08-empty")
