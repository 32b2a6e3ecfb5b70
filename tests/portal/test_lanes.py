"""Lanes: which queue each task goes to, and what a user sees while an operation or job waits for a worker."""

from __future__ import annotations

from typing import Any

import pytest
from celery import current_app
from django.contrib.auth.models import User

from config.celery import app
from orchestration import backends, local_wake
from orchestration.operations import run_operation
from orchestration.tasks import local_pulling
from portal.models import Job, Operation
from tests.portal.test_batch_tasks import recorded, run_submit

EXPECTED = {
    "orchestration.operations.run_operation": "ops",
    "orchestration.tasks.storage.refresh_storage_usage": "ops",
    "orchestration.operations.repair_operations": "sync",
    "orchestration.tasks.cloud.sync_all_projects": "sync",
    "orchestration.tasks.cloud.sync_project": "sync",
    "orchestration.tasks.batch.refresh_batch": "sync",
    "orchestration.tasks.catalogues.extract_catalogue_ccd": "ccd",
    "orchestration.tasks.local_pulling.pull_local_jobs": "jobs",
}


def _queue(name: str) -> str:
    route = app.amqp.router.route({}, name)
    return str(route["queue"].name)


def test_it_routes_every_task_of_the_portal_to_its_lane() -> None:
    app.loader.import_default_modules()
    ours = sorted(n for n in current_app.tasks if n.startswith("orchestration."))
    assert ours == sorted(EXPECTED)  # a new task must be given a lane in CELERY_TASK_ROUTES
    assert {name: _queue(name) for name in ours} == EXPECTED


def test_it_sends_an_unlisted_task_to_the_ops_lane() -> None:
    assert _queue("orchestration.tasks.some_new_task") == "ops"


def test_it_reads_the_routes_when_a_task_is_sent(settings: Any) -> None:
    settings.CELERY_TASK_ROUTES = {**settings.CELERY_TASK_ROUTES, run_operation.name: {"queue": "elsewhere"}}
    assert _queue(run_operation.name) == "elsewhere"


def test_the_runportal_command_starts_one_worker_pool_per_lane(settings: Any) -> None:
    from portal.management.commands.runportal import lane_worker_argv

    settings.CELERY_LANE_CONCURRENCY = {"ops": 2, "sync": 1, "ccd": 3, "jobs": 4}
    commands = {
        lane: lane_worker_argv(lane, settings.CELERY_LANE_CONCURRENCY[lane]) for lane in settings.LANES
    }
    for lane, argv in commands.items():
        assert argv[argv.index("-Q") + 1] == lane
        assert argv[argv.index("--concurrency") + 1] == str(settings.CELERY_LANE_CONCURRENCY[lane])


def test_it_says_an_operation_waits_for_a_worker_and_how_many_are_ahead(
    alice_client: Any, alice: User
) -> None:
    first = Operation.objects.create(owner=alice, kind="system_check", title="First check")
    second = Operation.objects.create(owner=alice, kind="system_check", title="Second check")
    html = alice_client.get("/operations/panel/").content.decode()
    assert "Waiting for a worker (0 ahead)" in html and "Waiting for a worker (1 ahead)" in html
    page = alice_client.get(f"/operations/{second.pk}/").content.decode()
    assert "not yet: waiting for a worker (1 ahead)" in page
    Operation.objects.filter(pk=first.pk).update(state=Operation.RUNNING, started=first.created)
    page = alice_client.get(f"/operations/{second.pk}/").content.decode()
    assert "Waiting for a worker (0 ahead)" in page


def test_a_started_operation_shows_its_step_not_the_wait(alice_client: Any, alice: User) -> None:
    op = Operation.objects.create(
        owner=alice, kind="system_check", title="Check", message="Reading the cloud"
    )
    Operation.objects.filter(pk=op.pk).update(state=Operation.RUNNING, started=op.created)
    html = alice_client.get("/operations/panel/").content.decode()
    assert "Reading the cloud" in html and "Waiting for a worker" not in html


