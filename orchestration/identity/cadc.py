"""CADC identity: check a username/password with the CADC login service, get proxy certificates.

Uses the real `cadcutils` client. Passwords are only ever sent to CADC: they are never logged,
stored or put in an exception message, and exceptions are raised `from None` so that the
request (whose body holds the password) is not attached to the traceback.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cadcutils import exceptions as cadc_exc
from cadcutils import net
from cadcutils.net import auth as cadc_auth
from cadcutils.net import ws

from orchestration.errors import TransientError, UserFacingError
from orchestration.identity.cadc_registry import http_status, use_registry

GMS_RESOURCE_ID = "ivo://cadc.nrc.ca/gms"
LOGIN_CAPABILITY = "ivo://ivoa.net/std/UMS#login-0.1"
CRED_RESOURCE_ID = cadc_auth.CRED_RESOURCE_ID
PROXY_CAPABILITY = cadc_auth.CRED_PROXY_FEATURE_ID
AGENT = "canfar-portal/1.0"
MAX_DAYS_VALID = 30


class IdentityError(UserFacingError):
    """Base class; `str(error)` is a message for the user."""


class InvalidCredentials(IdentityError):
    """CADC rejected the username/password."""


class IdentityServiceUnavailable(IdentityError, TransientError):
    """CADC could not be reached or answered with an error; try again later."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail  # technical reason for logs; never holds a password


@dataclass(frozen=True)
class ProxyCertificate:
    """An X.509 proxy certificate and its private key (PEM), as cadc-get-cert saves it."""

    pem: bytes = field(repr=False)  # holds a private key: keep it out of reprs and logs
    not_after: dt.datetime
    subject: str

    def expires_within(self, delta: dt.timedelta, now: dt.datetime | None = None) -> bool:
        return self.not_after <= (now or dt.datetime.now(dt.UTC)) + delta


class _PasswordSubject(net.Subject):
    """A Subject that answers basic auth with the given password and never prompts (getpass)."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username=username)
        self.__password = password

    def get_auth(self, realm: str) -> tuple[str, str]:
        return (self.username, self.__password)


@dataclass(frozen=True)
class CadcIdentity:
    """The ``IdentityProvider`` of CADC accounts: the CADC login service checks the password."""

    registry_url: str | None = None
    timeout: float = 20

    def check_password(self, username: str, password: str) -> None:
        cadc_login(username, password, registry_url=self.registry_url, timeout=self.timeout)


def cadc_login(username: str, password: str, registry_url: str | None = None, timeout: float = 20) -> str:
    """Return a CADC SSO token for the credentials (usable as Bearer token or CADC_SSO cookie)."""
    _check_credentials(username, password)
    use_registry(registry_url)
    try:
        client = ws.BaseWsClient(GMS_RESOURCE_ID, net.Subject(), AGENT, retry=False)
        response = client.post(
            (LOGIN_CAPABILITY, None),
            data={"username": username, "password": password},
            headers={"Accept": "text/plain"},
            timeout=timeout,
        )
    except cadc_exc.UnauthorizedException:
        raise InvalidCredentials("CADC did not accept this username and password.") from None
    except Exception as exc:  # noqa: BLE001 - every other failure means the service is unusable now
        raise _unavailable("sign-in", exc) from None
    token = response.text.strip()
    if not token:
        raise IdentityServiceUnavailable(
            "The CADC sign-in service gave an empty answer. Please try again later.", "empty token"
        )
    return token


def get_proxy_certificate(
    username: str,
    password: str,
    days_valid: int = 10,
    registry_url: str | None = None,
    timeout: float = 20,
) -> ProxyCertificate:
    """Get a proxy certificate valid for `days_valid` days (what `cadc-get-cert` does)."""
    _check_credentials(username, password)
    if not isinstance(days_valid, int) or not 1 <= days_valid <= MAX_DAYS_VALID:
        raise ValueError(f"A certificate can be valid for 1 to {MAX_DAYS_VALID} days.")
    use_registry(registry_url)
    try:
        # cadcutils.net.get_cert does the same request, but with retry=True, which backs off for
        # minutes on a 503; the caller (a Celery task) retries with its own back-off instead.
        client = ws.BaseWsClient(
            CRED_RESOURCE_ID,
            _PasswordSubject(username, password),
            AGENT,
            retry=False,
            server_versions=cadc_auth.SUPPORTED_SERVER_VERSIONS,
        )
        response = client.get((PROXY_CAPABILITY, None), params={"daysValid": days_valid}, timeout=timeout)
    except cadc_exc.UnauthorizedException:
        raise InvalidCredentials("CADC did not accept this username and password.") from None
    except Exception as exc:  # noqa: BLE001 - every other failure means the service is unusable now
        raise _unavailable("certificate", exc) from None
    try:
        return read_proxy_certificate(response.content)
    except ValueError as exc:
        raise IdentityServiceUnavailable(
            "The CADC certificate service returned something that is not a certificate.", str(exc)
        ) from None


def read_proxy_certificate(pem: bytes) -> ProxyCertificate:
    """Parse a PEM holding the certificate (and key); ValueError when it is not one."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ValueError(f"not a PEM certificate: {exc}") from None
    if b"PRIVATE KEY" not in pem:
        raise ValueError("the PEM has no private key")
    return ProxyCertificate(
        pem=pem, not_after=cert.not_valid_after_utc, subject=cert.subject.rfc4514_string()
    )


def _check_credentials(username: str, password: str) -> None:
    if not username or not username.strip() or not password:
        raise InvalidCredentials("Enter your CADC username and password.")
    if any(c in username for c in "\r\n\0:"):
        raise InvalidCredentials("That is not a valid CADC username.")


def _unavailable(what: str, exc: Exception) -> IdentityServiceUnavailable:
    status = http_status(exc)
    if status == 503:
        message = f"The CADC {what} service is temporarily unavailable. Please try again in a few minutes."
    elif status:
        message = f"The CADC {what} service answered with an error (HTTP {status}). Please try again later."
    else:
        message = f"The CADC {what} service cannot be reached. Please try again later."
    return IdentityServiceUnavailable(message, f"{type(exc).__name__}: {exc}")
