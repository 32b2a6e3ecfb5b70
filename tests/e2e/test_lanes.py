"""Lanes in Chromium: with two batch jobs holding both job workers, a user's actions still start at once.

The workers are started as `make run` starts them (one pool per lane, two job slots). Each action
(VM launch, VM delete, a catalogue, Remove of a running job) must start while both jobs are still
running, and its page must show the outcome without a reload.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import expect

from orchestration.catalogue.synth import SynthConfig, make_megacam_image
from orchestration.tasks.cloud import sync_all_projects
from portal.models import Job, Operation, Server, Submission
from tests.e2e.conftest import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SLOW = 60000
OBS = "lanes1p"
# Jobs that hold a job worker each for longer than the whole test; the test removes them at the end.
HOLDING_SCRIPT = "#!/bin/bash\necho started $1\nsleep 600\n"


@pytest.fixture
def lanes_image() -> Iterator[Path]:
    folder = Path(settings.ARCHIVE_DIR) / "CFHT"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{OBS}.fits.fz"
    make_megacam_image(path, seed=3, n_ccds=2, shape=(400, 300), obs_id=OBS, config=SynthConfig())
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def beat() -> Iterator[None]:
    """Beat's cloud sync, every 2 s, sent to the sync lane as `make run`'s beat sends it."""
    import threading

    from django.db import connection

    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.wait(2.0):
                sync_all_projects()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(10)


def _wait(condition: Any, what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _assert_started_while_jobs_ran(op: Operation, jobs: list[Job]) -> None:
    """The operation was taken by a worker while both jobs were running (not after one ended)."""
    op.refresh_from_db()
    assert op.started is not None, f"{op.title} never started"
    for job in jobs:
        job.refresh_from_db()
        assert job.started_at is not None and job.started_at < op.started, (job, op.started)
        assert job.finished_at is None or job.finished_at > op.started, (job, op.started)


def _processes_of(pid: int) -> list[psutil.Process]:
    """The job's process (its group leader) and everything below it, seen from the host."""
    try:
        leader = psutil.Process(pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_users_actions_start_at_once_while_jobs_hold_the_job_workers(
    page: Any, lane_workers: Any, beat: None, session_cloud: Any, settings: Any, lanes_image: Path
) -> None:
    settings.OPENSTACK_AUTH_URL = session_cloud.auth_url
    User.objects.create_user("demo", password="canfar-demo")
    sign_in(page, "demo", "canfar-demo")
    page.goto("/operations/")
    connect = page.locator(".op-row", has_text="Connect to the cloud").get_by_test_id("op-state")
    expect(connect).to_have_text("Succeeded", timeout=SLOW)

    # Two jobs take both job slots.
    page.goto("/batch/new/")
    page.fill("#id_script", HOLDING_SCRIPT)
    page.fill("#id_items", "hold-a\nhold-b")
    expect(page.get_by_test_id("preview-count")).to_have_text("2")
    page.get_by_test_id("submit-batch").click()
    expect(page.get_by_test_id("jobs-table")).to_be_visible()
    sub = Submission.objects.get(owner__username="demo")
    _wait(lambda: sub.jobs.filter(state=Job.RUNNING).count() == 2, "both jobs to run")
    jobs = list(sub.jobs.order_by("index"))
    expect(page.locator("[data-testid=job-row][data-state=running]")).to_have_count(2)
    screenshot(page, "lanes-01-jobs-running")

    # A VM launch starts and its page shows it running, without a reload.
    page.goto("/vms/launch/")
    page.fill("#id_name", "lanes-vm")
    page.select_option("#id_source", label="canfar-ubuntu-20.04")
    page.get_by_test_id("launch-submit").click()
    row = page.locator("tr[data-vm=lanes-vm]")
    expect(row.get_by_test_id("vm-status")).to_contain_text("ACTIVE", timeout=SLOW)
    expect(page.get_by_test_id("quota-instances")).to_contain_text("1 of")  # the quota bar followed
    _assert_started_while_jobs_ran(Operation.objects.get(kind="vm_launch"), jobs)
    screenshot(page, "lanes-02-vm-active")

    # A VM delete starts, the row goes, and its status never returns to ACTIVE on the way, while
    # the periodic sync runs.
    page.check("tr[data-vm=lanes-vm] input[name=server]")
    page.locator("#bulk-delete").click()
    page.get_by_test_id("confirm-delete").click()
    seen: list[str] = []
    deadline = time.monotonic() + 90
    while page.locator("tr[data-vm=lanes-vm]").count() and time.monotonic() < deadline:
        try:
            seen.append(row.get_by_test_id("vm-status").inner_text(timeout=500).split(" ")[0])
        except Exception:  # the row went between count() and inner_text()  # noqa: BLE001
            break
        time.sleep(0.3)
    expect(page.locator("tr[data-vm=lanes-vm]")).to_have_count(0, timeout=SLOW)
    delete = Operation.objects.get(kind="vm_delete")
    _assert_started_while_jobs_ran(delete, jobs)
    delete.refresh_from_db()
    assert delete.state == Operation.SUCCEEDED, delete.error
    assert not Server.objects.filter(name="lanes-vm").exists()
    after_delete = seen[seen.index("DELETING") :] if "DELETING" in seen else []
    assert "ACTIVE" not in after_delete, seen  # the sync never puts back a state the delete owns
    screenshot(page, "lanes-03-vm-deleted")

    # A catalogue starts, and its page turns into the preview when it is done.
    page.goto("/catalogues/new/")
    page.fill("#id_observation", OBS)
    page.get_by_test_id("run-catalogue").click()
    expect(page.get_by_test_id("mosaic")).to_be_visible(timeout=SLOW * 2)
    _assert_started_while_jobs_ran(Operation.objects.get(kind="catalogue_run"), jobs)
    screenshot(page, "lanes-04-catalogue")

    # Remove one running job: it starts at once, its processes go, and the page shows it Removed.
    first, second = jobs
    first.refresh_from_db()
    procs = _processes_of(first.pid or 0)
    assert _alive(procs), "the job's processes should be running before Remove"
    page.goto(f"/batch/{sub.pk}/")
    page.on("dialog", lambda dialog: dialog.accept())
    page.check(f"input[name=jobs][value='{first.pk}']")
    page.get_by_test_id("remove-jobs").click()
    removed_row = page.locator("[data-testid=job-row]").first
    expect(removed_row).to_have_attribute("data-state", "removed", timeout=SLOW)
    assert not _alive(procs), _alive(procs)  # gone by the time the page says Removed
    remove = Operation.objects.get(kind="batch_control")
    _assert_started_while_jobs_ran(remove, [second])
    remove.refresh_from_db()
    assert (remove.state, remove.message) == (Operation.SUCCEEDED, "Removed 1 job")
    expect(page.locator("[data-testid=job-row]").nth(1)).to_have_attribute("data-state", "running")
    expect(page.get_by_test_id("release-jobs")).to_have_count(0)  # nothing is held: no Release button
    screenshot(page, "lanes-05-removed")

    # The second job goes too (the test leaves nothing running), and the batch is finished.
    second.refresh_from_db()
    rest = _processes_of(second.pid or 0)
    page.get_by_test_id("remove-jobs").click()
    expect(page.locator("[data-testid=job-row]").nth(1)).to_have_attribute(
        "data-state", "removed", timeout=SLOW
    )
    expect(page.get_by_test_id("remove-jobs")).to_have_count(0)  # no live job left: no Remove button
    assert not _alive(rest)
    screenshot(page, "lanes-06-all-removed")
