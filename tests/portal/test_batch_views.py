"""The batch pages: submit form, preview, upload, queue, submission, job files and actions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from orchestration.batch.eventlog import EventLogWriter
from portal.forms.batch import SEED_SCRIPT
from portal.models import Job, Operation, Submission
from portal.models.batch import _new_key
from portal.views.batch import SUBMISSIONS_PER_PAGE

ITEMS = "1056215p\n1056216p\n1056217p\n1056218p\n"
SEED_SUBMIT = """executable = do_catalogue.bash

output = do_catalogue-$(arguments).out
error  = do_catalogue-$(arguments).err
log    = do_catalogue-$(arguments).log

queue arguments from (
  1056215p
  1056216p
  1056217p
  1056218p
)
"""


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "do_catalogue",
        "script_name": "do_catalogue.bash",
        "script": SEED_SCRIPT,
        "items": ITEMS,
        "request_cpus": 1,
        "request_memory_mb": 2048,
        "request_disk_mb": 4096,
        "executor": "local",
    }
    data.update(overrides)
    return data


@pytest.fixture
def sent(monkeypatch: Any) -> list[Any]:
    """Operations sent to the broker (the worker side is tested in tests/integration)."""
    from orchestration.operations import run_operation

    out: list[Any] = []
    monkeypatch.setattr(
        run_operation, "apply_async", lambda args: out.append(args) or type("R", (), {"id": "t"})
    )
    return out


@pytest.fixture
def batch_root(settings: Any, tmp_path: Any) -> Any:
    settings.BATCH_ROOT = tmp_path / "batch"
    return settings.BATCH_ROOT


def submit(client: Any, capture: Any, **overrides: Any) -> Any:
    with capture(execute=True):
        return client.post("/batch/new/", form_data(**overrides))


def test_it_starts_the_form_from_the_seeds_script(alice_client: Any) -> None:
    html = alice_client.get("/batch/new/").content.decode()
    assert "cadcget cadc:CFHT/${id}.fits.fz" in html and 'value="do_catalogue.bash"' in html


def test_it_records_the_submission_and_its_jobs_before_dispatching(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    response = submit(alice_client, django_capture_on_commit_callbacks)
    sub = Submission.objects.get(owner=alice)
    assert response.status_code == 302 and response["Location"] == f"/batch/{sub.pk}/"
    jobs = list(sub.jobs.order_by("index"))
    assert [(j.item, j.argv, j.output, j.state) for j in jobs][0] == (
        "1056215p",
        ["1056215p"],
        "do_catalogue-1056215p.out",
        "unsent",
    )
    assert [j.log for j in jobs][-1] == "do_catalogue-1056218p.log" and len(jobs) == 4
    op = Operation.objects.get(owner=alice, kind="batch_submit")
    assert op.params == {"submission": sub.pk, "part": "all"} and sent == [[op.pk]]
    assert sub.project.name == "alice-lensing" and sub.script.startswith("#!/bin/bash\n")


def test_it_tells_every_problem_at_once(alice_client: Any, sent: list[Any]) -> None:
    response = alice_client.post(
        "/batch/new/",
        form_data(name="my batch", script="echo hi\n", items="a\nb\na\nbad item;\n"),
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "Use letters, digits" in html
    assert "must start with a shebang" in html
    assert "Duplicate items: &#x27;a&#x27;" in html
    assert "Items may not contain" in html
    assert Submission.objects.count() == 0 and sent == []


def test_it_previews_the_description_and_the_job_count(alice_client: Any) -> None:
    html = alice_client.post("/batch/preview/", form_data(items=ITEMS + "1056219p\n")).content.decode()
    assert 'data-testid="preview-count">5<' in html
    assert "queue arguments from (" in html and "do_catalogue-$(arguments).out" in html
    html = alice_client.post("/batch/preview/", form_data(items="")).content.decode()
    assert "There are no items" in html


def test_it_takes_items_from_an_uploaded_text_file(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    upload = SimpleUploadedFile("ids.txt", b"1056215p\n\n1056216p\n")
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post("/batch/new/", {**form_data(items=""), "items_file": upload})
    assert list(Job.objects.values_list("item", flat=True)) == ["1056215p", "1056216p"]


def test_it_accepts_the_seeds_submit_file_and_script(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    files = {
        "submit_file": SimpleUploadedFile("do_catalogue.sub", SEED_SUBMIT.encode()),
        "script_file": SimpleUploadedFile("do_catalogue.bash", SEED_SCRIPT.encode()),
        "executor": "local",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/batch/upload/", files)
    assert response.status_code == 302
    sub = Submission.objects.get(owner=alice)
    assert sub.name == "do_catalogue" and sub.submit_text == SEED_SUBMIT
    assert [(j.argv, j.error) for j in sub.jobs.all()] == [
        ([i], f"do_catalogue-{i}.err") for i in ["1056215p", "1056216p", "1056217p", "1056218p"]
    ]


def test_it_refuses_keys_the_portal_owns_in_an_upload(alice_client: Any) -> None:
    text = 'Requirements = Arch == "x86_64"\n+VMType = "x"\n' + SEED_SUBMIT
    response = alice_client.post(
        "/batch/upload/",
        {
            "submit_file": SimpleUploadedFile("do_catalogue.sub", text.encode()),
            "script_file": SimpleUploadedFile("do_catalogue.bash", b"no shebang\n"),
            "executor": "local",
        },
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "line 1" in html and "Requirements" in html and "VMType" in html
    assert "Script: The script must start with a shebang" in html


def test_it_runs_the_first_item_alone_when_asked(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    submit(alice_client, django_capture_on_commit_callbacks, test_first="on")
    sub = Submission.objects.get(owner=alice)
    assert list(sub.jobs.values_list("part", "proc")) == [("first", 0), ("rest", 0), ("rest", 1), ("rest", 2)]
    assert Operation.objects.get(kind="batch_submit").params["part"] == "first"
    response = alice_client.post(f"/batch/{sub.pk}/rest/")  # not before the test job finished
    assert response.status_code == 302 and Operation.objects.filter(kind="batch_submit").count() == 1
    Submission.objects.filter(pk=sub.pk).update(state=Submission.PAUSED)
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(f"/batch/{sub.pk}/rest/")
    assert Operation.objects.filter(kind="batch_submit").first().params["part"] == "rest"


def test_it_resubmits_failed_jobs_as_a_new_linked_submission(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    submit(alice_client, django_capture_on_commit_callbacks)
    old = Submission.objects.get(owner=alice)
    old.jobs.filter(item__in=["1056216p", "1056218p"]).update(state=Job.FAILED, exit_code=2)
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/batch/{old.pk}/resubmit/")
    new = Submission.objects.exclude(pk=old.pk).get()
    assert response["Location"] == f"/batch/{new.pk}/" and new.parent == old
    assert list(new.jobs.values_list("item", "proc")) == [("1056216p", 0), ("1056218p", 1)]
    assert "1056215p" not in new.submit_text and "1056218p" in new.submit_text


def test_it_shows_counts_and_polls_the_queue_only_while_jobs_are_live(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    submit(alice_client, django_capture_on_commit_callbacks)
    sub = Submission.objects.get()
    Submission.objects.update(state=Submission.ACTIVE)
    sub.jobs.filter(index__lt=2).update(state=Job.DONE)
    sub.jobs.filter(index=2).update(state=Job.RUNNING)
    html = alice_client.get("/batch/").content.decode()
    assert "2 done" in html and "1 running" in html and 'hx-trigger="every 2s"' in html
    Job.objects.update(state=Job.DONE)
    Submission.objects.update(state=Submission.FINISHED)
    html = alice_client.get("/batch/", HTTP_HX_REQUEST="true").content.decode()
    assert "4 done" in html and 'data-polling="false"' in html and "hx-trigger" not in html


def test_the_queue_pages_keep_the_filter_and_search(
    alice_client: Any, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    submit(alice_client, django_capture_on_commit_callbacks)
    sub = Submission.objects.get()
    for i in range(SUBMISSIONS_PER_PAGE + 1):
        sub.pk, sub.key, sub.name = None, _new_key(), f"lensing-{i}"
        sub.save()
    html = alice_client.get("/batch/?show=all&q=lensing").content.decode()
    assert "Page 1 of 2" in html
    assert 'href="?show=all&amp;q=lensing&amp;page=2">Next' in html
    html = alice_client.get("/batch/?show=all&q=lensing&page=2").content.decode()
    assert 'href="?show=all&amp;q=lensing&amp;page=1">Previous' in html
    assert html.count('data-testid="submission-row"') == 1


def test_it_shows_a_pool_summary_without_other_users_items(
    alice_client: Any, bob: User, sent: list[Any], client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(bob)
    submit(client, django_capture_on_commit_callbacks, items="secret-item-1\n")
    Job.objects.update(state=Job.RUNNING)
    client.force_login(Submission.objects.get().owner)
    from django.test import Client

    alice_view = Client()
    alice_view.force_login(User.objects.get(username="alice"))
    html = alice_view.get("/batch/").content.decode()
    assert "bob" not in html and "secret-item-1" not in html and "No batches yet" in html  # staff see bob


def test_it_serves_a_jobs_files_by_job_id_and_renders_the_timeline(
    alice_client: Any, alice: User, sent: list[Any], batch_root: Any, django_capture_on_commit_callbacks: Any
) -> None:
    submit(alice_client, django_capture_on_commit_callbacks)
    job = Job.objects.get(index=0)
    Job.objects.filter(pk=job.pk).update(cluster=7, state=Job.FAILED, exit_code=3)
    out = batch_root / "local" / "7" / "out"
    out.mkdir(parents=True)
    (out / job.output).write_text("found 812 sources\n")
    (out / job.error).write_text("funpack: cannot open\n")
    log = EventLogWriter(out / job.log, 7, 0)
    log.submitted()
    log.executing("worker-1")
    log.terminated(return_value=3)
    html = alice_client.get(f"/batch/jobs/{job.pk}/").content.decode()
    assert "found 812 sources" in html and "funpack: cannot open" in html
    assert "Finished, exit code 3" in html and "exited with code 3" in html and "worker-1" in html
    response = alice_client.get(f"/batch/jobs/{job.pk}/out/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"found 812 sources\n"
    assert "attachment" in response["Content-Disposition"]
    assert alice_client.get(f"/batch/jobs/{job.pk}/passwd/").status_code == 404
    other = Job.objects.get(index=1)
    assert alice_client.get(f"/batch/jobs/{other.pk}/out/").status_code == 404  # not sent yet


def test_it_returns_404_for_another_users_submission_and_job(
    alice_client: Any, bob: User, client: Any, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    from django.test import Client

    bob_client = Client()
    bob_client.force_login(bob)
    submit(bob_client, django_capture_on_commit_callbacks)
    sub, job = Submission.objects.get(), Job.objects.first()
    for url in (f"/batch/{sub.pk}/", f"/batch/jobs/{job.pk}/", f"/batch/jobs/{job.pk}/out/"):
        assert alice_client.get(url).status_code == 404, url
    for url in (f"/batch/{sub.pk}/hold/", f"/batch/{sub.pk}/resubmit/", f"/batch/{sub.pk}/rest/"):
        assert alice_client.post(url).status_code == 404, url
    assert Operation.objects.filter(kind="batch_control").count() == 0


def test_it_answers_405_to_wrong_methods(alice_client: Any) -> None:
    assert alice_client.get("/batch/preview/").status_code == 405
    assert alice_client.post("/batch/").status_code == 405
    assert alice_client.get("/batch/1/hold/").status_code == 405
    assert alice_client.get("/batch/1/resubmit/").status_code == 405
    assert alice_client.delete("/batch/new/").status_code == 405


def test_it_records_hold_release_and_remove_as_operations(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    submit(alice_client, django_capture_on_commit_callbacks)
    sub = Submission.objects.get()
    job = sub.jobs.get(index=1)
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(f"/batch/{sub.pk}/hold/", {"jobs": [str(job.pk)]})
    op = Operation.objects.get(kind="batch_control")
    assert op.params == {"submission": sub.pk, "action": "hold", "jobs": [job.pk]}
    assert op.title == "Hold 1 job of batch do_catalogue"
    assert alice_client.post(f"/batch/{sub.pk}/explode/").status_code == 404


def test_it_says_when_there_is_nothing_to_hold_release_or_remove(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    submit(alice_client, django_capture_on_commit_callbacks)
    sub = Submission.objects.get()
    sub.jobs.update(state=Job.DONE)
    for action, why in (
        ("hold", "Nothing to hold: no job is waiting or running."),
        ("release", "Nothing to release: no job is held."),
        ("remove", "Nothing to remove: every job has already ended."),
    ):
        page = alice_client.post(f"/batch/{sub.pk}/{action}/", follow=True)
        assert why in [str(m) for m in page.context["messages"]]
    assert not Operation.objects.filter(kind="batch_control").exists()


def test_it_adds_jobs_to_the_dashboard(
    alice_client: Any, alice: User, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    html = alice_client.get("/").content.decode()
    assert "Submit a batch of jobs" in html
    submit(alice_client, django_capture_on_commit_callbacks)
    Job.objects.filter(index__lt=3).update(state=Job.RUNNING)
    Job.objects.filter(index=3).update(state=Job.HELD)
    html = alice_client.get("/").content.decode()
    assert 'data-testid="count-jobs">4<' in html and "3 running · 1 held" in html


def test_job_output_is_shown_as_a_terminal_would_leave_it() -> None:
    from portal.job_files import terminal_text

    # source-extractor redraws its progress line with "cursor up" and "erase line" codes.
    raw = (
        "----- SExtractor 2.25.0 started\n\x1b[1M> Setting up\n\x1b[1A\x1b[1M> Line:  100\n"
        "\x1b[1A\x1b[1M> All done\nprogress 10%\rprogress 100%\nend"
    )
    assert terminal_text(raw) == "----- SExtractor 2.25.0 started\n> All done\nprogress 100%\nend"
    assert terminal_text("plain\ntext\n") == "plain\ntext\n"
    assert terminal_text("windows\r\nlines\r\n") == "windows\nlines\n"
