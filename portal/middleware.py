"""Attach the user's current project (sticky in the session) to each request."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from portal.models import Project

SESSION_KEY = "project_id"


class CurrentProjectMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.project = None  # type: ignore[attr-defined]
        request.projects = []  # type: ignore[attr-defined]
        if request.user.is_authenticated:
            projects = list(Project.objects.filter(members=request.user).order_by("name"))
            chosen = request.session.get(SESSION_KEY)
            current = next((p for p in projects if p.pk == chosen), projects[0] if projects else None)
            request.project = current  # type: ignore[attr-defined]
            request.projects = projects  # type: ignore[attr-defined]
        return self.get_response(request)
