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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from orchestration.batch.base import (
    BatchError,
    ExecutorUnavailable,
    JobStatus,
    ParsedJob,
    ParsedSubmit,
    PoolProfile,
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
    check_retrieved,
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
        ),
        sandbox=sandbox_config(),
        hidden_paths=portal_data_paths(),
    )


def sandbox_config() -> SandboxConfig:
    return SandboxConfig(
        mode=settings.BATCH_SANDBOX,
        uid=settings.BATCH_JOB_UID,
        gid=settings.BATCH_JOB_GID,
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


SCHEDD_FACTORY = _schedd  # tests replace it with a stand-in that has the Schedd methods


def executor_for(name: str) -> Any:
    """The executor a submission was sent with ("local" or "htcondor")."""
    if name == "local":
        return local_executor()
    from orchestration.batch.htcondor import HTCondorExecutor

    return HTCondorExecutor(
        lambda: SCHEDD_FACTORY(),
        PoolProfile(settings.HTCONDOR_POOL_PROFILE),
        settings.BATCH_ROOT / "htcondor",
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
    try:
        parsed = _parsed(sub, jobs)
        if sub.executor == "htcondor":  # rows recorded before the submit grammar are checked again
            check_body(parsed.body, [job.item_vars for job in parsed.jobs])
        handle = executor_for(sub.executor).submit(
            parsed,
            {sub.script_name: sub.script.encode()},
            key=sub.part_key(part),
            proxy=proxy_for_jobs(op.owner),
            target=target,
            **extra,
        )
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
    progress(
        100, f"Sent {handle.num_jobs} job{'s' if handle.num_jobs != 1 else ''} as cluster {handle.cluster}"
    )


# ---------------------------------------------------------------------------- control


@handler("batch_control")
def batch_control(op: Operation, progress: Progress) -> None:
    """Hold, release or remove jobs of a submission (all of them, or the ids in params["jobs"])."""
    sub = Submission.objects.get(pk=op.params["submission"], owner=op.owner)
    action = op.params["action"]
    jobs = sub.jobs.all()
    if op.params.get("jobs"):
        jobs = jobs.filter(pk__in=op.params["jobs"])
    if action == "remove":  # jobs never sent are simply dropped
        jobs.filter(state=Job.UNSENT).update(state=Job.REMOVED, finished_at=timezone.now())
    executor = executor_for(sub.executor)
    by_cluster: dict[int, list[int]] = {}
    for cluster, proc in jobs.exclude(cluster=None).values_list("cluster", "proc"):
        by_cluster.setdefault(int(cluster or 0), []).append(proc)
    try:
        for cluster, procs in by_cluster.items():
            getattr(executor, action)(cluster, procs)
    except ExecutorUnavailable as exc:
        raise TransientError(str(exc)) from exc
    except BatchError as exc:
        raise UserFacingError(str(exc)) from exc
    if action == "release":
        Submission.objects.filter(pk=sub.pk, state__in=[Submission.FINISHED]).update(
            state=Submission.ACTIVE, finished=None
        )
    sync_submission(sub)
    if action == "release" and sub.executor == "local":
        batch_local.wake_local_workers(sum(len(p) for p in by_cluster.values()))
    progress(100, {"hold": "Held", "release": "Released", "remove": "Removed"}[action])


# ---------------------------------------------------------------------------- following


def _when(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def _apply(job: Job, status: JobStatus) -> bool:
    """Copy an executor status onto the row; True when something changed."""
    values = {
        "state": str(status.state),
        "exit_code": status.exit_code,
        "signal": status.signal,
        "host": status.host[:255],
        "hold_reason": status.hold_reason[:1000],
        "started_at": _when(status.started_at),
        "finished_at": _when(status.finished_at),
    }
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
    if sub.executor == "local":
        statuses = _local_statuses(jobs)
    else:
        statuses = {}
        for cluster in sorted({j.cluster for j in jobs if j.cluster is not None}):
            try:
                by_proc = {s.proc: s for s in executor.status(cluster)}
            except ExecutorUnavailable as exc:
                log.warning("batch refresh: %s", exc)
                continue
            statuses.update(
                {j.pk: by_proc[j.proc] for j in jobs if j.cluster == cluster and j.proc in by_proc}
            )
    changed = [j for j in jobs if j.pk in statuses and _apply(j, statuses[j.pk])]
    for job in changed:
        mark_missing_outputs(job)  # decided before the row says "done", so nobody sees it done
    Job.objects.bulk_update(changed, SYNC_FIELDS, batch_size=500)
    _after_sync(sub, executor)
    if sub.output_folder:
        store_pending(sub)
    return len(changed)


def _after_sync(sub: Submission, executor: Any) -> None:
    counts = counts_for([sub.pk]).get(sub.pk, {})
    live = sum(counts.get(s, 0) for s in (Job.IDLE, Job.RUNNING, Job.HELD))
    if live or sub.state not in (Submission.ACTIVE, Submission.SUBMITTING):
        return
    if sub.executor == "htcondor" and _retrieve(sub, executor):
        counts = counts_for([sub.pk]).get(sub.pk, {})
    if counts.get(Job.UNSENT):
        if Submission.objects.filter(pk=sub.pk, state=Submission.ACTIVE).update(state=Submission.PAUSED):
            _discard_proxies(sub, executor)
            _notify(sub, counts, test=True)
        return
    if Submission.objects.filter(pk=sub.pk, state=Submission.ACTIVE).update(
        state=Submission.FINISHED, finished=timezone.now()
    ):
        _discard_proxies(sub, executor)
        _notify(sub, counts, test=False)


def _discard_proxies(sub: Submission, executor: Any) -> None:
    """No job of the submission can run any more: its proxy certificate copies go (a later part brings its own)."""
    if sub.executor != "local":
        return  # the HTCondor executor never keeps one after spooling
    for cluster in set(sub.jobs.exclude(cluster=None).values_list("cluster", flat=True)):
        if cluster is not None:
            executor.discard_proxy(int(cluster))


def _retrieve(sub: Submission, executor: Any) -> bool:
    """Bring finished clusters' output back and check it; True when a cluster was retrieved."""
    done = set(sub.retrieved_clusters)
    new: list[int] = []
    clusters = {
        int(c) for c in sub.jobs.exclude(cluster=None).values_list("cluster", flat=True) if c is not None
    }
    for cluster in clusters - done:
        try:
            executor.retrieve(cluster)
        except ExecutorUnavailable as exc:
            log.warning("batch retrieve: %s", exc)
            continue
        except BatchError:
            pass  # already retrieved by an earlier run
        done.add(cluster)
        new.append(cluster)
    sub.retrieved_clusters = sorted(done)
    Submission.objects.filter(pk=sub.pk).update(retrieved_clusters=sub.retrieved_clusters)
    for cluster in new:
        check_retrieved(sub, cluster)
    return bool(new)


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


@shared_task(ignore_result=True)
def refresh_batch() -> int:
    """Beat: follow every submission with jobs in the queue; repair, wake, retrieve, store and announce."""
    changed = 0
    try:
        batch_local.repair_local_claims()
        batch_local.wake_if_stalled()
    except Exception:
        log.exception("batch repair of local jobs failed")
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
    for sub in submissions_with_pending_outputs():
        try:
            store_pending(sub)
        except Exception:
            log.exception("batch outputs of submission %s not stored", sub.pk)
    return changed


# Last: batch_local uses this module's functions, and importing it registers pull_local_jobs.
from orchestration.tasks import batch_local  # noqa: E402
