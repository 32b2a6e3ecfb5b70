"""Cloud faults in words a user understands, mapped from openstacksdk's exceptions."""

from __future__ import annotations

import ast
import json
import re
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


REJECTED = (
    "The cloud no longer accepts your credentials (they expired or were revoked). "
    "Sign out and sign in again to renew them; nothing you did is lost."
)

# The cloud's resource names in words (Nova's and Neutron's quota names).
RESOURCES = {
    "instances": "instance",
    "cores": "vCPU",
    "ram": "RAM",
    "floatingip": "floating IP",
    "floating_ips": "floating IP",
    "port": "port",
    "network": "network",
    "subnet": "subnet",
    "router": "router",
    "security_group": "security group",
    "security_group_rule": "security group rule",
    "key_pairs": "key pair",
    "server_groups": "server group",
    "metadata_items": "metadata item",
}
NOVA_QUOTA = re.compile(
    r"Quota exceeded for (?P<what>[\w, ]+?): Requested (?P<asked>\d+), but already used (?P<used>\d+) "
    r"of (?P<limit>\d+)"
)
NEUTRON_QUOTA = re.compile(r"Quota exceeded for resources: (?P<names>\[[^\]]*\])")


def quota_sentence(detail: str, limits: dict[str, int] | None = None) -> str:
    """A quota refusal as a sentence: "The project's floating IP quota (1) is used up."

    ``detail`` is the cloud's message (Nova: "Quota exceeded for instances: Requested 1, but already
    used 1 of 1 instances"; Neutron: "Quota exceeded for resources: ['floatingip']."). ``limits`` gives
    the project's limits by resource name, when the caller knows them, since Neutron does not say.
    """
    nova = NOVA_QUOTA.search(detail)
    if nova:
        names = [n.strip() for n in nova["what"].split(",")]
        words = " and ".join(RESOURCES.get(n, n.replace("_", " ")) for n in names)
        return (
            f"The project's {words} quota ({nova['limit']}) is used up: {nova['used']} in use, "
            f"{nova['asked']} more asked for. Delete something or ask for a larger quota."
        )
    neutron = NEUTRON_QUOTA.search(detail)
    if neutron:
        try:
            raw = ast.literal_eval(neutron["names"])
        except (ValueError, SyntaxError):
            raw = []
        names = [str(n) for n in raw] if isinstance(raw, list) else []
        parts = []
        for name in names or ["resource"]:
            limit = (limits or {}).get(name)
            word = RESOURCES.get(name, name.replace("_", " "))
            parts.append(f"{word} quota ({limit})" if limit is not None and limit >= 0 else f"{word} quota")
        verb = "is" if len(parts) == 1 else "are"
        return f"The project's {' and '.join(parts)} {verb} used up. Release one or ask for a larger quota."
    return "The project's quota is used up" + (f" ({detail.rstrip('.')})." if detail else ".")


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
        ks_exc.NotFound,
        os_exc.NotFoundException,
        os_exc.ForbiddenException,
        os_exc.ConflictException,
        os_exc.BadRequestException,
        os_exc.HttpException,
    ) as exc:
        status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
        if isinstance(exc, ks_exc.Unauthorized) or status == 401 or _credential_gone(exc):
            raise CredentialsRejected(REJECTED) from exc
        if not isinstance(exc, os_exc.HttpException):
            raise CloudUnavailable(f"Could not {action}: {exc}") from exc
        detail = _detail(exc)
        if status == 409 and _is_over_quota(exc) or status == 403 and "quota" in detail.lower():
            raise QuotaExceeded(f"Could not {action}. {quota_sentence(detail)}") from exc
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
            # openstacksdk wraps Keystone's 401 (or 404) at connection time in a plain SDKException.
            raise CredentialsRejected(REJECTED) from exc
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
    return isinstance(inner, ks_exc.Unauthorized) or status == 401 or _credential_gone(inner)


def _credential_gone(exc: BaseException | None) -> bool:
    """Keystone's 404 when signing in with a deleted application credential (a real Keystone answers
    404 "Could not find Application Credential: <id>."; an expired one gets 401)."""
    if exc is None:
        return False
    status = getattr(exc, "http_status", None) or getattr(exc, "status_code", None)
    if status != 404:
        return False
    text = " ".join(str(x) for x in (getattr(exc, "message", ""), getattr(exc, "details", ""), exc))
    return "could not find application credential" in text.lower()
