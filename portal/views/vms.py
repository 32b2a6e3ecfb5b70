"""VM pages: list, launch, detail and actions. Views read the database; actions record operations."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from orchestration.operations import start_operation
from portal.forms.cloud import LaunchForm, ShareForm, SnapshotForm
from portal.http import ProjectRequest, posted_id, posted_ids, project_required
from portal.models import FloatingIP, Image, ImageShare, Operation, Project, Quota, Server, shared_from

PAGE_SIZE = 50
ACTIONS = {"start": "Start", "stop": "Stop", "reboot": "Reboot"}


def get_server_for_user(request: ProjectRequest, pk: int) -> Server:
    """The VM, if it is in one of the user's projects; otherwise 404."""
    server = get_object_or_404(Server.objects.for_user(request.user).select_related("project"), pk=pk)
    if request.project is None or server.project_id != request.project.pk:  # type: ignore[attr-defined]
        request.session["project_id"] = server.project_id  # follow the link into its project
        request.project = server.project  # type: ignore[attr-defined]
    return server


def _servers(request: ProjectRequest) -> Any:
    qs = Server.objects.filter(project=request.project)  # type: ignore[attr-defined]
    query = request.GET.get("q", "").strip()
    if query:
        qs = qs.filter(
            Q(name__icontains=query) | Q(floating_ips__icontains=query) | Q(fixed_ips__icontains=query)
        )
    status = request.GET.get("status", "")
    if status:
        qs = qs.filter(status=status.upper())
    return qs


def _vm_operations(project: Any) -> list[Operation]:
    """The project's VM operations still in flight: the list follows them until each has ended."""
    active = Operation.objects.filter(project=project, state__in=Operation.ACTIVE_STATES)
    return list(active.filter(target__startswith="vm:").only("kind", "target", "state"))


def _list_context(request: ProjectRequest) -> dict[str, Any]:
    page = Paginator(_servers(request), PAGE_SIZE).get_page(request.GET.get("page"))
    servers = list(page.object_list)
    in_flight = _vm_operations(request.project)  # type: ignore[attr-defined]
    return {
        "page": page,
        "servers": servers,
        "query": request.GET.get("q", ""),
        "status": request.GET.get("status", ""),
        "polling": bool(in_flight)
        or any(s.is_transitional or (not s.external_id and s.status == "BUILD") for s in servers),
        "snapshotting": {
            int(op.target[3:]) for op in in_flight if op.kind == "vm_snapshot" and op.target[3:].isdigit()
        },
        "quota": Quota.objects.filter(project=request.project).first(),  # type: ignore[attr-defined]
    }


def _viewed(project: Any) -> None:
    """Note that someone is looking at the project, so the sync keeps it fresh (one cheap conditional
    UPDATE, at most every few seconds per project)."""
    now = timezone.now()
    recent = now - timedelta(seconds=min(settings.CLOUD_SYNC_SECONDS, settings.CLOUD_WATCH_SECONDS))
    Project.objects.filter(pk=project.pk).filter(Q(viewed_at__isnull=True) | Q(viewed_at__lt=recent)).update(
        viewed_at=now
    )


@project_required
@require_GET
def vm_list(request: ProjectRequest) -> HttpResponse:
    project = request.project
    _viewed(project)
    ctx = _list_context(request)
    if request.headers.get("HX-Request"):
        return render(request, "vms/_table_live.html", ctx)
    ctx["free_ips"] = FloatingIP.objects.filter(project=project, port_id="").order_by("address")
    ctx["sync_error"] = project.sync_error
    return render(request, "vms/list.html", ctx)


