"""Running local jobs on the Celery workers: pull, claim, repair.

A submission asks a few worker slots (BATCH_PULLERS) to pull; each slot claims the oldest idle
local job with a conditional update of its row, runs it, and goes on to the next. A claim names
the worker process (host, pid, start time), so beat can free the jobs of a worker that died,
whether it died before starting the job or while the job ran; and beat wakes workers again when
idle jobs are left with nobody pulling them (a lost message).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from orchestration import backends, local_wake
from orchestration.batch.base import BatchError, JobState
from orchestration.batch.local_executor import LocalExecutor
from orchestration.batch.local_runner import outbox_dir
from orchestration.batch_sync import sync_submission
from orchestration.storage.base import StorageError, makedirs
from orchestration.storage_usage import refresh_usage
from portal.models import Job, Submission
from portal.models.batch import job_dir

log = logging.getLogger(__name__)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot: with the pid, it names one process."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "0"


def claim_token() -> str:
    """Who claims a job: this host, this worker process and its start (pids are reused)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"[:100]


def _pullable() -> Any:
    return Job.objects.filter(state=Job.IDLE, claimed_by="", submission__executor="local").exclude(
        cluster=None
    )


_UNPRINTABLE = "a file name cannot contain control or formatting characters (a newline, say)"


def _shown(name: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in name)


def store_vos_outbox(job: Job) -> int:
    """Store what a finished job copied to vos: with the stand-in vcp into its owner's space, through
    the storage adapter (which refuses paths out of the space); how many files. Problems are noted
    on the job, and the outbox is removed either way."""
    directory = job_dir(job)
    outbox = outbox_dir(directory, job.proc) if directory else None
    if outbox is None or not outbox.is_dir():
        return 0
    stored, problems = 0, []
    try:
        storage = backends.storage_for(job.submission.owner)
        for dirpath, dirnames, filenames in os.walk(outbox):
            rel = Path(dirpath).relative_to(outbox).as_posix()
            prefix = "" if rel == "." else f"{rel}/"
            for name in [n for n in dirnames if not n.isprintable()]:  # not a name pages can link to
                dirnames.remove(name)
                problems.append(f"{_shown(prefix + name)}/: {_UNPRINTABLE}")
            if prefix:
                makedirs(storage, prefix.rstrip("/"))
            for name in sorted(filenames):
                if not name.isprintable():
                    problems.append(f"{_shown(prefix + name)}: {_UNPRINTABLE}")
                    continue
                try:
                    with open(Path(dirpath) / name, "rb") as fh:
                        storage.upload(prefix + name, fh, None, overwrite=True)
                    stored += 1
                except StorageError as exc:
                    problems.append(f"{prefix}{name}: {exc}")
        if stored:
            refresh_usage(job.submission.owner, storage)
    except StorageError as exc:
        problems.append(str(exc))
    finally:
        shutil.rmtree(outbox, ignore_errors=True)
    if problems:
        note = "Files copied with vcp could not all be stored: " + "; ".join(problems)
        Job.objects.filter(pk=job.pk).update(output_note=note[:1000])
    return stored


def _claim_next(token: str) -> Job | None:
    """Claim the oldest idle, unclaimed local job (highest priority first: a workflow node's PRIORITY)
    with a conditional update; None when there is none."""
    for _ in range(20):  # other workers may win the first candidates
        candidates = list(_pullable().order_by("-priority", "id").values_list("pk", flat=True)[:8])
        if not candidates:
            return None
        for pk in candidates:
            claimed = Job.objects.filter(pk=pk, state=Job.IDLE, claimed_by="").update(
                claimed_by=token, claimed_at=timezone.now()
            )
            if claimed:
                return Job.objects.select_related("submission").get(pk=pk)
    return None


