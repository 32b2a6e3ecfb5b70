"""Waking the worker slots that pull local batch jobs.

The pull task is named by its dotted path, as ``orchestration/kinds.py`` names handlers, so the
batch sync and the workflow engine (which the pull task's module imports) can wake workers
without importing it. The message is the one ``pull_local_jobs.apply_async()`` sends: routed by
name to the jobs lane (``CELERY_TASK_ROUTES``), no result kept.
"""

from __future__ import annotations

from celery import current_app
from django.conf import settings

PULL_TASK = "orchestration.tasks.local_pulling.pull_local_jobs"


def wake_local_workers(num_jobs: int) -> None:
    """Ask up to BATCH_PULLERS worker slots to pull idle local jobs (one message each, not one per job)."""
    for _ in range(min(num_jobs, settings.BATCH_PULLERS)):
        current_app.send_task(PULL_TASK, ignore_result=True)