@project_required
def vm_launch(request: ProjectRequest) -> HttpResponse:
    project = request.project
    form = LaunchForm(
        request.POST or None,
        project=project,
        user=request.user,
        initial={"source": request.GET.get("source", "")},
    )
    quota = Quota.objects.filter(project=project).first()
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        image, flavor = form.images[data["source"]], form.flavors[data["flavor"]]
        count = data["count"]
        names = [data["name"]] if count == 1 else [f"{data['name']}-{i}" for i in range(1, count + 1)]
        expires = timezone.now() + timedelta(days=settings.VM_LIFETIME_DAYS)
        with transaction.atomic():
            servers = [
                Server.objects.create(
                    project=project,
                    name=name,
                    status="BUILD",
                    flavor_id=flavor.external_id,
                    flavor_name=flavor.name,
                    image_id=image.external_id,
                    image_name=image.name,
                    default_user=image.default_user,
                    key_name=data["key_name"],
                    launched_by=request.user,
                    expires_at=expires,
                    prepared_for_batch=bool(data["prepare_for_batch"]),
                    readiness_state="waiting" if data["prepare_for_batch"] else "",
                )
                for name in names
            ]
            start_operation(
                owner=request.user,
                project=project,
                kind="vm_launch",
                title=f"Launch {names[0]}" + (f" and {count - 1} more" if count > 1 else ""),
                target=f"vm:{servers[0].pk}",
                params={
                    "server_ids": [s.pk for s in servers],
                    "image_id": image.external_id,
                    "flavor_id": flavor.external_id,
                    "key_name": data["key_name"],
                    "user_data": form.user_data(),
                },
            )
            for server in servers if data["prepare_for_batch"] else []:
                _start(request, server, "vm_readiness", f"Prepare {server.name} for batch")
        its = "Its" if len(names) == 1 else "Their"
        messages.success(request, f"Launching {', '.join(names)}. {its} status updates below.")
        return redirect("vms")
    flavors = list(form.flavors.values())
    fits = {f.external_id: (quota.launch_refusal(1, f.vcpus, f.ram_mb) if quota else "") for f in flavors}
    blocked = bool(flavors) and all(fits.values())
    return render(
        request,
        "vms/launch.html",
        {
            "form": form,
            "quota": quota,
            "blocked": blocked,
            "blocked_reason": next(iter(fits.values()), "") if blocked else "",
            "has_sources": bool(form.images),
            "has_flavors": bool(flavors),
            "warnings": form.warnings,
        },
    )


@project_required
@require_GET
def vm_launch_warnings(request: ProjectRequest) -> HttpResponse:
    """The launch form's warnings for its current choices, while the user makes them (htmx)."""
    form = LaunchForm(project=request.project, user=request.user)
    return render(request, "vms/_launch_warnings.html", {"warnings": form.live_warnings(request.GET)})


@project_required
@require_GET
def vm_detail(request: ProjectRequest, pk: int) -> HttpResponse:
    server = get_server_for_user(request, pk)
    _viewed(server.project)
    operations = list(Operation.objects.for_user(request.user).filter(target=f"vm:{server.pk}")[:20])
    snapshots = list(
        Image.objects.filter(
            project=server.project, source_server_id=server.external_id, is_snapshot=True
        ).exclude(source_server_id="")
    )
    ctx = {
        "server": server,
        "operations": operations,
        "snapshotting": any(op.kind == "vm_snapshot" and op.is_active for op in operations),
        "free_ips": FloatingIP.objects.filter(project=server.project, port_id="").order_by("address"),
        "snapshot_form": SnapshotForm(initial={"name": f"{server.name}-{timezone.now():%Y-%m-%d}"}),
        "polling": server.is_transitional or any(op.is_active for op in operations),
        "snapshots": snapshots,
        "saving": [i.name for i in snapshots if i.is_transitional]
        + [
            op.params.get("name", "")
            for op in operations
            if op.kind == "vm_snapshot"
            and op.is_active
            and op.params.get("name") not in {i.name for i in snapshots}
        ],
    }
    template = "vms/_detail_body.html" if request.headers.get("HX-Request") else "vms/detail.html"
    return render(request, template, ctx)


def _start(request: ProjectRequest, server: Server, kind: str, title: str, **params: Any) -> None:
    start_operation(
        owner=request.user,
        project=server.project,
        kind=kind,
        title=title,
        target=f"vm:{server.pk}",
        params={"server_id": server.pk, **params},
    )


def _back(request: ProjectRequest, server: Server) -> HttpResponse:
    return redirect("vm_detail", pk=server.pk) if request.POST.get("from") == "detail" else redirect("vms")


