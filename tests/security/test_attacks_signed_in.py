"""A hostile signed-in user against the recent pages: workflow upload and form, rescue, catalogues,
storage. Each attack must get a clear page (never a 500), touch nothing outside the user's space,
and another user's IDs must be 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from portal.models import Workflow
from tests.workflows.helpers import lsst_files, record

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
