from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

# The portal's areas in the order of the user's journey; an area appears once its pages exist.
AREAS = [("VMs", "vms"), ("Batch", "batch"), ("Catalogues", "catalogues"), ("Storage", "storage")]


def _nav_areas() -> list[tuple[str, str]]:
    found = []
    for label, name in AREAS:
        try:
            found.append((label, reverse(name)))
        except NoReverseMatch:
            continue
    return found


def _credentials_lapsed(request: HttpRequest) -> bool:
    """The user had cloud credentials for the current project, and none of them is usable any more."""
    from portal.models import Credential

    project = getattr(request, "project", None)
    if project is None or not request.user.is_authenticated:
        return False
    creds = list(Credential.objects.filter(user=request.user, project=project, kind="openstack"))
    return bool(creds) and not any(c.is_usable for c in creds)


def portal(request: HttpRequest) -> dict[str, Any]:
    return {
        "credentials_lapsed": _credentials_lapsed(request),
        "current_project": getattr(request, "project", None),
        "user_projects": getattr(request, "projects", []),
        "cloud_is_emulated": getattr(settings, "CLOUD_IS_EMULATED", False),
        "identity_backend": settings.IDENTITY_BACKEND,
        "nav_areas": _nav_areas() if request.user.is_authenticated else [],
    }
