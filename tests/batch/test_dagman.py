"""Workflows on HTCondor: the DAG written with htcondor2.dags, the DAGMan job that Submit.from_dag
describes, spooled to the fake schedd with every file it needs; node states from the node jobs'
DAGManJobId; the nodes' files back from DAGMan's spool directory when it ends.

The fake schedd runs DAGMan as the schedd would (`FakeSchedd.run_dagman`): from the DAGMan job's
spool directory only, submitting each node's file from there; what is tested is what the portal
sends and what it reads back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from orchestration import backends
from orchestration.batch import dagman
from orchestration.batch.dag import check_workflow
from orchestration.operations import Progress
from orchestration.tasks import workflow_condor, workflows
from portal.models import Operation, Workflow, WorkflowNode
from portal.models.workflows import record_workflow
from portal.views import workflows as workflow_views
from tests.batch.fake_schedd import FakeSchedd
from tests.workflows.helpers import lsst_files

pytestmark = pytest.mark.django_db
N = WorkflowNode


@pytest.fixture
def fake(settings: Any, tmp_path: Path, monkeypatch: Any) -> FakeSchedd:
    settings.BATCH_ROOT = tmp_path / "batch"
    schedd = FakeSchedd()
    monkeypatch.setattr(backends, "SCHEDD_FACTORY", lambda: schedd)
    # No condor_dagman on this machine (the htcondor wheel has no daemons): DAGMan is the schedd's.
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


def test_the_dag_is_written_with_htcondor2_dags_and_submitted_as_a_spooled_dagman_job(
    alice: User, fake: FakeSchedd
) -> None:
    text, files = lsst_files(["a", "b"])
    text += "RETRY step2_a 2 UNLESS-EXIT 5\nPRIORITY step1_b 7\nCATEGORY step3_a heavy\nMAXJOBS heavy 1\n"
    text += "SCRIPT PRE step1_a step1.sh $JOB\nABORT-DAG-ON init 9 RETURN 2\n"
    wf = _submitted(alice, text, files)
    assert wf.state == Workflow.RUNNING and wf.dagman_cluster
    ad = fake.jobs[(wf.dagman_cluster, 0)]
    assert ad["JobUniverse"] == 7 and ad["Cmd"] == "/usr/bin/condor_dagman"  # the schedd's own DAGMan
    assert ad["TransferExecutable"] is False and ad["JobStatus"] == 1  # spooled, then released
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
    assert "initialdir" not in node_sub  # node jobs run in DAGMan's directory on the schedd
    spooled = {p.name for p in (fake.spool_dir / f"{wf.dagman_cluster}.0").iterdir()}
    assert {dagman.DAG_FILE, "init.sub", "step1_a.sub", "dagnode-step1_a.sh", "step2.sh"} <= spooled
    assert str(workflow_condor.dag_dir(wf)) not in str(ad["Args"])  # every name relative to the spool
    description = dagman.dagman_description(
        workflow_condor.dag_dir(wf) / dagman.DAG_FILE, "/usr/bin/condor_dagman"
    )
    assert description.get("getenv", "") == ""  # none of the portal's environment
    assert "HOME" not in description.get("environment", "") and "PATH" not in description.get(
        "environment", ""
    )


def test_dagman_runs_from_its_spool_alone_and_the_nodes_files_come_back(
    alice: User, alice_client: Any, fake: FakeSchedd, tmp_path: Path
) -> None:
    text, files = lsst_files(["a", "b"])
    wf = _submitted(alice, text, files)
    stage = workflow_condor.dag_dir(wf)
    hidden = tmp_path / "hidden"
    stage.rename(hidden)  # the schedd cannot see the portal's disk
    fake.run_dagman(
        wf.dagman_cluster or 0, exits={"step1_a:0": 3}, only={"init:0", "step1_a:0"}, finish=False
    )
    hidden.rename(stage)
    workflow_condor.refresh_dag(wf)
    states = dict(wf.nodes.values_list("name", "state"))
    assert (states["init"], states["step1_a"], states["step1_b"]) == (N.DONE, N.FAILED, N.WAITING)
    step1_a = WorkflowNode.objects.get(workflow=wf, name="step1_a")
    assert step1_a.exit_code == 3 and step1_a.spec["cluster"] > (wf.dagman_cluster or 0)
    page = alice_client.get(f"/workflows/{wf.pk}/nodes/{step1_a.index}/").content.decode()
    assert workflow_views.POOL_KEEPS_FILES.replace("'", "&#x27;") in page  # still on the pool
    fake.run_dagman(wf.dagman_cluster or 0)  # DAGMan goes on with step1_b... and gives up: a node failed
    workflow_condor.refresh_dag(wf)
    wf.refresh_from_db()
    assert wf.state == Workflow.FAILED
    assert dict(wf.nodes.values_list("name", "state"))["step3_a"] == N.NOT_RUN
    assert (
        stage / "step1-a.out"
    ).read_text() == "node step1_a:0 attempt 0\n"  # retrieved with DAGMan's spool
    assert not fake.query(f"ClusterId == {wf.dagman_cluster}")  # retrieved: it left the queue
    page = alice_client.get(f"/workflows/{wf.pk}/nodes/{step1_a.index}/").content.decode()
    assert "node step1_a:0 attempt 0" in page and 'data-testid="job-timeline"' in page
    assert "Finished, exit code 3" in page  # its own event log, read by htcondor2
    assert workflow_views.POOL_KEEPS_FILES.replace("'", "&#x27;") not in page


def test_retry_reaches_a_script_as_dagmans_retry_number(alice: User, fake: FakeSchedd) -> None:
    files = {
        "n.sub": "executable = run.sh\noutput = n.out\nerror = n.err\nlog = n.log\nqueue\n",
        "run.sh": "#!/bin/sh\nexit 0\n",
        "pre.sh": '#!/bin/sh\necho "try $1 of $2"\n',
    }
    wf = _submitted(alice, "JOB n n.sub\nRETRY n 2\nSCRIPT PRE n pre.sh $RETRY $MAX_RETRIES\n", files)
    assert 'VARS n:0 PortalDagRetry="$(RETRY)"' in (workflow_condor.dag_dir(wf) / dagman.DAG_FILE).read_text()
    node_clusters = fake.run_dagman(wf.dagman_cluster or 0, exits={"n:0": [1, 1, 0]})
    envs = [
        str(ad["Environment"])
        for ad in fake.history(f"DAGManJobId == {wf.dagman_cluster}", ["ClusterId", "Environment"])
        if int(ad["ClusterId"]) in node_clusters
    ]
    assert envs == ["PORTAL_DAG_RETRY=0", "PORTAL_DAG_RETRY=1", "PORTAL_DAG_RETRY=2"]
    wrapper = (workflow_condor.dag_dir(wf) / "dagnode-n.sh").read_text()
    assert './pre.sh "$PORTAL_DAG_RETRY" 2' in wrapper


def test_a_repeated_submit_finds_the_dagman_job_by_its_key(alice: User, fake: FakeSchedd) -> None:
    text, files = lsst_files(["a"])
    wf = _submitted(alice, text, files)
    first = wf.dagman_cluster
    Workflow.objects.filter(pk=wf.pk).update(dagman_cluster=None)  # the worker died before recording it
    op = Operation.objects.create(owner=alice, kind="workflow_submit", params={"workflow": wf.pk})
    workflows.workflow_submit(op, Progress(op))
    assert Workflow.objects.get(pk=wf.pk).dagman_cluster == first and fake.submissions == 1


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
