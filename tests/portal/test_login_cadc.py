"""Sign-in with the CADC identity backend, through the real cadcutils client and a local CADC server."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from tests.cadc_server import CadcTestServer, cadc_server  # noqa: F401 (fixture)

LOGIN = "/accounts/login/"


@pytest.fixture
def cadc(cadc_server: CadcTestServer, settings: Any, db: Any) -> CadcTestServer:  # noqa: F811
    settings.IDENTITY_BACKEND = "cadc"
    settings.CADC_REGISTRY_URL = cadc_server.registry_url
    settings.CADC_TIMEOUT = 5
    return cadc_server


def dump_database() -> str:
    import io

    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


def test_it_signs_in_and_creates_a_user_without_a_password(client: Any, cadc: CadcTestServer) -> None:
    response = client.post(LOGIN, {"username": "alice", "password": "alice-pw"}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert b"Welcome, alice" in response.content
    user = User.objects.get(username="alice")
    assert not user.has_usable_password()
    assert any(path.startswith("/gms/login") for _, path in cadc.requests)


def test_it_signs_in_an_existing_user_again(client: Any, cadc: CadcTestServer) -> None:
    client.post(LOGIN, {"username": "alice", "password": "alice-pw"})
    client.post("/accounts/logout/")
    response = client.post(LOGIN, {"username": "alice", "password": "alice-pw"})
    assert response.status_code == 302
    assert User.objects.filter(username="alice").count() == 1


def test_it_explains_a_wrong_password(client: Any, cadc: CadcTestServer) -> None:
    response = client.post(LOGIN, {"username": "alice", "password": "not-it"})
    assert response.status_code == 200
    assert b"do not match" in response.content
    assert not User.objects.filter(username="alice").exists()


def test_it_explains_a_login_service_that_is_down(client: Any, cadc: CadcTestServer) -> None:
    cadc.unavailable.add("gms")
    response = client.post(LOGIN, {"username": "alice", "password": "alice-pw"})
    assert response.status_code == 200
    assert b"The sign-in service is not answering right now" in response.content
    assert b"temporarily unavailable" in response.content
    assert "_auth_user_id" not in client.session


def test_it_explains_cadc_unreachable(client: Any, cadc: CadcTestServer, settings: Any) -> None:
    cadc.stop()
    response = client.post(LOGIN, {"username": "alice", "password": "alice-pw"})
    assert response.status_code == 200
    assert b"not answering right now" in response.content


def test_it_stores_the_password_nowhere(client: Any, cadc: CadcTestServer, caplog: Any) -> None:
    cadc.users["carol"] = "Very-Secret-Pw-42"
    cadc.add_home("carol")
    client.post(LOGIN, {"username": "carol", "password": "Very-Secret-Pw-42"})
    client.post(LOGIN, {"username": "carol", "password": "Wrong-Secret-Pw-43"})  # a failure too
    dump = dump_database()  # every row: users, sessions, credentials, operations, axes logs
    assert '"username": "carol"' in dump
    assert "Very-Secret-Pw-42" not in dump and "Wrong-Secret-Pw-43" not in dump
    assert "Very-Secret-Pw-42" not in caplog.text and "Wrong-Secret-Pw-43" not in caplog.text


def test_it_never_lets_a_cadc_login_take_over_a_local_account(client: Any, cadc: CadcTestServer) -> None:
    User.objects.create_superuser("alice", password="local-operator-password")
    response = client.post(LOGIN, {"username": "alice", "password": "alice-pw"})
    assert response.status_code == 200
    assert b"belongs to a local account" in response.content
    assert "_auth_user_id" not in client.session
