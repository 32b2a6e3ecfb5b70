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
from orchestration.cloud.client import forget_session
from orchestration.cloud.types import ServerInfo
from orchestration.cloud_access import client_for, revoke_on_rejection, token_client, usable_credentials
from orchestration.errors import TransientError, UserFacingError, portal_fault
from orchestration.operations import Progress
from portal.crypto import encrypt
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
    with token_client(token) as unscoped:
        projects = unscoped.projects()
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
            # Unique per Keystone user: several projects are set up within the same second.
            name = f"canfar-workbench-{info.name[:40]}-{timezone.now():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
            with token_client(token, project_id=info.id) as scoped:
                cred = scoped.create_app_credential(name, settings.APP_CREDENTIAL_DAYS)
            for old in Credential.objects.filter(user=op.owner, project=project, kind="openstack"):
                forget_session(old.identifier)  # replaced: its session in this process goes too
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
    return encrypt(secret)


# sync ---------------------------------------------------------------------
#
# Beat runs sync_all_projects every CLOUD_SYNC_SECONDS. It queues a sync of a project only while
# someone looks at one of its VM pages or an operation acts in it, or when its last full reconcile
# is older than CLOUD_FULL_SYNC_SECONDS; a project with a sync queued is claimed, so there is never
# more than one queued. A sync is incremental (servers changed since the last one, floating IPs,
# quotas when something changed) unless a full reconcile is due. Rows an operation in flight owns
# keep the state it gave them (DELETING) and are never dropped by the sync (a launch's new server).

QUEUED_CLAIM = timedelta(minutes=2)  # a queued sync that never ran (lost message) is queued again
OWNING_KINDS = ("vm_launch", "vm_delete", "vm_action", "vm_snapshot")
GONE = "DELETED"


def _unclaimed(now: Any) -> Q:
    return Q(sync_queued_until__isnull=True) | Q(sync_queued_until__lt=now)


@shared_task
def sync_all_projects() -> int:
    """Beat: queue a sync of each project that is watched, busy or due a full reconcile."""
    now = timezone.now()
    watched = now - timedelta(seconds=settings.CLOUD_WATCH_SECONDS)
    stale = now - timedelta(seconds=settings.CLOUD_FULL_SYNC_SECONDS)
    busy = Operation.objects.filter(state__in=Operation.ACTIVE_STATES, project__isnull=False)
    due = (
        Project.objects.filter(credential__kind="openstack", credential__revoked=False)
        .filter(
            Q(viewed_at__gte=watched)
            | Q(pk__in=busy.values("project_id"))
            | Q(full_synced_at__isnull=True)
            | Q(full_synced_at__lt=stale)
        )
        .filter(_unclaimed(now))
        .values_list("pk", flat=True)
        .distinct()
    )
    count = 0
    for pk in list(due):
        # The claim is a conditional update, so two beats (or a beat and a sign-in) never queue twice.
        if Project.objects.filter(pk=pk).filter(_unclaimed(now)).update(sync_queued_until=now + QUEUED_CLAIM):
            sync_project.delay(pk)
            count += 1
    return count


@shared_task
def sync_project(project_id: int) -> str:
    Project.objects.filter(pk=project_id).update(sync_queued_until=None)  # the next one may be queued
    project = Project.objects.filter(pk=project_id).first()
    return sync_project_now(project) if project else "gone"


