"""The batch tasks against real executors: idempotent dispatch (local) and a stand-in schedd (HTCondor)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from orchestration import backends, local_wake
from orchestration.batch.base import BatchSpec
from orchestration.batch.submit import build_submit, parse_spec
from orchestration.operations import Progress
from orchestration.tasks import batch as tasks
from portal.models import Image, Job, Operation, Submission
from portal.models.batch import job_dir, record_submission
from tests.batch.fake_schedd import FakeSchedd

ITEMS = ["1056215p", "1056216p", "1056217p", "1056218p"]


@pytest.fixture
def batch_root(settings: Any, tmp_path: Any) -> Any:
    settings.BATCH_ROOT = tmp_path / "batch"
    return settings.BATCH_ROOT


def recorded(owner: User, executor: str, **kwargs: Any) -> Submission:
    spec = BatchSpec(name="do_catalogue", script_name="do_catalogue.bash", items=ITEMS)
    return record_submission(
        owner=owner,
        project=owner.projects.first(),
        name="do_catalogue",
        executor=executor,
        script_name="do_catalogue.bash",
        script="#!/bin/bash\necho $1\n",
        submit_text=build_submit(spec),
        parsed=parse_spec(spec),
        **kwargs,
    )


def run_submit(sub: Submission, part: str = "all") -> Operation:
    op = Operation.objects.create(
        owner=sub.owner,
        kind="batch_submit",
        title="t",
        state="running",
        params={"submission": sub.pk, "part": part},
    )
    tasks.batch_submit(op, Progress(op))
    return op


def test_it_sends_a_submission_once_even_when_the_task_runs_twice(
    alice: User, batch_root: Any, monkeypatch: Any
) -> None:
    woken: list[int] = []
    monkeypatch.setattr(local_wake, "wake_local_workers", woken.append)
    sub = recorded(alice, "local")
    first = run_submit(sub).result
    second = run_submit(sub).result  # a redelivered message, or a repair after a crash
    assert first == second == {"cluster": 1, "jobs": 4}
    # Workers are asked again (the first attempt may have died before asking them); a job runs
    # once whatever the messages, since a worker claims it with a conditional update.
    assert woken == [4, 4]
    assert sorted(p.name for p in (batch_root / "local").iterdir()) == ["1", "keys"]
    assert set(Job.objects.values_list("state", "cluster")) == {("idle", 1)}
    assert Submission.objects.get().state == Submission.ACTIVE


def test_it_follows_htcondor_jobs_retrieves_output_and_announces_the_end(
    alice: User, batch_root: Any, monkeypatch: Any
) -> None:
    schedd = FakeSchedd()
    monkeypatch.setattr(backends, "SCHEDD_FACTORY", lambda: schedd)
    image = Image.objects.create(
        project=alice.projects.first(),
        external_id="img-1",
        name="image-reduction-2023-08-21",
        status="active",
        is_snapshot=True,
    )
    sub = recorded(alice, "htcondor", image=image)
    assert run_submit(sub).result == {"cluster": 100, "jobs": 4}
    ad = schedd.jobs[(100, 0)]
    assert "image-reduction-2023-08-21" in str(ad.get("Requirements")) and ad["Args"] == "1056215p"
    for proc in range(4):
        schedd.run(100, proc, exit_code=0 if proc else 2, out=f"catalogue {proc}\n")
    tasks.refresh_batch()
    jobs = list(Job.objects.order_by("index"))
    assert [(j.state, j.exit_code, j.host) for j in jobs][:2] == [
        ("failed", 2, "worker-7"),
        ("done", 0, "worker-7"),
    ]
    assert "exited with code 2" in jobs[0].failure_reason
    sub.refresh_from_db()
    assert sub.state == Submission.FINISHED and all(j.retrieved for j in jobs)
    assert (job_dir(jobs[1]) / jobs[1].output).read_text() == "catalogue 1\n"
    note = Operation.objects.get(kind="batch_finished")
    assert note.state == "failed" and note.message == "4 jobs: 3 done · 1 failed"


def test_it_retries_when_the_schedd_is_down_and_keeps_the_jobs_unsent(
    alice: User, batch_root: Any, monkeypatch: Any
) -> None:
    schedd = FakeSchedd()
    schedd.down = True
    monkeypatch.setattr(backends, "SCHEDD_FACTORY", lambda: schedd)
    sub = recorded(alice, "htcondor")
    with pytest.raises(tasks.TransientError, match="cannot be reached"):
        run_submit(sub)
    assert set(Job.objects.values_list("state", flat=True)) == {"unsent"}
