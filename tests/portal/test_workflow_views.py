"""Workflow pages: upload, the stages form, the workflow page, control, rescue; ownership and methods."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from portal.models import Operation, Submission, Workflow, WorkflowNode
from tests.workflows.helpers import lsst_files, record

pytestmark = pytest.mark.django_db


def _upload(client: Any, text: str, files: dict[str, str], **extra: Any) -> Any:
    return client.post(
        "/workflows/upload/",
        {
            "name": "lsst",
            "executor": "local",
            "dag_file": SimpleUploadedFile("lsst.dag", text.encode()),
            "inputs": [SimpleUploadedFile(n, t.encode()) for n, t in files.items()],
            **extra,
        },
    )


def test_it_records_an_uploaded_dag_and_starts_it(
    alice_client: Any, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    text, files = lsst_files([f"im{i}" for i in range(33)])
    with django_capture_on_commit_callbacks(execute=False):
        response = _upload(alice_client, text, files)
    wf = Workflow.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/workflows/{wf.pk}/"
    assert (wf.num_nodes, wf.nodes.count()) == (100, 100)
    assert not Submission.objects.exists()  # a node's submission is made when the node is sent
    assert Operation.objects.get(kind="workflow_submit").params == {"workflow": wf.pk}
    page = alice_client.get(f"/workflows/{wf.pk}/").content.decode()
    assert 'data-testid="workflow-graph"' in page and 'data-collapsed="false"' in page
    assert page.count('class="wf-node"') == 100
    assert 'data-testid="count-waiting">100<' in page


def test_an_upload_with_problems_lists_them_and_records_nothing(alice_client: Any) -> None:
    text = "JOB a a.sub\nJOB b missing.sub\nPARENT a CHILD b\nPARENT b CHILD a\nSPLICE x y.dag\n"
    response = _upload(alice_client, text, {"a.sub": "executable = run.sh\nqueue\n", "run.sh": "#!/bin/sh\n"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "line 5: SPLICE is not supported" in page
    assert "the DAG has a cycle (a -&gt; b -&gt; a)" in page
    assert not Workflow.objects.exists() and not Submission.objects.exists()


def test_bad_uploads_are_400_not_500(alice_client: Any) -> None:
    assert alice_client.post("/workflows/upload/", {"name": "x"}).status_code == 400
    bad = alice_client.post(
        "/workflows/upload/",
        {"name": "x", "executor": "local", "dag_file": SimpleUploadedFile("x.dag", b"\xff\xfe")},
    )
    assert bad.status_code == 400 and "not a UTF-8 text file" in bad.content.decode()
    evil = _upload(alice_client, "JOB a a.sub\n", {"../a.sub": "x"})
    assert evil.status_code == 400


def test_the_stages_form_shows_the_dag_then_submits_it(
    alice_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = {
        "name": "canfar",
        "executor": "local",
        "items": "1056215p\n1056216p\n1056217p",
        "step1": "#!/bin/sh\necho catalogue $1 > $1.cat\n",
        "after": "#!/bin/sh\necho merge\n",
        "action": "preview",
    }
    page = alice_client.post("/workflows/new/", data).content.decode()
    assert 'data-testid="preview-nodes">4 nodes' in page
    assert "PARENT step1_1056217p CHILD after" in page
    assert not Workflow.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        response = alice_client.post("/workflows/new/", {**data, "action": "submit"})
    wf = Workflow.objects.get()
    assert response.status_code == 302
    after = WorkflowNode.objects.get(workflow=wf, name="after")
    assert sorted(after.parents) == [0, 1, 2]


def test_the_stages_form_refuses_items_that_cannot_name_nodes(alice_client: Any) -> None:
    response = alice_client.post(
        "/workflows/new/",
        {"name": "x", "executor": "local", "items": "a:b\n", "step1": "#!/bin/sh\n", "action": "submit"},
    )
    assert response.status_code == 400 and "Items name the workflow" in response.content.decode()


def test_another_users_workflow_is_404(client: Any, alice: User, bob: User) -> None:
    text, files = lsst_files(["a"])
    wf = record(alice, text, files)
    client.force_login(bob)
    assert client.get(f"/workflows/{wf.pk}/").status_code == 404
    assert client.post(f"/workflows/{wf.pk}/hold/").status_code == 404
    assert client.get(f"/workflows/{wf.pk}/rescue/").status_code == 404
    assert client.post(f"/workflows/{wf.pk}/rescue/", {"name": "x", "executor": "local"}).status_code == 404


def test_wrong_methods_are_405(alice_client: Any, alice: User) -> None:
    text, files = lsst_files(["a"])
    wf = record(alice, text, files)
    assert alice_client.get(f"/workflows/{wf.pk}/hold/").status_code == 405
    assert alice_client.post(f"/workflows/{wf.pk}/").status_code == 405
    assert alice_client.delete("/workflows/new/").status_code == 405
    assert alice_client.post(f"/workflows/{wf.pk}/explode/").status_code == 404


def test_hold_starts_an_operation(
    alice_client: Any, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    text, files = lsst_files(["a"])
    wf = record(alice, text, files)
    with django_capture_on_commit_callbacks(execute=False):
        response = alice_client.post(f"/workflows/{wf.pk}/hold/")
    assert response.status_code == 302
    assert Operation.objects.get(kind="workflow_control").params == {"workflow": wf.pk, "action": "hold"}


def test_hold_release_and_remove_are_offered_only_while_the_workflow_runs(
    alice_client: Any, alice: User
) -> None:
    text, files = lsst_files(["a"])
    wf = record(alice, text, files)
    html = alice_client.get(f"/workflows/{wf.pk}/").content.decode()
    assert 'data-testid="wf-hold"' in html and 'data-testid="wf-remove"' in html
    Workflow.objects.filter(pk=wf.pk).update(state=Workflow.DONE)
    html = alice_client.get(f"/workflows/{wf.pk}/").content.decode()
    assert 'data-testid="wf-hold"' not in html and 'data-testid="wf-remove"' not in html


def test_a_big_workflow_is_drawn_per_stage(alice_client: Any, alice: User) -> None:
    text, files = lsst_files([f"im{i}" for i in range(120)])  # 361 nodes
    wf = record(alice, text, files)
    page = alice_client.get(f"/workflows/{wf.pk}/").content.decode()
    assert 'data-collapsed="true"' in page
    assert "step2.sub · 120 nodes" in page and "init.sub · 1 node<" in page


def test_the_batch_queue_lists_workflows_beside_batches(alice_client: Any, alice: User) -> None:
    text, files = lsst_files(["a"])
    wf = record(alice, text, files)
    page = alice_client.get("/batch/").content.decode()
    assert 'data-testid="workflow-list"' in page and f'href="/workflows/{wf.pk}/"' in page
    assert "lsst: step1_a" not in page  # nodes are not listed as batches
    assert alice_client.get("/").status_code == 200


def test_rescue_marks_done_nodes_done_and_takes_edited_scripts(
    alice_client: Any, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    text, files = lsst_files(["a", "b"])
    wf = record(alice, text, files)
    WorkflowNode.objects.filter(workflow=wf).exclude(name__in=["step3_b"]).update(state=WorkflowNode.DONE)
    WorkflowNode.objects.filter(workflow=wf, name="step3_b").update(state=WorkflowNode.FAILED)
    Workflow.objects.filter(pk=wf.pk).update(state=Workflow.FAILED)
    form = alice_client.get(f"/workflows/{wf.pk}/rescue/").content.decode()
    assert 'data-testid="script-step3.sh"' in form
    with django_capture_on_commit_callbacks(execute=False):
        response = alice_client.post(
            f"/workflows/{wf.pk}/rescue/",
            {"name": "lsst-rescue", "executor": "local", "file:step3.sh": "#!/bin/sh\necho fixed\n"},
        )
    new = Workflow.objects.get(rescue_of=wf)
    assert response.status_code == 302
    assert list(new.nodes.exclude(state=WorkflowNode.DONE).values_list("name", flat=True)) == ["step3_b"]
    assert new.files["step3.sh"] == "#!/bin/sh\necho fixed\n"
    bad = alice_client.post(
        f"/workflows/{wf.pk}/rescue/", {"name": "x", "executor": "local", "file:step3.sh": "x"}
    )
    assert bad.status_code == 302  # a script's content is the user's; the DAG and submit files stay vetted


def test_a_nodes_page_shows_its_files_with_the_batch_job_pages_view(
    client: Any, alice_client: Any, alice: User, bob: User, settings: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    from orchestration import local_wake, workflow_engine
    from orchestration.tasks import local_pulling

    settings.BATCH_ROOT = tmp_path / "batch"
    settings.BATCH_SCRATCH_ROOT = tmp_path / "scratch"
    monkeypatch.setattr(local_wake, "wake_local_workers", lambda n: None)
    text, files = lsst_files(["a"])
    wf = record(alice, text, files)
    before = alice_client.get(f"/workflows/{wf.pk}/nodes/0/").content.decode()
    assert "init-all.out" in before and "Nothing yet." in before
    workflow_engine.start_local(wf)
    while local_pulling.pull_local_jobs() > 0:
        pass
    assert f'href="/workflows/{wf.pk}/nodes/0/"' in alice_client.get(f"/workflows/{wf.pk}/").content.decode()
    page = alice_client.get(f"/workflows/{wf.pk}/nodes/0/").content.decode()
    assert 'data-testid="job-out">start ' in page and "init.sh" in page
    assert 'data-testid="job-timeline"' in page and "Finished, exit code 0" in page
    assert 'data-testid="node-job"' in page  # and the link to its job's own page
    assert alice_client.post(f"/workflows/{wf.pk}/nodes/0/").status_code == 405
    assert alice_client.get(f"/workflows/{wf.pk}/nodes/99/").status_code == 404
    client.force_login(bob)
    assert client.get(f"/workflows/{wf.pk}/nodes/0/").status_code == 404


def test_100000_nodes_are_refused_before_anything_is_recorded(alice_client: Any) -> None:
    text = "".join(f"JOB n{i} a.sub\n" for i in range(100_000))
    response = _upload(alice_client, text, {"a.sub": "executable = run.sh\nqueue\n", "run.sh": "#!/bin/sh\n"})
    assert response.status_code == 400
    assert "the DAG has more than 20000 nodes, the limit." in response.content.decode()
    assert not Workflow.objects.exists() and not WorkflowNode.objects.exists()


def test_the_dashboard_counts_workflows(alice_client: Any, alice: User) -> None:
    text, files = lsst_files(["a"])
    record(alice, text, files)
    page = alice_client.get("/").content.decode()
    assert "Workflows" in page and "running, of 1" in page
