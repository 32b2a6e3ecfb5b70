"""The storage space a user uses, as last measured, so the dashboard never calls the storage."""

from __future__ import annotations

from typing import Any

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

    @classmethod
    def record(cls, user: Any, used: int) -> None:
        """Keep what a measurement found (the dashboard reads this, never the storage)."""
        cls.objects.update_or_create(user=user, defaults={"bytes_used": used, "measured_at": timezone.now()})
