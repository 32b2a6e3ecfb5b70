"""Measuring a user's storage: at once with local folders, in the background with VOSpace.

Pages, the batch sync and the tasks that write to a user's storage call ``refresh_usage`` after a
change. With VOSpace the measurement is the task ``refresh_storage_usage`` of
``orchestration/tasks/storage.py`` (one request per folder, never in a page), sent by its dotted path
as ``orchestration/local_wake.py`` sends the pull task: so this module sits below the tasks and the
batch sync stores a job's outputs without importing a task module. The message is the one
``refresh_storage_usage.delay(user_id)`` sends: routed by name to the ops lane (``CELERY_TASK_ROUTES``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import transaction

from orchestration import backends
from orchestration.storage.base import Storage, StorageError
from portal.models import StorageUsage

log = logging.getLogger(__name__)

USAGE_TASK = "orchestration.tasks.storage.refresh_storage_usage"


def record_usage(user: Any, storage: Storage | None = None) -> int | None:
    """Measure the user's storage now and keep the figure; None (logged) when the storage fails."""
    try:
        used = (storage or backends.storage_for(user)).usage()
    except StorageError as exc:
        # Nothing to retry for: the next change or visit of the storage page asks again.
        log.warning("storage usage of user %s not measured: %s", user.pk, type(exc).__name__)
        return None
    StorageUsage.record(user, used)
    return used


def refresh_usage(user: Any, storage: Storage | None = None) -> int | None:
    """Measure now (local backend: cheap) or ask a worker to, once the transaction commits (VOSpace)."""
    if backends.storage_is_remote():
        user_id = user.pk
        transaction.on_commit(lambda: current_app.send_task(USAGE_TASK, args=[user_id], ignore_result=True))
        return None
    return record_usage(user, storage)
