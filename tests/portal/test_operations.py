from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from portal.models import Operation, Project


def test_it_records_and_dispatches_a_system_check_after_commit(
    alice_client: Any, alice: User, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    sent: list[Any] = []
    from orchestration.operations import run_operation

    monkeypatch.setattr(
        run_operation, "apply_async", lambda args: sent.append(args) or type("R", (), {"id": "t-1"})
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/operations/system-check/")
    assert response.status_code == 302
    op = Operation.objects.get(owner=alice)
    assert (op.kind, op.state, op.project.name) == ("system_check", "queued", "alice-lensing")
    assert sent == [[op.pk]]
    assert Operation.objects.get(pk=op.pk).celery_task_id == "t-1"


def test_it_polls_the_panel_only_while_something_runs(alice_client: Any, alice: User) -> None:
    op = Operation.objects.create(owner=alice, kind="system_check", title="System check", progress=40)
    html = alice_client.get("/operations/panel/").content.decode()
    assert 'hx-trigger="every 1s"' in html and 'aria-valuenow="40"' in html
    op.state, op.progress = Operation.SUCCEEDED, 100
    op.save()
    html = alice_client.get("/operations/panel/").content.decode()
    assert "hx-trigger" not in html and 'data-polling="false"' in html


def test_it_shows_a_failed_operations_error_in_words(alice_client: Any, alice: User) -> None:
    Operation.objects.create(
        owner=alice,
        kind="x",
        title="Launch VM",
        state=Operation.FAILED,
        error="Quota exceeded: 1 of 1 IPs used.",
    )
    html = alice_client.get("/operations/").content.decode()
    assert "Quota exceeded: 1 of 1 IPs used." in html and "Failed" in html


def test_it_returns_404_for_another_users_operation(alice_client: Any, bob: User) -> None:
    op = Operation.objects.create(owner=bob, kind="system_check", title="Bob's check")
    assert alice_client.get(f"/operations/{op.pk}/").status_code == 404
    assert "Bob's check" not in alice_client.get("/operations/").content.decode()


def test_it_shows_an_operation_page(alice_client: Any, alice: User) -> None:
    project = Project.objects.get(name="alice-lensing")
    op = Operation.objects.create(
        owner=alice,
        project=project,
        kind="vm_launch",
        title="Launch VM pipeline-1",
        target="srv-4411",
        state=Operation.RUNNING,
        progress=60,
        message="Waiting for the VM to boot",
        attempts=2,
    )
    response = alice_client.get(f"/operations/{op.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Launch VM pipeline-1</h1>" in html
    assert 'data-testid="op-detail-state">Running<' in html
    assert '<dd class="col-sm-9">alice-lensing</dd>' in html
    assert '<dd class="col-sm-9 mono">srv-4411</dd>' in html
    assert "Waiting for the VM to boot" in html and 'aria-valuenow="60"' in html
    assert '<dt class="col-sm-3">Attempts</dt><dd class="col-sm-9">2</dd>' in html
    assert f'hx-get="/operations/{op.pk}/" hx-trigger="every 1s"' in html  # polls while it runs
    Operation.objects.filter(pk=op.pk).update(state=Operation.SUCCEEDED, progress=100)
    live = alice_client.get(f"/operations/{op.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert live.startswith('<div id="op-live" data-state="succeeded"') and "hx-trigger" not in live


def test_it_refuses_get_to_start_a_check(alice_client: Any) -> None:
    assert alice_client.get("/operations/system-check/").status_code == 405
