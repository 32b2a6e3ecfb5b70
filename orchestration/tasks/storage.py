"""Measuring a user's storage: at once with local folders, in the background with VOSpace."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.contrib.auth import get_user_model
from django.db import transaction

from orchestration import backends
from orchestration.storage.base import Storage, StorageError
from portal.models import StorageUsage

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def refresh_storage_usage(user_id: int) -> None:
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return
    try:
        used = backends.storage_for(user).usage()
    except StorageError as exc:
        # Nothing to retry for: the next change or visit of the storage page asks again.
        log.warning("storage usage of user %s not measured: %s", user_id, exc)
        return
    StorageUsage.record(user, used)


def refresh_usage(user: Any, storage: Storage | None = None) -> int | None:
    """Measure now (local backend: cheap) or ask a worker to (VOSpace: one request per folder)."""
    if backends.storage_is_remote():
        user_id = user.pk
        transaction.on_commit(lambda: refresh_storage_usage.delay(user_id))
        return None
    try:
        used = (storage or backends.storage_for(user)).usage()
    except StorageError as exc:
        log.warning("storage usage of %s not measured: %s", user.username, type(exc).__name__)
        return None
    StorageUsage.record(user, used)
    return used
