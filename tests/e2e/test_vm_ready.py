"""Issue 18 in a real browser: a VM prepared for batch, its readiness, a snapshot shared with a second
project and booted there; the launch form's warnings; fixing a failed batch's script and resubmitting."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from portal.models import Job
from tests.conftest import make_user
from tests.e2e.conftest import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SLOW = 45000


def _connected_demo(page: Any, settings: Any, session_cloud: Any) -> None:
    settings.OPENSTACK_AUTH_URL = session_cloud.auth_url
    User.objects.create_user("demo", password="canfar-demo")
    sign_in(page, "demo", "canfar-demo")
    page.goto("/operations/")
    expect(page.locator(".op-row", has_text="Connect to the cloud").get_by_test_id("op-state")).to_have_text(
        "Succeeded", timeout=SLOW
    )


def _switch_to(page: Any, name: str) -> None:
    page.locator("#project-switcher button.dropdown-toggle").click()
    page.locator("#project-switcher .dropdown-item", has_text=name).click()
    expect(page.get_by_test_id("current-project")).to_have_text(name)


def test_it_prepares_snapshots_and_shares_a_batch_vm(
    page: Any, celery_worker_process: Any, session_cloud: Any, settings: Any
) -> None:
    _connected_demo(page, settings, session_cloud)
    tag = uuid.uuid4().hex[:6]  # the session's cloud outlives each test's database
    vm, snap = f"prep-{tag}", f"image-reduction-{tag}"

    page.goto("/vms/launch/")
    expect(page.locator("#id_source option:checked")).to_have_text("canfar-ubuntu-20.04")
    page.fill("#id_name", vm)
    page.check("#id_prepare_for_batch")
    page.get_by_test_id("launch-submit").click()
    page.locator(f"tr[data-vm={vm}]").get_by_role("link", name=vm).click()
    state = page.get_by_test_id("readiness-state")
    expect(state).to_have_text("ready", timeout=SLOW)
    steps = page.get_by_test_id("readiness-steps")
    for text in (
        "user created demo",
        "scratch mounted /mnt/scratch (ephemeral disk)",
        "package source-extractor installed",
        "package libcfitsio-bin installed",
    ):
        expect(steps).to_contain_text(text)
    expect(page.get_by_test_id("snapshot-readiness")).to_contain_text("ready for batch")
    expect(page.get_by_test_id("create-snapshot")).to_have_text("Snapshot · ready")
    screenshot(page, "ready-01-vm-ready")

    page.locator("#id_name").fill(snap)
    page.get_by_test_id("create-snapshot").click()
    expect(page.get_by_test_id("snapshot-status")).to_have_text("active", timeout=SLOW)
    expect(page.get_by_test_id("snapshot-saving")).to_have_count(0)

    page.goto("/vms/images/")
    row = page.locator(f"tr[data-image='{snap}']")
    row.get_by_test_id("share-open").click()
    page.select_option("#id_project", label="demo-survey")
    page.get_by_test_id("share-submit").click()
    row = page.locator(f"tr[data-image='{snap}']")
    expect(row.get_by_test_id("share-status")).to_have_text("pending", timeout=SLOW)
    screenshot(page, "ready-02-shared")

    _switch_to(page, "demo-survey")
    page.goto("/vms/images/")
    offer = page.locator(f"[data-offer='{snap}']")
    expect(offer).to_contain_text("from demo-lensing")
    screenshot(page, "ready-03-offered")
    offer.get_by_test_id("accept-share").click()
    row = page.locator(f"tr[data-image='{snap}']")
    expect(row.get_by_test_id("shared-from")).to_have_text("shared from demo-lensing", timeout=SLOW)
    screenshot(page, "ready-04-accepted")

    page.goto("/batch/new/")
    expect(page.locator("#id_snapshot option:checked")).to_have_text(f"{snap} · shared from demo-lensing")
    expect(page.get_by_text("Local workers ignore it")).to_be_visible()
    screenshot(page, "ready-05-batch-form")

    page.goto("/vms/images/")
    page.locator(f"tr[data-image='{snap}']").get_by_role("link", name="Launch").click()
    expect(page.locator("#id_source option:checked")).to_contain_text("shared from demo-lensing")
    page.fill("#id_name", f"worker-{tag}")
    page.get_by_test_id("launch-submit").click()
    expect(page.locator(f"tr[data-vm=worker-{tag}]").get_by_test_id("vm-status")).to_contain_text(
        "ACTIVE", timeout=SLOW
    )
    screenshot(page, "ready-06-launched-in-survey")

    # Leave the session's cloud as we found it: other browser tests count the VMs.
    _delete_vm(page, f"worker-{tag}")
    _switch_to(page, "demo-lensing")
    _delete_vm(page, vm)


def _delete_vm(page: Any, name: str) -> None:
    page.goto("/vms/")
    page.check(f"tr[data-vm={name}] input[name=server]")
    page.locator("#bulk-delete").click()
    page.get_by_test_id("confirm-delete").click()
    expect(page.locator(f"tr[data-vm={name}]")).to_have_count(0, timeout=SLOW)


def test_it_warns_before_launching_on_the_wrong_image_and_flavor(
    page: Any, celery_worker_process: Any, session_cloud: Any, settings: Any
) -> None:
    _connected_demo(page, settings, session_cloud)
    page.goto("/vms/launch/")
    page.fill("#id_name", f"rocky-{uuid.uuid4().hex[:6]}")
    page.select_option("#id_source", label="canfar-rocky-8")
    page.select_option(
        "#id_flavor", value=page.locator("#id_flavor option", has_text="p2-7.5gb").get_attribute("value")
    )
    page.check("#id_prepare_for_batch")
    live = page.get_by_test_id("live-warning")  # shown while choosing, before any click on Launch
    expect(live).to_have_count(2)
    expect(live.nth(0)).to_contain_text("canfar-rocky-8 installs packages with dnf")
    page.fill("#id_packages", "sextractor cfitsio")
    expect(live).to_have_count(1)
    expect(live.nth(0)).to_contain_text("p2-7.5gb has no scratch disk")
    page.fill("#id_packages", "source-extractor libcfitsio-bin")
    expect(live).to_have_count(2)
    screenshot(page, "ready-07a-live-warnings")
    page.get_by_test_id("launch-submit").click()
    warnings = page.get_by_test_id("launch-warning")
    expect(warnings).to_have_count(2)
    expect(warnings.nth(0)).to_contain_text("canfar-rocky-8 installs packages with dnf")
    expect(warnings.nth(0)).to_contain_text("source-extractor → sextractor")
    expect(warnings.nth(1)).to_contain_text("p2-7.5gb has no scratch disk")
    screenshot(page, "ready-07-warnings")
    expect(page.locator("tr[data-vm]")).to_have_count(0)  # still on the form: nothing launched


FAILING = """#!/bin/bash
id=$1
echo "Detecting sources in ${id}.fits" >&2
exit 3
"""


def test_it_resubmits_failed_jobs_with_an_edited_script(page: Any, celery_worker_process: Any) -> None:
    make_user("alice", ["alice-lensing"])
    sign_in(page, "alice")
    page.goto("/batch/new/")
    page.fill("#id_script", FAILING)
    page.fill("#id_items", "1056215p\n1056216p")
    expect(page.get_by_test_id("preview-count")).to_have_text("2")
    page.get_by_test_id("submit-batch").click()
    expect(page.get_by_test_id("finished-banner")).to_be_visible(timeout=60000)

    page.get_by_test_id("job-link").first.click()
    expect(page.get_by_test_id("failure-reason")).to_contain_text("exited with code 3")
    err = page.get_by_test_id("job-err")
    expect(err).to_contain_text("Detecting sources in 1056215p.fits")
    assert "danger" not in (err.get_attribute("class") or "")
    screenshot(page, "ready-08-failed-job")
    page.go_back()

    page.get_by_test_id("resubmit-edit").click()
    expect(page.locator("#id_script")).to_have_value(FAILING)
    expect(page.get_by_test_id("resubmit-item")).to_have_count(2)
    page.fill("#id_script", "no shebang")
    page.get_by_test_id("resubmit-edited").click()
    expect(page.get_by_test_id("field-error")).to_contain_text("shebang")
    fixed = FAILING.replace("exit 3", 'echo "NUMBER" > ${id}.cat\necho "catalogue ${id}.cat written"')
    page.fill("#id_script", fixed)
    screenshot(page, "ready-09-fix-script")
    page.get_by_test_id("resubmit-edited").click()
    expect(page.locator("#messages")).to_contain_text("with the edited script")
    expect(page.get_by_test_id("finished-banner")).to_contain_text("2 done", timeout=60000)
    page.get_by_test_id("job-link").first.click()
    expect(page.get_by_test_id("job-out")).to_contain_text("catalogue 1056215p.cat written")
    expect(page.get_by_test_id("job-verdict")).to_contain_text("exit code 0")
    screenshot(page, "ready-10-fixed-job")
    assert (
        Job.objects.filter(state=Job.DONE).count() == 2 and Job.objects.filter(state=Job.FAILED).count() == 2
    )
