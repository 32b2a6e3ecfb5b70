"""The portal's view of each project's cloud, kept in sync by orchestration.tasks.cloud."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

TRANSITIONAL = {"BUILD", "REBOOT", "HARD_REBOOT", "RESIZE", "MIGRATING", "DELETING", "STOPPING", "STARTING"}


class ProjectScopedQuerySet(models.QuerySet[Any]):
    def for_user(self, user: Any) -> Any:
        return self.filter(project__members=user)


class Flavor(models.Model):
    project = models.ForeignKey("portal.Project", on_delete=models.CASCADE, related_name="flavors")
    external_id = models.CharField(max_length=64)
    name = models.CharField(max_length=100)
    vcpus = models.PositiveIntegerField()
    ram_mb = models.PositiveIntegerField()
    disk_gb = models.PositiveIntegerField()
    ephemeral_gb = models.PositiveIntegerField()

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["vcpus", "ram_mb", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "external_id"], name="unique_flavor")]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        ram = f"{self.ram_mb / 1024:g} GB RAM"
        scratch = f"{self.ephemeral_gb} GB scratch" if self.ephemeral_gb else "no scratch (persistent)"
        return f"{self.name} — {self.vcpus} vCPU, {ram}, {self.disk_gb} GB root, {scratch}"


class Image(models.Model):
    project = models.ForeignKey("portal.Project", on_delete=models.CASCADE, related_name="images")
    external_id = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    status = models.CharField(max_length=20)
    size = models.BigIntegerField(null=True, blank=True)
    is_snapshot = models.BooleanField(default=False)
    source_server_id = models.CharField(max_length=64, blank=True)
    source_server_name = models.CharField(max_length=255, blank=True)
    default_user = models.CharField(max_length=40, default="ubuntu")
    min_disk_gb = models.PositiveIntegerField(default=0)
    visibility = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(default=timezone.now)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "external_id"], name="unique_image")]
        indexes = [models.Index(fields=["project", "is_snapshot", "-created_at"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_transitional(self) -> bool:
        return self.status in ("queued", "saving", "importing", "uploading")


class Server(models.Model):
    project = models.ForeignKey("portal.Project", on_delete=models.CASCADE, related_name="servers")
    external_id = models.CharField(max_length=64, blank=True, help_text="empty until the cloud accepted it")
    name = models.CharField(max_length=255)
    status = models.CharField(max_length=20, default="BUILD")
    task_state = models.CharField(max_length=40, blank=True)
    fault = models.CharField(max_length=500, blank=True)
    flavor_id = models.CharField(max_length=64, blank=True)
    flavor_name = models.CharField(max_length=100, blank=True)
    image_id = models.CharField(max_length=64, blank=True)
    image_name = models.CharField(max_length=255, blank=True)
    default_user = models.CharField(max_length=40, default="ubuntu")
    key_name = models.CharField(max_length=255, blank=True)
    fixed_ips = models.JSONField(default=list, blank=True)
    floating_ips = models.JSONField(default=list, blank=True)
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(default=timezone.now)
    console_output = models.TextField(blank=True)
    console_at = models.DateTimeField(null=True, blank=True)
    # "Prepare for batch", as the console's CANFAR-READY markers report it (orchestration.cloud.readiness).
    prepared_for_batch = models.BooleanField(default=False)
    readiness_state = models.CharField(max_length=20, blank=True)  # waiting, preparing, ready, failed
    readiness_steps = models.JSONField(default=list, blank=True)  # [{"text": ..., "state": "ok"|"failed"}]
    readiness_failure = models.CharField(max_length=300, blank=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "name"]
        indexes = [models.Index(fields=["project", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], condition=~models.Q(external_id=""), name="unique_server"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_transitional(self) -> bool:
        return self.status in TRANSITIONAL or bool(self.task_state)

    @property
    def badge(self) -> str:
        return {
            "ACTIVE": "success",
            "BUILD": "info",
            "ERROR": "danger",
            "SHUTOFF": "secondary",
            "DELETING": "warning",
        }.get(self.status, "warning" if self.is_transitional else "secondary")

    @property
    def is_ready(self) -> bool:
        return self.prepared_for_batch and self.readiness_state == "ready"

    @property
    def readiness_label(self) -> str:
        return {
            "": "not read yet",
            "waiting": "waiting for cloud-init",
            "preparing": "preparing",
            "ready": "ready",
            "failed": "failed",
        }.get(self.readiness_state, self.readiness_state)

    @property
    def public_ip(self) -> str:
        return self.floating_ips[0] if self.floating_ips else ""

    @property
    def ssh_command(self) -> str:
        return f"ssh {self.default_user}@{self.public_ip}" if self.public_ip else ""

    @property
    def lifetime_left(self) -> timedelta | None:
        return self.expires_at - timezone.now() if self.expires_at else None

    @property
    def lifetime_left_text(self) -> str:
        """'13 days', '5 hours', '40 minutes': one unit, rounded down, as the VM list shows it."""
        left = self.lifetime_left
        if left is None:
            return ""
        seconds = max(0, int(left.total_seconds()))
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if seconds >= size:
                n = seconds // size
                return f"{n} {unit}{'s' if n != 1 else ''}"
        return "under a minute"

    @property
    def is_expired(self) -> bool:
        left = self.lifetime_left
        return left is not None and left.total_seconds() <= 0

    @property
    def expires_soon(self) -> bool:
        left = self.lifetime_left
        return left is not None and left <= timedelta(days=settings.VM_EXPIRY_WARNING_DAYS)


class ImageShare(models.Model):
    """A snapshot offered to another project (a Glance image member), as the portal last saw it."""

    PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"

    project = models.ForeignKey("portal.Project", on_delete=models.CASCADE, related_name="image_shares")
    image_external_id = models.CharField(max_length=64)
    image_name = models.CharField(max_length=255)
    member_project_id = models.CharField(max_length=64, help_text="the Keystone project it is shared with")
    member_project_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, default=PENDING)
    shared_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["image_external_id", "member_project_id"], name="unique_image_share"
            )
        ]

    def __str__(self) -> str:
        return f"{self.image_name} shared with {self.member_project_name or self.member_project_id}"

    @property
    def member_label(self) -> str:
        return self.member_project_name or self.member_project_id


def shared_from(project: Any) -> dict[str, str]:
    """{image external id: owning project's name} for the snapshots other projects share with ``project``."""
    if project is None:
        return {}
    rows = ImageShare.objects.filter(member_project_id=project.external_id).select_related("project")
    return {row.image_external_id: row.project.name for row in rows}


class KeyPair(models.Model):
    """Key pairs belong to the Keystone user; the portal records them per user and project."""

    project = models.ForeignKey("portal.Project", on_delete=models.CASCADE, related_name="keypairs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="keypairs")
    name = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=200, blank=True)
    public_key = models.TextField()
    key_type = models.CharField(max_length=20, default="ssh")
    created = models.DateTimeField(default=timezone.now)
    pending = models.BooleanField(default=False, help_text="being imported or deleted")

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["project", "owner", "name"], name="unique_keypair")]

    def __str__(self) -> str:
        return self.name

    @property
    def sha256_fingerprint(self) -> str:
        """As `ssh-keygen -l` prints it: SHA256 of the key blob, unpadded base64."""
        parts = self.public_key.split()
        try:
            blob = base64.b64decode(parts[1], validate=True) if len(parts) >= 2 else b""
        except (binascii.Error, ValueError):
            blob = b""
        if not blob:
            return ""
        return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class FloatingIP(models.Model):
    project = models.ForeignKey("portal.Project", on_delete=models.CASCADE, related_name="floating_ips")
    external_id = models.CharField(max_length=64)
    address = models.GenericIPAddressField()
    status = models.CharField(max_length=20, blank=True)
    port_id = models.CharField(max_length=64, blank=True)
    fixed_address = models.CharField(max_length=64, blank=True)
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    synced_at = models.DateTimeField(default=timezone.now)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["address"]
        constraints = [models.UniqueConstraint(fields=["project", "external_id"], name="unique_fip")]

    def __str__(self) -> str:
        return self.address


