"""At sign-in, the password is used once to get a short-lived Keystone token.

The token (encrypted at rest, never the password) is handed to a background
operation that creates one application credential per project. This is the only
cloud call made inside a request, because only the request has the password.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import messages
from django.http import HttpRequest

from orchestration import backends
from orchestration.cloud.errors import CloudError, CredentialsRejected
from orchestration.errors import TransientError
from orchestration.operations import start_operation
from portal.models import Credential, Operation

log = logging.getLogger(__name__)
SIGN_IN_TIMEOUT = 15


def start_cloud_connection(request: HttpRequest, user: Any, password: str) -> Operation | None:
    try:
        client = backends.cloud_with_password(user.username, password)
        with client:  # a one-off session: its sockets close here
            token, expires = client.token, client.token_expiry()
    except CredentialsRejected:
        messages.info(
            request,
            "Your account has no access to the cloud, so VM pages will be empty. "
            "Ask CANFAR support for an OpenStack project.",
        )
        return None
    except (CloudError, TransientError) as exc:
        log.warning("cloud unavailable at sign-in of %s: %s", user.username, type(exc).__name__)
        messages.warning(
            request,
            "The cloud did not answer at sign-in. Pages show what the portal last knew; "
            "sign in again later to refresh your cloud credentials.",
        )
        return None
    row = Credential.objects.filter(user=user, kind="keystone_token").order_by(
        "-created"
    ).first() or Credential(user=user, kind="keystone_token")
    row.secret, row.expires_at, row.revoked = token, expires, False
    row.save()
    return start_operation(owner=user, kind="cloud_connect", title="Connect to the cloud", target="keystone")
