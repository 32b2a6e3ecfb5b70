"""Request types and the decorator for views that act in the user's current project."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from portal.models import Project


class AuthedRequest(HttpRequest):
    user: User  # type: ignore[assignment]
    project: Project | None
    projects: list[Project]


class ProjectRequest(AuthedRequest):
    project: Project


def project_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in, with a current project; users without one are sent to the dashboard, which explains."""

    @wraps(view)
    def wrapper(request: AuthedRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.project is None:
            messages.info(request, "You are not a member of any OpenStack project yet.")
            return redirect("dashboard")
        return view(request, *args, **kwargs)

    return login_required(wrapper)
