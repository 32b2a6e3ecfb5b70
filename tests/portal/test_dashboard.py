from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from portal.models import KeyPair, Project, StorageUsage, Workflow


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


def _labels(html: str) -> list[str]:
    return [part.split("</div>")[0] for part in html.split('<div class="stat-label">')[1:]]


def _steps(html: str) -> list[str]:
    steps = html.split('class="list-unstyled step-list')[1].split("</ol>")[0]
    return [part.split(">", 1)[1].split("</a>")[0] for part in steps.split('<a href="')[1:]]


def test_it_shows_each_areas_cards_and_the_tutorials_steps_in_order(alice_client: Any, alice: User) -> None:
    html = alice_client.get("/").content.decode()
    assert _labels(html) == ["VMs", "Snapshots", "Jobs", "Catalogues", "Storage"]
    assert _steps(html) == [
        "Import an SSH key",
        "Allocate a public IP",
        "Launch a VM",
        "Snapshot the VM",
        "Submit a batch of jobs",
        "Look at your catalogues",
    ]
    next_step = html.split('data-testid="next-step"')[1].split("</a>")[0]
    assert "Import an SSH key" in next_step and 'href="/vms/keypairs/"' in next_step
    assert 'data-testid="count-storage">–<' in html and "open Storage to measure" in html


def test_it_counts_what_the_user_has_and_moves_the_next_step_on(alice_client: Any, alice: User) -> None:
    project = Project.objects.get(name="alice-lensing")
    KeyPair.objects.create(project=project, owner=alice, name="laptop", public_key="ssh-ed25519 AAAA")
    Workflow.objects.create(owner=alice, name="lensing", dag_text="JOB a a.sub\n")
    StorageUsage.objects.create(user=alice, bytes_used=2048)
    html = alice_client.get("/").content.decode()
    assert _labels(html) == ["VMs", "Snapshots", "Jobs", "Workflows", "Catalogues", "Storage"]
    assert 'data-testid="count-workflows">1<' in html and "running, of 1" in html
    assert 'data-testid="count-storage">2.0\xa0KB<' in html
    next_step = html.split('data-testid="next-step"')[1].split("</a>")[0]
    assert "Allocate a public IP" in next_step
    assert '<li class="mb-2 step-done"><span class="step-num">✓</span>' in html


def test_a_user_without_a_project_sees_only_the_areas_that_need_none(client: Any, db: Any) -> None:
    user = User.objects.create_user("carol", password="x" * 12)
    client.force_login(user)
    html = client.get("/").content.decode()
    assert _labels(html) == ["Jobs", "Catalogues", "Storage"]
    assert _steps(html) == ["Submit a batch of jobs", "Look at your catalogues"]
