"""Batch tasks: send submissions to an executor, act on their jobs, follow and repair job states.

- ``batch_submit`` (an Operation): sends one part of a recorded submission; the
  executor's idempotency key makes a retry after a crash return the same cluster.
- ``batch_control`` (an Operation): hold, release or remove jobs.
- ``refresh_batch`` (beat): reads job states from the executor into the database
  (``orchestration/batch_sync.py``), repairs jobs whose worker died, wakes workers when idle
  jobs have nobody pulling them (``local_pulling.py``), stores outputs and announces finished
  submissions.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orchestration import backends, local_wake
from orchestration.batch.base import (
    BatchError,
    ExecutorUnavailable,
    ParsedJob,
    ParsedSubmit,
    SubmissionLost,
    WorkerTarget,
)
from orchestration.batch.submit import check_body
from orchestration.batch_outputs import store_pending, submissions_with_pending_outputs
from orchestration.batch_sync import FOLLOWED, after_sync, sync_submission
from orchestration.errors import TransientError, UserFacingError
from orchestration.operations import Progress
from orchestration.tasks import local_pulling, workflows
from portal.certificates import proxy_for_jobs
from portal.models import Job, Operation, Submission
from portal.models.batch import CONTROL_APPLIES

log = logging.getLogger(__name__)


def _parsed(sub: Submission, jobs: list[Job]) -> ParsedSubmit:
    return ParsedSubmit(
        text=sub.submit_text,
        executable=sub.script_name,
        jobs=[
            ParsedJob(
                j.proc,
                j.item,
                list(j.argv),
                j.output,
                j.error,
                j.log,
                dict(j.item_vars),
                list(j.output_files),
            )
            for j in jobs
        ],
        request_cpus=sub.request_cpus,
        request_memory_mb=sub.request_memory_mb,
        request_disk_mb=sub.request_disk_mb,
        transfer_input_files=list(sub.transfer_input_files),
        body=dict(sub.body),
        queue_vars=list(sub.queue_vars),
    )


def batch_submit(op: Operation, progress: Progress) -> None:
    sub = Submission.objects.select_related("project").get(pk=op.params["submission"], owner=op.owner)
    part = op.params.get("part", "all")
    jobs = list(sub.jobs.filter(part=part).order_by("index"))
    if not jobs:
        raise UserFacingError("This submission has no jobs to send.")
    Submission.objects.filter(pk=sub.pk).exclude(state=Submission.FINISHED).update(
        state=Submission.SUBMITTING
    )
    where = "the local workers" if sub.executor == "local" else "the HTCondor pool"
    progress(10, f"Sending {len(jobs)} job{'s' if len(jobs) != 1 else ''} to {where}")
    target = None
    if sub.image_name or sub.flavor_name:
        project = sub.project.name if sub.project else ""
        target = WorkerTarget(project, sub.image_name, sub.image_id, sub.flavor_name)
    extra: dict[str, Any] = {}
    if sub.executor == "local" and (services := backends.local_services(op.owner)) is not None:
        extra["services"] = services
    key = sub.submit_key(part)
    try:
        parsed = _parsed(sub, jobs)
        if sub.executor == "htcondor":  # rows recorded before the submit grammar are checked again
            check_body(parsed.body, [job.item_vars for job in parsed.jobs])
        handle = backends.executor_for(sub.executor).submit(
            parsed,
            {sub.script_name: sub.script.encode()},
            key=key,
            proxy=proxy_for_jobs(op.owner),
            target=target,
            **extra,
        )
    except SubmissionLost as exc:
        _send_again(sub, part, key, exc)  # raises: try again later under a new key, or give up
    except ExecutorUnavailable as exc:
        raise TransientError(str(exc)) from exc
    except (BatchError, UserFacingError) as exc:
        Submission.objects.filter(pk=sub.pk).update(state=Submission.FAILED, error=str(exc))
        raise UserFacingError(str(exc)) from exc
    Job.objects.filter(submission=sub, part=part).update(cluster=handle.cluster)
    Job.objects.filter(submission=sub, part=part, state=Job.UNSENT).update(state=Job.IDLE)
    Submission.objects.filter(pk=sub.pk).update(state=Submission.ACTIVE, error="")
    if sub.executor == "local":  # the jobs are in the database now: workers can pull them
        Submission.objects.filter(pk=sub.pk).update(woken_at=timezone.now())
        local_wake.wake_local_workers(handle.num_jobs)
    op.result = {"cluster": handle.cluster, "jobs": handle.num_jobs}
    op.save(update_fields=["result"])
    sent = f"Sent {handle.num_jobs} job{'s' if handle.num_jobs != 1 else ''} as cluster {handle.cluster}"
    lost = Submission.objects.get(pk=sub.pk).lost_clusters(part)
    if lost:
        names = ", ".join(map(str, lost))
        sent += f" (the pool removed cluster{'s' if len(lost) != 1 else ''} {names} before the files arrived)"
    progress(100, sent)


MAX_LOST_CLUSTERS = 3  # clusters the pool may lose before their files arrived, before the batch fails


def _send_again(sub: Submission, part: str, key: str, exc: SubmissionLost) -> None:
    """HTCondor removed the cluster before its files arrived: record it, then send under a new key.

    The new key is recorded before anything is sent with it, so a worker killed at any moment
    finds either the lost cluster (removed, never run) or the new one; never both running. Only
    the worker that still sees the key it used moves it on (two workers agree on one new key).
    """
    with transaction.atomic():
        locked = Submission.objects.select_for_update().get(pk=sub.pk)
        entry = dict(locked.submit_keys.get(part, {}))
        lost = [int(c) for c in entry.get("lost", [])]
        if locked.submit_key(part) == key:
            lost = sorted({*lost, exc.cluster})
            entry = {"key": f"{locked.part_key(part)}-r{len(lost)}", "lost": lost}
            locked.submit_keys = {**locked.submit_keys, part: entry}
            locked.save(update_fields=["submit_keys"])
    if len(lost) >= MAX_LOST_CLUSTERS:
        message = (
            f"The HTCondor pool removed this batch's jobs {len(lost)} times before their files arrived "
            f"(clusters {', '.join(map(str, lost))}); none of them ran. Last: {exc}"
        )
        Submission.objects.filter(pk=sub.pk).update(state=Submission.FAILED, error=message)
        raise UserFacingError(message) from exc
    raise TransientError(f"{exc} The jobs are sent again as a new cluster.") from exc


# ---------------------------------------------------------------------------- control


# What each action leads to, and the words for a job it no longer applies to.
CONTROL_DONE = {"hold": (Job.HELD,), "release": (Job.IDLE, Job.RUNNING), "remove": (Job.REMOVED,)}
CONTROL_WORDS = {"hold": "Held", "release": "Released", "remove": "Removed"}


def _job_names(jobs: list[Job]) -> str:
    names = [f"{j.cluster}.{j.proc}" if j.cluster is not None else f"#{j.index}" for j in jobs[:3]]
    more = f" and {len(jobs) - 3} more" if len(jobs) > 3 else ""
    return ("Job " if len(jobs) == 1 else "Jobs ") + ", ".join(names) + more


WHY_NOT = {
    Job.DONE: "had already finished",
    Job.NO_OUTPUT: "had already finished",
    Job.FAILED: "had already finished",
    Job.REMOVED: "had already been removed",
    Job.HELD: "{was} already held",
    Job.IDLE: "{was} not held",
    Job.RUNNING: "{was} not held",
    Job.UNSENT: "had not been sent yet",
}


def _why_not(jobs: list[Job]) -> str:
    """Why an action did nothing to these jobs: one sentence per reason."""
    by_reason: dict[str, list[Job]] = {}
    for job in jobs:
        by_reason.setdefault(WHY_NOT.get(job.state, "{was} not there"), []).append(job)
    return " ".join(
        f"{_job_names(group)} {reason.format(was='was' if len(group) == 1 else 'were')}."
        for reason, group in by_reason.items()
    )


def batch_control(op: Operation, progress: Progress) -> None:
    """Hold, release or remove jobs of a submission (all of them, or the ids in params["jobs"]).

    The jobs' states are read from the executor first, so an action that arrives after a job ended
    says so; a running local job is stopped at once (its stop file, and a kill where it runs here).
    """
    sub = Submission.objects.get(pk=op.params["submission"], owner=op.owner)
    action = op.params["action"]
    if action not in CONTROL_APPLIES:
        raise UserFacingError(f"“{action}” is not an action on jobs.")
    selected = sub.jobs.all()
    if op.params.get("jobs"):
        selected = selected.filter(pk__in=op.params["jobs"])
    sync_submission(sub, jobs=list(selected.exclude(cluster=None).select_related("submission")))
    jobs = list(selected.order_by("index"))
    acting = [j for j in jobs if j.state in CONTROL_APPLIES[action]]
    if action == "remove":  # jobs never sent are simply dropped
        Job.objects.filter(pk__in=[j.pk for j in acting if j.state == Job.UNSENT]).update(
            state=Job.REMOVED, finished_at=timezone.now()
        )
    executor = backends.executor_for(sub.executor)
    local = sub.executor == "local"
    by_cluster: dict[int, list[int]] = {}
    for job in acting:
        if job.cluster is not None:
            by_cluster.setdefault(int(job.cluster), []).append(job.proc)
    calls = [(c, p) for c, procs in by_cluster.items() for p in ([[x] for x in procs] if local else [procs])]
    try:
        # Local jobs are stopped in parallel: each stop waits for its job's processes to end (up to the
        # kill grace), and N running jobs must not take N graces. A schedd takes a cluster at once.
        with ThreadPoolExecutor(max_workers=min(16, len(calls) or 1)) as pool:
            for future in [pool.submit(getattr(executor, action), c, p) for c, p in calls]:
                future.result()
    except ExecutorUnavailable as exc:
        raise TransientError(str(exc)) from exc
    except BatchError as exc:
        raise UserFacingError(str(exc)) from exc
    if action == "release" and by_cluster:
        Submission.objects.filter(pk=sub.pk, state__in=[Submission.FINISHED]).update(
            state=Submission.ACTIVE, finished=None
        )
    sync_submission(sub)
    if action == "release" and sub.executor == "local":
        local_wake.wake_local_workers(sum(len(p) for p in by_cluster.values()))
    after = {j.pk: j for j in Job.objects.filter(pk__in=[j.pk for j in jobs])}
    done = [after[j.pk] for j in acting if after[j.pk].state in CONTROL_DONE[action]]
    missed = [after[j.pk] for j in jobs if j.pk not in {d.pk for d in done}]
    if not done:
        raise UserFacingError(_why_not(missed) or "There were no jobs to act on.")
    message = f"{CONTROL_WORDS[action]} {len(done)} job{'s' if len(done) != 1 else ''}"
    if missed and op.params.get("jobs"):  # jobs the user ticked that it did not reach
        message += f"; {_why_not(missed)}"
    progress(100, message)


# ---------------------------------------------------------------------------- beat

STUCK_GRACE = timedelta(minutes=10)  # a "Submitting" batch with no sending operation at all, this old


def repair_stuck_submissions(limit: int = 50) -> int:
    """Batches left "Submitting" because their sending operation gave up (or vanished).

    For each part still unsent, the executor is asked whether it got through after all: if so,
    the cluster is recorded as the operation would have; if not, the batch is marked not
    submitted (or, when some part did go, active) with the operation's last error. A pool that
    cannot be reached leaves the batch for the next round: it may hold the cluster.
    """
    repaired = 0
    cutoff = timezone.now() - STUCK_GRACE
    for sub in Submission.objects.filter(state=Submission.SUBMITTING)[:limit]:
        ops = Operation.objects.filter(kind="batch_submit", params__submission=sub.pk)
        if ops.filter(state__in=Operation.ACTIVE_STATES).exists():
            continue  # still being sent (or waiting to retry)
        last = ops.order_by("-created", "-id").first()
        if last is None and sub.created > cutoff:
            continue  # its operation may not be committed yet
        parts = sorted(set(sub.jobs.filter(state=Job.UNSENT, cluster=None).values_list("part", flat=True)))
        executor = backends.executor_for(sub.executor)
        lost: list[str] = []
        try:
            for part in parts:
                cluster = executor.find(sub.submit_key(part))
                if cluster is None:
                    lost.append(part)
                    continue
                Job.objects.filter(submission=sub, part=part).update(cluster=cluster)
                Job.objects.filter(submission=sub, part=part, state=Job.UNSENT).update(state=Job.IDLE)
        except ExecutorUnavailable as exc:
            log.warning("batch repair of submission %s: %s", sub.pk, exc)
            continue
        if not lost:
            Submission.objects.filter(pk=sub.pk).update(state=Submission.ACTIVE, error="")
        else:
            why = (last.error or last.message) if last is not None else ""
            message = (
                f"Sending the jobs gave up{f': {why}' if why else ''}. "
                "They never reached the pool; submit the batch again."
            )
            sent = sub.jobs.exclude(cluster=None).exists()
            Submission.objects.filter(pk=sub.pk).update(
                state=Submission.ACTIVE if sent else Submission.FAILED, error=message[:2000]
            )
        repaired += 1
    return repaired


@shared_task(ignore_result=True)
def refresh_batch() -> int:
    """Beat: follow every submission with jobs in the queue; repair, wake, retrieve, store and announce."""
    changed = 0
    try:
        local_pulling.repair_local_claims()
        local_pulling.wake_if_stalled()
    except Exception:
        log.exception("batch repair of local jobs failed")
    try:
        repair_stuck_submissions()
    except Exception:
        log.exception("batch repair of submissions stuck in Submitting failed")
    live = Q(jobs__state__in=FOLLOWED)
    active = Submission.objects.filter(
        Q(state__in=[Submission.ACTIVE, Submission.SUBMITTING]) & live
    ).distinct()
    for sub in active[:200]:
        try:
            changed += sync_submission(sub)
        except Exception:
            log.exception("batch refresh of submission %s failed", sub.pk)
    # Submissions whose last jobs changed state elsewhere (e.g. by the job task) but were not closed.
    for sub in Submission.objects.filter(state=Submission.ACTIVE).exclude(live)[:200]:
        after_sync(sub, backends.executor_for(sub.executor))
    try:
        workflows.refresh_workflows()
    except Exception:
        log.exception("workflow refresh failed")
    for sub in submissions_with_pending_outputs():
        try:
            store_pending(sub)
        except Exception:
            log.exception("batch outputs of submission %s not stored", sub.pk)
    return changed
