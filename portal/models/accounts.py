"""Projects, memberships and the credentials the portal keeps to act for a user."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal import crypto


class Project(models.Model):
    """An OpenStack project (a CANFAR resource allocation)."""

    external_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    description = models.CharField(max_length=500, blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")
    sync_claimed_until = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    sync_error = models.CharField(max_length=500, blank=True)
    # The sync's bookkeeping (orchestration.tasks.cloud): a queued sync claims the project until it
    # starts, so beat never queues a second; VM pages note when someone looked; incremental refreshes
    # ask Nova for servers changed since the newest change they saw (the cloud's clock, not ours).
    sync_queued_until = models.DateTimeField(null=True, blank=True)
    viewed_at = models.DateTimeField(null=True, blank=True)
    full_synced_at = models.DateTimeField(null=True, blank=True)
    servers_changed_at = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    project = models.ForeignKey(Project, on_delete=models.CASCADE)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="unique_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project}"


class Credential(models.Model):
    """A secret needed to act for the user, encrypted at rest (never a password).

    kind "openstack": an application credential (id in ``identifier``, secret encrypted)
    for one project; kind "proxy": a CADC proxy certificate (PEM encrypted).
    """

    KINDS = [
        ("openstack", "OpenStack application credential"),
        ("keystone_token", "Keystone token (minutes, used once at sign-in)"),
        ("proxy", "CADC proxy certificate"),
    ]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credentials")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE)
    kind = models.CharField(max_length=20, choices=KINDS)
    identifier = models.CharField(max_length=255, blank=True)
    secret_encrypted = models.BinaryField()
    expires_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    revoked = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project", "kind"], name="unique_credential"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.user}"

    @property
    def secret(self) -> str:
        return crypto.decrypt(bytes(self.secret_encrypted))

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_encrypted = crypto.encrypt(value)

    @property
    def is_usable(self) -> bool:
        return not self.revoked and (self.expires_at is None or self.expires_at > timezone.now())
