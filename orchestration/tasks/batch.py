"""Batch tasks: send submissions to an executor, run local jobs, follow and repair job states.

- ``batch_submit`` (an Operation): sends one part of a recorded submission; the
  executor's idempotency key makes a retry after a crash return the same cluster.
- ``pull_local_jobs``: a worker slot runs idle local jobs one after another, each claimed
  in the database with a conditional update; a submission sends a few of these messages,
  not one per job.
- ``refresh_batch`` (beat): reads job states from the executor into the database,
  repairs jobs whose worker died, wakes workers when idle jobs have nobody pulling them,
  retrieves HTCondor output, stores outputs and announces finished submissions.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orchestration.batch.base import (
    BatchError,
    ExecutorUnavailable,
    JobState,
    JobStatus,
    ParsedJob,
    ParsedSubmit,
    PoolProfile,
    SubmissionLost,
    WorkerTarget,
)
from orchestration.batch.eventlog import read_events
from orchestration.batch.local import Limits, LocalServices
from orchestration.batch.localexec import LocalExecutor, state_from_events
from orchestration.batch.sandbox import SandboxConfig
from orchestration.batch.submit import check_body
from orchestration.errors import TransientError, UserFacingError
from orchestration.operations import Progress, handler
from orchestration.tasks.batch_outputs import (
    job_dir,
    mark_missing_outputs,
    store_pending,
    submissions_with_pending_outputs,
)
from portal.models import Job, Operation, Submission
from portal.models.batch import counts_for

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- executors


def local_executor() -> LocalExecutor:
    return LocalExecutor(
        root=settings.BATCH_ROOT / "local",
        scratch_root=settings.BATCH_SCRATCH_ROOT,
        limits=Limits(
            wall_seconds=settings.BATCH_JOB_WALL_SECONDS,
            memory_mb=settings.BATCH_JOB_MEMORY_MB,
            output_mb=settings.BATCH_JOB_OUTPUT_MB,
            max_processes=settings.BATCH_JOB_MAX_PROCESSES,
            scratch_mb=settings.BATCH_JOB_SCRATCH_MB,
        ),
        sandbox=sandbox_config(),
        hidden_paths=portal_data_paths(),
    )


def sandbox_config() -> SandboxConfig:
    return SandboxConfig(
        mode=settings.BATCH_SANDBOX,
        uid=settings.BATCH_JOB_UID_BASE if settings.BATCH_JOB_UID_COUNT else settings.BATCH_JOB_UID,
        gid=settings.BATCH_JOB_UID_BASE if settings.BATCH_JOB_UID_COUNT else settings.BATCH_JOB_GID,
        uid_count=settings.BATCH_JOB_UID_COUNT,
        network=settings.BATCH_JOB_NETWORK,
        network_uid=settings.BATCH_JOB_NETWORK_UID,
        readonly_paths=tuple(settings.BATCH_JOB_READONLY_PATHS),
    )


JOB_TOOLS = Path(__file__).resolve().parent.parent / "batch" / "jobtools"


def local_services(user: Any) -> LocalServices | None:
    """When the archive and storage are local folders (the embedded defaults), local jobs get cadcget
    and vcp that use them, so the tutorial's script runs as it is. None with CADC and VOSpace: jobs
    then use the real tools (installed on the workers) with the user's proxy certificate."""
    if settings.ARCHIVE_BACKEND != "local" or settings.STORAGE_BACKEND != "local":
        return None
    archive = Path(settings.ARCHIVE_DIR).resolve()
    private = [Path(p).resolve() for p in portal_data_paths() if Path(p).resolve() != archive]
    if any(p == archive or archive in p.parents for p in private):
        # The archive is shown to jobs read-only; it must not hold the portal's data or users' files.
        log.warning("batch: ARCHIVE_DIR %s holds other portal data; jobs get no cadcget/vcp", archive)
        return None
    from portal.storage_backend import local_root

    return LocalServices(
        tools_dir=JOB_TOOLS,
        archive_dir=Path(settings.ARCHIVE_DIR),
        storage_dir=local_root(user),  # validates the user name as a folder name
        vos_uri=settings.VOSPACE_BASE_URI.format(username=user.username),
    )


def portal_data_paths() -> list[Path]:
    """Everything of the portal's that a job must not read: its code, data, users' files and other jobs.

    Each can be configured outside VAR_DIR, so each is listed; the job's own scratch is bound back in.
    """
    paths = [
        settings.BASE_DIR,
        settings.VAR_DIR,
        settings.BATCH_ROOT,
        settings.BATCH_SCRATCH_ROOT,
        settings.STORAGE_ROOT,
        settings.ARCHIVE_DIR,
        settings.CATALOGUE_WORK_DIR,
    ]
    if settings.PROXY_CERT_DIR:
        paths.append(Path(settings.PROXY_CERT_DIR))
    return [Path(p) for p in paths]


def _schedd() -> Any:
    import htcondor2

    if settings.HTCONDOR_COLLECTOR or settings.HTCONDOR_SCHEDD:
        collector = htcondor2.Collector(settings.HTCONDOR_COLLECTOR or None)
        ad = collector.locate(htcondor2.DaemonType.Schedd, settings.HTCONDOR_SCHEDD or None)
        return htcondor2.Schedd(ad)
    return htcondor2.Schedd()


def _collector() -> Any:
    import htcondor2

    return htcondor2.Collector(settings.HTCONDOR_COLLECTOR or None)


SCHEDD_FACTORY = _schedd  # tests replace it with a stand-in that has the Schedd methods
COLLECTOR_FACTORY = _collector  # and this one with the stand-in's slot ads


