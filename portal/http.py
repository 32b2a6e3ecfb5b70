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


def posted_id(request: HttpRequest, name: str) -> int | None:
    """A positive integer id from a POST field, or None for anything else (never an exception)."""
    return _as_id(request.POST.get(name, ""))


def posted_ids(request: HttpRequest, name: str) -> list[int]:
    """The valid ids among a POST field's values; others are ignored."""
    return [i for i in (_as_id(v) for v in request.POST.getlist(name)) if i is not None]


def _as_id(value: str) -> int | None:
    value = value.strip()
    if not (value.isascii() and value.isdecimal()) or len(value) > 18:
        return None
    return int(value) or None
