"""Acting for a user in a project: find their stored application credential and connect."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_process_shutdown
from django.db.models import Q
from django.utils import timezone

from orchestration import backends
from orchestration.cloud import CloudClient, CredentialsRejected
from orchestration.cloud.client import close_sessions, forget_session
from orchestration.errors import UserFacingError
from portal.models import Credential, Project

log = logging.getLogger(__name__)

NO_CREDENTIAL = (
    "The portal holds no valid cloud credentials for you in project {project}. "
    "Sign out and sign in again to renew them."
)


def usable_credentials(project: Project, user: Any = None) -> Any:
    qs = Credential.objects.filter(project=project, kind="openstack", revoked=False).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )
    if user is not None:
        qs = qs.filter(user=user)
    return qs.select_related("user").order_by("-created")


def client_for(project: Project, user: Any = None) -> tuple[CloudClient, Credential]:
    """A client acting for ``user`` (or for any member when None) in ``project``."""
    credential = usable_credentials(project, user).first()
    if credential is None:
        raise UserFacingError(NO_CREDENTIAL.format(project=project.name))
    client = backends.cloud_with_app_credential(credential.identifier, credential.secret)
    return client, credential


def token_client(token: str, project_id: str | None = None) -> CloudClient:
    """A one-off client for the sign-in token: use it in a ``with`` block so its sockets close."""
    return backends.cloud_with_token(token, project_id)


def revoke_on_rejection(credential: Credential, exc: CredentialsRejected) -> None:
    """The cloud said the credential is gone (revoked, deleted or expired): never use it again.

    The VM pages show the sign-in banner for a project without usable credentials, and the next
    sign-in makes a new one (``cloud_connect`` replaces credentials that are not usable)."""
    Credential.objects.filter(pk=credential.pk).update(revoked=True)
    forget_session(credential.identifier)
    log.info("credential %s of %s marked revoked: %s", credential.pk, credential.user_id, exc)


@worker_process_shutdown.connect
def _close_cloud_sessions(**_: Any) -> None:
    close_sessions()
