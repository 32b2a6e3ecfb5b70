"""CADC proxy certificates: obtained with the password at sign-in (the only moment it exists),
stored encrypted as Credential(kind="proxy"), renewed on request, handed to VOSpace and batch jobs.

Never log a certificate: it holds a private key. Log the username and the error type only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest
from django.utils import timezone

from orchestration.errors import UserFacingError
from orchestration.identity.cadc import (
    IdentityError,
    IdentityServiceUnavailable,
    ProxyCertificate,
    get_proxy_certificate,
    read_proxy_certificate,
)
from portal.models import Credential

log = logging.getLogger(__name__)
KIND = "proxy"


def obtain(user: Any, password: str) -> ProxyCertificate:
    """Ask CADC for a new certificate and store it; IdentityError (message for the user) on failure."""
    cert = get_proxy_certificate(
        user.username,
        password,
        days_valid=settings.PROXY_CERT_DAYS,
        registry_url=settings.CADC_REGISTRY_URL or None,
        timeout=settings.CADC_TIMEOUT,
    )
    store(user, cert)
    return cert


def obtain_at_sign_in(request: HttpRequest, user: Any, password: str) -> None:
    """Called by the sign-in view; a CADC outage must not block sign-in, so it only adds a message."""
    if settings.IDENTITY_BACKEND != "cadc":
        return
    try:
        obtain(user, password)
    except IdentityError as exc:
        level = "unavailable" if isinstance(exc, IdentityServiceUnavailable) else "refused"
        log.warning("proxy certificate for %s not obtained at sign-in (%s)", user.username, level)
        messages.warning(
            request,
            f"You are signed in, but no CADC proxy certificate could be obtained: {exc} "
            "VOSpace storage and batch jobs need one; renew it from the user menu later.",
        )


def store(user: Any, cert: ProxyCertificate) -> Credential:
    row = Credential.objects.filter(user=user, project=None, kind=KIND).order_by(
        "-created"
    ).first() or Credential(user=user, kind=KIND)
    row.secret = cert.pem.decode("ascii")
    row.identifier = cert.subject[:255]
    row.expires_at = cert.not_after
    row.revoked = False
    row.save()
    return row


def current(user: Any) -> Credential | None:
    """The stored certificate row, valid or not (for showing its expiry)."""
    return Credential.objects.filter(user=user, project=None, kind=KIND).order_by("-created").first()


def get_proxy_for(user: Any) -> tuple[bytes, dt.datetime] | None:
    """(PEM with key, not_after) of the user's certificate while it is valid, else None."""
    row = current(user)
    if row is None or not row.is_usable:
        return None
    pem = row.secret.encode("ascii")
    not_after = read_proxy_certificate(pem).not_after  # the certificate itself is the authority
    if not_after <= timezone.now():
        return None
    return pem, not_after


def problem_for_jobs(user: Any, needed: dt.timedelta, now: dt.datetime | None = None) -> str | None:
    """None when the certificate outlives `needed` from now; otherwise why jobs cannot use it."""
    proxy = get_proxy_for(user)
    if proxy is None:
        return (
            "You have no valid CADC proxy certificate, so jobs could not write to VOSpace. "
            "Renew it from the user menu, then submit again."
        )
    _, not_after = proxy
    if not_after < (now or timezone.now()) + needed:
        return (
            f"Your CADC proxy certificate expires on {not_after:%Y-%m-%d %H:%M} UTC, before these jobs "
            f"could finish (allowing {_human(needed)}). Renew it from the user menu, then submit again."
        )
    return None


def proxy_needed() -> dt.timedelta:
    """How long a proxy certificate must still be valid when jobs are sent: they may wait, then run."""
    return dt.timedelta(seconds=settings.BATCH_PROXY_MIN_SECONDS)


def proxy_for_jobs(user: Any) -> bytes | None:
    """The user's proxy certificate for their jobs (None without the cadc identity backend).

    UserFacingError when the certificate is missing or would expire before the jobs could run.
    """
    if settings.IDENTITY_BACKEND != "cadc":
        return None
    problem = problem_for_jobs(user, proxy_needed())
    proxy = get_proxy_for(user)
    if problem or proxy is None:
        raise UserFacingError(problem or "You have no valid CADC proxy certificate.")
    return proxy[0]


def proxy_file_for(user: Any) -> Path | None:
    """The certificate as a private file (0600) for clients that need a path (vos); None when none.

    Written to memory-backed /dev/shm when available, named by content so concurrent users of the old
    file are not disturbed; older files of the same user are removed.
    """
    proxy = get_proxy_for(user)
    if proxy is None:
        return None
    pem, _ = proxy
    folder = _proxy_dir()
    name = f"user{user.pk}-{hashlib.sha256(pem).hexdigest()[:16]}.pem"
    target = folder / name
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")  # mkstemp creates it with mode 0600
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        os.replace(tmp, target)
    for old in folder.glob(f"user{user.pk}-*.pem"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return target


def _proxy_dir() -> Path:
    if settings.PROXY_CERT_DIR:
        folder = Path(settings.PROXY_CERT_DIR)
    else:
        base = Path("/dev/shm") if os.path.isdir("/dev/shm") else Path(tempfile.gettempdir())
        folder = base / f"canfar-portal-proxies-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def _human(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} hours" if hours < 48 else f"{hours / 24:.1f} days"
