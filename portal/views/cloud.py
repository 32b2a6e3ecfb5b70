"""Project overview, images and snapshots, key pairs and floating IPs."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from orchestration.operations import start_operation
from portal import batch_hooks
from portal.forms.cloud import KeyPairForm
from portal.http import ProjectRequest, posted_id, project_required
from portal.models import FloatingIP, Image, KeyPair, Operation, Project, Quota, Server
from portal.views.vms import sharing_context


@project_required
@require_GET
def overview(request: ProjectRequest) -> HttpResponse:
    project = request.project
    servers = Server.objects.filter(project=project)
    return render(
        request,
        "vms/overview.html",
        {
            "quota": Quota.objects.filter(project=project).first(),
            "server_count": servers.count(),
            "active_count": servers.filter(status="ACTIVE").count(),
            "snapshot_count": Image.objects.filter(project=project, is_snapshot=True).count(),
            "keypair_count": KeyPair.objects.filter(project=project, owner=request.user).count(),
            "ip_count": FloatingIP.objects.filter(project=project).count(),
            "project": project,
        },
    )


@project_required
@require_GET
def image_list(request: ProjectRequest) -> HttpResponse:
    project = request.project
    images = list(Image.objects.filter(project=project).order_by("-created_at", "name"))
    snapshots = [i for i in images if i.is_snapshot]
    ctx = {
        "images": [i for i in images if not i.is_snapshot],
        "snapshots": snapshots,
        "polling": any(i.is_transitional for i in images),
        "in_use": _snapshots_in_use(snapshots),
        **sharing_context(request, snapshots),
    }
    ctx["polling"] = ctx["polling"] or ctx.pop("share_busy")
    template = "vms/_images.html" if request.headers.get("HX-Request") else "vms/images.html"
    return render(request, template, ctx)


def _snapshots_in_use(snapshots: list[Image]) -> dict[int, str]:
    """Snapshots that running batch submissions boot their workers from: they cannot be deleted."""
    return batch_hooks.snapshots_in_use(snapshots)


@project_required
@require_POST
def image_delete(request: ProjectRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(Image.objects.for_user(request.user), pk=pk, project=request.project)
    if not image.is_snapshot:
        messages.error(request, f"{image.name} is a shared image; only your snapshots can be deleted here.")
        return redirect("images")
    reason = _snapshots_in_use([image]).get(image.pk)
    if reason:
        messages.error(request, f"{image.name} cannot be deleted: {reason}")
        return redirect("images")
    Image.objects.filter(pk=image.pk).update(status="deleting")
    start_operation(
        owner=request.user,
        project=image.project,
        kind="image_delete",
        title=f"Delete snapshot {image.name}",
        target=f"image:{image.pk}",
        params={"image_id": image.pk},
    )
    messages.success(request, f"Deleting snapshot {image.name}.")
    return redirect("images")


@project_required
def keypair_list(request: ProjectRequest) -> HttpResponse:
    project = request.project
    keys = KeyPair.objects.filter(project=project, owner=request.user)
    form = KeyPairForm(request.POST or None, existing=set(keys.values_list("name", flat=True)))
    if request.method == "POST" and form.is_valid():
        name, key = form.cleaned_data["name"], form.cleaned_data["public_key"]
        try:
            with transaction.atomic():
                KeyPair.objects.create(
                    project=project, owner=request.user, name=name, public_key=key, pending=True
                )
                start_operation(
                    owner=request.user,
                    project=project,
                    kind="keypair_import",
                    title=f"Import key pair {name}",
                    target=f"keypair:{name}",
                    params={"name": name, "public_key": key},
                )
        except IntegrityError:
            form.add_error("name", f"You already have a key pair named {name}.")
        else:
            messages.success(request, f"Importing key pair {name}.")
            return redirect("keypairs")
    return render(
        request,
        "vms/keypairs.html",
        {"form": form, "keypairs": keys, "polling": keys.filter(pending=True).exists()},
    )


@project_required
@require_POST
def keypair_delete(request: ProjectRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(KeyPair, pk=pk, owner=request.user, project=request.project)
    KeyPair.objects.filter(pk=key.pk).update(pending=True)
    start_operation(
        owner=request.user,
        project=key.project,
        kind="keypair_delete",
        title=f"Delete key pair {key.name}",
        target=f"keypair:{key.name}",
        params={"name": key.name},
    )
    messages.success(request, f"Deleting key pair {key.name}.")
    return redirect("keypairs")


FIP_KINDS = ("fip_allocate", "fip_release", "fip_associate", "fip_disassociate")


def _ip_context(project: Any) -> dict[str, Any]:
    """The floating IP page's state from the database: what the header button and the list show."""
    quota = Quota.objects.filter(project=project).first()
    ips = list(FloatingIP.objects.filter(project=project).select_related("server"))
    full = quota is not None and 0 <= quota.floating_ips_limit <= max(quota.floating_ips_used, len(ips))
    active = Operation.objects.filter(project=project, kind__in=FIP_KINDS, state__in=Operation.ACTIVE_STATES)
    return {
        "ips": ips,
        "quota": quota,
        "quota_full": full,
        "allocating": active.filter(kind="fip_allocate").exists(),
        "servers": Server.objects.filter(project=project, status="ACTIVE").exclude(external_id=""),
        "polling": active.exists(),  # until every floating IP operation has ended
    }


