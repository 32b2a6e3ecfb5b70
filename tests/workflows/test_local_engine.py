"""The local workflow engine in this process: a node's jobs are sent when its parents are done."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from orchestration import backends, local_wake, workflow_engine
from orchestration.batch.dag import check_workflow
from orchestration.tasks import local_pulling, workflows
from portal.models import Job, Operation, Workflow, WorkflowNode
from portal.models.batch import job_dir
from portal.models.workflows import record_workflow
from tests.workflows.helpers import lsst_files, record, times

N = WorkflowNode


@pytest.fixture
def woken(settings: Any, tmp_path: Any, monkeypatch: Any) -> list[int]:
    settings.BATCH_ROOT = tmp_path / "batch"
    settings.BATCH_SCRATCH_ROOT = tmp_path / "scratch"
    out: list[int] = []
    monkeypatch.setattr(local_wake, "wake_local_workers", out.append)
    return out


def run_all() -> int:
    ran = 0
    while (n := local_pulling.pull_local_jobs()) > 0:
        ran += n
    return ran


def states(wf: Workflow) -> dict[str, str]:
    return dict(wf.nodes.values_list("name", "state"))


def out_of(wf: Workflow, name: str) -> str:
    job = Job.objects.get(submission__workflow_node__workflow=wf, submission__workflow_node__name=name)
    return (job_dir(job) / job.output).read_text()  # type: ignore[operator]


def test_it_runs_nodes_in_dependency_order(alice: User, woken: list[int]) -> None:
    text, files = lsst_files(["a", "b"])
    wf = record(alice, text, files)
    assert workflow_engine.start_local(wf) == 1  # only init is ready
    assert set(states(wf).values()) == {N.QUEUED, N.WAITING}
    assert run_all() == 7
    wf.refresh_from_db()
    assert wf.state == Workflow.DONE
    assert set(states(wf).values()) == {N.DONE}
    for item in ("a", "b"):
        chain = [times(out_of(wf, "init"))] + [times(out_of(wf, f"step{i}_{item}")) for i in (1, 2, 3)]
        for (_, end), (start, _) in zip(chain, chain[1:], strict=False):
            assert end <= start
    assert Operation.objects.filter(kind="workflow_finished", title="Workflow lsst done").count() == 1
    assert not Operation.objects.filter(kind="batch_finished").exists()  # nodes are not announced as batches


def test_a_failed_node_stops_its_descendants_and_a_rescue_finishes_the_rest(
    alice: User, woken: list[int]
) -> None:
    text, files = lsst_files(["a", "b", "c"], bad="b")
    wf = record(alice, text, files)
    workflow_engine.start_local(wf)
    run_all()
    wf.refresh_from_db()
    got = states(wf)
    assert wf.state == Workflow.FAILED
    assert got["step2_b"] == N.FAILED and got["step3_b"] == N.NOT_RUN
    assert got["step3_a"] == got["step3_c"] == N.DONE
    assert not Job.objects.filter(submission__workflow_node__name="step3_b").exclude(cluster=None).exists()
    assert WorkflowNode.objects.get(workflow=wf, name="step2_b").exit_code == 3
    # Rescue: the fixed script, and only what did not finish runs.
    fixed = dict(files, **{"step2.sh": lsst_files(["x"])[1]["step2.sh"]})
    done = {name for name, state in got.items() if state == N.DONE}
    rescue = record(alice, text, fixed, name="lsst-rescue", rescue_of=wf, done_names=done)
    workflow_engine.start_local(rescue)
    assert run_all() == 2
    rescue.refresh_from_db()
    assert rescue.state == Workflow.DONE
    assert "bad item" not in out_of(rescue, "step2_b")


def test_retry_unless_exit_priority_category_and_abort(alice: User, woken: list[int]) -> None:
    files = {
        "ok.sub": "executable = ok.sh\noutput = $(n).out\nerror = $(n).err\nlog = $(n).log\nqueue\n",
        "flaky.sub": "executable = flaky.sh\noutput = flaky.out\nerror = flaky.err\nlog = flaky.log\nqueue\n",
        "ok.sh": "#!/bin/sh\necho ok\n",
        "flaky.sh": "#!/bin/sh\nexit 4\n",
    }
    text = "\n".join(
        [
            "JOB flaky flaky.sub",
            "RETRY flaky 2",
            *[
                f'JOB n{i} ok.sub\nVARS n{i} n="n{i}"\nCATEGORY n{i} light\nPRIORITY n{i} {i}'
                for i in range(4)
            ],
            "MAXJOBS light 1",
            "PARENT flaky CHILD n0",
        ]
    )
    wf = record(alice, text, files)
    workflow_engine.start_local(wf)
    queued = dict(wf.nodes.values_list("name", "state"))
    assert [queued[f"n{i}"] for i in (1, 2, 3)].count(N.QUEUED) == 1  # MAXJOBS light 1
    assert queued["n3"] == N.QUEUED  # the highest priority first
    run_all()
    flaky = WorkflowNode.objects.get(workflow=wf, name="flaky")
    assert (flaky.state, flaky.attempts, flaky.exit_code) == (N.FAILED, 3, 4)  # 1 run + 2 retries
    assert states(wf)["n0"] == N.NOT_RUN
    # UNLESS-EXIT stops the retries, ABORT-DAG-ON stops the workflow; FINAL still runs.
    text2 = 'JOB flaky flaky.sub\nRETRY flaky 5 UNLESS-EXIT 4\nABORT-DAG-ON flaky 4\nJOB later ok.sub\nVARS later n="later"\nPARENT flaky CHILD later\nFINAL cleanup ok.sub\nVARS cleanup n="cleanup"\n'
    wf2 = record(alice, text2, files, name="abort")
    workflow_engine.start_local(wf2)
    run_all()
    wf2.refresh_from_db()
    got = states(wf2)
    assert wf2.state == Workflow.ABORTED and "ABORT-DAG-ON" in wf2.error
    assert WorkflowNode.objects.get(workflow=wf2, name="flaky").attempts == 1
    assert got == {"flaky": N.FAILED, "later": N.NOT_RUN, "cleanup": N.DONE}


def test_recording_is_all_or_nothing(alice: User, woken: list[int], monkeypatch: Any) -> None:
    text, files = lsst_files(["a"])
    vetted = check_workflow(text, files)
    from portal.models import workflows as models

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(models.WorkflowNode.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        record_workflow(owner=alice, project=None, name="x", executor="local", vetted=vetted, files=files)
    assert not Workflow.objects.exists() and not Job.objects.exists()


def _control(wf: Workflow, action: str) -> None:
    from orchestration.operations import Progress

    op = Operation.objects.create(
        owner=wf.owner, kind="workflow_control", params={"workflow": wf.pk, "action": action}
    )
    workflows.workflow_control(op, Progress(op))


def test_hold_stops_new_nodes_release_goes_on_and_remove_ends_it(alice: User, woken: list[int]) -> None:
    text, files = lsst_files(["a", "b"])
    wf = record(alice, text, files)
    workflow_engine.start_local(wf)
    _control(wf, "hold")
    init = Job.objects.get(submission__workflow_node__name="init")
    assert init.state == Job.HELD  # its job is held in the executor too
    assert run_all() == 0
    _control(wf, "release")
    assert Workflow.objects.get(pk=wf.pk).held is False
    token = local_pulling.claim_token()
    job = local_pulling._claim_next(token)
    assert job is not None and job.pk == init.pk
    local_pulling._run_claimed(backends.local_executor(), job, token)  # init only
    assert states(wf)["init"] == N.DONE
    assert list(wf.nodes.filter(state=N.QUEUED).values_list("name", flat=True)) == ["step1_a", "step1_b"]
    _control(wf, "remove")
    run_all()
    wf.refresh_from_db()
    assert wf.state == Workflow.REMOVED and wf.finished is not None
    assert N.WAITING not in states(wf).values() and N.QUEUED not in states(wf).values()
    assert Operation.objects.filter(kind="workflow_finished", title="Workflow lsst removed").exists()


def test_a_script_gets_each_attempts_retry_number(alice: User, woken: list[int]) -> None:
    files = {
        "n.sub": "executable = run.sh\noutput = n.out\nerror = n.err\nlog = n.log\nqueue\n",
        "run.sh": "#!/bin/sh\necho job\n",
        # fails on its first two attempts, as a flaky step would
        "post.sh": '#!/bin/sh\necho "post try $1 of $2 after $3"\n[ "$1" = 2 ]\n',
    }
    wf = record(alice, "JOB n n.sub\nRETRY n 3\nSCRIPT POST n post.sh $RETRY $MAX_RETRIES $RETURN\n", files)
    workflow_engine.start_local(wf)
    run_all()
    node = WorkflowNode.objects.get(workflow=wf, name="n")
    assert (node.state, node.attempts) == (N.DONE, 3)
    assert out_of(wf, "n") == "job\npost try 2 of 3 after 0\n"
