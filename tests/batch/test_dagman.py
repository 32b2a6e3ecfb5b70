"""Workflows on HTCondor: the DAG written with htcondor2.dags, the DAGMan job that Submit.from_dag
describes, submitted to the fake schedd; node states from the node jobs' DAGManJobId.

The fake schedd does not run DAGMan. Where a test needs node jobs, it submits them as DAGMan does
(the node's submit file from the DAG directory, with +DAGManJobId and DAGNodeName added) and ends
them; what is tested is what the portal reads back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import htcondor2
import pytest
from django.contrib.auth.models import User

from orchestration import backends
from orchestration.batch import dagman
from orchestration.batch.dag import check_workflow
from orchestration.operations import Progress
from orchestration.tasks import workflow_condor, workflows
from portal.models import Operation, Workflow, WorkflowNode
from portal.models.workflows import record_workflow
from tests.batch.fake_schedd import FakeSchedd
from tests.workflows.helpers import lsst_files

pytestmark = pytest.mark.django_db
N = WorkflowNode


@pytest.fixture
def fake(settings: Any, tmp_path: Path, monkeypatch: Any) -> FakeSchedd:
    settings.BATCH_ROOT = tmp_path / "batch"
    schedd = FakeSchedd()
    monkeypatch.setattr(backends, "SCHEDD_FACTORY", lambda: schedd)
    # The htcondor wheel has no daemons; from_dag only locates condor_dagman (a submit machine has it).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "condor_dagman").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "condor_dagman").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return schedd


def _submitted(alice: User, text: str, files: dict[str, str]) -> Workflow:
    wf = record_workflow(
        owner=alice,
        project=None,
        name="lsst",
        executor="htcondor",
        vetted=check_workflow(text, files),
        files=files,
    )
    op = Operation.objects.create(owner=alice, kind="workflow_submit", params={"workflow": wf.pk})
    workflows.workflow_submit(op, Progress(op))
    wf.refresh_from_db()
    return wf


def _as_dagman(fake: FakeSchedd, wf: Workflow, node: str, exit_code: int) -> None:
    """What DAGMan does for one node: condor_submit its file with the node's VARS, then the job ends."""
    directory = workflow_condor.dag_dir(wf)
    text = (directory / f"{node}.sub").read_text()
    dag = (directory / dagman.DAG_FILE).read_text()
    vars_line = next((line for line in dag.splitlines() if line.startswith(f"VARS {node}:0 ")), "")
    sub = htcondor2.Submit(text)
    for pair in vars_line.split()[2:]:
        key, _, value = pair.partition("=")
        sub[key] = value.strip('"')
    sub["MY.DAGManJobId"] = str(wf.dagman_cluster)
    sub["MY.DAGNodeName"] = f'"{node}:0"'
    cluster = fake.submit(sub).cluster()
    fake.run(cluster, 0, exit_code=exit_code)


def test_the_dag_is_written_with_htcondor2_dags_and_submitted_as_a_dagman_job(
    alice: User, fake: FakeSchedd
) -> None:
    text, files = lsst_files(["a", "b"])
    text += "RETRY step2_a 2 UNLESS-EXIT 5\nPRIORITY step1_b 7\nCATEGORY step3_a heavy\nMAXJOBS heavy 1\n"
    text += "SCRIPT PRE step1_a step1.sh $JOB\nABORT-DAG-ON init 9 RETURN 2\n"
    wf = _submitted(alice, text, files)
    assert wf.state == Workflow.RUNNING and wf.dagman_cluster
    ad = fake.jobs[(wf.dagman_cluster, 0)]
    assert ad["JobUniverse"] == 7 and str(ad["Cmd"]).endswith("condor_dagman")
    dag = (workflow_condor.dag_dir(wf) / dagman.DAG_FILE).read_text()
    for line in (
        "JOB init:0 init.sub",
        'VARS step1_a:0 PortalItem_item="a"',
        "RETRY step2_a:0 2 UNLESS-EXIT 5",
        "PRIORITY step1_b:0 7",
        "CATEGORY step3_a:0 heavy",
        "MAXJOBS heavy 1",
        "ABORT-DAG-ON init:0 9 RETURN 2",
        "PARENT init:0 CHILD step1_a:0",
        "PARENT step2_b:0 CHILD step3_b:0",
    ):
        assert line in dag, (line, dag)
    assert "CATEGORY heavy" not in dag  # the bindings' writer would say so for MAXJOBS
    assert "SCRIPT" not in dag  # PRE and POST scripts run inside the node's job
    node_sub = (workflow_condor.dag_dir(wf) / "step1_a.sub").read_text()
    assert "executable = dagnode-step1_a.sh" in node_sub and "step1.sh" in node_sub
    description = dagman.dagman_description(workflow_condor.dag_dir(wf) / dagman.DAG_FILE)
    assert description.get("getenv", "") == ""  # none of the portal's environment
    assert "HOME" not in description.get("environment", "") and "PATH" not in description.get(
        "environment", ""
    )


def test_node_states_come_from_the_node_jobs_dagman_submitted(alice: User, fake: FakeSchedd) -> None:
    text, files = lsst_files(["a", "b"])
    wf = _submitted(alice, text, files)
    _as_dagman(fake, wf, "init", 0)
    _as_dagman(fake, wf, "step1_a", 3)
    workflow_condor.refresh_dag(wf)
    states = dict(wf.nodes.values_list("name", "state"))
    assert (states["init"], states["step1_a"], states["step1_b"]) == (N.DONE, N.FAILED, N.WAITING)
    assert WorkflowNode.objects.get(workflow=wf, name="step1_a").exit_code == 3
    fake.run(wf.dagman_cluster or 0, 0, exit_code=1)  # DAGMan gives up: a node failed
    workflow_condor.refresh_dag(wf)
    wf.refresh_from_db()
    assert wf.state == Workflow.FAILED
    assert dict(wf.nodes.values_list("name", "state"))["step3_a"] == N.NOT_RUN


def test_hold_acts_on_the_dagman_job(alice: User, fake: FakeSchedd) -> None:
    text, files = lsst_files(["a"])
    wf = _submitted(alice, text, files)
    op = Operation.objects.create(
        owner=alice, kind="workflow_control", params={"workflow": wf.pk, "action": "hold"}
    )
    workflows.workflow_control(op, Progress(op))
    assert fake.jobs[(wf.dagman_cluster or 0, 0)]["JobStatus"] == 5
    assert Workflow.objects.get(pk=wf.pk).held


def test_an_unreachable_schedd_is_retried_later(alice: User, fake: FakeSchedd) -> None:
    fake.down = True
    text, files = lsst_files(["a"])
    wf = record_workflow(
        owner=alice,
        project=None,
        name="x",
        executor="htcondor",
        vetted=check_workflow(text, files),
        files=files,
    )
    op = Operation.objects.create(owner=alice, kind="workflow_submit", params={"workflow": wf.pk})
    from orchestration.errors import TransientError

    with pytest.raises(TransientError):
        workflows.workflow_submit(op, Progress(op))
    assert Workflow.objects.get(pk=wf.pk).dagman_cluster is None
