"""The LSST tutorial's workflow shape (1 + 33 x 3) on real Celery worker processes, from an uploaded
DAG file and from the stages form: dependency order checked from the jobs' own clocks, a node
failing on purpose, its descendants never run, and the rescue run finishing the rest."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from portal.models import Job, Workflow, WorkflowNode
from portal.models.batch import job_dir
from tests.conftest import make_user
from tests.integration.test_batch_worker import wait_for
from tests.workflows.helpers import STEP, lsst_files, times

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ITEMS = [f"im{i:02d}" for i in range(33)]
N = WorkflowNode


def _finished(wf: Workflow) -> bool:
    return Workflow.objects.get(pk=wf.pk).finished is not None


def _outs(wf: Workflow) -> dict[str, tuple[float, float]]:
    """Each node's (start, end) as its own job wrote them, for the nodes that ran."""
    out = {}
    for job in Job.objects.filter(submission__workflow=wf).exclude(cluster=None).select_related("submission"):
        path = job_dir(job) / job.output  # type: ignore[operator]
        out[job.submission.workflow_node.name] = times(path.read_text())
    return out


def _check_order(ran: dict[str, tuple[float, float]], items: list[str], first: str = "init") -> None:
    for item in items:
        chain = [ran[first]] + [ran[f"step{i}_{item}"] for i in (1, 2, 3)]
        for (_, end), (start, _) in zip(chain, chain[1:], strict=False):
            assert 0 < end <= start, (item, chain)


def test_the_lsst_shape_runs_in_order_fails_on_purpose_and_is_rescued(
    client: Any, celery_worker_process: Any
) -> None:
    alice = make_user("alice", ["alice-lensing"])
    client.force_login(alice)
    text, files = lsst_files(ITEMS, bad="im07")
    response = client.post(
        "/workflows/upload/",
        {
            "name": "lsst",
            "executor": "local",
            "dag_file": SimpleUploadedFile("lsst.dag", text.encode()),
            "inputs": [SimpleUploadedFile(n, t.encode()) for n, t in files.items()],
        },
    )
    assert response.status_code == 302
    wf = Workflow.objects.get(name="lsst")
    wait_for(lambda: _finished(wf), 300, "the workflow to finish")
    wf.refresh_from_db()
    states = dict(wf.nodes.values_list("name", "state"))
    assert wf.state == Workflow.FAILED and len(states) == 100
    assert states["step2_im07"] == N.FAILED and states["step3_im07"] == N.NOT_RUN
    assert [n for n, s in states.items() if s != N.DONE] == ["step2_im07", "step3_im07"]
    ran = _outs(wf)
    assert "step3_im07" not in ran  # never sent to a worker
    _check_order(ran, [i for i in ITEMS if i != "im07"])
    page = client.get(f"/workflows/{wf.pk}/").content.decode()
    assert 'data-testid="count-done">98<' in page and 'data-testid="count-failed">1<' in page

    # Rescue with the script fixed: only the two nodes that did not finish run.
    response = client.post(
        f"/workflows/{wf.pk}/rescue/",
        {"name": "lsst-rescue", "executor": "local", "file:step2.sh": STEP.format(body="")},
    )
    assert response.status_code == 302
    rescue = Workflow.objects.get(rescue_of=wf)
    wait_for(lambda: _finished(rescue), 120, "the rescue run to finish")
    rescue.refresh_from_db()
    assert rescue.state == Workflow.DONE
    again = _outs(rescue)
    assert sorted(again) == ["step2_im07", "step3_im07"]
    assert ran["step1_im07"][1] <= again["step2_im07"][0] and again["step2_im07"][1] <= again["step3_im07"][0]


def test_the_lsst_shape_from_the_stages_form(client: Any, celery_worker_process: Any) -> None:
    alice = make_user("alice", ["alice-lensing"])
    client.force_login(alice)
    step = STEP.format(body="")
    response = client.post(
        "/workflows/new/",
        {
            "name": "lsst-form",
            "executor": "local",
            "items": "\n".join(ITEMS),
            "before": step,
            "step1": step,
            "step2": step,
            "step3": step,
            "action": "submit",
        },
    )
    assert response.status_code == 302
    wf = Workflow.objects.get(name="lsst-form")
    wait_for(lambda: _finished(wf), 300, "the workflow to finish")
    wf.refresh_from_db()
    assert wf.state == Workflow.DONE and wf.num_nodes == 100
    _check_order(_outs(wf), ITEMS, first="before")
