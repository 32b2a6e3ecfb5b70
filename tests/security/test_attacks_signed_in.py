"""A hostile signed-in user against the recent pages: workflow upload and form, rescue, catalogues,
storage. Each attack must get a clear page (never a 500), touch nothing outside the user's space,
and another user's IDs must be 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from portal.models import Workflow
from tests.portal.test_catalogue_views import catalogue_env, small_fz
from tests.workflows.helpers import lsst_files, record

__all__ = ["catalogue_env", "small_fz"]  # fixtures used here

pytestmark = pytest.mark.django_db

SUB = "executable = run.sh\narguments = one\noutput = a.out\nerror = a.err\nlog = a.log\nqueue\n"


def _upload(client: Any, dag: bytes, files: dict[str, bytes], name: str = "wf") -> Any:
    return client.post(
        "/workflows/upload/",
        {
            "name": name,
            "executor": "local",
            "dag_file": SimpleUploadedFile("w.dag", dag),
            "inputs": [SimpleUploadedFile(n, t) for n, t in files.items()],
        },
    )


HOSTILE_DAGS = {
    "nul in a comment": b"# \x00\nJOB a a.sub\n",
    "nul in vars": b'JOB a a.sub\nVARS a item="x\x00y"\n',
    "nul in a node name": b"JOB a\x00b a.sub\n",
    "bidi in vars": b'JOB a a.sub\nVARS a item="\xe2\x80\xaetxt.exe"\n',
    "bom first": b"\xef\xbb\xbfJOB a a.sub\n",
    "latin-1": b"JOB a a.sub\n# caf\xe9\n",
    "script with nul": b"JOB a a.sub\nSCRIPT PRE a run.sh \x00\n",
    "crlf": b'JOB a a.sub\r\nVARS a item="x"\r\n',
    "lone cr": b'JOB a a.sub\rVARS a item="x"\r',
    "huge line": b"JOB a a.sub\n# " + b"x" * 900_000 + b"\n",
}


@pytest.mark.parametrize("case", HOSTILE_DAGS)
def test_a_hostile_dag_file_gets_a_page_never_a_500(alice_client: Any, case: str) -> None:
    response = _upload(alice_client, HOSTILE_DAGS[case], {"a.sub": SUB.encode(), "run.sh": b"#!/bin/sh\n"})
    assert response.status_code in (302, 400), response.status_code
    if "nul" in case:
        assert response.status_code == 400 and b"character U+0000" in response.content
    if response.status_code == 302:  # whatever was recorded shows without a 500
        wf = Workflow.objects.latest("pk")
        assert alice_client.get(f"/workflows/{wf.pk}/").status_code == 200


HOSTILE_FILES = {
    "nul in a script": {"a.sub": SUB.encode(), "run.sh": b"#!/bin/sh\necho \x00\n"},
    "nul in a submit file": {"a.sub": SUB.encode() + b"# \x00\n", "run.sh": b"#!/bin/sh\n"},
    "non-utf-8 script": {"a.sub": SUB.encode(), "run.sh": b"#!/bin/sh\n\xff\xfe\n"},
    "bidi file name": {"a.sub": SUB.encode(), "run\u202eh.sh": b"#!/bin/sh\n"},
    "nul file name": {"a.sub": SUB.encode(), "run.sh\x00.txt": b"#!/bin/sh\n"},
}


@pytest.mark.parametrize("case", HOSTILE_FILES)
def test_hostile_uploaded_files_get_a_clear_400(alice_client: Any, case: str) -> None:
    response = _upload(alice_client, b"JOB a a.sub\n", HOSTILE_FILES[case])
    assert response.status_code == 400, response.status_code
    assert not Workflow.objects.exists()
    if case == "nul in a script":
        assert b"run.sh contains NUL bytes; upload a text file." in response.content
    if case == "nul in a submit file":
        assert b"line 7: contains the control or invisible character U+0000" in response.content


def test_a_rescue_with_a_nul_in_an_edited_script_is_refused(alice_client: Any, alice: User) -> None:
    text, files = lsst_files(["im1"])
    wf = record(alice, text, files)
    Workflow.objects.filter(pk=wf.pk).update(state=Workflow.FAILED)
    response = alice_client.post(
        f"/workflows/{wf.pk}/rescue/",
        {"name": "again", "executor": "local", "file:step1.sh": "#!/bin/sh\necho \x00\n"},
    )
    assert response.status_code == 400
    assert b"step1.sh contains NUL bytes; upload a text file." in response.content
    assert Workflow.objects.count() == 1


def test_another_users_workflow_is_404_on_every_page(alice_client: Any, bob: User) -> None:
    text, files = lsst_files(["im1"])
    theirs = record(bob, text, files)
    assert alice_client.get(f"/workflows/{theirs.pk}/").status_code == 404
    assert alice_client.get(f"/workflows/{theirs.pk}/rescue/").status_code == 404
    assert alice_client.post(f"/workflows/{theirs.pk}/rescue/", {"name": "x"}).status_code == 404
    for action in ("hold", "release", "remove", "nonsense"):
        assert alice_client.post(f"/workflows/{theirs.pk}/{action}/").status_code == 404


def test_markup_in_a_dag_is_shown_as_text(alice_client: Any, alice: User) -> None:
    marker = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    text, files = lsst_files(["im1"])
    wf = record(alice, f"# {marker}\n{text}", files)
    page = alice_client.get(f"/workflows/{wf.pk}/").content.decode()
    assert marker not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_odd_query_strings_on_the_workflow_page_are_harmless(alice_client: Any, alice: User) -> None:
    text, files = lsst_files(["im1"])
    wf = record(alice, text, files)
    for query in ("page=-1", "page=99999999999999999999", "page=%00", "state=%00", "state=<x>", "page=1e9"):
        assert alice_client.get(f"/workflows/{wf.pk}/?{query}").status_code == 200, query


ODD = [
    "\x00",
    "a\x00b",
    "../../../../etc/passwd",
    "/etc/passwd",
    "../bob/private.txt",
    "..%2F..%2Fetc%2Fpasswd",
    "\u202etxt.fits",
    "\ufeffa.fits",
    "x" * 5000,
    "a/" * 300 + "b",
    "'\"><script>alert(1)</script>",
    "\udcff",  # a lone surrogate (not encodable as UTF-8)
    "C:\\Windows\\win.ini",
    "~/.ssh/id_rsa",
    "file:///etc/passwd",
    "vos://cadc.nrc.ca~vault/bob/x",
]


@pytest.fixture
def spaces(settings: Any, tmp_path: Any, bob: User) -> Any:
    settings.STORAGE_BACKEND = "local"
    settings.STORAGE_ROOT = tmp_path / "storage"
    settings.CATALOGUE_WORK_DIR = tmp_path / "work"
    (settings.STORAGE_ROOT / "alice").mkdir(parents=True)
    (settings.STORAGE_ROOT / "alice" / "mine.txt").write_text("alice's")
    (settings.STORAGE_ROOT / "bob").mkdir()
    (settings.STORAGE_ROOT / "bob" / "private.txt").write_text("bob's secret")
    return settings.STORAGE_ROOT


def _no_leak(response: Any) -> None:
    assert response.status_code < 500, response.status_code
    body = (
        response.content
        if not getattr(response, "streaming", False)
        else b"".join(response.streaming_content)
    )
    assert b"bob's secret" not in body and b"root:x:0:0" not in body


@pytest.mark.parametrize("value", ODD, ids=range(len(ODD)))
def test_odd_storage_paths_never_500_nor_leave_the_users_space(
    alice_client: Any, spaces: Any, value: str
) -> None:
    from urllib.parse import quote

    quoted = quote(value.encode("utf-8", "surrogatepass"), safe="/")
    for url in ("file", "thumbnail", "download", "browse"):
        _no_leak(alice_client.get(f"/storage/{url}/{quoted}"))
    _no_leak(alice_client.get(f"/catalogues/storage/{quoted}"))
    safe = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    for url, data in (
        ("/storage/mkdir/", {"name": safe, "folder": ""}),
        ("/storage/mkdir/", {"name": "new", "folder": safe}),
        ("/storage/move/", {"path": safe, "dest": "moved"}),
        ("/storage/move/", {"path": "mine.txt", "dest": safe}),
        ("/storage/delete/", {"path": safe}),
    ):
        _no_leak(alice_client.post(url, data))
    _no_leak(alice_client.get("/storage/move/", {"path": safe}))
    _no_leak(
        alice_client.post(
            f"/storage/upload/?name={quote(safe)}&folder=", b"data", content_type="application/octet-stream"
        )
    )
    upload = SimpleUploadedFile(safe.rsplit("/", 1)[-1][:200] or "x", b"data")
    _no_leak(alice_client.post("/storage/upload/", {"file": upload, "folder": safe}))
    assert (spaces / "bob" / "private.txt").read_text() == "bob's secret"
    assert sorted(p.name for p in (spaces / "bob").iterdir()) == ["private.txt"]
    assert (spaces / "alice" / "mine.txt").exists() or (spaces / "alice").rglob("mine.txt")


@pytest.mark.parametrize("value", ODD, ids=range(len(ODD)))
def test_odd_catalogue_form_values_get_a_page_never_a_500(alice_client: Any, spaces: Any, value: str) -> None:
    from tests.portal.test_catalogue_views import form_defaults

    safe = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    for data in (
        {"source": "archive", "observation": safe},
        {"source": "storage", "storage_path": safe},
        {"source": safe},
        {"source": "archive", "observation": "1056215p", "PHOT_AUTOPARAMS": safe},
        {"source": "archive", "observation": "1056215p", "DETECT_THRESH": safe},
    ):
        response = alice_client.post("/catalogues/new/", {**form_defaults(), **data})
        _no_leak(response)
        assert response.status_code in (200, 302, 400)
    _no_leak(alice_client.post("/catalogues/many/", {**form_defaults(), "observations": safe}))
    _no_leak(alice_client.get("/catalogues/", {"page": safe, "q": safe}))


def test_markup_in_an_uploaded_image_name_is_shown_as_text(
    alice_client: Any, catalogue_env: Any, small_fz: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from portal.models import Catalogue
    from tests.portal.test_catalogue_views import form_defaults

    name = '"><img src=x onerror=alert(1)>.fits.fz'
    upload = SimpleUploadedFile(name, small_fz.read_bytes())
    with django_capture_on_commit_callbacks(execute=False):
        response = alice_client.post(
            "/catalogues/new/", {"source": "upload", **form_defaults(), "upload": upload}
        )
    assert response.status_code == 302
    cat = Catalogue.objects.get()
    assert "<img src=x" in cat.name
    for url in ("/catalogues/", f"/catalogues/{cat.pk}/", "/", "/operations/"):
        page = alice_client.get(url).content.decode()
        assert "<img src=x" not in page, url


def test_a_rescue_cannot_grow_a_script_past_the_upload_limit(alice_client: Any, alice: User) -> None:
    text, files = lsst_files(["im1"])
    wf = record(alice, text, files)
    Workflow.objects.filter(pk=wf.pk).update(state=Workflow.FAILED)
    big = "#!/bin/sh\n" + "# padding\n" * 30_000  # 300 kB
    response = alice_client.post(
        f"/workflows/{wf.pk}/rescue/", {"name": "again", "executor": "local", "file:step1.sh": big}
    )
    assert response.status_code == 400
    assert b"step1.sh is larger than 256 KiB." in response.content
    assert Workflow.objects.count() == 1


@pytest.mark.parametrize("number", ["\u00b2", "\u0663", "9" * 5000, "9" * 30, "-1", " 1"])
def test_odd_numbers_in_the_catalogue_table_query_are_ignored(rf: Any, number: str) -> None:
    import numpy as np

    from portal.catalogue_table import table_context

    rows = np.zeros(3, [("ccd", "i2"), ("NUMBER", "i4"), ("MAG_AUTO", "f4"), ("FLAGS", "i2")])
    rows["NUMBER"] = [1, 2, 3]
    for query in ({"ccd": number}, {"ccd": "0", "focus": number}, {"focus": number, "ccd": number}):
        context = table_context(rf.get("/rows/", query), rows, "/rows/")
        assert context["n_total"] == 3


def test_a_job_printing_a_cursor_move_of_5000_digits_still_shows() -> None:
    from portal.job_files import terminal_text

    assert terminal_text("one\ntwo\n\x1b[" + "9" * 5000 + "Athree") == "three"
    assert terminal_text("one\ntwo\x1b[1A\n") == "two\n"


@pytest.mark.parametrize("pk", ["99999999999999999999999", "9223372036854775808"])
def test_ids_past_the_databases_integers_are_404(alice_client: Any, pk: str) -> None:
    for url in (
        f"/workflows/{pk}/",
        f"/catalogues/{pk}/",
        f"/batch/{pk}/",
        f"/batch/jobs/{pk}/",
        f"/vms/{pk}/",
    ):
        assert alice_client.get(url).status_code == 404, url
    assert alice_client.get(f"/catalogues/new/?again={pk}").status_code == 404
    assert alice_client.post(f"/workflows/{pk}/hold/").status_code == 404


def test_an_observation_id_too_long_for_the_database_is_a_form_error(alice_client: Any, spaces: Any) -> None:
    # found on PostgreSQL, which enforces varchar(200) where SQLite does not: the many-IDs form gave a 500
    from portal.models import Catalogue
    from tests.portal.test_catalogue_views import form_defaults

    response = alice_client.post("/catalogues/many/", {**form_defaults(), "observations": "x" * 201})
    assert response.status_code == 400
    assert f"Not observation IDs: {'x' * 39}…" in response.content.decode()
    assert not Catalogue.objects.exists()
