"""The CANFAR tutorial's batch example end to end in a real browser, on the local executor."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import make_user
from tests.e2e.conftest import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

IDS = ["1056215p", "1056216p", "1056217p", "1056218p"]
# do_catalogue.bash without the network: the jobs take a moment so the queue shows them running.
SCRIPT = """#!/bin/bash
id=$1
echo "Detecting sources in ${id}.fits"
sleep 2
echo "NUMBER MAG_AUTO X_IMAGE Y_IMAGE" > ${id}.cat
echo "catalogue ${id}.cat written"
"""


def test_it_runs_the_seeds_example_in_the_browser(page: Any, celery_worker_process: Any) -> None:
    make_user("alice", ["alice-lensing"])
    sign_in(page, "alice")
    page.get_by_role("link", name="Batch").first.click()
    expect(page.get_by_role("heading", name="Batch jobs")).to_be_visible()
    page.get_by_test_id("new-batch").click()

    page.fill("#id_script", SCRIPT)
    page.fill("#id_items", "\n".join(IDS))
    expect(page.get_by_test_id("preview-count")).to_have_text("4")
    expect(page.get_by_test_id("preview-text")).to_contain_text("queue arguments from (")
    page.fill("#id_items", "\n".join([*IDS, IDS[0]]))  # a duplicate is caught before submitting
    expect(page.get_by_test_id("preview-problems")).to_contain_text("Duplicate items")
    page.fill("#id_items", "\n".join(IDS))
    expect(page.get_by_test_id("preview-count")).to_have_text("4")
    screenshot(page, "batch-01-new")

    page.get_by_test_id("submit-batch").click()
    expect(page.get_by_test_id("jobs-table")).to_be_visible()
    seen: set[str] = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        states = page.locator("[data-testid=job-row]").evaluate_all("rows => rows.map(r => r.dataset.state)")
        seen.update(states)
        if "running" in states and "batch-02-running" not in seen:
            screenshot(page, "batch-02-running")
            seen.add("batch-02-running")
        if states and all(s == "done" for s in states):
            break
        time.sleep(0.3)
    # Seen queued (waiting to be sent, or idle: how long each lasts depends on the machine), then running, then done.
    assert {"running", "done"} <= seen and seen & {"unsent", "idle"}, seen
    expect(page.get_by_test_id("finished-banner")).to_contain_text("4 done")
    expect(page.locator("#submission-live")).to_have_attribute("data-polling", "false")
    screenshot(page, "batch-03-done")

    page.get_by_test_id("job-link").first.click()
    expect(page.get_by_test_id("job-out")).to_contain_text("catalogue 1056215p.cat written")
    expect(page.get_by_test_id("job-timeline")).to_contain_text("Finished, exit code 0")
    expect(page.get_by_test_id("job-timeline")).to_contain_text("Submitted")
    screenshot(page, "batch-04-job")

    page.goto("/batch/")
    expect(page.get_by_test_id("submission-row")).to_have_attribute("data-state", "finished")
    page.goto("/")
    expect(page.locator("#activity-panel")).to_contain_text("Batch do_catalogue finished")
    screenshot(page, "batch-05-dashboard")


def test_it_stores_a_batchs_outputs_and_shows_them_in_storage(page: Any, celery_worker_process: Any) -> None:
    make_user("alice", ["alice-lensing"])
    folder = f"catalogues-{uuid.uuid4().hex[:6]}"  # the storage directory outlives the test database
    sign_in(page, "alice")
    page.goto("/batch/new/")
    page.fill("#id_script", SCRIPT.replace("sleep 2\n", ""))
    page.fill("#id_items", "\n".join(IDS[:2]))
    expect(page.locator("#id_output_files")).to_have_value("$(arguments).cat")
    page.fill("#id_output_folder", folder)
    expect(page.get_by_test_id("preview-text")).to_contain_text("transfer_output_files")
    page.get_by_test_id("submit-batch").click()
    expect(page.get_by_test_id("output-folder")).to_contain_text(folder)
    expect(page.get_by_test_id("finished-banner")).to_contain_text("2 done", timeout=60000)
    page.get_by_test_id("job-link").first.click()
    expect(page.get_by_test_id("stored-output").first).to_be_visible()
    expect(page.get_by_test_id("job-outputs")).to_contain_text(f"{folder}/{IDS[0]}.cat")
    screenshot(page, "batch-06-job-outputs")
    page.get_by_test_id("job-outputs").get_by_role("link", name=folder, exact=True).click()
    for name in (
        f"{IDS[0]}.cat",
        f"{IDS[1]}.cat",
        f"do_catalogue-{IDS[0]}.out",
        f"do_catalogue-{IDS[0]}.log",
    ):
        expect(page.get_by_text(name, exact=True)).to_be_visible()
    screenshot(page, "batch-07-outputs-in-storage")
