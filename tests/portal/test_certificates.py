"""CADC proxy certificates: obtained at sign-in, stored encrypted, shown, renewed, handed to jobs."""

from __future__ import annotations

import datetime as dt
import os
import stat
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from portal import certificates
from portal.models import Credential
from tests.cadc_server import CadcTestServer, cadc_server  # noqa: F401 (fixture)

LOGIN = "/accounts/login/"
RENEW = "/certificate/renew/"


@pytest.fixture
def cadc(cadc_server: CadcTestServer, settings: Any, db: Any, tmp_path: Any) -> CadcTestServer:  # noqa: F811
    settings.IDENTITY_BACKEND = "cadc"
    settings.CADC_REGISTRY_URL = cadc_server.registry_url
    settings.CADC_TIMEOUT = 5
    settings.PROXY_CERT_DIR = str(tmp_path / "proxies")
    return cadc_server


def sign_in(client: Any) -> Any:
    return client.post(LOGIN, {"username": "alice", "password": "alice-pw"}, follow=True)


def test_it_gets_a_certificate_at_sign_in_and_stores_it_encrypted(client: Any, cadc: CadcTestServer) -> None:
    sign_in(client)
    row = Credential.objects.get(user__username="alice", kind="proxy")
    assert b"CERTIFICATE" not in bytes(row.secret_encrypted)
    assert "BEGIN CERTIFICATE" in row.secret and "PRIVATE KEY" in row.secret
    assert row.expires_at is not None
    assert abs(row.expires_at - (timezone.now() + dt.timedelta(days=10))) < dt.timedelta(minutes=10)
    assert "CN=alice" in row.identifier


def test_it_shows_the_expiry_and_a_renew_action_in_the_user_menu(client: Any, cadc: CadcTestServer) -> None:
    page = sign_in(client).content.decode()
    expires = Credential.objects.get(kind="proxy").expires_at
    assert f"Valid until {expires:%Y-%m-%d %H:%M} UTC" in page
    assert 'href="/certificate/renew/?next=/"' in page


def test_it_signs_in_even_when_the_certificate_service_is_down(client: Any, cadc: CadcTestServer) -> None:
    cadc.unavailable.add("cred")
    response = sign_in(client)
    assert b"Welcome, alice" in response.content
    assert b"no CADC proxy certificate could be obtained" in response.content
    assert b"temporarily unavailable" in response.content
    assert not Credential.objects.filter(kind="proxy").exists()


def test_it_never_logs_a_certificate(client: Any, cadc: CadcTestServer, caplog: Any) -> None:
    caplog.set_level("DEBUG")
    sign_in(client)
    client.post(RENEW, {"password": "alice-pw"})
    assert "PRIVATE KEY" not in caplog.text and "BEGIN CERTIFICATE" not in caplog.text


def test_it_renews_with_the_password_asked_again(client: Any, cadc: CadcTestServer) -> None:
    cadc.unavailable.add("cred")
    sign_in(client)
    cadc.unavailable.clear()
    page = client.get(RENEW)
    assert b"holds no CADC proxy certificate for you yet" in page.content
    response = client.post(RENEW, {"password": "alice-pw", "next": "/storage/"}, follow=True)
    assert response.redirect_chain[-1][0] == "/storage/"
    assert b"Your CADC proxy certificate is renewed" in response.content
    assert Credential.objects.get(kind="proxy").is_usable


def test_it_explains_a_wrong_password_on_renewal(client: Any, cadc: CadcTestServer) -> None:
    sign_in(client)
    before = Credential.objects.get(kind="proxy").secret
    response = client.post(RENEW, {"password": "wrong"})
    assert response.status_code == 200
    assert b"CADC did not accept this username and password." in response.content
    assert Credential.objects.get(kind="proxy").secret == before


def test_it_refuses_an_external_next_and_the_wrong_method(client: Any, cadc: CadcTestServer) -> None:
    sign_in(client)
    response = client.post(RENEW, {"password": "alice-pw", "next": "https://evil.example/"})
    assert response["Location"] == "/"
    assert client.put(RENEW).status_code == 405
    client.post("/accounts/logout/")
    assert client.get(RENEW)["Location"].startswith("/accounts/login/")


def test_it_hands_the_certificate_to_batch_code(client: Any, cadc: CadcTestServer) -> None:
    sign_in(client)
    alice = User.objects.get(username="alice")
    pem, not_after = certificates.get_proxy_for(alice) or (b"", None)
    assert pem.startswith(b"-----BEGIN") and b"PRIVATE KEY" in pem
    assert not_after == Credential.objects.get(kind="proxy").expires_at
    assert certificates.problem_for_jobs(alice, dt.timedelta(days=2)) is None
    problem = certificates.problem_for_jobs(alice, dt.timedelta(days=12))
    assert problem is not None
    assert f"expires on {not_after:%Y-%m-%d %H:%M} UTC, before these jobs could finish" in problem


def test_it_says_when_there_is_no_valid_certificate(client: Any, cadc: CadcTestServer) -> None:
    sign_in(client)
    alice = User.objects.get(username="alice")
    Credential.objects.filter(kind="proxy").update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert certificates.get_proxy_for(alice) is None
    assert "no valid CADC proxy certificate" in (
        certificates.problem_for_jobs(alice, dt.timedelta(hours=1)) or ""
    )
    page = client.get("/").content.decode()
    assert "Expired " in page


def test_it_writes_a_private_file_for_clients_that_need_one(client: Any, cadc: CadcTestServer) -> None:
    sign_in(client)
    alice = User.objects.get(username="alice")
    first = certificates.proxy_file_for(alice)
    assert first is not None
    assert stat.S_IMODE(os.stat(first).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(first.parent).st_mode) == 0o700
    assert first.read_bytes() == Credential.objects.get(kind="proxy").secret.encode()
    client.post(RENEW, {"password": "alice-pw"})
    second = certificates.proxy_file_for(alice)
    assert second is not None and second != first
    assert not first.exists()  # the old certificate does not linger