def sync_project_now(project: Project, force: bool = False) -> str:
    """Refresh the portal's view of ``project``; ``force`` does a full reconcile whatever the claim."""
    now = timezone.now()
    claim = Project.objects.filter(pk=project.pk)
    if not force:
        claim = claim.filter(Q(sync_claimed_until__isnull=True) | Q(sync_claimed_until__lt=now))
    if not claim.update(sync_claimed_until=now + timedelta(seconds=30)):
        return "busy"
    project.refresh_from_db(fields=["full_synced_at", "servers_changed_at"])
    stale = now - timedelta(seconds=settings.CLOUD_FULL_SYNC_SECONDS)
    full = force or project.full_synced_at is None or project.full_synced_at < stale
    try:
        credentials = list(usable_credentials(project))
        if not credentials:
            return "no credentials"
        for credential in credentials:
            try:
                client, _ = client_for(project, credential.user)
                if full:
                    _sync_with(project, client, credential)
                else:
                    _refresh(project, client)
                break
            except CredentialsRejected as exc:
                revoke_on_rejection(credential, exc)
        else:
            return "no credentials"
        done = {"synced_at": timezone.now(), "sync_error": ""}
        if full:
            done["full_synced_at"] = now
        Project.objects.filter(pk=project.pk).update(**done)
        return "synced" if full else "refreshed"
    except UserFacingError as exc:
        Project.objects.filter(pk=project.pk).update(sync_error=str(exc)[:500])
        return "failed"
    except TransientError as exc:  # the cloud did not answer: the next beat tries again
        log.warning("sync of project %s failed: %s", project.name, exc)
        Project.objects.filter(pk=project.pk).update(sync_error="The cloud did not answer the last refresh.")
        return "failed"
    except Exception:  # a bug of the portal's, not an outage of the cloud
        reference = f"sync-{uuid.uuid4().hex[:8]}"
        log.exception("sync of project %s crashed: reference %s", project.name, reference)
        Project.objects.filter(pk=project.pk).update(sync_error=portal_fault(reference)[:500])
        return "crashed"
    finally:
        Project.objects.filter(pk=project.pk).update(sync_claimed_until=None)


def _owned(project: Project) -> dict[int, str]:
    """Server rows that an operation in flight acts on, with the kind of that operation."""
    owned: dict[int, str] = {}
    ops = Operation.objects.filter(project=project, state__in=Operation.ACTIVE_STATES, kind__in=OWNING_KINDS)
    for op in ops.only("kind", "params"):
        ids = op.params.get("server_ids") or [op.params.get("server_id")]
        for pk in ids:
            if isinstance(pk, int):
                owned.setdefault(pk, op.kind)
    return owned


def _snapshots_in_flight(project: Project) -> set[str]:
    ops = Operation.objects.filter(project=project, state__in=Operation.ACTIVE_STATES, kind="vm_snapshot")
    return {str(op.params["image_id"]) for op in ops.only("params") if op.params.get("image_id")}


def _newest(servers: list[ServerInfo], marker: str) -> str:
    return max([marker, *(s.updated for s in servers if s.updated)])


def _sync_with(project: Project, client: CloudClient, credential: Credential) -> None:
    """The full reconcile: everything the pages show, rows the cloud no longer lists deleted."""
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
        rows, _ = _sync_servers(project, servers, image_rows, now, complete=True)
        _sync_ips(project, ips, rows, now)
        _save_quota(project, quota, now)
        Project.objects.filter(pk=project.pk).update(servers_changed_at=_newest(servers, ""))
    for cred in usable_credentials(project):
        try:
            user_client, _ = client_for(project, cred.user) if cred.pk != credential.pk else (client, cred)
            _sync_keypairs(project, cred.user, user_client.keypairs())
        except CredentialsRejected as exc:
            revoke_on_rejection(cred, exc)


def _refresh(project: Project, client: CloudClient) -> None:
    """The cheap refresh: floating IPs, the servers changed since the last sync (deleted ones included;
    all of them when an IP moved, since a server's addresses change without a change of the server),
    and the quotas only when something changed."""
    ips = client.floating_ips()
    moved = _ips_differ(project, ips)
    marker = "" if moved else project.servers_changed_at
    servers = client.servers(changes_since=marker)
    now = timezone.now()
    with transaction.atomic():
        images = {i.external_id: i for i in Image.objects.filter(project=project)}
        _, changed = _sync_servers(project, servers, images, now, complete=not marker, only_changed=True)
        if moved:
            rows = {s.external_id: s for s in Server.objects.filter(project=project).exclude(external_id="")}
            _sync_ips(project, ips, rows, now)
        Project.objects.filter(pk=project.pk).update(servers_changed_at=_newest(servers, marker))
    if changed or moved or not Quota.objects.filter(project=project).exists():
        _save_quota(project, client.quotas(), timezone.now())


