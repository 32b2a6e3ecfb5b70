"""One handler per VM-page action. Each records the cloud's id before waiting, so a rerun is safe."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestration.cloud import CloudClient, CloudNotFound, CredentialsRejected, InvalidRequest
from orchestration.cloud.images import revoke_share, set_member_status, share_image
from orchestration.cloud.readiness import parse_console
from orchestration.cloud.types import ServerInfo
from orchestration.errors import UserFacingError, Wait
from orchestration.operations import Progress
from orchestration.tasks.cloud import POLL, acting_for, refresh_after, sync_project_now
from portal.models import FloatingIP, Image, ImageShare, KeyPair, Operation, Project, Server

GIVE_UP = timedelta(minutes=15)


def _remember(op: Operation, **values: Any) -> None:
    op.params.update(values)
    Operation.objects.filter(pk=op.pk).update(params=op.params)


def _too_long(op: Operation, what: str) -> None:
    if op.started and timezone.now() - op.started > GIVE_UP:
        raise UserFacingError(
            f"{what} did not finish within {GIVE_UP.seconds // 60} minutes. "
            "Check the VM page; the cloud may still complete it."
        )


def _server(op: Operation, pk: int) -> Server:
    server = Server.objects.filter(pk=pk, project=op.project).first()
    if server is None:
        raise UserFacingError("That VM no longer exists.")
    return server


def _get_or_none(cloud: CloudClient, server_id: str) -> Any:
    try:
        return cloud.server(server_id)
    except CloudNotFound:
        return None


def _launched_before(op: Operation, cloud: CloudClient, server: Server) -> ServerInfo | None:
    """The cloud server an earlier attempt created for this row, if the worker died before recording it.

    The launch form keeps names unique within a project, so a same-named server that no other row
    knows is this row's.
    """
    known = Server.objects.filter(project=op.project).exclude(pk=server.pk).exclude(external_id="")
    taken = set(known.values_list("external_id", flat=True))
    return next((s for s in cloud.servers_named(server.name) if s.id not in taken), None)


def _record_launch(server: Server, external_id: str, status: str) -> None:
    try:
        with transaction.atomic():
            Server.objects.filter(pk=server.pk).update(external_id=external_id, status=status)
    except IntegrityError:
        # The project sync recorded the new server as a row of its own first: keep that one.
        Server.objects.filter(project=server.project, external_id=external_id).update(
            launched_by=server.launched_by, expires_at=server.expires_at
        )
        server.delete()
        server.pk = Server.objects.get(project=server.project, external_id=external_id).pk
    server.external_id = external_id


def _refused(servers: list[Server], reason: str) -> None:
    """The cloud refused these launches (over quota, a bad request): their rows say so, in ERROR,
    instead of waiting in BUILD for a server that will never exist. Deleting them needs no cloud call."""
    Server.objects.filter(pk__in=[s.pk for s in servers], external_id="").update(
        status="ERROR", task_state="", fault=f"Not launched: {reason}"[:500]
    )


# key pairs ----------------------------------------------------------------


def keypair_import(op: Operation, progress: Progress) -> None:
    name, public_key = op.params["name"], op.params["public_key"]
    try:
        with acting_for(op) as cloud:
            info = cloud.import_keypair(name, public_key)
    except UserFacingError:
        KeyPair.objects.filter(project=op.project, owner=op.owner, name=name, pending=True).delete()
        raise
    KeyPair.objects.filter(project=op.project, owner=op.owner, name=name).update(
        fingerprint=info.fingerprint, key_type=info.type, pending=False
    )
    progress(100, f"Imported {name} ({info.fingerprint})")


def keypair_delete(op: Operation, progress: Progress) -> None:
    name = op.params["name"]
    with acting_for(op) as cloud:
        cloud.delete_keypair(name)
    KeyPair.objects.filter(project=op.project, owner=op.owner, name=name).delete()


# floating IPs -------------------------------------------------------------


def fip_allocate(op: Operation, progress: Progress) -> None:
    if "ip_id" not in op.params:
        with acting_for(op) as cloud:
            info = cloud.allocate_floating_ip()
        _remember(op, ip_id=info.id, address=info.address)
    refresh_after(op)
    progress(100, f"Allocated {op.params['address']}")


def _fip(op: Operation) -> FloatingIP:
    fip = FloatingIP.objects.filter(pk=op.params["fip_id"], project=op.project).first()
    if fip is None:
        raise UserFacingError("That floating IP is no longer allocated to this project.")
    return fip


def fip_associate(op: Operation, progress: Progress) -> None:
    fip, server = _fip(op), _server(op, op.params["server_id"])
    with acting_for(op) as cloud:
        if not op.params.get("sent"):
            cloud.associate_floating_ip(fip.external_id, server.external_id)
            _remember(op, sent=True)
        info = cloud.server(server.external_id)
    if fip.address not in info.floating_ips:
        _too_long(op, "Associating the IP")
        raise Wait(POLL, f"Waiting for {fip.address} to reach {server.name}")
    refresh_after(op)
    progress(100, f"{server.name} is reachable at {fip.address}")


def fip_disassociate(op: Operation, progress: Progress) -> None:
    fip = _fip(op)
    with acting_for(op) as cloud:
        cloud.disassociate_floating_ip(fip.external_id)
    refresh_after(op)


def fip_release(op: Operation, progress: Progress) -> None:
    fip = _fip(op)
    with acting_for(op) as cloud:
        cloud.release_floating_ip(fip.external_id)
    fip.delete()
    refresh_after(op)


# servers --------------------------------------------------------------------


def vm_launch(op: Operation, progress: Progress) -> None:
    p = op.params
    servers = list(Server.objects.filter(pk__in=p["server_ids"], project=op.project).order_by("pk"))
    if not servers:
        raise UserFacingError("The VMs to launch were deleted before they could start.")
    with acting_for(op) as cloud:
        for index, server in enumerate(servers, start=1):
            server.refresh_from_db(fields=["external_id"])  # the project sync may have adopted it meanwhile
            if server.external_id:
                continue  # launched by an earlier attempt: never twice
            try:
                info = _launched_before(op, cloud, server) or cloud.create_server(
                    server.name,
                    p["image_id"],
                    p["flavor_id"],
                    p.get("key_name") or None,
                    p.get("user_data") or None,
                )
            except CredentialsRejected:
                raise
            except UserFacingError as exc:
                _refused(servers[index - 1 :], str(exc))
                raise
            _record_launch(server, info.id, info.status or "BUILD")
            progress(5 + 15 * index // len(servers), f"The cloud accepted {server.name}")
        infos = [_get_or_none(cloud, s.external_id) for s in servers]
    errors, active = [], 0
    for server, info in zip(servers, infos, strict=True):
        if info is None:
            errors.append(f"{server.name} disappeared from the cloud")
            continue
        Server.objects.filter(pk=server.pk).update(
            status=info.status, task_state=info.task_state, fault=info.fault[:500], fixed_ips=info.fixed_ips
        )
        if info.status == "ERROR":
            errors.append(f"{server.name} failed to start: {info.fault or 'the cloud gave no reason'}")
        elif info.status == "ACTIVE":
            active += 1
    if active + len(errors) < len(servers):
        _too_long(op, "Launching")
        progress(20 + 80 * active // len(servers), f"{active} of {len(servers)} running; booting")
        raise Wait(POLL, "")
    refresh_after(op)
    if errors:
        raise UserFacingError("; ".join(errors))
    progress(100, f"All {active} VMs are running" if active > 1 else f"{servers[0].name} is running")


ACTIONS = {
    "start": ("ACTIVE", CloudClient.start_server),
    "reboot": ("ACTIVE", CloudClient.reboot_server),
    "stop": ("SHUTOFF", CloudClient.stop_server),
}


def vm_action(op: Operation, progress: Progress) -> None:
    server, action = _server(op, op.params["server_id"]), op.params["action"]
    target, call = ACTIONS[action]
    with acting_for(op) as cloud:
        if not op.params.get("sent"):
            call(cloud, server.external_id)
            _remember(op, sent=True)
            progress(30, f"Asked the cloud to {action} {server.name}")
        info = cloud.server(server.external_id)
    Server.objects.filter(pk=server.pk).update(status=info.status, task_state=info.task_state)
    if info.status != target or info.task_state:
        _too_long(op, action.capitalize())
        raise Wait(POLL, f"{server.name} is {info.status.lower()}")
    progress(100, f"{server.name} is {info.status.lower()}")


def vm_delete(op: Operation, progress: Progress) -> None:
    servers = list(Server.objects.filter(pk__in=op.params["server_ids"], project=op.project))
    remaining = []
    with acting_for(op) as cloud:
        if not op.params.get("sent"):
            for server in servers:
                if server.external_id:
                    cloud.delete_server(server.external_id)
            _remember(op, sent=True)
        for server in servers:
            info = _get_or_none(cloud, server.external_id) if server.external_id else None
            if info is None or info.status == "DELETED":
                server.delete()
            else:
                remaining.append(server.name)
    if remaining:
        _too_long(op, "Deleting")
        total = len(op.params["server_ids"])
        progress(100 * (total - len(remaining)) // total, f"Waiting for {', '.join(remaining)} to go")
        raise Wait(POLL, "")
    refresh_after(op)
    progress(100, "Deleted")


def vm_snapshot(op: Operation, progress: Progress) -> None:
    server, name = _server(op, op.params["server_id"]), op.params["name"]
    with acting_for(op) as cloud:
        if "image_id" not in op.params:
            image_id = cloud.snapshot_server(server.external_id, name)
            _remember(op, image_id=image_id)
            Image.objects.get_or_create(
                project=op.project,
                external_id=image_id,
                defaults={
                    "name": name,
                    "status": "queued",
                    "is_snapshot": True,
                    "source_server_id": server.external_id,
                    "source_server_name": server.name,
                    "default_user": server.default_user,
                    "created_at": timezone.now(),
                },
            )
            progress(15, "Snapshot requested; do not use the VM until it is saved")
        try:
            info = cloud.image(op.params["image_id"])
        except CloudNotFound as exc:
            raise UserFacingError(f"The cloud dropped the snapshot {name} while saving it.") from exc
    Image.objects.filter(project=op.project, external_id=info.id).update(status=info.status, size=info.size)
    if info.status in ("killed", "deleted"):
        raise UserFacingError(f"The cloud could not save the snapshot {name} (status {info.status}).")
    if info.status != "active":
        _too_long(op, "The snapshot")
        progress(
            40 if info.status == "saving" else 25, f"Snapshot {info.status}; do not use the VM meanwhile"
        )
        raise Wait(POLL, "")
    refresh_after(op)
    progress(100, f"Snapshot {name} is ready")


def image_delete(op: Operation, progress: Progress) -> None:
    image = Image.objects.filter(pk=op.params["image_id"], project=op.project).first()
    if image is None:
        return
    with acting_for(op) as cloud:
        cloud.delete_image(image.external_id)
    image.delete()
    # Glance drops an image's members with it: so do we, and the member projects stop listing it.
    shares = list(ImageShare.objects.filter(project=op.project, image_external_id=image.external_id))
    ImageShare.objects.filter(pk__in=[s.pk for s in shares]).delete()
    for member in Project.objects.filter(external_id__in=[s.member_project_id for s in shares]):
        sync_project_now(member, force=True)


def vm_console(op: Operation, progress: Progress) -> None:
    server = _server(op, op.params["server_id"])
    with acting_for(op) as cloud:
        output = cloud.console_output(server.external_id, lines=300)
    fields: dict[str, Any] = {"console_output": output[-200_000:], "console_at": timezone.now()}
    if server.prepared_for_batch:
        found = parse_console(output)
        fields.update(
            readiness_state=found.state, readiness_steps=found.steps, readiness_failure=found.failure
        )
    Server.objects.filter(pk=server.pk).update(**fields)


# prepare for batch: readiness ------------------------------------------------------------------------

READINESS_GIVE_UP = timedelta(minutes=45)  # apt/dnf on a slow mirror can take a while


def _readiness_too_long(op: Operation, server: Server) -> None:
    if op.started and timezone.now() - op.started > READINESS_GIVE_UP:
        raise UserFacingError(
            f"cloud-init on {server.name} reported no result within {READINESS_GIVE_UP.seconds // 60} minutes; "
            "read its console on the VM page."
        )


def vm_readiness(op: Operation, progress: Progress) -> None:
    """Follow "prepare for batch" in the console until it reports done or failed."""
    server = _server(op, op.params["server_id"])
    with acting_for(op) as cloud:
        info = _get_or_none(cloud, server.external_id) if server.external_id else None
        output = None
        if info is not None and info.status == "ACTIVE":
            try:
                output = cloud.console_output(server.external_id, lines=1000)
            except InvalidRequest:  # Nova's 409 while the console is not there yet: look again soon
                output = None
    if info is None and server.external_id:
        raise UserFacingError(f"{server.name} is no longer in the cloud.")
    if info is not None and info.status == "ERROR":
        raise UserFacingError(f"{server.name} failed to start, so it was not prepared for batch.")
    if output is None:  # still building (Nova has no console before): look again soon
        _readiness_too_long(op, server)
        progress(5, f"Waiting for {server.name} to boot")
        raise Wait(POLL, "")
    found = parse_console(output)
    Server.objects.filter(pk=server.pk).update(
        readiness_state=found.state,
        readiness_steps=found.steps,
        readiness_failure=found.failure,
        console_output=output[-200_000:],
        console_at=timezone.now(),
    )
    if found.state == "ready":
        progress(100, f"{server.name} is ready for batch")
        return
    if found.state == "failed":
        raise UserFacingError(f"Preparing {server.name} for batch failed: {found.failure}")
    _readiness_too_long(op, server)
    progress(
        10 + min(80, 15 * len(found.steps)),
        found.steps[-1]["text"] if found.steps else "cloud-init is running",
    )
    raise Wait(POLL * 2, "")


# sharing snapshots with other projects ------------------------------------------------------------------


def _share(op: Operation) -> ImageShare:
    share = ImageShare.objects.filter(pk=op.params["share_id"]).select_related("project").first()
    if share is None:
        raise UserFacingError("That sharing no longer exists.")
    return share


def image_share(op: Operation, progress: Progress) -> None:
    """share and revoke act in the owner's project; accept and reject in the member's (``op.project``)."""
    share, action = _share(op), op.params["action"]
    with acting_for(op) as cloud:
        if action == "share":
            try:
                member = share_image(cloud, share.image_external_id, share.member_project_id)
            except UserFacingError:
                ImageShare.objects.filter(pk=share.pk, status="sharing").delete()  # never reached the cloud
                raise
            ImageShare.objects.filter(pk=share.pk).update(status=member.status, updated=timezone.now())
        elif action in ("accept", "reject"):
            status = ImageShare.ACCEPTED if action == "accept" else ImageShare.REJECTED
            member = set_member_status(cloud, share.image_external_id, share.member_project_id, status)
            ImageShare.objects.filter(pk=share.pk).update(status=member.status, updated=timezone.now())
        elif action == "revoke":
            revoke_share(cloud, share.image_external_id, share.member_project_id)
            share.delete()
        else:
            raise UserFacingError(f"Unknown sharing action {action!r}.")
    refresh_after(op)
    other = share.project if op.project and share.project.pk != op.project.pk else None
    other = other or Project.objects.filter(external_id=share.member_project_id).first()
    if other is not None and (op.project is None or other.pk != op.project.pk):
        sync_project_now(other, force=True)  # the other side sees the change at once too
    done = {"share": "Shared", "accept": "Accepted", "reject": "Declined", "revoke": "Stopped sharing"}[
        action
    ]
    progress(100, f"{done} {share.image_name} ({share.member_label})")
