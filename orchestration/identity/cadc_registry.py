"""Pointing the CADC client libraries (cadcutils, vos, cadcdata) at a service registry.

cadcutils keeps the registry URL and its cache directory in module globals, and caches the
registry file under one name whatever URL it came from. Switching URLs without switching the
cache directory would keep using the old services for up to ten minutes, so each registry URL
gets its own cache directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading

import requests
from cadcutils.net import ws
from cadcutils.util import utils as cadc_utils

_lock = threading.Lock()


def use_registry(registry_url: str | None) -> None:
    """Make the CADC clients use `registry_url`; None leaves cadcutils' current setting alone.

    Idempotent and thread-safe. The setting is process-wide: a process talks to one registry.
    """
    _silence_version_check()
    if not registry_url:
        return
    digest = hashlib.sha256(registry_url.encode()).hexdigest()[:16]
    cache = os.path.join(os.path.expanduser("~"), ".config", "cadc-registry", digest)
    with _lock:
        if registry_url != ws.DEFAULT_REGISTRY or cache != ws.CACHE_LOCATION:
            ws.CACHE_LOCATION = cache
            ws.DEFAULT_REGISTRY = registry_url


def _silence_version_check() -> None:
    # The client constructors ask PyPI whether a newer release exists: a server must not
    # make that outside call on a user's behalf (and it can stall without network).
    checked = cadc_utils.check_version.checked
    for package in ("cadcutils", "vos", "cadcdata"):
        if package not in checked:
            checked.append(package)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status behind a cadcutils/vos/requests exception, if there is one."""
    for candidate in (exc, getattr(exc, "orig_exception", None)):
        response = getattr(candidate, "response", None)
        if isinstance(response, requests.Response):
            return response.status_code
    return None


# TLS alerts a server sends when it refuses the client's certificate (unknown authority, expired,
# revoked, bad or missing). Our own failure to verify the server is CERTIFICATE_VERIFY_FAILED instead.
_CLIENT_CERT_ALERT = re.compile(r"ALERT_(UNKNOWN_CA|CERTIFICATE_\w+|BAD_CERTIFICATE)", re.IGNORECASE)


def certificate_refused(exc: BaseException) -> bool:
    """Did the service refuse our client certificate during the TLS handshake?

    cadcutils reports that as "unable to verify the server certificate", which sends users and
    operators the wrong way; the alert's name further down the exception chain says what happened.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if _CLIENT_CERT_ALERT.search(str(current)):
            return True
        todo += [current.__cause__, current.__context__, getattr(current, "orig_exception", None)]
        todo += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
    return False
