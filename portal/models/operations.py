"""Operations: every user action that reaches outside the portal."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class OperationQuerySet(models.QuerySet["Operation"]):
    def for_user(self, user: Any) -> OperationQuerySet:
        return self.filter(owner=user)

    def active(self) -> OperationQuerySet:
        return self.filter(state__in=Operation.ACTIVE_STATES)


class Operation(models.Model):
    QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
    STATES = [(QUEUED, "Queued"), (RUNNING, "Running"), (SUCCEEDED, "Succeeded"), (FAILED, "Failed")]
    ACTIVE_STATES = (QUEUED, RUNNING)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="operations")
    project = models.ForeignKey("portal.Project", null=True, blank=True, on_delete=models.CASCADE)
    kind = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    target = models.CharField(max_length=200, blank=True, help_text="what it acts on, e.g. vm:42")
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=12, choices=STATES, default=QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    waiting = models.BooleanField(default=False, help_text="running, and due to be called again shortly")
    celery_task_id = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    objects = OperationQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created"]),
            models.Index(
                fields=["state", "updated"], condition=Q(state__in=["queued", "running"]), name="op_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def awaits_worker(self) -> bool:
        """Queued and never started: no worker of its lane has taken it yet."""
        return self.state == self.QUEUED and self.started is None

    @cached_property
    def ahead(self) -> int:
        """How many operations wait for a worker before this one (every operation runs in the ops lane)."""
        earlier = Q(created__lt=self.created) | Q(created=self.created, pk__lt=self.pk)
        return Operation.objects.filter(earlier, state=self.QUEUED, started__isnull=True).count()

    @property
    def status_text(self) -> str:
        """What the operation is doing now, in words: a queued one says it waits, not the step ahead."""
        if self.state == self.FAILED:
            return self.error
        if self.awaits_worker:
            return f"Waiting for a worker ({self.ahead} ahead)"
        return self.message

    @property
    def badge(self) -> str:
        return {"queued": "secondary", "running": "primary", "succeeded": "success", "failed": "danger"}[
            self.state
        ]
