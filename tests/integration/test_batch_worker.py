"""The CANFAR tutorial's example on the local executor, with real Celery worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from orchestration.batch.base import BatchSpec
from orchestration.batch.submit import build_submit, parse_spec
from orchestration.operations import Progress, run_operation
from orchestration.tasks.batch import batch_control, batch_submit, refresh_batch
from orchestration.tasks.local_pulling import _process_alive
from portal.models import Job, Operation, Submission
from portal.models.batch import job_dir, record_submission
from tests.conftest import ROOT, make_user, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ITEMS = ["1056215p", "1056216p", "1056217p", "1056218p"]
# The tutorial's pipeline without the network: one "catalogue" per observation ID.
SCRIPT = (
    '#!/bin/bash\nid=$1\necho "catalogue of ${id}" > ${id}.cat\ncat ${id}.cat\necho "log for ${id}" >&2\n'
)


def wait_for(check: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def submit_and_wait(
    client: Any, owner: Any, script: str, items: list[str], memory_mb: int = 2048
) -> Submission:
    """Submit do_catalogue.bash over the items on the local workers, through the form; wait for the end."""
    response = client.post(
        "/batch/new/",
        {
            "name": "do_catalogue",
            "script_name": "do_catalogue.bash",
            "script": script,
            "items": "\n".join(items),
            "request_cpus": 1,
            "request_memory_mb": memory_mb,
            "request_disk_mb": 1024,
            "executor": "local",
        },
    )
    assert response.status_code == 302
    sub = Submission.objects.get(owner=owner)
    wait_for(
        lambda: Submission.objects.get(pk=sub.pk).state == Submission.FINISHED, 120, "the batch to finish"
    )
    return sub


def test_it_runs_the_tutorials_example_on_a_worker_and_announces_the_end(
    client: Any, celery_worker_process: Any, django_capture_on_commit_callbacks: Any
) -> None:
    alice = make_user("alice", ["alice-lensing"])
    client.force_login(alice)
    sub = submit_and_wait(client, alice, SCRIPT, ITEMS, memory_mb=512)
    jobs = list(sub.jobs.order_by("index"))
    assert [(j.item, j.state, j.exit_code) for j in jobs] == [(i, "done", 0) for i in ITEMS]
    assert all(j.host and j.started_at and j.finished_at for j in jobs)
    page = client.get(f"/batch/jobs/{jobs[2].pk}/").content.decode()
    assert "catalogue of 1056217p" in page and "log for 1056217p" in page and "Finished, exit code 0" in page
    note = Operation.objects.get(owner=alice, kind="batch_finished")
    assert (note.title, note.state, note.message) == (
        "Batch do_catalogue finished",
        "succeeded",
        "4 jobs: 4 done",
    )
    assert "Batch do_catalogue finished" in client.get("/operations/panel/").content.decode()


def _worker(queue: str, name: str, **extra_env: str) -> subprocess.Popen[bytes]:
    env = worker_env()
    env["BATCH_QUEUE"] = queue
    env.update(extra_env)
    log = open(settings.VAR_DIR / f"{name}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            queue,
            "--concurrency",
            "1",
            "-n",
            f"{name}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for(lambda: b"ready." in (settings.VAR_DIR / f"{name}.log").read_bytes(), 60, f"worker {name}")
    return proc


def _jobs_on(queue: str) -> dict[str, dict[str, str]]:
    """The lanes' routes with local jobs sent to this test's own queue."""
    return {
        **settings.CELERY_TASK_ROUTES,
        "orchestration.tasks.local_pulling.pull_local_jobs": {"queue": queue},
    }


def _alive(pid: int) -> bool:
    return _process_alive(pid)


def test_it_repairs_a_job_whose_worker_was_killed(tmp_path: Any) -> None:
    queue = f"batch-repair-{os.getpid()}"
    alice = make_user("alice", ["alice-lensing"])
    spec = BatchSpec(name="slow", script_name="slow.bash", items=["obs1"])
    parsed = parse_spec(spec)
    sub = record_submission(
        owner=alice,
        project=None,
        name="slow",
        executor="local",
        script_name="slow.bash",
        script="#!/bin/bash\nsleep 120\n",
        submit_text=build_submit(spec),
        parsed=parsed,
    )
    op = Operation.objects.create(
        owner=alice,
        kind="batch_submit",
        title="t",
        state="running",
        params={"submission": sub.pk, "part": "all"},
    )
    first = _worker(queue, "repair-a")
    second = None
    try:
        with override_settings(CELERY_TASK_ROUTES=_jobs_on(queue), BATCH_JOB_RETRIES=1):
            batch_submit(op, Progress(op))
            wait_for(lambda: Job.objects.get(submission=sub).state == Job.RUNNING, 60, "the job to start")
            job = Job.objects.get(submission=sub)
            orphan = job.pid or 0
            assert _alive(orphan)
            os.killpg(first.pid, signal.SIGKILL)  # the worker dies mid-job; the job's own session survives
            first.wait(10)

            def repaired() -> bool:  # beat's refresh, every few seconds, until the kill has fully landed
                refresh_batch()
                return Job.objects.get(pk=job.pk).state != Job.RUNNING

            wait_for(repaired, 30, "the repair of the orphaned job")
            job.refresh_from_db()
            assert not _alive(orphan)  # the orphaned job was stopped
            assert (job.state, job.restarts) == (Job.IDLE, 1)
            events = (job_dir(job) / job.log).read_text()
            assert "stopped unexpectedly; it runs again." in events and "Job was released" in events
            second = _worker(queue, "repair-b")  # the re-queued job runs again on a live worker
            wait_for(lambda: Job.objects.get(submission=sub).state == Job.RUNNING, 60, "the job to run again")
            control = Operation.objects.create(
                owner=alice,
                kind="batch_control",
                title="rm",
                state="running",
                params={"submission": sub.pk, "action": "remove", "jobs": []},
            )
            batch_control(control, Progress(control))
            wait_for(lambda: Job.objects.get(submission=sub).state == Job.REMOVED, 30, "the removal")
            assert Job.objects.get(submission=sub).failure_reason == "The job was removed before it finished."
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)


def test_it_leaves_no_duplicate_and_no_orphan_when_a_worker_dies_mid_submission(tmp_path: Any) -> None:
    queue = f"batch-submit-{os.getpid()}"
    alice = make_user("alice", ["alice-lensing"])
    spec = BatchSpec(name="big", script_name="big.bash", items=[f"{1000000 + i}p" for i in range(3000)])
    sub = record_submission(
        owner=alice,
        project=None,
        name="big",
        executor="local",
        script_name="big.bash",
        script="#!/bin/bash\ntrue\n",
        submit_text=build_submit(spec),
        parsed=parse_spec(spec),
    )
    op = Operation.objects.create(
        owner=alice, kind="batch_submit", title="t", params={"submission": sub.pk, "part": "all"}
    )
    root = tmp_path / "batch" / "local"
    link = root / "keys" / sub.part_key("all")
    worker = _worker(queue, "submit-a", BATCH_ROOT=str(tmp_path / "batch"))
    try:
        with override_settings(CELERY_TASK_ROUTES=_jobs_on(queue), BATCH_ROOT=tmp_path / "batch"):
            run_operation.apply_async(args=[op.pk], queue=queue)
            deadline = time.monotonic() + 60
            while not link.is_symlink():  # look often: the window while it writes the jobs is short
                assert time.monotonic() < deadline, "timed out waiting for the submission to start"
                time.sleep(0.002)
            os.killpg(worker.pid, signal.SIGKILL)  # the worker dies while it writes the jobs
            worker.wait(10)
            cluster = int(os.readlink(link))
            print(
                "killed before the submission was complete:",
                not (root / str(cluster) / "submission.json").exists(),
            )
            # The operation's lease runs out and it runs again (repair_operations), here in this process.
            Operation.objects.filter(pk=op.pk).update(updated=op.created - timedelta(hours=1))
            run_operation(op.pk)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
    op.refresh_from_db()
    assert (op.state, op.result) == ("succeeded", {"cluster": cluster, "jobs": 3000})
    clusters = sorted(p.name for p in root.iterdir() if p.name.isdigit())
    assert clusters == [str(cluster)]  # no second cluster, no half-written orphan
    assert set(Job.objects.filter(submission=sub).values_list("state", "cluster")) == {("idle", cluster)}
    with override_settings(BATCH_ROOT=tmp_path / "batch"):
        logs = [job_dir(j) / j.log for j in Job.objects.filter(submission=sub).select_related("submission")]
    assert all(p.read_text().count("Job submitted") == 1 for p in logs)  # each job queued exactly once


def test_the_tutorials_script_runs_unchanged_against_the_local_archive_and_storage(
    client: Any, celery_worker_process: Any
) -> None:
    """cadcget, funpack, source-extractor and vcp, as the CANFAR tutorial writes them, on a real worker."""
    from orchestration.catalogue.formats import read_catalogue
    from orchestration.catalogue.synth import SynthConfig, make_megacam_image
    from portal.forms.batch import SEED_SCRIPT

    observation = "1056216p"
    image = settings.ARCHIVE_DIR / "CFHT" / f"{observation}.fits.fz"
    image.parent.mkdir(parents=True, exist_ok=True)
    make_megacam_image(image, seed=5, n_ccds=2, shape=(400, 300), obs_id=observation, config=SynthConfig())
    bob = make_user("bob", ["bob-lensing"])
    shutil.rmtree(settings.STORAGE_ROOT / "bob", ignore_errors=True)  # var/test outlives earlier runs
    client.force_login(bob)
    form = client.get("/batch/new/").content.decode()
    assert "vos:bob/" in form and "[VOSpace]" not in form  # the placeholder is filled in for the user
    sub = submit_and_wait(client, bob, SEED_SCRIPT.replace("vos:[VOSpace]", "vos:bob"), [observation])
    job = sub.jobs.get()
    err = (job_dir(job) / job.error).read_text() if job_dir(job) else ""
    assert (job.state, job.exit_code) == ("done", 0), err
    stored = settings.STORAGE_ROOT / "bob" / f"{observation}.cat"
    catalogue = read_catalogue(stored)  # source-extractor's own ASCII_HEAD file, stored by vcp
    assert len(catalogue) > 10
    assert {"NUMBER", "MAG_AUTO", "X_IMAGE", "Y_IMAGE"} <= set(catalogue.rows.dtype.names or ())
