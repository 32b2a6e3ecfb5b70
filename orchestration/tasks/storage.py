"""Measuring a user's storage in the background (VOSpace: one request per folder).

``orchestration/storage_usage.py`` sends this task by its name (``USAGE_TASK``) after a change.
"""

from __future__ import annotations

from celery import shared_task
from django.contrib.auth import get_user_model

from orchestration.storage_usage import record_usage


@shared_task(ignore_result=True)
def refresh_storage_usage(user_id: int) -> None:
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is not None:
        record_usage(user)
