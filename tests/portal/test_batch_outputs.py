"""Batch outputs stored in the user's storage, "completed without output", and proxy certificates."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from orchestration import backends, local_wake
from orchestration.identity.cadc import read_proxy_certificate
from orchestration.operations import Progress
from orchestration.storage.base import StorageUnavailable
from orchestration.tasks import batch as tasks
from orchestration.tasks import local_pulling
from portal import certificates
from portal.models import Job, Operation, Submission
from tests.batch.fake_schedd import FakeSchedd
from tests.cadc_server import CadcTestServer, cadc_server  # noqa: F401 (fixture)
from tests.portal.test_batch_views import form_data

# do_catalogue.bash without the network: every item but 1056217p writes its catalogue.
SCRIPT = """#!/bin/bash
id=$1
echo "Detecting sources in ${id}.fits"
[ "$id" = 1056217p ] || echo "NUMBER MAG_AUTO ${id}" > ${id}.cat
"""
FOLDER = "results/run 1"


@pytest.fixture
def local_batch(settings: Any, tmp_path: Any, monkeypatch: Any) -> Any:
    settings.BATCH_ROOT = tmp_path / "batch"
    settings.BATCH_SCRATCH_ROOT = tmp_path / "scratch"
    settings.BATCH_USE_BWRAP = False
    settings.STORAGE_BACKEND = "local"
    settings.STORAGE_ROOT = tmp_path / "storage"
    monkeypatch.setattr(local_wake, "wake_local_workers", lambda n: None)  # the test pulls itself
    from orchestration.operations import run_operation

    monkeypatch.setattr(run_operation, "apply_async", lambda args: type("R", (), {"id": "t"}))
    return tmp_path / "storage"


def submit(client: Any, capture: Any, **overrides: Any) -> Submission:
    data = form_data(
        **{"script": SCRIPT, "output_folder": FOLDER, "output_files": "$(arguments).cat", **overrides}
    )
    with capture(execute=True):
        response = client.post("/batch/new/", data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    sub = Submission.objects.latest("id")
    op = Operation.objects.get(kind="batch_submit", target=f"batch:{sub.pk}")
    tasks.batch_submit(op, Progress(op))
    return sub


def test_it_stores_the_declared_outputs_and_links_them_from_the_job_page(
    alice_client: Any, alice: User, local_batch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    sub = submit(alice_client, django_capture_on_commit_callbacks)
    assert sub.output_folder == FOLDER
    assert local_pulling.pull_local_jobs() == 4
    stored = local_batch / "alice" / "results" / "run 1"
    assert (stored / "1056215p.cat").read_text() == "NUMBER MAG_AUTO 1056215p\n"
    assert (stored / "do_catalogue-1056215p.out").read_text() == "Detecting sources in 1056215p.fits\n"
    assert "Job terminated" in (stored / "do_catalogue-1056215p.log").read_text()

    jobs = {j.item: j for j in Job.objects.all()}
    assert jobs["1056215p"].state == Job.DONE and jobs["1056215p"].outputs_state == Job.OUTPUTS_STORED
    assert f"{FOLDER}/1056215p.cat" in jobs["1056215p"].stored_outputs
    missing = jobs["1056217p"]
    assert missing.state == Job.NO_OUTPUT and missing.exit_code == 0
    assert "did not write 1056217p.cat" in missing.failure_reason
    assert (stored / "do_catalogue-1056217p.out").exists()  # what it did write is kept, to see why

    page = alice_client.get(f"/batch/jobs/{jobs['1056215p'].pk}/").content.decode()
    assert reverse("storage_file", args=[f"{FOLDER}/1056215p.cat"]) in page
    assert reverse("storage_browse", args=[FOLDER]) in page
    page = alice_client.get(f"/batch/jobs/{missing.pk}/").content.decode()
    assert "Completed without output" in page and "did not write 1056217p.cat" in page
    page = alice_client.get(f"/batch/{sub.pk}/").content.decode()
    assert "1 completed without output" in page and "3 done" in page
    listing = alice_client.get(reverse("storage_browse", args=[FOLDER])).content.decode()
    assert "1056215p.cat" in listing and "1056218p.cat" in listing
    note = Operation.objects.get(kind="batch_finished")
    assert note.state == "failed" and note.message == "4 jobs: 3 done · 1 completed without output"


def test_it_explains_outputs_that_cannot_be_stored(
    alice_client: Any, alice: User, local_batch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    (local_batch / "alice").mkdir(parents=True)
    (local_batch / "alice" / "results").write_text("a file where the folder should be")
    submit(alice_client, django_capture_on_commit_callbacks)
    local_pulling.pull_local_jobs()
    job = Job.objects.get(item="1056215p")
    assert (job.state, job.outputs_state) == (Job.NO_OUTPUT, Job.OUTPUTS_FAILED)
    assert (
        "could not be stored in “results/run 1”" in job.failure_reason and "is a file" in job.failure_reason
    )


def test_it_keeps_outputs_pending_while_storage_is_down_and_stores_them_later(
    alice_client: Any,
    alice: User,
    local_batch: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: Any,
) -> None:

    real = backends.storage_for

    def down(user: Any) -> Any:
        raise StorageUnavailable("VOSpace is not answering.")

    monkeypatch.setattr(backends, "storage_for", down)
    submit(alice_client, django_capture_on_commit_callbacks)
    local_pulling.pull_local_jobs()
    job = Job.objects.get(item="1056215p")
    assert (job.state, job.outputs_state) == (Job.DONE, Job.OUTPUTS_PENDING)
    monkeypatch.setattr(backends, "storage_for", real)
    tasks.refresh_batch()  # beat tries again
    job.refresh_from_db()
    assert job.outputs_state == Job.OUTPUTS_STORED
    assert (local_batch / "alice" / "results" / "run 1" / "1056215p.cat").exists()


def test_it_refuses_a_folder_outside_the_users_space(alice_client: Any, local_batch: Any) -> None:
    response = alice_client.post("/batch/new/", form_data(output_folder="../bob/results"))
    assert response.status_code == 400
    assert "cannot contain &#x27;..&#x27;" in response.content.decode()
    assert Submission.objects.count() == 0


# ---------------------------------------------------------------------------- proxy certificates


@pytest.fixture
def cadc(settings: Any, tmp_path: Any, cadc_server: CadcTestServer) -> CadcTestServer:  # noqa: F811
    settings.IDENTITY_BACKEND = "cadc"
    settings.PROXY_CERT_DIR = str(tmp_path / "proxies")
    settings.BATCH_PROXY_MIN_SECONDS = 24 * 3600
    return cadc_server


def give_certificate(server: CadcTestServer, user: User, days: float) -> bytes:
    pem = server.make_proxy_pem(user.username, days)
    certificates.store(user, read_proxy_certificate(pem))
    return pem


def test_it_refuses_to_submit_with_a_certificate_that_expires_before_the_jobs_can_run(
    alice_client: Any, alice: User, local_batch: Any, cadc: CadcTestServer
) -> None:
    response = alice_client.post("/batch/new/", form_data())
    assert response.status_code == 400
    assert "You have no valid CADC proxy certificate" in response.content.decode()
    give_certificate(cadc, alice, days=0.5)  # expires in 12 hours; jobs may need 24
    response = alice_client.post("/batch/new/", form_data())
    assert response.status_code == 400
    assert "before these jobs could finish" in response.content.decode()
    assert Submission.objects.count() == 0


def test_it_gives_local_jobs_the_users_proxy_certificate(
    alice_client: Any,
    alice: User,
    local_batch: Any,
    cadc: CadcTestServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    pem = give_certificate(cadc, alice, days=10)
    script = (
        '#!/bin/bash\necho "$X509_USER_PROXY"\nstat -c %a "$X509_USER_PROXY"\nmd5sum < "$X509_USER_PROXY"\n'
    )
    sub = submit(
        alice_client, django_capture_on_commit_callbacks, script=script, items="a\n", output_files=""
    )
    local_pulling.pull_local_jobs()
    job = Job.objects.get(submission=sub)
    assert job.state == Job.DONE
    path, mode, digest = (
        (local_batch.parent / "batch" / "local" / str(job.cluster) / "out" / job.output)
        .read_text()
        .split("\n")[:3]
    )
    import hashlib

    assert path.endswith("/cadcproxy.pem") and str(local_batch.parent / "scratch") in path
    assert mode == "600" and digest.split()[0] == hashlib.md5(pem).hexdigest()  # noqa: S324
    tasks.refresh_batch()  # the submission finishes: no copy of the certificate stays on disk
    assert Submission.objects.get(pk=sub.pk).state == Submission.FINISHED
    assert not list((local_batch.parent / "batch").rglob("cadcproxy.pem"))


def test_it_sends_the_proxy_and_stores_htcondor_outputs_after_retrieval(
    alice: User, local_batch: Any, cadc: CadcTestServer, settings: Any, monkeypatch: Any
) -> None:
    settings.HTCONDOR_POOL_PROFILE = "csv2"
    schedd = FakeSchedd()
    monkeypatch.setattr(backends, "SCHEDD_FACTORY", lambda: schedd)
    pem = give_certificate(cadc, alice, days=10)
    from orchestration.batch.base import BatchSpec
    from orchestration.batch.submit import build_submit, parse_spec
    from portal.models.batch import record_submission

    spec = BatchSpec(
        "do_catalogue", "do_catalogue.bash", ["1056215p", "1056216p"], output_files="$(arguments).cat"
    )
    sub = record_submission(
        owner=alice,
        project=None,
        name="do_catalogue",
        executor="htcondor",
        script_name="do_catalogue.bash",
        script=SCRIPT,
        submit_text=build_submit(spec),
        parsed=parse_spec(spec),
        output_folder="cats",
    )
    op = Operation.objects.create(
        owner=alice,
        kind="batch_submit",
        title="t",
        state="running",
        params={"submission": sub.pk, "part": "all"},
    )
    tasks.batch_submit(op, Progress(op))
    ad = schedd.jobs[(100, 0)]
    assert ad["x509userproxy"].endswith("/cadcproxy.pem")  # HTCondor's way for a csv2 pool
    assert (schedd.spool_dir / "100.0" / "cadcproxy.pem").read_bytes() == pem
    assert not list(local_batch.parent.rglob("cadcproxy.pem"))  # only the schedd's spooled copy remains
    schedd.run(100, 0, out="found 12 sources\n", files={"1056215p.cat": "catalogue\n"})
    schedd.run(100, 1, out="no image\n")  # exits 0 without its catalogue: the pool holds it (code 12)
    tasks.refresh_batch()
    jobs = {j.item: j for j in Job.objects.all()}
    assert jobs["1056215p"].state == Job.DONE and jobs["1056216p"].state == Job.NO_OUTPUT
    assert "1056216p.cat" in jobs["1056216p"].failure_reason  # the pool's own words
    stored = local_batch / "alice" / "cats"
    assert (stored / "1056215p.cat").read_text() == "catalogue\n"
    assert (stored / "do_catalogue-1056215p.out").read_text() == "found 12 sources\n"
    assert not schedd.jobs  # retrieved, or removed from the queue once understood    assert Submission.objects.get().state == Submission.FINISHED
