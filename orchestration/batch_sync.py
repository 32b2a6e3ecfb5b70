"""Following batch jobs: the executor's view of each job read into its row, and what follows from it.

``sync_submission`` is called by whoever learns that jobs may have moved: beat (``refresh_batch``)
for every submission with jobs in the queue, the local worker that has just run a job, and the
actions on jobs. A submission whose last job ended is closed: announced in the activity panel, or,
for a workflow's node, handed to the workflow engine, which sends the nodes that were waiting for it.
Outputs are copied into the submission's storage folder as each job's files arrive.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.utils import timezone

from orchestration import backends, workflow_engine
from orchestration.batch.base import ClusterGone, Executor, ExecutorUnavailable, JobState, JobStatus
from orchestration.batch.eventlog import read_events
from orchestration.batch.local_executor import state_from_events
from orchestration.batch_outputs import mark_missing_outputs, store_pending
from portal.models import Job, Operation, Submission
from portal.models.batch import counts_for, job_dir, summary_text

log = logging.getLogger(__name__)


def _when(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def _apply(job: Job, status: JobStatus) -> bool:
    """Copy an executor status onto the row; True when something changed."""
    values: dict[str, Any] = {
        "state": str(status.state),
        "exit_code": status.exit_code,
        "signal": status.signal,
        "host": status.host[:255],
        "hold_reason": status.hold_reason[:1000] if status.state == JobState.HELD else "",
        "remove_reason": status.remove_reason[:1000],
        "started_at": _when(status.started_at),
        "finished_at": _when(status.finished_at),
    }
    if status.state == JobState.NO_OUTPUT and status.hold_reason:
        values["output_note"] = status.hold_reason[:1000]  # what the pool said about the missing files
    if status.state != JobState.IDLE:
        values["why_idle"] = ""
    changed = False
    for field, value in values.items():
        if getattr(job, field) != value:
            setattr(job, field, value)
            changed = True
    return changed


SYNC_FIELDS = [
    "state",
    "exit_code",
    "signal",
    "host",
    "hold_reason",
    "remove_reason",
    "why_idle",
    "retrieved",
    "started_at",
    "finished_at",
    "output_note",
]
FOLLOWED = [Job.IDLE, Job.RUNNING, Job.HELD]


def _local_statuses(jobs: list[Job]) -> dict[int, JobStatus]:
    """Local jobs' states straight from their event logs (a log may be shared by several jobs)."""
    cache: dict[Path, list[Any]] = {}
    out = {}
    for job in jobs:
        directory = job_dir(job)
        if directory is None:
            continue
        path = directory / job.log
        if path not in cache:
            cache[path] = read_events(path)
        out[job.pk] = state_from_events(job.cluster or 0, job.proc, cache[path])
    return out


def sync_submission(sub: Submission, jobs: list[Job] | None = None) -> int:
    """Read the executor's view of the followed jobs (default: all in the queue) into their rows."""
    if jobs is None:
        jobs = list(sub.jobs.filter(state__in=FOLLOWED).exclude(cluster=None).select_related("submission"))
    jobs = [j for j in jobs if j.state not in Job.FINAL_STATES]  # final is final: never read again
    executor = backends.executor_for(sub.executor)
    touched: set[int] = set()
    if sub.executor == "local":
        statuses = _local_statuses(jobs)
    else:
        statuses, touched = _htcondor_statuses(jobs, executor)
    changed = [j for j in jobs if (j.pk in statuses and _apply(j, statuses[j.pk])) or j.pk in touched]
    for job in changed:
        mark_missing_outputs(job)  # decided before the row says "done", so nobody sees it done
    Job.objects.bulk_update(changed, SYNC_FIELDS, batch_size=500)
    after_sync(sub, executor)
    if sub.output_folder:
        store_pending(sub)
    return len(changed)


def after_sync(sub: Submission, executor: Executor) -> None:
    if sub.executor == "htcondor":
        _retrieve_stragglers(sub, executor)
    counts = counts_for([sub.pk]).get(sub.pk, {})
    live = sum(counts.get(s, 0) for s in (Job.IDLE, Job.RUNNING, Job.HELD))
    if live or sub.state not in (Submission.ACTIVE, Submission.SUBMITTING):
        return
    if counts.get(Job.UNSENT):
        if Submission.objects.filter(pk=sub.pk, state=Submission.ACTIVE).update(state=Submission.PAUSED):
            _discard_proxies(sub, executor)
            _notify(sub, counts, test=True)
        return
    if Submission.objects.filter(pk=sub.pk, state=Submission.ACTIVE).update(
        state=Submission.FINISHED, finished=timezone.now()
    ):
        _discard_proxies(sub, executor)
        if sub.workflow_id is not None:  # a workflow's node: its children may start now
            workflow_engine.node_finished(sub.pk, counts, sync=sync_submission)
        else:
            _notify(sub, counts, test=False)


def _discard_proxies(sub: Submission, executor: Executor) -> None:
    """No job of the submission can run any more: its proxy certificate copies go (a later part brings its own)."""
    if sub.executor != "local":
        return  # the HTCondor executor never keeps one after spooling
    for cluster in set(sub.jobs.exclude(cluster=None).values_list("cluster", flat=True)):
        if cluster is not None:
            executor.discard_proxy(int(cluster))