def _run_claimed(executor: LocalExecutor, job: Job, token: str) -> str:
    row = Job.objects.filter(pk=job.pk)

    def on_start(pid: int, host: str) -> None:
        row.update(
            state=Job.RUNNING,
            host=host,
            pid=pid,
            worker_pid=os.getpid(),
            started_at=timezone.now(),
            finished_at=None,
            exit_code=None,
            signal=None,
            hold_reason="",
        )

    try:
        result = executor.run(job.cluster or 0, job.proc, on_start=on_start)
    except (BatchError, OSError, ValueError, KeyError, IndexError) as exc:
        # The executor's record of the job is unreadable here: hold it rather than retry it forever.
        log.exception("batch: job %s.%s could not be run", job.cluster, job.proc)
        row.update(state=Job.HELD, hold_reason=f"The job could not be started on this worker: {exc}"[:1000])
        result = None
    finally:
        row.filter(claimed_by=token).update(claimed_by="", claimed_at=None)
    store_vos_outbox(job)
    fresh = row.select_related("submission").first()
    if fresh is not None:
        sync_submission(fresh.submission, jobs=[fresh])
    return "not runnable" if result is None else str(result.state)


@shared_task(acks_late=True, ignore_result=True)
def pull_local_jobs() -> int:
    """Run idle local jobs on this worker slot until none is left or the time slice ends.

    After BATCH_PULL_SECONDS it queues its own successor and returns, so other tasks get the slot
    in turn and a worker's warm shutdown waits for one job, not for a whole batch.
    """
    token, executor = claim_token(), backends.local_executor()
    started, ran = time.monotonic(), 0
    while (job := _claim_next(token)) is not None:
        _run_claimed(executor, job, token)
        ran += 1
        if time.monotonic() - started > settings.BATCH_PULL_SECONDS:
            if _pullable().exists():
                pull_local_jobs.apply_async()
            break
    return ran


def _process_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (an init that never reaps leaves zombies)."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _claimer_alive(token: str) -> bool:
    _, pid, start = (token.split(":") + ["", ""])[:3]
    if not pid.isdigit() or not _process_alive(int(pid)):
        return False
    return _start_time(int(pid)) == start  # a different process that reuses the pid is not the claimer


LOST_REASON = "The worker running this job stopped unexpectedly"


def repair_local_claims(executor: LocalExecutor | None = None) -> int:
    """Free local jobs claimed by worker processes of this host that died; how many were freed.

    A job that was running is stopped, held and (BATCH_JOB_RETRIES times) run again; a job claimed
    but never started (the worker died before starting it) goes back to the idle queue. Idempotent.
    """
    host = socket.gethostname()
    claimed = Job.objects.filter(claimed_by__startswith=f"{host}:", submission__executor="local")
    lost = [j for j in claimed.select_related("submission") if not _claimer_alive(j.claimed_by)]
    executor = executor or backends.local_executor()
    woken = 0
    for job in lost:
        retry = job.restarts < settings.BATCH_JOB_RETRIES
        reason = f"{LOST_REASON}; " + ("it runs again." if retry else "release the job to run it again.")
        try:
            before, after = executor.abandon(job.cluster or 0, job.proc, reason, retry)
        except BatchError as exc:
            log.warning("batch: cannot repair job %s.%s: %s", job.cluster, job.proc, exc)
            continue
        values: dict[str, Any] = {"claimed_by": "", "claimed_at": None, "worker_pid": None, "pid": None}
        if before.state == JobState.RUNNING and after.state == JobState.IDLE:
            values["restarts"] = job.restarts + 1
        if Job.objects.filter(pk=job.pk, claimed_by=job.claimed_by).update(**values):
            sync_submission(job.submission, jobs=[Job.objects.select_related("submission").get(pk=job.pk)])
            woken += after.state == JobState.IDLE
        log.info("batch: freed job %s.%s after its worker died (%s)", job.cluster, job.proc, after.state)
    if woken:
        local_wake.wake_local_workers(woken)
    return len(lost)


def wake_if_stalled() -> bool:
    """Lost messages: idle local jobs that nobody pulls get workers again (at most every BATCH_WAKE_SECONDS)."""
    pullable = _pullable()
    if not pullable.exists():
        return False
    busy = Job.objects.exclude(claimed_by="").filter(state__in=[Job.IDLE, Job.RUNNING])
    if busy.exists():
        return False  # a worker is on it; when its job ends it pulls the next
    cutoff = timezone.now() - timedelta(seconds=settings.BATCH_WAKE_SECONDS)
    subs = Submission.objects.filter(pk__in=pullable.values("submission_id"))
    if subs.filter(woken_at__gte=cutoff).exists():
        return False  # workers were asked recently; their messages may still be queued
    subs.update(woken_at=timezone.now())
    local_wake.wake_local_workers(pullable.count())
    return True
