"""Batches on an HTCondor pool, through the portal's tasks and pages, against the fake schedd.

The fake behaves as a real schedd (tests/batch/test_fake_schedd.py): spooled jobs wait on hold
for their files, a failed or cut-off spool removes the cluster, completed jobs wait in the queue
until retrieved, a job without its declared outputs is held (code 12).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import htcondor2
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from orchestration import backends
from orchestration.batch.base import BatchSpec
from orchestration.batch.submit import build_submit, parse_spec
from orchestration.errors import TransientError, UserFacingError
from orchestration.operations import Progress
from orchestration.tasks import batch as tasks
from portal.models import Image, Job, Operation, Submission
from portal.models.batch import job_dir, record_submission
from tests.batch.conftest import SEED_SCRIPT, SEED_SUBMIT
from tests.batch.fake_schedd import FakeSchedd, Killed

SCRIPT = "#!/bin/bash\necho $1\n"
ITEMS = ["1056215p", "1056216p", "1056217p", "1056218p"]


@pytest.fixture
def schedd(settings: Any, tmp_path: Any, monkeypatch: Any) -> FakeSchedd:
    settings.BATCH_ROOT = tmp_path / "batch"
    settings.HTCONDOR_POOL_PROFILE = "none"
    fake = FakeSchedd()
    monkeypatch.setattr(backends, "SCHEDD_FACTORY", lambda: fake)
    monkeypatch.setattr(backends, "COLLECTOR_FACTORY", lambda: fake.collector)
    monkeypatch.chdir(tmp_path)  # the worker's own directory: nothing of the user's is here
    return fake


def recorded(owner: User, items: list[str] = ITEMS, **kwargs: Any) -> Submission:
    spec_args = {k: kwargs.pop(k) for k in ("output_files",) if k in kwargs}
    spec = BatchSpec(name="do_catalogue", script_name="do_catalogue.bash", items=items, **spec_args)
    return record_submission(
        owner=owner,
        project=owner.projects.first(),
        name="do_catalogue",
        executor="htcondor",
        script_name="do_catalogue.bash",
        script=SCRIPT,
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
        target=f"batch:{sub.pk}",
        params={"submission": sub.pk, "part": part},
    )
    tasks.batch_submit(op, Progress(op))
    op.refresh_from_db()
    return op


def send_until_sent(sub: Submission) -> Operation:
    """What the operation machinery does: retry a transient failure (a new worker each time)."""
    for _ in range(5):
        try:
            return run_submit(sub)
        except TransientError:
            continue
    raise AssertionError("never sent")


def finish_every_job(schedd: FakeSchedd) -> None:
    for cluster, proc in sorted(schedd.jobs):
        if schedd.jobs[(cluster, proc)]["JobStatus"] == 1:
            schedd.run(cluster, proc, out=f"ran {schedd.jobs[(cluster, proc)]['Args']}\n")


def _kill_after_submit(schedd: FakeSchedd, monkeypatch: Any) -> None:
    schedd.kill_after_submit = True


def _kill_while_spooling(schedd: FakeSchedd, monkeypatch: Any) -> None:
    schedd.kill_during_spool = True


def _kill_while_spooling_unnoticed(schedd: FakeSchedd, monkeypatch: Any) -> None:
    schedd.kill_during_spool = True
    schedd.notices_lost_spools = False  # the retry comes before the schedd removed the cluster


def _spool_fails(schedd: FakeSchedd, monkeypatch: Any) -> None:
    real = schedd.spool

    def once(result: Any) -> None:
        schedd.spool = real  # type: ignore[method-assign]
        schedd._remove_cluster(result.cluster(), "Staging of job files failed")
        raise htcondor2.HTCondorException("DCSchedd::spoolJobFiles:7002:File transfer failed")

    schedd.spool = once  # type: ignore[method-assign]


def _kill_before_recording(schedd: FakeSchedd, monkeypatch: Any) -> None:
    real = backends.executor_for

    def dying(name: str) -> Any:
        executor = real(name)
        submit = executor.submit

        def submit_then_die(*args: Any, **kwargs: Any) -> Any:
            submit(*args, **kwargs)
            monkeypatch.setattr(backends, "executor_for", real)
            raise Killed("the worker died before it recorded the cluster")

        executor.submit = submit_then_die
        return executor

    monkeypatch.setattr(backends, "executor_for", dying)


def _kill_after_removing_the_lost_cluster(schedd: FakeSchedd, monkeypatch: Any) -> None:
    schedd.kill_after_submit = True
    real = tasks._send_again

    def dies_first(*args: Any) -> None:
        monkeypatch.setattr(tasks, "_send_again", real)
        raise Killed("the worker died before it recorded the new key")

    monkeypatch.setattr(tasks, "_send_again", dies_first)


@pytest.mark.parametrize(
    "kill",
    [
        _kill_after_removing_the_lost_cluster,
        _kill_after_submit,
        _kill_while_spooling,
        _kill_while_spooling_unnoticed,
        _spool_fails,
        _kill_before_recording,
    ],
)
def test_a_worker_killed_at_any_moment_of_a_50_job_submission_runs_every_job_once(
    alice: User, schedd: FakeSchedd, monkeypatch: Any, kill: Any
) -> None:
    items = [f"{1056200 + n}p" for n in range(50)]
    sub = recorded(alice, items)
    kill(schedd, monkeypatch)
    with pytest.raises((Killed, TransientError)):
        run_submit(sub)
    schedd.kill_after_submit = schedd.kill_during_spool = False
    if kill is _kill_after_removing_the_lost_cluster:  # the restarted worker finds the cluster and dies
        with pytest.raises(Killed):
            run_submit(sub)
        assert not schedd.jobs  # removed before it died
    op = send_until_sent(sub)
    schedd.notices_lost_spools = True

    cluster = op.result["cluster"]
    assert op.result == {"cluster": cluster, "jobs": 50}
    assert op.message.startswith(f"Sent 50 jobs as cluster {cluster}")
    # only the recorded cluster is in the queue, its jobs spooled; every other cluster was removed
    assert {c for c, _ in schedd.jobs} == {cluster}
    assert all(ad["JobStatus"] == 1 for ad in schedd.jobs.values())
    removed = schedd.history("true")
    assert all(ad["JobStatus"] == 3 and "JobCurrentStartDate" not in ad for ad in removed)
    sub.refresh_from_db()
    lost = sub.lost_clusters("all")
    assert sorted({ad["ClusterId"] for ad in removed}) == lost
    if lost:
        assert f"removed cluster {lost[0]} before the files arrived" in op.message

    finish_every_job(schedd)
    tasks.refresh_batch()
    jobs = list(Job.objects.filter(submission=sub).order_by("index"))
    assert [j.state for j in jobs] == ["done"] * 50 and {j.cluster for j in jobs} == {cluster}
    for job in jobs:  # each item ran once, in the recorded cluster, and its output came back
        assert (job_dir(job) / job.output).read_text() == f"ran {job.item}\n"
    assert Submission.objects.get(pk=sub.pk).state == Submission.FINISHED
    assert Operation.objects.get(kind="batch_finished").message == "50 jobs: 50 done"


def test_it_fails_the_batch_with_a_message_when_the_pool_keeps_losing_it(
    alice: User, schedd: FakeSchedd
) -> None:
    sub = recorded(alice)

    def always_fails(result: Any) -> None:
        schedd._remove_cluster(result.cluster(), "Staging of job files failed")
        raise htcondor2.HTCondorException("DCSchedd::spoolJobFiles:7002:File transfer failed")

    schedd.spool = always_fails  # type: ignore[method-assign]
    for _ in range(2):
        with pytest.raises(TransientError, match="sent again as a new cluster"):
            run_submit(sub)
    with pytest.raises(UserFacingError, match="removed this batch's jobs 3 times"):
        run_submit(sub)
    sub.refresh_from_db()
    assert sub.state == Submission.FAILED and "none of them ran" in sub.error
    assert not schedd.jobs and set(sub.jobs.values_list("state", flat=True)) == {"unsent"}


def test_it_brings_each_jobs_output_back_when_that_job_finishes(
    alice: User, alice_client: Any, schedd: FakeSchedd
) -> None:
    sub = recorded(alice)
    cluster = run_submit(sub).result["cluster"]
    schedd.run(cluster, 0, out="found 12 sources\n")
    schedd.start(cluster, 1)
    tasks.refresh_batch()
    first, second = Job.objects.filter(submission=sub).order_by("index")[:2]
    assert first.state == "done" and first.retrieved and second.state == "running"
    assert first.run_seconds == 5.0  # from the start of execution, not of the input transfer
    page = alice_client.get(f"/batch/jobs/{first.pk}/").content.decode()
    assert "found 12 sources" in page
    assert "Output files transferred" in page and "Memory use updated" in page  # events 40 and 6
    assert "worker-7 (10.0.0.7:9618)" in page and "addrs=" not in page
    running = alice_client.get(f"/batch/jobs/{second.pk}/").content.decode()
    assert "stay with the pool while it runs" in running
    assert "From the pool's queue" in running and "Started" in running and "worker-7" in running
    assert Submission.objects.get(pk=sub.pk).state == Submission.ACTIVE


def test_a_job_held_for_missing_outputs_completed_without_output_and_ends_the_batch(
    alice: User, alice_client: Any, schedd: FakeSchedd, django_capture_on_commit_callbacks: Any
) -> None:
    sub = recorded(alice, ITEMS[:2], output_files="$(arguments).cat")
    cluster = run_submit(sub).result["cluster"]
    schedd.run(cluster, 0, files={"1056215p.cat": "catalogue\n"})
    schedd.run(cluster, 1, out="no image\n")  # held by the pool: code 12
    tasks.refresh_batch()
    jobs = {j.item: j for j in Job.objects.filter(submission=sub)}
    assert jobs["1056215p"].state == Job.DONE
    assert jobs["1056216p"].state == Job.NO_OUTPUT
    assert "Transfer output files failure" in jobs["1056216p"].failure_reason
    assert not schedd.jobs  # the held job left the queue
    sub.refresh_from_db()
    assert sub.state == Submission.FINISHED
    page = alice_client.get(f"/batch/{sub.pk}/").content.decode()
    assert "1 done · 1 completed without output" in page
    with django_capture_on_commit_callbacks(execute=False):
        response = alice_client.post(f"/batch/{sub.pk}/resubmit/")
    again = Submission.objects.exclude(pk=sub.pk).get()
    assert response["Location"] == f"/batch/{again.pk}/"
    assert list(again.jobs.values_list("item", flat=True)) == ["1056216p"]


def test_it_shows_the_hold_reason_and_the_removal_reason_in_words(
    alice: User, alice_client: Any, schedd: FakeSchedd
) -> None:
    sub = recorded(alice, ITEMS[:2])
    cluster = run_submit(sub).result["cluster"]
    backends.executor_for("htcondor").hold(cluster, [0], reason="Held from the portal by alice")
    backends.executor_for("htcondor").remove(cluster, [1])
    tasks.refresh_batch()
    held, removed = Job.objects.filter(submission=sub).order_by("index")
    assert held.state == Job.HELD and held.failure_reason == "Held from the portal by alice."
    assert removed.state == Job.REMOVED and removed.failure_reason == "Removed from the portal."
    page = alice_client.get(f"/batch/{sub.pk}/").content.decode()
    assert "Held from the portal by alice." in page and "Waiting on held jobs" in page


def test_it_says_why_jobs_for_a_v1_pool_never_start_on_a_plain_pool(
    alice: User, alice_client: Any, schedd: FakeSchedd, settings: Any
) -> None:
    settings.HTCONDOR_POOL_PROFILE = "v1"
    image = Image.objects.create(
        project=alice.projects.first(),
        external_id="img-1",
        name="reduction",
        status="active",
        is_snapshot=True,
    )
    spec = BatchSpec(name="do_catalogue", script_name="do_catalogue.bash", items=ITEMS[:1])
    sub = record_submission(
        owner=alice,
        project=alice.projects.first(),
        name="do_catalogue",
        executor="htcondor",
        script_name="do_catalogue.bash",
        script=SCRIPT,
        submit_text=build_submit(spec),
        parsed=parse_spec(spec),
        image=image,
    )
    run_submit(sub)
    tasks.refresh_batch()
    job = Job.objects.get(submission=sub)
    assert job.state == Job.IDLE and job.why_idle.startswith("No worker offers VMType")
    page = alice_client.get(f"/batch/{sub.pk}/").content.decode()
    assert "No worker offers VMType" in page


def test_it_repairs_a_batch_stuck_in_submitting_or_fails_it_with_a_message(
    alice: User, alice_client: Any, schedd: FakeSchedd
) -> None:
    through = recorded(alice, ITEMS[:2])
    never = recorded(alice, ITEMS[:2])
    # the first got through, then its operation gave up before recording it; the second never did
    cluster = (
        backends.executor_for("htcondor")
        .submit(
            tasks._parsed(through, list(through.jobs.all())),
            {"do_catalogue.bash": SCRIPT.encode()},
            key=through.submit_key("all"),
        )
        .cluster
    )
    for sub in (through, never):
        Submission.objects.filter(pk=sub.pk).update(state=Submission.SUBMITTING)
        Operation.objects.create(
            owner=alice,
            kind="batch_submit",
            title="t",
            state=Operation.FAILED,
            error="The HTCondor pool cannot be reached now (gave up after 5 attempts)",
            params={"submission": sub.pk, "part": "all"},
            finished=timezone.now() - timedelta(minutes=1),
        )
    tasks.refresh_batch()
    through.refresh_from_db()
    never.refresh_from_db()
    assert through.state == Submission.ACTIVE
    assert set(through.jobs.values_list("state", "cluster")) == {("idle", cluster)}
    assert never.state == Submission.FAILED
    assert never.error.startswith("Sending the jobs gave up: The HTCondor pool cannot be reached now")
    page = alice_client.get(f"/batch/{never.pk}/").content.decode()
    assert "Sending the jobs gave up" in page


def test_the_seeds_submit_file_runs_through_the_portal_and_brings_each_output_back(
    alice: User,
    alice_client: Any,
    schedd: FakeSchedd,
    settings: Any,
    monkeypatch: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.BATCH_EXECUTORS = ["local", "htcondor"]
    files = {
        "submit_file": SimpleUploadedFile("do_catalogue.sub", SEED_SUBMIT.encode()),
        "script_file": SimpleUploadedFile("do_catalogue.bash", SEED_SCRIPT.encode()),
        "executor": "htcondor",
    }
    from orchestration.operations import run_operation

    sent: list[Any] = []
    monkeypatch.setattr(
        run_operation, "apply_async", lambda args, **kw: sent.append(args) or type("R", (), {"id": "t"})
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/batch/upload/", files)
    assert response.status_code == 302, response.content.decode()[:2000]
    sub = Submission.objects.get(owner=alice)
    op = Operation.objects.get(kind="batch_submit")
    assert len(sent) == 1
    tasks.batch_submit(op, Progress(op))
    cluster = Job.objects.filter(submission=sub).first().cluster  # type: ignore[union-attr]
    ad = schedd.jobs[(cluster, 0)]
    assert ad["Cmd"].endswith(f"/{sub.submit_key('all')}/do_catalogue.bash")  # the user's, staged
    assert (schedd.spool_dir / f"{cluster}.0" / "do_catalogue.bash").read_text() == SEED_SCRIPT
    for proc, item in enumerate(ITEMS):
        schedd.run(cluster, proc, out=f"catalogue of {item}\n", err="")
        tasks.refresh_batch()  # each job's output is here once that job ends
        job = Job.objects.get(submission=sub, proc=proc)
        assert (job_dir(job) / f"do_catalogue-{item}.out").read_text() == f"catalogue of {item}\n"
        assert (job_dir(job) / f"do_catalogue-{item}.log").is_file()
    assert Submission.objects.get(pk=sub.pk).state == Submission.FINISHED


def test_the_form_refuses_a_v1_batch_without_a_snapshot(
    alice: User, alice_client: Any, schedd: FakeSchedd, settings: Any
) -> None:
    from tests.portal.test_batch_views import form_data

    settings.HTCONDOR_POOL_PROFILE = "v1"
    settings.BATCH_EXECUTORS = ["local", "htcondor"]
    response = alice_client.post("/batch/new/", form_data(executor="htcondor"))
    assert response.status_code == 400
    assert "boots its workers from a snapshot" in response.content.decode()
    assert not Submission.objects.exists()
    # the same form for the local workers needs no snapshot
    assert alice_client.post("/batch/new/", form_data(executor="local")).status_code == 302


def test_it_still_brings_back_the_output_of_jobs_recorded_done_before_it_came_back(
    alice: User, schedd: FakeSchedd
) -> None:
    sub = recorded(alice, ITEMS[:2])
    cluster = run_submit(sub).result["cluster"]
    schedd.run(cluster, 0, out="ran early\n")
    Job.objects.filter(submission=sub, proc=0).update(state=Job.DONE)  # as an older portal left it
    tasks.refresh_batch()
    job = Job.objects.get(submission=sub, proc=0)
    assert job.retrieved and (job_dir(job) / job.output).read_text() == "ran early\n"
    assert (cluster, 0) not in schedd.jobs  # retrieved, so it left the queue
