"""Cloud faults in words a user understands, mapped from openstacksdk's exceptions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as os_exc

from orchestration.errors import TransientError, UserFacingError


class CloudError(UserFacingError):
    """A permanent cloud fault."""


class CredentialsRejected(CloudError):
    """The cloud refused our credentials (expired or revoked): the user must sign in again."""


class QuotaExceeded(CloudError):
    pass


class CloudNotFound(CloudError):
    pass


class InvalidRequest(CloudError):
    pass


class CloudUnavailable(TransientError):
    """5xx, timeouts, connection refused: worth retrying."""


def _detail(exc: os_exc.HttpException) -> str:
    """The cloud's own message from its JSON error body, if any."""
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            body = response.json()
        except (ValueError, json.JSONDecodeError):
            body = None
        if isinstance(body, dict):
            for value in body.values():
                if isinstance(value, dict) and value.get("message"):
                    return str(value["message"])
            if body.get("message"):
                return str(body["message"])
    return str(getattr(exc, "details", "") or exc.message or "").strip()


def _is_over_quota(exc: os_exc.HttpException) -> bool:
    response = getattr(exc, "response", None)
    if response is None:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and (body.get("NeutronError") or {}).get("type") == "OverQuota"


@contextmanager
def translate(action: str) -> Iterator[None]:
    """Turn SDK exceptions raised while doing ``action`` into the portal's errors."""
    try:
        yield
    except (
        ks_exc.Unauthorized,
        os_exc.NotFoundException,
        os_exc.ForbiddenException,
        os_exc.ConflictException,
        os_exc.BadRequestException,
        os_exc.HttpException,
    ) as exc:
        status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
        if isinstance(exc, ks_exc.Unauthorized) or status == 401:
            raise CredentialsRejected(
                "The cloud no longer accepts your credentials (they expired or were revoked). "
                "Sign out and sign in again to renew them; nothing you did is lost."
            ) from exc
        if not isinstance(exc, os_exc.HttpException):
            raise CloudUnavailable(f"Could not {action}: {exc}") from exc
        detail = _detail(exc)
        if status == 409 and _is_over_quota(exc):
            raise QuotaExceeded(f"Quota exceeded: could not {action}. {detail}".strip()) from exc
        if status == 403 and "quota" in detail.lower():
            raise QuotaExceeded(f"Quota exceeded: could not {action}. {detail}".strip()) from exc
        if status == 404:
            raise CloudNotFound(f"Could not {action}: it no longer exists in the cloud.") from exc
        if status in (400, 403, 409, 413):
            raise InvalidRequest(f"The cloud refused to {action}: {detail}") from exc
        if status is not None and status >= 500 or status is None:
            raise CloudUnavailable(
                f"The cloud had a fault while trying to {action} ({status}). Retrying."
            ) from exc
        raise InvalidRequest(f"The cloud refused to {action} ({status}): {detail}") from exc
    except (
        ks_exc.ConnectFailure,
        ks_exc.ConnectTimeout,
        ks_exc.DiscoveryFailure,
        ks_exc.EndpointNotFound,
        ks_exc.RetriableConnectionFailure,
        ks_exc.GatewayTimeout,
        ks_exc.ServiceUnavailable,
        os_exc.SDKException,
        ConnectionError,
        TimeoutError,
    ) as exc:
        if isinstance(exc, os_exc.ResourceFailure):
            raise CloudError(f"Could not {action}: the cloud reports a failure ({exc}).") from exc
        if _unauthorized_inside(exc):
            # openstacksdk wraps Keystone's 401 at connection time in a plain SDKException.
            raise CredentialsRejected(
                "The cloud no longer accepts your credentials (they expired or were revoked). "
                "Sign out and sign in again to renew them; nothing you did is lost."
            ) from exc
        raise CloudUnavailable(f"The cloud is not answering (could not {action}).") from exc


def _unauthorized_inside(exc: BaseException) -> bool:
    """Is ``exc`` openstacksdk's plain wrapper around Keystone's 401 (what ``authorize()`` raises)?

    Only that exact shape: a connection failure that merely passed through a 401 on the way (version
    discovery retries after one) must stay "unavailable", or stored credentials would be revoked.
    """
    if type(exc) is not os_exc.SDKException:
        return False
    inner = exc.__cause__ or exc.__context__
    status = getattr(inner, "http_status", None) or getattr(inner, "status_code", None)
    return isinstance(inner, ks_exc.Unauthorized) or status == 401
