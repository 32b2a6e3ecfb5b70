"""A batch on an HTCondor pool in a real browser: hold from the page, the reasons shown.

The pool is the fake schedd (it behaves as a real one: tests/batch/test_fake_schedd.py), in
this process; operations run in the live server's thread as a worker would run them.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from orchestration import backends
from orchestration.tasks import batch as tasks
from portal.models import Job, Submission
from tests.batch.fake_schedd import FakeSchedd
from tests.conftest import make_user
from tests.e2e.conftest import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

IDS = ["1056215p", "1056216p", "1056217p"]
SCRIPT = '#!/bin/bash\necho "Detecting sources in $1.fits"\necho NUMBER > $1.cat\n'


@pytest.fixture
def pool(settings: Any, tmp_path: Any, monkeypatch: Any) -> FakeSchedd:
    from orchestration.operations import run_operation

    settings.BATCH_ROOT = tmp_path / "batch"
    settings.BATCH_EXECUTORS = ["local", "htcondor"]
    settings.HTCONDOR_POOL_PROFILE = "none"
    fake = FakeSchedd()
    monkeypatch.setattr(backends, "SCHEDD_FACTORY", lambda: fake)
    monkeypatch.setattr(backends, "COLLECTOR_FACTORY", lambda: fake.collector)
    # A worker's part, done at once in the server's thread: the operation runs as Celery would run it.
    monkeypatch.setattr(run_operation, "apply_async", lambda args, **kw: run_operation.apply(args=args))
    return fake


def test_it_holds_a_job_from_the_batch_page_and_shows_why_each_job_is_held(
    page: Any, pool: FakeSchedd
) -> None:
    make_user("alice", ["alice-lensing"])
    sign_in(page, "alice")
    page.goto("/batch/new/")
    page.fill("#id_script", SCRIPT)
    page.fill("#id_items", "\n".join(IDS))
    page.select_option("#id_executor", "htcondor")
    expect(page.get_by_test_id("preview-count")).to_have_text("3")
    page.get_by_test_id("submit-batch").click()
    expect(page.get_by_test_id("jobs-table")).to_be_visible()
    sub = Submission.objects.get()
    expect(page.get_by_test_id("submission-state")).to_have_text("Active")
    cluster = Job.objects.filter(submission=sub).first().cluster  # type: ignore[union-attr]
    assert {ad["JobStatus"] for ad in pool.jobs.values()} == {1}  # spooled, idle in the queue

    pool.run(cluster, 0, out="Detecting sources in 1056215p.fits\n", files={"1056215p.cat": "NUMBER\n"})
    # the pool holds job 2 by itself (over its memory), and the user holds job 1 from the page
    ad = pool.jobs[(cluster, 2)]
    ad["JobStatus"], ad["HoldReasonCode"] = 5, 34
    ad["HoldReason"] = "Error from slot1@worker-7: Job has gone over cgroup memory limit of 2048 megabytes."
    tasks.refresh_batch()
    page.reload()
    page.get_by_label("Select job 1").check()
    page.get_by_role("button", name="Hold", exact=True).click()

    rows = page.get_by_test_id("job-row")
    expect(rows.nth(1)).to_have_attribute("data-state", "held")
    expect(rows.nth(1).get_by_test_id("job-reason")).to_have_text("Held from the portal.")
    expect(rows.nth(2).get_by_test_id("job-reason")).to_contain_text(
        "Held by HTCondor (code 34): Error from slot1@worker-7: Job has gone over cgroup memory limit"
    )
    expect(rows.nth(0)).to_have_attribute("data-state", "done")
    expect(page.get_by_test_id("held-banner")).to_contain_text("2 jobs are held")
    expect(page.get_by_test_id("submission-state")).to_have_text("Waiting on held jobs")
    assert pool.jobs[(cluster, 1)]["HoldReason"] == "Held from the portal"  # it reached the schedd
    screenshot(page, "batch-htcondor-01-held")

    page.get_by_test_id("job-link").nth(1).click()
    expect(page.get_by_test_id("failure-reason")).to_contain_text("Held from the portal.")
    expect(page.get_by_test_id("remote-output-note")).to_contain_text("stay with the pool while it runs")
    expect(page.get_by_test_id("job-out")).to_have_text("Not back from the pool yet.")
    screenshot(page, "batch-htcondor-02-held-job")
    page.go_back()
    page.get_by_test_id("job-link").first.click()
    expect(page.get_by_test_id("job-out")).to_contain_text("Detecting sources in 1056215p.fits")
    expect(page.get_by_test_id("job-timeline")).to_contain_text("Output files transferred")
    expect(page.get_by_test_id("job-timeline")).to_contain_text("worker-7 (10.0.0.7:9618)")
    screenshot(page, "batch-htcondor-03-done-job")
