"""Cloud operations and the sync that keeps the portal's view of each project current."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orchestration.cloud import CloudClient, CredentialsRejected
from orchestration.cloud.types import ServerInfo
from orchestration.errors import UserFacingError
from orchestration.operations import Progress, handler
from orchestration.tasks.cloud_access import client_for, revoke_on_rejection, token_client, usable_credentials
from portal.models import (
    Credential,
    Flavor,
    FloatingIP,
    Image,
    KeyPair,
    Membership,
    Operation,
    Project,
    Quota,
    Server,
)

log = logging.getLogger(__name__)
POLL = 1.5


@contextmanager
def acting_for(op: Operation) -> Iterator[CloudClient]:
    """A client acting for the operation's owner in its project; a rejected credential is marked revoked."""
    if op.project is None:
        raise UserFacingError("This operation belongs to no project.")
    client, credential = client_for(op.project, op.owner)
    try:
        yield client
    except CredentialsRejected as exc:
        revoke_on_rejection(credential, exc)
        raise


# sign-in ------------------------------------------------------------------


@handler("cloud_connect")
def cloud_connect(op: Operation, progress: Progress) -> None:
    """Turn the sign-in token into one application credential per project, then sync them."""
    token_row = Credential.objects.filter(user=op.owner, kind="keystone_token").order_by("-created").first()
    if token_row is None or not token_row.is_usable:
        # Two sign-ins moments apart share the token row, and the first operation to run uses it up:
        # if that one connected the user, there is nothing left to do.
        connected = [
            m.project
            for m in Membership.objects.filter(user=op.owner).select_related("project")
            if usable_credentials(m.project, op.owner).exists()
        ]
        if token_row is None and connected:
            for project in connected:
                sync_project_now(project, force=True)
            progress(100, "Connected by your latest sign-in")
            return
        raise UserFacingError("The sign-in token expired before the portal could use it. Sign in again.")
    token = token_row.secret
    progress(10, "Listing your projects")
    projects = token_client(token).projects()
    seen = []
    for index, info in enumerate(projects, start=1):
        project = (
            Project.objects.filter(external_id=info.id).first()
            or Project.objects.filter(name=info.name, external_id__startswith="pending:").first()
            or Project(external_id=info.id)
        )
        project.external_id, project.name, project.description = info.id, info.name, info.description[:500]
        project.save()
        Membership.objects.get_or_create(user=op.owner, project=project)
        seen.append(project.pk)
        if not usable_credentials(project, op.owner).exists():
            progress(10 + 60 * index // max(1, len(projects)), f"Creating credentials for {info.name}")
            scoped = token_client(token, project_id=info.id)
            # Unique per Keystone user: several projects are set up within the same second.
            name = f"canfar-workbench-{info.name[:40]}-{timezone.now():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
            cred = scoped.create_app_credential(name, settings.APP_CREDENTIAL_DAYS)
            Credential.objects.update_or_create(
                user=op.owner,
                project=project,
                kind="openstack",
                defaults={
                    "identifier": cred.id,
                    "secret_encrypted": _encrypt(cred.secret),
                    "expires_at": cred.expires_at,
                    "revoked": False,
                    "created": timezone.now(),
                },
            )
    Membership.objects.filter(user=op.owner).exclude(project_id__in=seen).delete()
    token_row.delete()
    for project in Project.objects.filter(pk__in=seen):
        progress(75, f"Reading {project.name}")
        sync_project_now(project, force=True)
    progress(100, f"Connected to {len(seen)} project{'s' if len(seen) != 1 else ''}")


def _encrypt(secret: str) -> bytes:
    from portal.crypto import encrypt

    return encrypt(secret)


# sync ---------------------------------------------------------------------


@shared_task
def sync_all_projects() -> int:
    """Beat: reconcile every project that someone can act in."""
    count = 0
    for project in Project.objects.filter(credential__kind="openstack", credential__revoked=False).distinct():
        sync_project.delay(project.pk)
        count += 1
    return count


@shared_task
def sync_project(project_id: int) -> str:
    project = Project.objects.filter(pk=project_id).first()
    return sync_project_now(project) if project else "gone"


def sync_project_now(project: Project, force: bool = False) -> str:
    now = timezone.now()
    claim = Project.objects.filter(pk=project.pk)
    if not force:
        claim = claim.filter(Q(sync_claimed_until__isnull=True) | Q(sync_claimed_until__lt=now))
    if not claim.update(sync_claimed_until=now + timedelta(seconds=30)):
        return "busy"
    try:
        credentials = list(usable_credentials(project))
        if not credentials:
            return "no credentials"
        for credential in credentials:
            try:
                client, _ = client_for(project, credential.user)
                _sync_with(project, client, credential)
                break
            except CredentialsRejected as exc:
                revoke_on_rejection(credential, exc)
        Project.objects.filter(pk=project.pk).update(synced_at=timezone.now(), sync_error="")
        return "synced"
    except UserFacingError as exc:
        Project.objects.filter(pk=project.pk).update(sync_error=str(exc)[:500])
        return "failed"
    except Exception as exc:  # a transient fault: the next beat tries again
        log.warning("sync of project %s failed: %s", project.name, exc)
        Project.objects.filter(pk=project.pk).update(sync_error="The cloud did not answer the last refresh.")
        return "failed"
    finally:
        Project.objects.filter(pk=project.pk).update(sync_claimed_until=None)


def _sync_with(project: Project, client: CloudClient, credential: Credential) -> None:
    flavors = client.flavors()
    images = client.images()
    servers = client.servers()
    ips = client.floating_ips()
    quota = client.quotas()
    now = timezone.now()
    with transaction.atomic():
        _sync_flavors(project, flavors)
        server_names = {s.id: s.name for s in servers}
        image_rows = _sync_images(project, images, server_names, now)
        rows = _sync_servers(project, servers, image_rows, now)
        _sync_ips(project, ips, rows, now)
        Quota.objects.update_or_create(
            project=project,
            defaults={
                "instances_used": quota.instances[0],
                "instances_limit": quota.instances[1],
                "cores_used": quota.cores[0],
                "cores_limit": quota.cores[1],
                "ram_used_mb": quota.ram_mb[0],
                "ram_limit_mb": quota.ram_mb[1],
                "floating_ips_used": quota.floating_ips[0],
                "floating_ips_limit": quota.floating_ips[1],
                "synced_at": now,
            },
        )
    for cred in usable_credentials(project):
        try:
            user_client, _ = client_for(project, cred.user) if cred.pk != credential.pk else (client, cred)
            _sync_keypairs(project, cred.user, user_client.keypairs())
        except CredentialsRejected as exc:
            revoke_on_rejection(cred, exc)


def _reconcile(
    model: Any, scope: dict[str, Any], key: str, rows: dict[str, dict[str, Any]], **stale: Any
) -> None:
    """Make ``model``'s rows in ``scope`` match ``rows`` ({key value: fields}): update or create each,
    then delete the scope's other rows (only those also matching ``stale``, when given)."""
    for value, fields in rows.items():
        model.objects.update_or_create(**scope, **{key: value}, defaults=fields)
    model.objects.filter(**scope, **stale).exclude(**{f"{key}__in": list(rows)}).delete()


def _sync_flavors(project: Project, flavors: list[Any]) -> None:
    _reconcile(
        Flavor,
        {"project": project},
        "external_id",
        {
            f.id: {
                "name": f.name,
                "vcpus": f.vcpus,
                "ram_mb": f.ram_mb,
                "disk_gb": f.disk_gb,
                "ephemeral_gb": f.ephemeral_gb,
            }
            for f in flavors
        },
    )


def _sync_images(
    project: Project, images: list[Any], server_names: dict[str, str], now: Any
) -> dict[str, Image]:
    existing = {i.external_id: i for i in Image.objects.filter(project=project)}
    rows = {}
    for info in images:
        row = existing.pop(info.id, None) or Image(project=project, external_id=info.id)
        row.name, row.status, row.size, row.is_snapshot = info.name, info.status, info.size, info.is_snapshot
        row.source_server_id, row.default_user = info.source_server_id, info.default_user
        row.source_server_name = server_names.get(info.source_server_id, row.source_server_name)
        row.min_disk_gb, row.visibility, row.created_at, row.synced_at = (
            info.min_disk_gb,
            info.visibility,
            info.created_at,
            now,
        )
        row.save()
        rows[info.id] = row
    Image.objects.filter(pk__in=[i.pk for i in existing.values()]).delete()
    return rows


def _sync_servers(
    project: Project, servers: list[ServerInfo], images: dict[str, Image], now: Any
) -> dict[str, Server]:
    existing = {s.external_id: s for s in Server.objects.filter(project=project).exclude(external_id="")}
    # Rows of launches in flight: the cloud may list a server before the launch task has recorded its id.
    pending = {s.name: s for s in Server.objects.filter(project=project, external_id="")}
    rows = {}
    for info in servers:
        row = (
            existing.pop(info.id, None)
            or _adopt(pending, info)
            or Server(project=project, external_id=info.id, created_at=info.created_at or now)
        )
        _apply_server(row, info, images.get(info.image_id))
        row.synced_at = now
        row.save()
        rows[info.id] = row
    # Deleted outside the portal (or our delete finished): forget them.
    Server.objects.filter(pk__in=[s.pk for s in existing.values()]).delete()
    return rows


def _adopt(pending: dict[str, Server], info: ServerInfo) -> Server | None:
    row = pending.pop(info.name, None)
    if row is not None:
        row.external_id = info.id
    return row


def _apply_server(row: Server, info: ServerInfo, image: Image | None) -> None:
    row.name, row.status, row.task_state, row.fault = (
        info.name,
        info.status,
        info.task_state,
        info.fault[:500],
    )
    row.flavor_id, row.flavor_name, row.image_id, row.key_name = (
        info.flavor_id,
        info.flavor_name or row.flavor_name,
        info.image_id,
        info.key_name,
    )
    row.fixed_ips, row.floating_ips = info.fixed_ips, info.floating_ips
    if image is not None:
        row.image_name, row.default_user = image.name, image.default_user


def _sync_ips(project: Project, ips: list[Any], servers: dict[str, Server], now: Any) -> None:
    by_fixed = {ip: s for s in servers.values() for ip in s.fixed_ips}
    _reconcile(
        FloatingIP,
        {"project": project},
        "external_id",
        {
            info.id: {
                "address": info.address,
                "status": info.status,
                "port_id": info.port_id,
                "fixed_address": info.fixed_address,
                "server": by_fixed.get(info.fixed_address) if info.port_id else None,
                "synced_at": now,
            }
            for info in ips
        },
    )


def _sync_keypairs(project: Project, user: Any, keypairs: list[Any]) -> None:
    _reconcile(
        KeyPair,
        {"project": project, "owner": user},
        "name",
        {
            k.name: {
                "fingerprint": k.fingerprint,
                "public_key": k.public_key,
                "key_type": k.type,
                "pending": False,
            }
            for k in keypairs
        },
        pending=False,  # an import in flight is not yet listed by the cloud: it stays
    )


def refresh_after(op: Operation) -> None:
    """Re-read the project after an action so pages show its effect at once."""
    if op.project is not None:
        sync_project_now(op.project, force=True)
