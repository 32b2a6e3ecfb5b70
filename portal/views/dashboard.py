"""The dashboard: where the user stands, and the next step."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from portal import summary
from portal.middleware import SESSION_KEY
from portal.views.operations import panel_context


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    ctx: dict[str, object] = {"summary": summary.for_user(request.user, request.project)}  # type: ignore[attr-defined]
    ctx.update(panel_context(request))
    return render(request, "dashboard.html", ctx)


@login_required
@require_POST
def switch_project(request: HttpRequest) -> HttpResponse:
    wanted = request.POST.get("project", "")
    match = next((p for p in request.projects if str(p.pk) == wanted), None)  # type: ignore[attr-defined]
    if match is None:
        messages.error(request, "You are not a member of that project.")
    else:
        request.session[SESSION_KEY] = match.pk
        messages.success(request, f"Switched to project {match.name}.")
    nxt = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        nxt = ""
    return redirect(nxt or "dashboard")