# ---------------------------------------------------------------------------- HTCondor jobs
#
# Each job's output is retrieved as soon as that job completes (spooled jobs wait in the
# schedd's queue, completed, until then); a job the pool held because a declared output was
# missing (code 12) completed without output and leaves the queue; idle jobs carry the pool's
# own reason for not matching.


def _htcondor_statuses(jobs: list[Job], executor: Executor) -> tuple[dict[int, JobStatus], set[int]]:
    """The schedd's view of these jobs, with completed jobs' output fetched first.

    A job whose output could not be fetched yet keeps its previous state this round: a final
    state is written only once the files that come with it are here. Returns the statuses by
    job id and the ids of jobs changed otherwise (their idle explanation).
    """
    statuses: dict[int, JobStatus] = {}
    touched: set[int] = set()
    for cluster in sorted({j.cluster for j in jobs if j.cluster is not None}):
        mine = [j for j in jobs if j.cluster == cluster]
        try:
            by_proc = {s.proc: s for s in executor.status(cluster)}
        except ExecutorUnavailable as exc:
            log.warning("batch refresh: %s", exc)
            continue
        seen = {j.pk: by_proc[j.proc] for j in mine if j.proc in by_proc}
        completed = [j for j in mine if j.pk in seen and seen[j.pk].state in (JobState.DONE, JobState.FAILED)]
        no_output = [j for j in mine if j.pk in seen and seen[j.pk].state == JobState.NO_OUTPUT]
        try:
            if completed:
                executor.retrieve(cluster, [j.proc for j in completed])
            if no_output:  # held by the pool for good: it leaves the queue, its state stays here
                executor.remove(
                    cluster, [j.proc for j in no_output], reason="Completed without output (see the portal)"
                )
        except ExecutorUnavailable as exc:
            log.warning("batch retrieve: %s", exc)
            for j in [*completed, *no_output]:
                del seen[j.pk]
        except ClusterGone as exc:  # nothing left to fetch: the jobs keep the state they ended in
            log.warning("batch retrieve of cluster %s: %s", cluster, exc)
        for j in [*completed, *no_output]:
            if j.pk in seen:
                j.retrieved = True
        statuses.update(seen)
        idle = [j for j in mine if j.pk in seen and seen[j.pk].state == JobState.IDLE]
        if idle:
            touched |= _explain_idle(cluster, idle, executor)
    return statuses, touched


def _retrieve_stragglers(sub: Submission, executor: Executor) -> None:
    """Jobs whose row is final but whose output never came back (recorded before per-job retrieval)."""
    jobs = list(
        sub.jobs.filter(state__in=[Job.DONE, Job.FAILED], retrieved=False)
        .exclude(cluster=None)
        .select_related("submission")[:500]
    )
    for cluster in sorted({j.cluster for j in jobs if j.cluster is not None}):
        mine = [j for j in jobs if j.cluster == cluster]
        try:
            executor.retrieve(cluster, [j.proc for j in mine])
        except ExecutorUnavailable as exc:
            log.warning("batch retrieve: %s", exc)
            continue
        except ClusterGone as exc:  # nothing left to fetch: the jobs are final without their files
            log.warning("batch retrieve of cluster %s: %s", cluster, exc)
        for job in mine:
            job.retrieved = True
            mark_missing_outputs(job)
        Job.objects.bulk_update(mine, ["retrieved", "state", "output_note"], batch_size=500)


def _explain_idle(cluster: int, idle: list[Job], executor: Executor) -> set[int]:
    try:
        why = executor.explain_idle(cluster)
    except ExecutorUnavailable as exc:
        log.warning("batch idle analysis: %s", exc)
        return set()
    text = why.text[:1000] if why is not None else ""
    changed = {j.pk for j in idle if j.why_idle != text}
    for j in idle:
        j.why_idle = text
    return changed


def _notify(sub: Submission, counts: dict[str, int], test: bool) -> None:
    """A finished submission appears in the activity panel, with its summary."""
    failed = counts.get(Job.FAILED, 0)
    no_output = counts.get(Job.NO_OUTPUT, 0)
    now = timezone.now()
    if test:
        title = f"Test job of batch {sub.name} finished"
        rest = counts.get(Job.UNSENT, 0)
        message = (
            f"The test job {'failed' if failed else 'succeeded'}; "
            f"{rest} job{'s' if rest != 1 else ''} wait for you to start them."
        )
    else:
        title = f"Batch {sub.name} finished"
        message = f"{counts.get('total', 0)} jobs: {summary_text(counts)}"
    Operation.objects.create(
        owner_id=sub.owner_id,
        project_id=sub.project_id,
        kind="batch_finished",
        title=title,
        target=f"batch:{sub.pk}",
        state=Operation.FAILED if failed or no_output else Operation.SUCCEEDED,
        progress=100,
        message=message[:500],
        error=_problems(failed, no_output, message),
        started=now,
        finished=now,
    )


def _problems(failed: int, no_output: int, message: str) -> str:
    parts = []
    if failed:
        parts.append(f"{failed} job{'s' if failed != 1 else ''} failed.")
    if no_output:
        parts.append(f"{no_output} job{'s' if no_output != 1 else ''} completed without output.")
    return f"{' '.join(parts)} {message}" if parts else ""
