"""The storage space a user uses, as last measured, so the dashboard never calls the storage."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class StorageUsage(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="storage_usage"
    )
    bytes_used = models.BigIntegerField(default=0)
    measured_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.user}: {self.bytes_used} bytes"
