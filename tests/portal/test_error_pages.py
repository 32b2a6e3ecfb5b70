"""Styled 404 and 405 pages with a way back (pytest-django runs with DEBUG off, as production does)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from portal.models import Operation


def test_it_shows_a_styled_404_with_a_way_back(alice_client: Any, settings: Any) -> None:
    assert settings.DEBUG is False
    response = alice_client.get("/no/such/page/", HTTP_REFERER="http://testserver/vms/?q=a")
    html = response.content.decode()
    assert response.status_code == 404
    assert "Page not found" in html and 'data-testid="error-page"' in html
    assert 'href="/vms/?q=a" data-testid="error-back"' in html and 'data-testid="error-home"' in html
    assert "CANFAR Workbench" in html  # the portal's own page, with its navigation


def test_another_users_object_gets_the_same_404(alice_client: Any, bob: User) -> None:
    op = Operation.objects.create(owner=bob, kind="system_check", title="Bob's check")
    response = alice_client.get(f"/operations/{op.pk}/")
    assert response.status_code == 404 and "Page not found" in response.content.decode()
    assert "Bob's check" not in response.content.decode()


def test_it_never_links_back_to_another_site(alice_client: Any) -> None:
    for referer in ("https://evil.example/phish", "javascript:alert(1)", "//evil.example/x"):
        html = alice_client.get("/no/such/page/", HTTP_REFERER=referer).content.decode()
        assert (
            "evil.example" not in html
            and "javascript:" not in html
            and 'data-testid="error-back"' not in html
        )


def test_it_shows_a_styled_405_for_a_get_of_an_action(alice_client: Any) -> None:
    response = alice_client.get("/operations/system-check/")
    html = response.content.decode()
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert "does not answer a GET request" in html and "Nothing was changed." in html
    assert 'data-testid="error-home"' in html


def test_signed_out_visitors_get_the_pages_too_with_a_sign_in_link(client: Any) -> None:
    response = client.get("/no/such/page/")
    assert (
        response.status_code == 404
        and 'href="/accounts/login/" data-testid="error-home"' in response.content.decode()
    )
