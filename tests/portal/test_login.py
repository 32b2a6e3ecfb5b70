from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from tests.conftest import PASSWORD


def test_it_redirects_anonymous_users_to_sign_in(client: Any, db: Any) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_signs_in_with_a_local_account(client: Any, alice: User) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert b"Welcome, alice" in response.content


def test_it_explains_a_wrong_password(client: Any, alice: User) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"do not match" in response.content


def test_it_throttles_repeated_failures_with_a_clear_message(client: Any, alice: User, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert b"Sign-in paused" in response.content
    assert "_auth_user_id" not in client.session


def test_it_signs_out_with_post_only(alice_client: Any) -> None:
    assert alice_client.get("/accounts/logout/").status_code == 405
    assert "_auth_user_id" in alice_client.session  # a GET signs no one out
    response = alice_client.post("/accounts/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in alice_client.session
    page = alice_client.get(response["Location"], follow=True)
    assert page.redirect_chain == [] and b'id="id_password"' in page.content  # the sign-in form
    assert alice_client.get("/")["Location"] == "/accounts/login/?next=/"


def test_it_shows_the_demo_hint_only_when_the_demo_account_exists(client: Any, db: Any) -> None:
    assert b"canfar-demo" not in client.get("/accounts/login/").content
    User.objects.create_user("demo", password="canfar-demo")
    assert b"demo / canfar-demo" in client.get("/accounts/login/").content


@override_settings(IDENTITY_BACKEND="cadc")
def test_it_never_uses_local_passwords_with_the_cadc_backend(
    client: Any, alice: User, monkeypatch: Any
) -> None:
    from orchestration.identity import cadc

    def refuse(username: str, password: str, **kwargs: Any) -> str:
        raise cadc.InvalidCredentials("wrong")

    monkeypatch.setattr(cadc, "cadc_login", refuse)
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert b"do not match" in response.content


@pytest.mark.parametrize("path", ["/", "/operations/", "/operations/panel/"])
def test_it_requires_sign_in(client: Any, db: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={quote(path)}"  # back here once signed in
