from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from portal.models import Project


def test_it_shows_the_current_project_and_the_switcher(alice_client: Any) -> None:
    response = alice_client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="current-project">alice-lensing<' in html
    assert "alice-survey" in html


def test_it_remembers_the_chosen_project_in_the_session(alice_client: Any) -> None:
    survey = Project.objects.get(name="alice-survey")
    response = alice_client.post("/projects/switch/", {"project": survey.pk, "next": "/operations/"})
    assert response["Location"] == "/operations/"
    assert 'data-testid="current-project">alice-survey<' in alice_client.get("/").content.decode()


def test_it_refuses_to_switch_to_another_users_project(alice_client: Any, bob: User) -> None:
    bobs = Project.objects.get(name="bob-project")
    response = alice_client.post("/projects/switch/", {"project": bobs.pk}, follow=True)
    assert b"You are not a member of that project." in response.content
    assert 'data-testid="current-project">alice-lensing<' in response.content.decode()


def test_it_ignores_an_offsite_next_url(alice_client: Any) -> None:
    survey = Project.objects.get(name="alice-survey")
    response = alice_client.post("/projects/switch/", {"project": survey.pk, "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_it_refuses_get_on_switch(alice_client: Any) -> None:
    assert alice_client.get("/projects/switch/").status_code == 405


def test_it_tells_a_user_without_projects_what_to_do(client: Any, db: Any) -> None:
    user = User.objects.create_user("carol", password="x" * 12)
    client.force_login(user)
    assert b"not a member of any OpenStack project" in client.get("/").content
