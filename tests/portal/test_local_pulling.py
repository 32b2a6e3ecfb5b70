"""Local jobs pulled by worker slots: one claim per job, repair of dead workers, lost messages."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from orchestration import local_wake
from orchestration.tasks import local_pulling
from portal.models import Job, Submission
from tests.portal.test_batch_tasks import recorded, run_submit


@pytest.fixture
def woken(settings: Any, tmp_path: Any, monkeypatch: Any) -> list[int]:
    """Local batch under tmp_path; the wake-up messages are recorded instead of sent to the broker."""
    settings.BATCH_ROOT = tmp_path / "batch"
    settings.BATCH_SCRATCH_ROOT = tmp_path / "scratch"
    settings.BATCH_USE_BWRAP = False
    out: list[int] = []
    monkeypatch.setattr(local_wake, "wake_local_workers", out.append)
    return out


def _executions(job: Job) -> int:
    from portal.models.batch import job_dir

    return (job_dir(job) / job.log).read_text().count("Job executing")  # type: ignore[operator]


def test_it_runs_every_job_once_from_a_few_pull_messages(alice: User, woken: list[int]) -> None:
    sub = recorded(alice, "local")
    run_submit(sub)
    assert woken == [4]  # one message per worker slot asked, not one per job
    assert local_pulling.pull_local_jobs() == 4  # a slot runs jobs until none is left
    assert local_pulling.pull_local_jobs() == 0
    jobs = list(Job.objects.order_by("index"))
    assert [(j.state, j.exit_code, j.claimed_by) for j in jobs] == [("done", 0, "")] * 4
    assert [_executions(j) for j in jobs] == [1, 1, 1, 1]
    assert Submission.objects.get().state == Submission.FINISHED


def test_it_frees_a_job_claimed_by_a_worker_that_died_before_starting_it(
    alice: User, woken: list[int]
) -> None:
    sub = recorded(alice, "local")
    run_submit(sub)
    job = Job.objects.get(index=1)
    # A claim by a process that no longer exists: this pid with another start time (pids are reused).
    dead = f"{socket.gethostname()}:{os.getpid()}:1"
    Job.objects.filter(pk=job.pk).update(claimed_by=dead, claimed_at=timezone.now())
    from orchestration.backends import local_executor
    from portal.models.batch import job_dir

    claims = job_dir(job).parent / "claims"  # type: ignore[union-attr]
    (claims / str(job.proc)).touch()  # it had claimed the job in the executor too
    alive = Job.objects.get(index=2)
    Job.objects.filter(pk=alive.pk).update(claimed_by=local_pulling.claim_token())  # this process: alive

    assert local_pulling.repair_local_claims(local_executor()) == 1
    assert local_pulling.repair_local_claims(local_executor()) == 0  # idempotent
    job.refresh_from_db()
    assert (job.state, job.claimed_by, job.restarts) == (Job.IDLE, "", 0)
    assert Job.objects.get(pk=alive.pk).claimed_by == local_pulling.claim_token()
    assert woken[-1] == 1
    Job.objects.filter(pk=alive.pk).update(claimed_by="")
    assert local_pulling.pull_local_jobs() == 4
    assert set(Job.objects.values_list("state", flat=True)) == {Job.DONE}


def test_it_wakes_workers_again_when_idle_jobs_have_nobody_pulling_them(
    alice: User, woken: list[int]
) -> None:
    sub = recorded(alice, "local")
    run_submit(sub)  # its pull messages are lost: nobody runs them
    assert local_pulling.wake_if_stalled() is False  # asked just now: the messages may be queued
    Submission.objects.update(woken_at=timezone.now() - timedelta(minutes=5))
    Job.objects.filter(index=0).update(claimed_by=local_pulling.claim_token())
    assert local_pulling.wake_if_stalled() is False  # a live worker holds a job: it pulls the next one
    Job.objects.filter(index=0).update(claimed_by="")
    assert local_pulling.wake_if_stalled() is True
    assert woken == [4, 4]
    assert local_pulling.wake_if_stalled() is False  # not again until BATCH_WAKE_SECONDS passed


def test_waking_sends_one_pull_message_per_worker_slot_to_the_jobs_lane(settings: Any) -> None:
    """The pull task is named by its path where workers are woken: the name must be the task's, and
    the messages go through the broker to the lane the routes give it."""
    from kombu.simple import SimpleQueue

    from config.celery import app

    assert local_pulling.pull_local_jobs.name == local_wake.PULL_TASK
    queue = f"wake-{os.getpid()}-{socket.gethostname()}"
    settings.CELERY_TASK_ROUTES = {**settings.CELERY_TASK_ROUTES, local_wake.PULL_TASK: {"queue": queue}}
    settings.BATCH_PULLERS = 2
    local_wake.wake_local_workers(5)
    with app.connection_for_read() as conn, SimpleQueue(conn, queue) as q:
        tasks = []
        while len(tasks) < 3:
            try:
                message = q.get(block=False)
            except q.Empty:
                break
            tasks.append(message.headers["task"])
            message.ack()
    assert tasks == [local_pulling.pull_local_jobs.name] * 2
