"""CADC login and proxy certificates through the real cadcutils client and the local server."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from orchestration.identity.cadc import (
    IdentityServiceUnavailable,
    InvalidCredentials,
    cadc_login,
    get_proxy_certificate,
    read_proxy_certificate,
)
from tests.cadc_server import CadcTestServer


def _dead_registry_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/reg/resource-caps"


def test_it_returns_a_token_for_good_credentials(cadc_server: CadcTestServer) -> None:
    token = cadc_login("alice", "alice-pw")
    assert cadc_server.tokens[token] == "alice"


def test_it_uses_an_explicit_registry_url(cadc_server: CadcTestServer) -> None:
    token = cadc_login("bob", "bob-pw", registry_url=cadc_server.registry_url)
    assert cadc_server.tokens[token] == "bob"


def test_it_rejects_a_wrong_password_without_echoing_it(cadc_server: CadcTestServer) -> None:
    with pytest.raises(InvalidCredentials) as info:
        cadc_login("alice", "Wrong-Secret-123")
    assert "did not accept" in str(info.value)
    assert "Wrong-Secret-123" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_it_rejects_empty_credentials_before_calling_cadc(cadc_server: CadcTestServer) -> None:
    with pytest.raises(InvalidCredentials, match="Enter your CADC username and password"):
        cadc_login("alice", "")
    assert not any(path.startswith("/gms/login") for _, path in cadc_server.requests)


def test_it_reports_a_login_service_that_is_down(cadc_server: CadcTestServer) -> None:
    cadc_server.unavailable.add("gms")
    with pytest.raises(IdentityServiceUnavailable, match="temporarily unavailable") as info:
        cadc_login("alice", "alice-pw")
    assert "alice-pw" not in str(info.value) + info.value.detail


def test_it_reports_cadc_unreachable(cadc_server: CadcTestServer) -> None:
    with pytest.raises(IdentityServiceUnavailable, match="cannot be reached"):
        cadc_login("alice", "alice-pw", registry_url=_dead_registry_url())


def test_it_reports_a_server_that_went_away_after_caching_the_registry(cadc_server: CadcTestServer) -> None:
    cadc_login("alice", "alice-pw")
    cadc_server.stop()
    with pytest.raises(IdentityServiceUnavailable, match="cannot be reached"):
        cadc_login("alice", "alice-pw")


def test_it_gets_a_proxy_certificate_with_the_requested_lifetime(cadc_server: CadcTestServer) -> None:
    before = dt.datetime.now(dt.UTC)
    cert = get_proxy_certificate("alice", "alice-pw", days_valid=3)
    parsed = x509.load_pem_x509_certificate(cert.pem)
    serialization.load_pem_private_key(cert.pem, password=None)  # the key travels with it
    assert "CN=alice" in cert.subject
    assert cert.not_after == parsed.not_valid_after_utc
    assert before + dt.timedelta(days=3) - dt.timedelta(minutes=1) <= cert.not_after
    assert cert.not_after <= dt.datetime.now(dt.UTC) + dt.timedelta(days=3, minutes=1)
    assert cert.expires_within(dt.timedelta(days=4)) and not cert.expires_within(dt.timedelta(days=2))
    assert "PRIVATE" not in repr(cert)


def test_it_refuses_a_certificate_for_a_wrong_password(cadc_server: CadcTestServer) -> None:
    with pytest.raises(InvalidCredentials) as info:
        get_proxy_certificate("alice", "nope-nope")
    assert "nope-nope" not in str(info.value)


def test_it_reports_the_certificate_service_down(cadc_server: CadcTestServer) -> None:
    cadc_server.unavailable.add("cred")
    with pytest.raises(IdentityServiceUnavailable, match="certificate service is temporarily unavailable"):
        get_proxy_certificate("alice", "alice-pw")


def test_it_reports_the_certificate_service_unreachable(cadc_server: CadcTestServer) -> None:
    with pytest.raises(IdentityServiceUnavailable, match="cannot be reached"):
        get_proxy_certificate("alice", "alice-pw", registry_url=_dead_registry_url())


def test_it_refuses_a_silly_lifetime(cadc_server: CadcTestServer) -> None:
    with pytest.raises(ValueError, match="1 to 30 days"):
        get_proxy_certificate("alice", "alice-pw", days_valid=0)


def test_it_refuses_a_pem_without_a_certificate() -> None:
    with pytest.raises(ValueError, match="not a PEM certificate"):
        read_proxy_certificate(b"hello")


def test_it_marks_outages_as_worth_retrying(cadc_server: CadcTestServer) -> None:
    from orchestration.errors import TransientError, UserFacingError

    cadc_server.unavailable.add("gms")
    with pytest.raises(TransientError):
        cadc_login("alice", "alice-pw")
    cadc_server.unavailable.clear()
    with pytest.raises(UserFacingError) as info:
        cadc_login("alice", "bad")
    assert not isinstance(info.value, TransientError)