@project_required
@require_POST
def vm_action(request: ProjectRequest, pk: int, action: str) -> HttpResponse:
    server = get_server_for_user(request, pk)
    if action not in ACTIONS:
        return HttpResponseBadRequest("Unknown action")
    if not server.external_id:
        messages.error(request, f"{server.name} is still being created; try again when it is running.")
        return _back(request, server)
    _start(request, server, "vm_action", f"{ACTIONS[action]} {server.name}", action=action)
    messages.success(request, f"{ACTIONS[action]}ing {server.name}.".replace("Stoping", "Stopping"))
    return _back(request, server)


@project_required
@require_POST
def vm_snapshot(request: ProjectRequest, pk: int) -> HttpResponse:
    server = get_server_for_user(request, pk)
    form = SnapshotForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, " ".join(str(e) for e in form.errors.get("name") or ["Invalid snapshot name."])
        )
        return _back(request, server)
    if server.status not in ("ACTIVE", "SHUTOFF"):
        messages.error(
            request, f"{server.name} is {server.status}: a snapshot needs a running or stopped VM."
        )
        return _back(request, server)
    name = form.cleaned_data["name"]
    if Image.objects.filter(project=server.project, name=name).exists():
        messages.error(request, f"An image named {name} already exists; choose another name.")
        return _back(request, server)
    _start(request, server, "vm_snapshot", f"Snapshot {server.name} as {name}", name=name)
    ready = (
        "" if server.is_ready or not server.prepared_for_batch else f" {server.name} was not ready for batch."
    )
    # The warning not to use the VM is part of the VM's pages while the snapshot is taken, so it goes
    # when the snapshot is active (a message here would stay until the next page load).
    messages.success(request, f"Snapshotting {server.name} as {name}.{ready}")
    return _back(request, server)


@project_required
@require_POST
def vm_associate(request: ProjectRequest, pk: int) -> HttpResponse:
    server = get_server_for_user(request, pk)
    fip = FloatingIP.objects.filter(project=server.project, pk=posted_id(request, "fip") or 0).first()
    if fip is None:
        messages.error(request, "Choose a floating IP of this project.")
    elif fip.port_id:
        messages.error(request, f"{fip.address} is already attached to another VM; detach it first.")
    elif not server.external_id or server.status != "ACTIVE":
        messages.error(request, f"{server.name} must be running before it can get a public IP.")
    else:
        _start(request, server, "fip_associate", f"Attach {fip.address} to {server.name}", fip_id=fip.pk)
        messages.success(request, f"Attaching {fip.address} to {server.name}.")
    return _back(request, server)


@project_required
@require_POST
def vm_extend(request: ProjectRequest, pk: int) -> HttpResponse:
    server = get_server_for_user(request, pk)
    server.expires_at = timezone.now() + timedelta(days=settings.VM_LIFETIME_DAYS)
    server.save(update_fields=["expires_at"])
    messages.success(request, f"{server.name} now expires on {server.expires_at:%Y-%m-%d}.")
    return _back(request, server)


@project_required
@require_POST
def vm_console(request: ProjectRequest, pk: int) -> HttpResponse:
    server = get_server_for_user(request, pk)
    if server.external_id:
        _start(request, server, "vm_console", f"Read the console of {server.name}")
    return redirect("vm_detail", pk=server.pk)


@project_required
@require_POST
def vm_delete(request: ProjectRequest) -> HttpResponse:
    ids = posted_ids(request, "server")
    project = request.project  # type: ignore[attr-defined]
    servers = list(Server.objects.for_user(request.user).filter(pk__in=ids, project=project))
    if not servers or len(servers) != len(set(ids)):
        messages.error(request, "Select VMs of the current project to delete.")
        return redirect("vms")
    names = ", ".join(s.name for s in servers)
    with transaction.atomic():
        Server.objects.filter(pk__in=[s.pk for s in servers]).update(status="DELETING")
        start_operation(
            owner=request.user,
            project=project,
            kind="vm_delete",
            title=f"Delete {names}",
            target=f"vm:{servers[0].pk}",
            params={"server_ids": [s.pk for s in servers]},
        )
    messages.success(request, f"Deleting {names}.")
    return redirect("vms")


# sharing snapshots -----------------------------------------------------------------------------------