@project_required
@require_GET
def ip_list(request: ProjectRequest) -> HttpResponse:
    return render(request, "vms/ips.html", _ip_context(request.project))


@project_required
@require_POST
def ip_allocate(request: ProjectRequest) -> HttpResponse:
    """Allocate the project's floating IP, unless the portal already knows it cannot (a stale tab)."""
    project = request.project
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()  # one allocation check at a time
        state = _ip_context(project)
        if state["allocating"]:
            messages.error(
                request, "A floating IP is already being allocated for this project; it appears below."
            )
            return redirect("ips")
        if state["quota_full"]:
            limit = state["quota"].floating_ips_limit
            messages.error(
                request,
                f"The project's floating IP quota ({limit}) is used up: "
                "release an address before allocating another.",
            )
            return redirect("ips")
        start_operation(
            owner=request.user,
            project=project,
            kind="fip_allocate",
            title="Allocate a floating IP",
            target="fip:new",
        )
    messages.success(request, "Allocating a floating IP.")
    return redirect("ips")


@project_required
@require_POST
def ip_action(request: ProjectRequest, pk: int, action: str) -> HttpResponse:
    fip = get_object_or_404(FloatingIP.objects.for_user(request.user), pk=pk, project=request.project)
    if action == "associate":
        server = Server.objects.filter(project=fip.project, pk=posted_id(request, "server") or 0).first()
        if server is None:
            messages.error(request, "Choose a running VM of this project.")
            return redirect("ips")
        start_operation(
            owner=request.user,
            project=fip.project,
            kind="fip_associate",
            title=f"Attach {fip.address} to {server.name}",
            target=f"vm:{server.pk}",
            params={"fip_id": fip.pk, "server_id": server.pk},
        )
    elif action == "disassociate":
        start_operation(
            owner=request.user,
            project=fip.project,
            kind="fip_disassociate",
            title=f"Detach {fip.address}",
            target=f"fip:{fip.pk}",
            params={"fip_id": fip.pk},
        )
    elif action == "release":
        start_operation(
            owner=request.user,
            project=fip.project,
            kind="fip_release",
            title=f"Release {fip.address}",
            target=f"fip:{fip.pk}",
            params={"fip_id": fip.pk},
        )
    else:
        messages.error(request, "Unknown action.")
        return redirect("ips")
    messages.success(request, f"{action.capitalize()} {fip.address}: in progress.")
    return redirect("ips")