def test_the_operation_page_follows_the_operation_until_it_ends(alice_client: Any, alice: User) -> None:
    op = Operation.objects.create(owner=alice, kind="system_check", title="Check")
    html = alice_client.get(f"/operations/{op.pk}/", HTTP_HX_REQUEST="true").content.decode()
    # The partial holds the header badge and the times too, so nothing on the page is left behind.
    assert 'hx-trigger="every 1s"' in html and 'data-testid="op-detail-state">Queued' in html
    Operation.objects.filter(pk=op.pk).update(
        state=Operation.SUCCEEDED, started=op.created, finished=op.created, progress=100
    )
    html = alice_client.get(f"/operations/{op.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in html and 'data-testid="op-detail-state">Succeeded' in html
    assert 'data-testid="op-started">—' not in html


@pytest.fixture
def local_batch(settings: Any, tmp_path: Any, monkeypatch: Any) -> list[int]:
    settings.BATCH_ROOT = tmp_path / "batch"
    settings.BATCH_SCRATCH_ROOT = tmp_path / "scratch"
    settings.BATCH_USE_BWRAP = False
    woken: list[int] = []
    monkeypatch.setattr(local_wake, "wake_local_workers", woken.append)
    return woken


def test_it_says_an_idle_job_waits_for_a_worker(alice_client: Any, alice: User, local_batch: Any) -> None:
    run_submit(recorded(alice, "local"))
    third = Job.objects.get(index=2)
    html = alice_client.get(f"/batch/jobs/{third.pk}/").content.decode()
    assert "waiting for a worker (2 ahead)" in html
    Job.objects.filter(index=0).update(claimed_by="a-worker")
    html = alice_client.get(f"/batch/jobs/{third.pk}/").content.decode()
    assert "waiting for a worker (1 ahead)" in html


def _control(sub: Any, action: str, jobs: list[int] | None = None) -> Operation:
    op = Operation.objects.create(
        owner=sub.owner,
        kind="batch_control",
        title=action,
        params={"submission": sub.pk, "action": action, "jobs": jobs or []},
    )
    run_operation(op.pk)  # as the ops worker runs it
    op.refresh_from_db()
    return op


def test_a_remove_that_arrives_after_the_job_ended_says_so(alice: User, local_batch: Any) -> None:
    sub = recorded(alice, "local")
    run_submit(sub)
    assert local_pulling.pull_local_jobs() == 4
    job = Job.objects.get(index=2)
    Job.objects.filter(pk=job.pk).update(state=Job.RUNNING)  # what the page showed when Remove was clicked
    op = _control(sub, "remove", [job.pk])
    assert (op.state, op.error) == ("failed", f"Job {job.cluster}.{job.proc} had already finished.")
    assert Job.objects.get(pk=job.pk).state == Job.DONE


def test_a_remove_reports_what_it_removed_and_what_had_ended(alice: User, local_batch: Any) -> None:
    sub = recorded(alice, "local")
    run_submit(sub)
    first = Job.objects.get(index=0)
    backends.local_executor().run(first.cluster or 0, first.proc)  # the first job ran to the end
    ticked = list(Job.objects.filter(index__in=[0, 1, 2]).order_by("index").values_list("pk", flat=True))
    op = _control(sub, "remove", ticked)
    assert op.state == "succeeded"
    assert op.message == f"Removed 2 jobs; Job {first.cluster}.{first.proc} had already finished."
    states = list(Job.objects.order_by("index").values_list("state", flat=True))
    assert states == [Job.DONE, Job.REMOVED, Job.REMOVED, Job.IDLE]


def test_a_release_of_jobs_not_held_says_they_were_not_held(alice: User, local_batch: Any) -> None:
    sub = recorded(alice, "local")
    run_submit(sub)
    op = _control(sub, "release")
    assert op.state == "failed" and op.error.endswith("were not held.")


def test_it_shows_only_the_job_actions_that_apply(alice_client: Any, alice: User, local_batch: Any) -> None:
    sub = recorded(alice, "local")
    run_submit(sub)
    html = alice_client.get(f"/batch/{sub.pk}/").content.decode()
    assert 'data-testid="hold-jobs"' in html and 'data-testid="remove-jobs"' in html
    assert 'data-testid="release-jobs"' not in html
    _control(sub, "hold")
    html = alice_client.get(f"/batch/{sub.pk}/").content.decode()
    assert 'data-testid="release-jobs"' in html and 'data-testid="hold-jobs"' not in html
    _control(sub, "remove")
    html = alice_client.get(f"/batch/{sub.pk}/").content.decode()
    assert 'data-testid="remove-jobs"' not in html and 'data-testid="release-jobs"' not in html


def test_a_queue_given_to_one_call_does_not_stick_to_the_task() -> None:
    first = app.amqp.router.route({"queue": "elsewhere"}, run_operation.name)
    assert first["queue"].name == "elsewhere"
    assert _queue(run_operation.name) == "ops"