def executor_for(name: str) -> Any:
    """The executor a submission was sent with ("local" or "htcondor")."""
    if name == "local":
        return local_executor()
    from orchestration.batch.htcondor import HTCondorExecutor

    return HTCondorExecutor(
        lambda: SCHEDD_FACTORY(),
        PoolProfile(settings.HTCONDOR_POOL_PROFILE),
        settings.BATCH_ROOT / "htcondor",
        collector_factory=lambda: COLLECTOR_FACTORY(),
    )


# ---------------------------------------------------------------------------- submitting


def proxy_needed() -> timedelta:
    """How long a proxy certificate must still be valid when jobs are sent: they may wait, then run."""
    return timedelta(seconds=settings.BATCH_PROXY_MIN_SECONDS)


def proxy_for_jobs(user: Any) -> bytes | None:
    """The user's proxy certificate for their jobs (None without the cadc identity backend).

    UserFacingError when the certificate is missing or would expire before the jobs could run.
    """
    if settings.IDENTITY_BACKEND != "cadc":
        return None
    from portal.certificates import get_proxy_for, problem_for_jobs

    problem = problem_for_jobs(user, proxy_needed())
    proxy = get_proxy_for(user)
    if problem or proxy is None:
        raise UserFacingError(problem or "You have no valid CADC proxy certificate.")
    return proxy[0]


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


@handler("batch_submit")
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
    if sub.executor == "local" and (services := local_services(op.owner)) is not None:
        extra["services"] = services
    key = sub.submit_key(part)
    try:
        parsed = _parsed(sub, jobs)
        if sub.executor == "htcondor":  # rows recorded before the submit grammar are checked again
            check_body(parsed.body, [job.item_vars for job in parsed.jobs])
        handle = executor_for(sub.executor).submit(
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
        batch_local.wake_local_workers(handle.num_jobs)
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


# What each action applies to, and the words for a job it no longer applies to.
CONTROL_APPLIES = {
    "hold": (Job.UNSENT, Job.IDLE, Job.RUNNING),
    "release": (Job.HELD,),
    "remove": (Job.UNSENT, Job.IDLE, Job.RUNNING, Job.HELD),
}
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


@handler("batch_control")
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
    executor = executor_for(sub.executor)
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
        batch_local.wake_local_workers(sum(len(p) for p in by_cluster.values()))
    after = {j.pk: j for j in Job.objects.filter(pk__in=[j.pk for j in jobs])}
    done = [after[j.pk] for j in acting if after[j.pk].state in CONTROL_DONE[action]]
    missed = [after[j.pk] for j in jobs if j.pk not in {d.pk for d in done}]
    if not done:
        raise UserFacingError(_why_not(missed) or "There were no jobs to act on.")
    message = f"{CONTROL_WORDS[action]} {len(done)} job{'s' if len(done) != 1 else ''}"
    if missed and op.params.get("jobs"):  # jobs the user ticked that it did not reach
        message += f"; {_why_not(missed)}"
    progress(100, message)


# ---------------------------------------------------------------------------- following


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
    executor = executor_for(sub.executor)
    touched: set[int] = set()
    if sub.executor == "local":
        statuses = _local_statuses(jobs)
    else:
        statuses, touched = _htcondor_statuses(jobs, executor)
    changed = [j for j in jobs if (j.pk in statuses and _apply(j, statuses[j.pk])) or j.pk in touched]
    for job in changed:
        mark_missing_outputs(job)  # decided before the row says "done", so nobody sees it done
    Job.objects.bulk_update(changed, SYNC_FIELDS, batch_size=500)
    _after_sync(sub, executor)
    if sub.output_folder:
        store_pending(sub)
    return len(changed)


def _after_sync(sub: Submission, executor: Any) -> None:
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
            workflows.node_finished(sub.pk, counts)
        else:
            _notify(sub, counts, test=False)


def _discard_proxies(sub: Submission, executor: Any) -> None:
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


def _htcondor_statuses(jobs: list[Job], executor: Any) -> tuple[dict[int, JobStatus], set[int]]:
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
        except BatchError as exc:
            log.warning("batch retrieve of cluster %s: %s", cluster, exc)
        for j in [*completed, *no_output]:
            if j.pk in seen:
                j.retrieved = True
        statuses.update(seen)
        idle = [j for j in mine if j.pk in seen and seen[j.pk].state == JobState.IDLE]
        if idle:
            touched |= _explain_idle(cluster, idle, executor)
    return statuses, touched


def _retrieve_stragglers(sub: Submission, executor: Any) -> None:
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
        except BatchError as exc:
            log.warning("batch retrieve of cluster %s: %s", cluster, exc)
        for job in mine:
            job.retrieved = True
            mark_missing_outputs(job)
        Job.objects.bulk_update(mine, ["retrieved", "state", "output_note"], batch_size=500)


def _explain_idle(cluster: int, idle: list[Job], executor: Any) -> set[int]:
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


SUMMARY_WORDS = {
    Job.DONE: "done",
    Job.NO_OUTPUT: "completed without output",
    Job.FAILED: "failed",
    Job.REMOVED: "removed",
}


def summary_text(counts: dict[str, int]) -> str:
    parts = [f"{counts.get(s, 0)} {word}" for s, word in SUMMARY_WORDS.items() if counts.get(s)]
    return " · ".join(parts) or "no jobs"


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
        executor = executor_for(sub.executor)
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
        batch_local.repair_local_claims()
        batch_local.wake_if_stalled()
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
        _after_sync(sub, executor_for(sub.executor))
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


# Last: batch_local uses this module's functions, and importing it registers pull_local_jobs;
# workflows sends a workflow's nodes with them.
from orchestration.tasks import batch_local, workflows  # noqa: E402
