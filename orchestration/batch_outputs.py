"""Finished jobs' outputs: "completed without output" and the copy into the user's storage folder.

Used by the batch sync (orchestration/batch_sync.py) on the worker that follows the jobs:
the local worker that ran the job, or beat for HTCondor after each job's output was retrieved.
"""

from __future__ import annotations

import logging

from orchestration import backends
from orchestration.batch.outputs import ensure_folder, missing_outputs, no_output_note, store_outputs
from orchestration.storage.base import StorageError, StorageUnavailable
from orchestration.storage_usage import refresh_usage
from portal.models import Job, Submission
from portal.models.batch import job_dir

log = logging.getLogger(__name__)
STORE_BATCH = 200  # jobs copied per call; beat picks up the rest
STORED_FROM = (Job.DONE, Job.NO_OUTPUT, Job.FAILED)  # a removed job has no outputs worth keeping


def outputs_arrived(job: Job) -> bool:
    """True unless the job has finished its run but its declared output files can still come back."""
    return job.submission.executor == "local" or job.retrieved


def mark_missing_outputs(job: Job) -> bool:
    """A done job whose declared files are missing becomes "completed without output" (in memory)."""
    if job.state != Job.DONE or not job.output_files or not outputs_arrived(job):
        return False
    missing = missing_outputs(job_dir(job), job.output_files)
    if not missing:
        return False
    job.state, job.output_note = Job.NO_OUTPUT, no_output_note(missing)[:1000]
    return True


def _not_stored(job: Job, folder: str, reason: str) -> None:
    note = f"The outputs could not be stored in “{folder or '/'}”: {reason}"
    values: dict[str, str] = {"outputs_state": Job.OUTPUTS_FAILED}
    if job.state == Job.DONE:  # the declared output did not arrive where the user asked
        values.update(state=Job.NO_OUTPUT, output_note=note[:1000])
    elif not job.output_note:
        values["output_note"] = note[:1000]
    Job.objects.filter(pk=job.pk).update(**values)


def store_pending(sub: Submission, limit: int = STORE_BATCH) -> int:
    """Copy finished jobs' outputs into the submission's storage folder; how many jobs were handled.

    A storage outage leaves the jobs pending for the next call (beat); any other storage error is
    recorded on the job, and a done job whose outputs cannot be stored is "completed without output".
    """
    if not sub.output_folder:
        return 0
    jobs = sub.jobs.filter(outputs_state=Job.OUTPUTS_PENDING, state__in=STORED_FROM)
    if sub.executor != "local":
        jobs = jobs.filter(retrieved=True)  # each HTCondor job once its own output came back
    pending = list(jobs.order_by("index")[:limit])
    if not pending:
        return 0
    try:
        storage = backends.storage_for(sub.owner)
        folder = ensure_folder(storage, sub.output_folder)
    except StorageUnavailable as exc:
        log.warning("batch %s: storage unavailable, outputs stay pending (%s)", sub.pk, type(exc).__name__)
        return 0
    except StorageError as exc:
        for job in pending:
            _not_stored(job, sub.output_folder, str(exc))
        return len(pending)
    done = 0
    for job in pending:
        job.submission = sub
        directory = job_dir(job)
        names = [job.output, job.error, job.log, *job.output_files]
        try:
            stored = store_outputs(storage, folder, directory, names) if directory else []
        except StorageUnavailable as exc:
            log.warning(
                "batch %s: storage unavailable, outputs stay pending (%s)", sub.pk, type(exc).__name__
            )
            break
        except (StorageError, OSError) as exc:
            _not_stored(job, folder, str(exc))
        else:
            Job.objects.filter(pk=job.pk).update(outputs_state=Job.OUTPUTS_STORED, stored_outputs=stored)
        done += 1
    if done:
        refresh_usage(sub.owner, storage)
    return done


def submissions_with_pending_outputs(limit: int = 50) -> list[Submission]:
    """Submissions (any state) with finished jobs whose outputs wait to be stored."""
    ids = (
        Job.objects.filter(outputs_state=Job.OUTPUTS_PENDING, state__in=STORED_FROM)
        .values_list("submission_id", flat=True)
        .distinct()[:limit]
    )
    return list(Submission.objects.filter(pk__in=list(ids)).select_related("owner"))
