"""Measuring a user's storage in the background (VOSpace: one request per folder)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.contrib.auth import get_user_model

from orchestration.storage.base import StorageError

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def refresh_storage_usage(user_id: int) -> None:
    from portal.storage_backend import record_usage, storage_for

    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return
    try:
        used = storage_for(user).usage()
    except StorageError as exc:
        # Nothing to retry for: the next change or visit of the storage page asks again.
        log.warning("storage usage of user %s not measured: %s", user_id, exc)
        return
    record_usage(user, used)
