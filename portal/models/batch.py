"""Batch submissions and their jobs: recorded before anything is sent, kept in sync by beat.

A submission is sent to its executor in one or two parts: "all", or "first" (the
test job) then "rest". Each part is one executor cluster with its own idempotency
key (``<key>-<part>``), so a retried dispatch never makes a duplicate.
"""

from __future__ import annotations

import uuid
from functools import cached_property
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Count, Q
from django.utils import timezone


def _new_key() -> str:
    return uuid.uuid4().hex


class SubmissionQuerySet(models.QuerySet["Submission"]):
    def for_user(self, user: Any) -> SubmissionQuerySet:
        return self.filter(owner=user)

    def batches(self) -> SubmissionQuerySet:
        """Submissions the user made as batches (not the nodes of a workflow)."""
        return self.filter(workflow=None)

    def active(self) -> SubmissionQuerySet:
        return self.filter(state__in=Submission.ACTIVE_STATES)


class Submission(models.Model):
    RECORDED, SUBMITTING, ACTIVE, PAUSED, FINISHED, FAILED = (
        "recorded",
        "submitting",
        "active",
        "paused",
        "finished",
        "failed",
    )
    STATES = [
        (RECORDED, "Recorded"),
        (SUBMITTING, "Submitting"),
        (ACTIVE, "Active"),
        (PAUSED, "Test job done"),
        (FINISHED, "Finished"),
        (FAILED, "Not submitted"),
    ]
    ACTIVE_STATES = (RECORDED, SUBMITTING, ACTIVE)
    EXECUTORS = [("local", "Local workers"), ("htcondor", "HTCondor pool")]

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="submissions")
    project = models.ForeignKey("portal.Project", null=True, blank=True, on_delete=models.SET_NULL)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resubmissions"
    )
    workflow = models.ForeignKey(
        "portal.Workflow",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="submissions",
        help_text="the workflow this submission is a node of (none for a batch)",
    )
    name = models.CharField(max_length=64)
    key = models.CharField(max_length=40, unique=True, default=_new_key, editable=False)
    executor = models.CharField(max_length=12, choices=EXECUTORS, default="local")
    state = models.CharField(max_length=12, choices=STATES, default=RECORDED)
    test_first = models.BooleanField(default=False, help_text="run the first job alone before the rest")
    script_name = models.CharField(max_length=100)
    script = models.TextField()
    submit_text = models.TextField(help_text="the description as the user sees it (preview or upload)")
    body = models.JSONField(default=dict, help_text="the parsed description without its queue statement")
    queue_vars = models.JSONField(default=list)
    transfer_input_files = models.JSONField(default=list)
    request_cpus = models.PositiveIntegerField(default=1)
    request_memory_mb = models.PositiveIntegerField(default=2048)
    request_disk_mb = models.PositiveIntegerField(default=4096)
    image_name = models.CharField(max_length=255, blank=True)
    image_id = models.CharField(max_length=64, blank=True)
    flavor_name = models.CharField(max_length=100, blank=True)
    output_folder = models.CharField(
        max_length=1024, blank=True, help_text="storage folder the jobs' outputs are copied to ('' = none)"
    )
    woken_at = models.DateTimeField(null=True, blank=True, help_text="local: when workers were last asked")
    num_jobs = models.PositiveIntegerField(default=0)
    retrieved_clusters = models.JSONField(default=list, help_text="htcondor: clusters whose output is back")
    submit_keys = models.JSONField(
        default=dict,
        help_text="htcondor: per part, the key now used and the clusters lost before their files arrived",
    )
    error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    objects = SubmissionQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created"]),
            models.Index(
                fields=["state"],
                condition=Q(state__in=["recorded", "submitting", "active"]),
                name="batch_sub_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    def part_key(self, part: str) -> str:
        return f"{self.key}-{part}"

    def submit_key(self, part: str) -> str:
        """The idempotency key a part is sent under now: a new one after the pool lost a cluster."""
        return str(self.submit_keys.get(part, {}).get("key") or self.part_key(part))

    def lost_clusters(self, part: str) -> list[int]:
        return [int(c) for c in self.submit_keys.get(part, {}).get("lost", [])]

    def state_counts(self) -> dict[str, int]:
        return counts_for([self.pk]).get(self.pk, empty_counts())


class JobQuerySet(models.QuerySet["Job"]):
    def for_user(self, user: Any) -> JobQuerySet:
        return self.filter(submission__owner=user)


class Job(models.Model):
    UNSENT, IDLE, RUNNING, HELD, DONE, NO_OUTPUT, FAILED, REMOVED = (
        "unsent",
        "idle",
        "running",
        "held",
        "done",
        "nooutput",
        "failed",
        "removed",
    )
    STATES = [
        (UNSENT, "Waiting"),
        (IDLE, "Idle"),
        (RUNNING, "Running"),
        (HELD, "Held"),
        (DONE, "Done"),
        (NO_OUTPUT, "Completed without output"),
        (FAILED, "Failed"),
        (REMOVED, "Removed"),
    ]
    FINAL_STATES = (DONE, NO_OUTPUT, FAILED, REMOVED)
    # Copying outputs to the submission's storage folder: "" (no folder), pending, stored, failed.
    OUTPUTS_PENDING, OUTPUTS_STORED, OUTPUTS_FAILED = "pending", "stored", "failed"
    LIVE_STATES = (IDLE, RUNNING)

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="jobs")
    index = models.PositiveIntegerField(help_text="position in the submission, from 0")
    part = models.CharField(max_length=8, default="all", help_text="all, first or rest")
    cluster = models.PositiveIntegerField(null=True, blank=True, help_text="the executor's cluster")
    proc = models.PositiveIntegerField(help_text="the job's number inside its cluster")
    item = models.CharField(max_length=255, blank=True)
    argv = models.JSONField(default=list)
    item_vars = models.JSONField(default=dict)
    output = models.CharField(max_length=255)
    error = models.CharField(max_length=255)
    log = models.CharField(max_length=255)
    state = models.CharField(max_length=10, choices=STATES, default=UNSENT)
    exit_code = models.IntegerField(null=True, blank=True)
    signal = models.IntegerField(null=True, blank=True)
    host = models.CharField(max_length=255, blank=True)
    hold_reason = models.CharField(max_length=1000, blank=True)
    remove_reason = models.CharField(max_length=1000, blank=True)
    why_idle = models.CharField(max_length=1000, blank=True, help_text="htcondor: the pool's analysis")
    retrieved = models.BooleanField(default=False, help_text="htcondor: its output came back")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    pid = models.IntegerField(null=True, blank=True, help_text="local executor: the job's process group")
    worker_pid = models.IntegerField(null=True, blank=True, help_text="local executor: the Celery process")
    restarts = models.PositiveSmallIntegerField(default=0)
    output_files = models.JSONField(default=list, help_text="declared outputs (transfer_output_files)")
    claimed_by = models.CharField(
        max_length=100, blank=True, default="", help_text="local: host:pid:start of the worker running it"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    outputs_state = models.CharField(max_length=8, blank=True, default="")
    stored_outputs = models.JSONField(default=list, help_text="storage paths the outputs were copied to")
    output_note = models.CharField(max_length=1000, blank=True, help_text="why outputs are missing")
    priority = models.IntegerField(
        default=0, help_text="local: higher runs first (a workflow node's PRIORITY)"
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["submission", "index"]
        constraints = [models.UniqueConstraint(fields=["submission", "index"], name="unique_job_index")]
        indexes = [
            models.Index(fields=["submission", "state"]),
            models.Index(fields=["cluster", "proc"]),
            models.Index(
                fields=["state"], condition=Q(state__in=["idle", "running", "held"]), name="batch_job_live"
            ),
            models.Index(fields=["claimed_by"], condition=~Q(claimed_by=""), name="batch_job_claimed"),
            models.Index(
                fields=["submission"], condition=Q(outputs_state="pending"), name="batch_job_store_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.submission.name} job {self.index} ({self.item})"

    @property
    def is_live(self) -> bool:
        return self.state in self.LIVE_STATES

    @property
    def awaits_worker(self) -> bool:
        """An idle local job no worker has taken yet (HTCondor's own queue is the schedd's)."""
        return self.state == self.IDLE and not self.claimed_by and self.submission.executor == "local"

    @cached_property
    def ahead(self) -> int:
        """Idle local jobs that workers take before this one (they take the oldest first)."""
        return Job.objects.filter(
            state=self.IDLE,
            claimed_by="",
            submission__executor="local",
            cluster__isnull=False,
            pk__lt=self.pk,
        ).count()

    @property
    def run_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or (timezone.now() if self.state == self.RUNNING else None)
        return (end - self.started_at).total_seconds() if end else None

    @property
    def failure_reason(self) -> str:
        """What went wrong, in words, or "" when nothing did."""
        if self.state == self.HELD:
            return self.hold_reason or "The job is on hold."
        if self.state == self.REMOVED:
            return self.remove_reason or "The job was removed before it finished."
        if self.state == self.NO_OUTPUT:
            return self.output_note or "The job exited with code 0, but its declared output did not arrive."
        if self.state != self.FAILED:
            return ""
        if self.signal is not None:
            return f"The job was killed by signal {self.signal}{_signal_name(self.signal)}."
        if self.exit_code is not None:
            return f"The script exited with code {self.exit_code}; see its error output."
        return "The job failed."


def _signal_name(number: int) -> str:
    import signal

    try:
        return f" ({signal.Signals(number).name})"
    except ValueError:
        return ""


STATE_NAMES = [s for s, _ in Job.STATES]

# What each action on jobs applies to (the pages offer it for these jobs only).
CONTROL_APPLIES = {
    "hold": (Job.UNSENT, Job.IDLE, Job.RUNNING),
    "release": (Job.HELD,),
    "remove": (Job.UNSENT, Job.IDLE, Job.RUNNING, Job.HELD),
}


def job_dir(job: Job) -> Path | None:
    """Where a job's .out, .err and .log are on this machine (None before it was sent)."""
    if job.cluster is None:
        return None
    if job.submission.executor == "local":
        return Path(settings.BATCH_ROOT) / "local" / str(job.cluster) / "out"
    return Path(settings.BATCH_ROOT) / "htcondor" / job.submission.submit_key(job.part)


SUMMARY_WORDS = {
    Job.DONE: "done",
    Job.NO_OUTPUT: "completed without output",
    Job.FAILED: "failed",
    Job.REMOVED: "removed",
}


def summary_text(counts: dict[str, int]) -> str:
    """A submission's finished jobs in words, e.g. "3 done · 1 failed"."""
    parts = [f"{counts.get(s, 0)} {word}" for s, word in SUMMARY_WORDS.items() if counts.get(s)]
    return " · ".join(parts) or "no jobs"


def empty_counts() -> dict[str, int]:
    return dict.fromkeys([*STATE_NAMES, "total"], 0)


def counts_for(submission_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per-submission job counts by state, in one grouped SQL query."""
    out: dict[int, dict[str, int]] = {}
    rows = (
        Job.objects.filter(submission_id__in=submission_ids)
        .values("submission_id", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts = out.setdefault(row["submission_id"], empty_counts())
        counts[row["state"]] = row["n"]
        counts["total"] += row["n"]
    return out


def record_submission(
    *,
    owner: Any,
    project: Any,
    name: str,
    executor: str,
    script_name: str,
    script: str,
    submit_text: str,
    parsed: Any,  # orchestration.batch.base.ParsedSubmit
    test_first: bool = False,
    image: Any = None,
    flavor: Any = None,
    parent: Submission | None = None,
    output_folder: str = "",
) -> Submission:
    """Write a submission and all its jobs (state "unsent"); the caller dispatches after commit."""
    test_first = test_first and len(parsed.jobs) > 1
    sub = Submission.objects.create(
        owner=owner,
        project=project,
        parent=parent,
        name=name,
        executor=executor,
        test_first=test_first,
        script_name=script_name,
        script=script,
        submit_text=submit_text,
        body=parsed.body,
        queue_vars=parsed.queue_vars,
        transfer_input_files=parsed.transfer_input_files,
        request_cpus=parsed.request_cpus,
        request_memory_mb=parsed.request_memory_mb,
        request_disk_mb=parsed.request_disk_mb,
        image_name=image.name if image else "",
        image_id=image.external_id if image else "",
        flavor_name=flavor.name if flavor else "",
        num_jobs=len(parsed.jobs),
        output_folder=output_folder,
    )
    rows = []
    for index, job in enumerate(parsed.jobs):
        part, proc = ("all", index) if not test_first else ("first", 0) if index == 0 else ("rest", index - 1)
        rows.append(
            Job(
                submission=sub,
                index=index,
                part=part,
                proc=proc,
                item=job.item[:255],
                argv=job.argv,
                item_vars=job.item_vars,
                output=job.output,
                error=job.error,
                log=job.log,
                output_files=list(job.output_files),
                outputs_state=Job.OUTPUTS_PENDING if output_folder else "",
            )
        )
    Job.objects.bulk_create(rows, batch_size=1000)
    return sub
