"""Fix and retry: resubmitting failed jobs with an edited script; the batch form's snapshot default."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from portal.forms.batch import SEED_SCRIPT
from portal.models import Image, ImageShare, Job, Project, Submission
from tests.portal.test_batch_views import submit


@pytest.fixture
def sent(monkeypatch: Any) -> list[Any]:
    """Operations sent to the broker (the worker side is tested in tests/integration)."""
    from orchestration.operations import run_operation

    out: list[Any] = []
    monkeypatch.setattr(
        run_operation, "apply_async", lambda args: out.append(args) or type("R", (), {"id": "t"})
    )
    return out


FIXED = SEED_SCRIPT.replace("funpack -D", "funpack -F")


def _failed(alice_client: Any, alice: User, capture: Any) -> Submission:
    submit(alice_client, capture)
    sub = Submission.objects.get(owner=alice)
    sub.jobs.filter(item__in=["1056216p", "1056218p"]).update(state=Job.FAILED, exit_code=2)
    return sub


def test_it_starts_the_fix_form_from_the_current_script(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    sub = _failed(alice_client, alice, django_capture_on_commit_callbacks)
    html = alice_client.get(f"/batch/{sub.pk}/resubmit/edit/").content.decode()
    assert "cadcget cadc:CFHT/${id}.fits.fz" in html and "funpack -D" in html
    assert html.count('data-testid="resubmit-item"') == 2 and "(exit 2)" in html


def test_it_resubmits_with_the_edited_script(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    sub = _failed(alice_client, alice, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            f"/batch/{sub.pk}/resubmit/edit/", {"script": FIXED.replace("\n", "\r\n")}
        )
    new = Submission.objects.exclude(pk=sub.pk).get()
    assert response["Location"] == f"/batch/{new.pk}/" and new.parent == sub
    assert new.script == FIXED and Submission.objects.get(pk=sub.pk).script == SEED_SCRIPT
    assert list(new.jobs.values_list("item", flat=True)) == ["1056216p", "1056218p"]


def test_it_resubmits_the_ticked_jobs_posted_from_the_submission_page(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    sub = _failed(alice_client, alice, django_capture_on_commit_callbacks)
    ticked = sub.jobs.get(item="1056215p").pk
    html = alice_client.post(f"/batch/{sub.pk}/resubmit/edit/", {"jobs": [ticked]}).content.decode()
    assert f'name="jobs" value="{ticked}"' in html and html.count('data-testid="resubmit-item"') == 1
    assert Submission.objects.count() == 1  # only the form so far
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(f"/batch/{sub.pk}/resubmit/edit/", {"jobs": [ticked], "script": FIXED})
    assert list(Submission.objects.exclude(pk=sub.pk).get().jobs.values_list("item", flat=True)) == [
        "1056215p"
    ]


def test_it_refuses_a_script_that_cannot_run(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    sub = _failed(alice_client, alice, django_capture_on_commit_callbacks)
    for bad in ["echo no shebang", "", "#!/bin/bash\necho \x00"]:
        response = alice_client.post(f"/batch/{sub.pk}/resubmit/edit/", {"script": bad})
        assert response.status_code == 200 and 'data-testid="field-error"' in response.content.decode()
    assert Submission.objects.count() == 1


def test_it_says_when_nothing_failed(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    submit(alice_client, django_capture_on_commit_callbacks)
    sub = Submission.objects.get(owner=alice)
    response = alice_client.get(f"/batch/{sub.pk}/resubmit/edit/", follow=True)
    assert "There are no failed jobs to resubmit" in response.content.decode()


def test_it_hides_another_users_submission(
    alice_client: Any, alice: User, bob: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    bob_client = Client()
    bob_client.force_login(bob)
    submit(bob_client, django_capture_on_commit_callbacks)
    sub = Submission.objects.get(owner=bob)
    sub.jobs.update(state=Job.FAILED)
    assert alice_client.get(f"/batch/{sub.pk}/resubmit/edit/").status_code == 404
    assert alice_client.post(f"/batch/{sub.pk}/resubmit/edit/", {"script": FIXED}).status_code == 404
    assert alice_client.put(f"/batch/{sub.pk}/resubmit/edit/").status_code == 405
    assert Submission.objects.count() == 1


def test_the_form_defaults_to_the_newest_snapshot_and_names_its_owner(alice_client: Any, alice: User) -> None:
    project = Project.objects.get(name="alice-lensing")
    now = timezone.now()
    old = Image.objects.create(
        project=project,
        external_id="i-old",
        name="old-snap",
        status="active",
        is_snapshot=True,
        created_at=now,
    )
    new = Image.objects.create(
        project=project,
        external_id="i-new",
        name="team-snap",
        status="active",
        is_snapshot=True,
        created_at=now + timezone.timedelta(hours=1),
    )
    owner = Project.objects.create(external_id="f" * 32, name="scuba2-team")
    ImageShare.objects.create(
        project=owner,
        image_external_id="i-new",
        image_name="team-snap",
        member_project_id=project.external_id,
        status="accepted",
    )
    html = alice_client.get("/batch/new/").content.decode()
    assert f'<option value="{new.pk}" selected>team-snap · shared from scuba2-team</option>' in html
    assert f'<option value="{old.pk}">old-snap</option>' in html
    assert "Local workers ignore it" in html