class Quota(models.Model):
    project = models.OneToOneField("portal.Project", on_delete=models.CASCADE, related_name="quota")
    instances_used = models.IntegerField(default=0)
    instances_limit = models.IntegerField(default=-1)
    cores_used = models.IntegerField(default=0)
    cores_limit = models.IntegerField(default=-1)
    ram_used_mb = models.IntegerField(default=0)
    ram_limit_mb = models.IntegerField(default=-1)
    floating_ips_used = models.IntegerField(default=0)
    floating_ips_limit = models.IntegerField(default=-1)
    synced_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"quota of {self.project}"

    def rows(self) -> list[dict[str, Any]]:
        def row(label: str, used: float, limit: float, unit: str = "") -> dict[str, Any]:
            pct = 0 if limit <= 0 else min(100, round(100 * used / limit))
            return {
                "label": label,
                "used": used,
                "limit": limit,
                "unit": unit,
                "percent": pct,
                "full": 0 <= limit <= used,
            }

        return [
            row("Instances", self.instances_used, self.instances_limit),
            row("vCPUs", self.cores_used, self.cores_limit),
            row(
                "RAM",
                round(self.ram_used_mb / 1024, 1),
                round(self.ram_limit_mb / 1024, 1) if self.ram_limit_mb > 0 else self.ram_limit_mb,
                "GB",
            ),
            row("Floating IPs", self.floating_ips_used, self.floating_ips_limit),
        ]

    def launch_refusal(self, count: int, vcpus: int, ram_mb: int) -> str:
        """Why ``count`` VMs of this size cannot fit, or "" when they can."""
        problems = []
        if 0 <= self.instances_limit < self.instances_used + count:
            problems.append(f"instances ({self.instances_used} of {self.instances_limit} used)")
        if 0 <= self.cores_limit < self.cores_used + count * vcpus:
            problems.append(f"vCPUs ({self.cores_used} of {self.cores_limit} used)")
        if 0 <= self.ram_limit_mb < self.ram_used_mb + count * ram_mb:
            problems.append(f"RAM ({self.ram_used_mb // 1024} of {self.ram_limit_mb // 1024} GB used)")
        return "Not enough quota: " + ", ".join(problems) + "." if problems else ""
