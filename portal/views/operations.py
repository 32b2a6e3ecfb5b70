"""The activity panel and operation pages."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from orchestration.operations import start_operation
from portal.models import Operation

PANEL_SIZE = 8


def get_operation_for_user(request: HttpRequest, pk: int) -> Operation:
    return get_object_or_404(Operation.objects.for_user(request.user), pk=pk)


def panel_context(request: HttpRequest, limit: int = PANEL_SIZE) -> dict[str, object]:
    operations = list(Operation.objects.for_user(request.user).select_related("project")[:limit])
    return {"operations": operations, "polling": any(op.is_active for op in operations)}


@login_required
@require_GET
def panel(request: HttpRequest) -> HttpResponse:
    """The htmx partial the activity panel polls while something runs."""
    return render(request, "operations/_panel.html", panel_context(request))


@login_required
@require_GET
def operation_list(request: HttpRequest) -> HttpResponse:
    ctx = panel_context(request, limit=100)
    return render(request, "operations/list.html", ctx)


@login_required
@require_GET
def operation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    op = get_operation_for_user(request, pk)
    template = "operations/_live.html" if request.headers.get("HX-Request") else "operations/detail.html"
    return render(request, template, {"op": op})


@login_required
@require_POST
def start_system_check(request: HttpRequest) -> HttpResponse:
    start_operation(
        owner=request.user,
        project=request.project,  # type: ignore[attr-defined]
        kind="system_check",
        title="System check",
        target="portal",
    )
    if request.headers.get("HX-Request"):
        return render(request, "operations/_panel.html", panel_context(request))
    return redirect("dashboard")