def _ips_differ(project: Project, ips: list[Any]) -> bool:
    seen = {
        (f.external_id, f.address, f.status, f.port_id, f.fixed_address)
        for f in FloatingIP.objects.filter(project=project)
    }
    return seen != {(i.id, i.address, i.status, i.port_id, i.fixed_address) for i in ips}


def _save_quota(project: Project, quota: Any, now: Any) -> None:
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
    in_flight = _snapshots_in_flight(project)
    Image.objects.filter(pk__in=[i.pk for i in existing.values() if i.external_id not in in_flight]).delete()
    return rows


def _sync_servers(
    project: Project,
    servers: list[ServerInfo],
    images: dict[str, Image],
    now: Any,
    complete: bool,
    only_changed: bool = False,
) -> tuple[dict[str, Server], bool]:
    """Apply the cloud's servers to the rows (returns the rows written and whether any changed). ``complete``: ``servers`` is every server of the project,
    so rows it lacks were deleted; otherwise it holds changes only (DELETED for those gone)."""
    existing = {s.external_id: s for s in Server.objects.filter(project=project).exclude(external_id="")}
    # Rows of launches in flight: the cloud may list a server before the launch task has recorded its id.
    pending = {s.name: s for s in Server.objects.filter(project=project, external_id="", status="BUILD")}
    owned = _owned(project)
    rows, gone = {}, []
    for info in servers:
        if info.status == GONE:
            row = existing.pop(info.id, None)
            if row is not None:
                gone.append(row)
            continue
        row = (
            existing.pop(info.id, None)
            or _adopt(pending, info)
            or Server(project=project, external_id=info.id, created_at=info.created_at or now)
        )
        before = _fields(row)
        _apply_server(row, info, images.get(info.image_id), owned.get(row.pk) if row.pk else None)
        if not only_changed or row.pk is None or _fields(row) != before:
            row.synced_at = now
            row.save()
            rows[info.id] = row
    if complete:
        gone += existing.values()
    # Deleted outside the portal (or our delete finished): forget them, unless an operation in flight
    # still acts on them (a launch whose server the listing predates, an action that will report it).
    forget = [s for s in gone if owned.get(s.pk) in (None, "vm_delete")]
    _note_deleted_outside(project, [s for s in forget if s.pk not in owned])
    Server.objects.filter(pk__in=[s.pk for s in forget]).delete()
    return rows, bool(rows or forget)


def _fields(row: Server) -> tuple[Any, ...]:
    return (
        row.name, row.status, row.task_state, row.fault, row.flavor_id, row.flavor_name, row.image_id,
        row.key_name, row.fixed_ips, row.floating_ips, row.image_name, row.default_user, row.external_id,
    )  # fmt: skip


def _note_deleted_outside(project: Project, servers: list[Server]) -> None:
    """A VM that vanished without the portal deleting it: say so in each member's activity panel."""
    if not servers:
        return
    now = timezone.now()
    members = list(Membership.objects.filter(project=project).values_list("user_id", flat=True))
    Operation.objects.bulk_create(
        Operation(
            owner_id=user_id,
            project=project,
            kind="cloud_notice",
            title=f"{server.name} was deleted outside the portal",
            message=f"The cloud no longer has the VM {server.name}; it is gone from the VM list.",
            target=f"vm:{server.pk}",
            state=Operation.SUCCEEDED,
            progress=100,
            started=now,
            finished=now,
        )
        for server in servers
        for user_id in members
    )


def _adopt(pending: dict[str, Server], info: ServerInfo) -> Server | None:
    row = pending.pop(info.name, None)
    if row is not None:
        row.external_id = info.id
    return row


def _apply_server(row: Server, info: ServerInfo, image: Image | None, owner: str | None = None) -> None:
    """The cloud's view of a server on its row; a delete in flight keeps its DELETING."""
    keep = owner == "vm_delete" and row.status == "DELETING"
    row.name, row.fault = info.name, info.fault[:500]
    if not keep:
        row.status, row.task_state = info.status, info.task_state
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