def sharing_context(request: ProjectRequest, snapshots: list[Image]) -> dict[str, Any]:
    """For the images page: who each snapshot is shared with (set on each snapshot as ``share_list``
    and ``shared_from_name``), and what other projects offer this one."""
    project = request.project
    shares: dict[str, list[ImageShare]] = {}
    for share in ImageShare.objects.filter(project=project):
        shares.setdefault(share.image_external_id, []).append(share)
    owners = shared_from(project)
    for image in snapshots:
        image.share_list = shares.get(image.external_id, [])  # type: ignore[attr-defined]
        image.shared_from_name = owners.get(image.external_id, "")  # type: ignore[attr-defined]
    offered = list(
        ImageShare.objects.filter(member_project_id=project.external_id)
        .exclude(status__in=[ImageShare.ACCEPTED, "sharing"])
        .select_related("project")
    )
    busy = any(s.status == "sharing" for rows in shares.values() for s in rows) or (
        Operation.objects.for_user(request.user)
        .filter(kind="image_share", state__in=[Operation.QUEUED, Operation.RUNNING])
        .exists()
    )
    return {
        "offered": offered,
        "share_busy": busy,
    }


@project_required
@require_http_methods(["GET", "POST"])
def image_share(request: ProjectRequest, pk: int) -> HttpResponse:
    """Share a snapshot of this project with another project (GET: the form)."""
    project = request.project
    image = get_object_or_404(Image.objects.for_user(request.user), pk=pk, project=project, is_snapshot=True)
    if image.external_id in shared_from(project):
        messages.error(request, f"{image.name} was shared with this project; only its owner can share it.")
        return redirect("images")
    if image.status != "active":
        messages.error(request, f"{image.name} is {image.status}; share it once it is active.")
        return redirect("images")
    form = ShareForm(request.POST if request.method == "POST" else None, project=project, user=request.user)
    if not form.is_valid():
        shares = ImageShare.objects.filter(project=project, image_external_id=image.external_id)
        return render(request, "vms/share.html", {"image": image, "form": form, "shares": shares})
    member_id, member_name = form.cleaned_data["member_id"], form.cleaned_data["member_name"]
    with transaction.atomic():
        share, created = ImageShare.objects.get_or_create(
            image_external_id=image.external_id,
            member_project_id=member_id,
            defaults={
                "project": project,
                "image_name": image.name,
                "member_project_name": member_name,
                "shared_by": request.user,
                "status": "sharing",  # until the cloud has the member
            },
        )
        if not created and share.project_id != project.pk:
            return HttpResponseBadRequest("This sharing belongs to another project.")
        start_operation(
            owner=request.user,
            project=project,
            kind="image_share",
            title=f"Share {image.name} with {share.member_label}",
            target=f"image:{image.pk}",
            params={"share_id": share.pk, "action": "share"},
        )
    messages.success(
        request,
        f"Sharing {image.name} with {share.member_label}; that project accepts it on its Images page.",
    )
    return redirect("images")


SHARE_ACTIONS = {"accept": "Accept", "reject": "Decline", "revoke": "Stop sharing"}


@project_required
@require_POST
def image_share_action(request: ProjectRequest, pk: int, action: str) -> HttpResponse:
    """accept/reject: by a member of the project it is offered to; revoke: by a member of the owner."""
    if action not in SHARE_ACTIONS:
        return HttpResponseBadRequest("Unknown action")
    mine = Project.objects.filter(members=request.user)
    if action == "revoke":
        share = get_object_or_404(ImageShare.objects.filter(project__in=mine), pk=pk)
        project = share.project
    else:
        share = get_object_or_404(
            ImageShare.objects.filter(member_project_id__in=mine.values("external_id")), pk=pk
        )
        project = mine.get(external_id=share.member_project_id)
    start_operation(
        owner=request.user,
        project=project,
        kind="image_share",
        title=f"{SHARE_ACTIONS[action]}: {share.image_name} ({share.member_label})",
        target=f"share:{share.pk}",
        params={"share_id": share.pk, "action": action},
    )
    messages.success(
        request, f"{SHARE_ACTIONS[action]}: {share.image_name}. The Images page updates in a moment."
    )
    return redirect("images")
