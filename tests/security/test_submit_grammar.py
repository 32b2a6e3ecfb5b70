"""Attacks through submit files and the batch form (issue 12, items 1-3 and 6): each must do no harm.

Every test here would fail if the attack worked: a file appears, an environment value reaches a job's
argv or its job ad, or a host path is accepted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, example, given, settings

from orchestration import backends
from orchestration.batch.base import BatchValidationError, PoolProfile
from orchestration.batch.htcondor import HTCondorExecutor
from orchestration.batch.submit import check_body, parse_submit
from orchestration.batch.validate import split_arguments
from orchestration.tasks import batch as tasks
from portal.forms.batch import SEED_SCRIPT
from portal.models import Submission
from tests.batch.fake_schedd import FakeSchedd
from tests.security import fuzz_submit_grammar as fuzz

SENTINEL = "sentinel-value-7f3a"
HEAD = "executable = do_catalogue.bash\n"
SEED_ITEMS = "queue arguments from (\n  1056215p\n  1056216p\n)\n"


def problems_of(text: str) -> list[str]:
    with pytest.raises(BatchValidationError) as caught:
        parse_submit(text, "do_catalogue.bash")
    return caught.value.problems


def upload(client: Any, text: str) -> Any:
    return client.post(
        "/batch/upload/",
        {
            "submit_file": SimpleUploadedFile("evil.sub", text.encode()),
            "script_file": SimpleUploadedFile("do_catalogue.bash", SEED_SCRIPT.encode()),
            "executor": "local",
        },
    )


def form(**overrides: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "do_catalogue",
        "script_name": "do_catalogue.bash",
        "script": SEED_SCRIPT,
        "items": "1056215p\n1056216p\n",
        "request_cpus": 1,
        "request_memory_mb": 2048,
        "request_disk_mb": 4096,
        "executor": "local",
    }
    data.update(overrides)
    return data


@pytest.fixture
def sentinel_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PORTAL_SENTINEL", SENTINEL)
    return SENTINEL


# ---------------------------------------------------------------------------- 1. commands in the web process


def test_a_comment_ending_in_a_backslash_cannot_hide_an_include_from_the_upload(
    alice_client: Any, tmp_path: Path
) -> None:
    proof = tmp_path / "proof"
    text = f"# note \\\ninclude command : /usr/bin/touch {proof}\n{HEAD}{SEED_ITEMS}"
    response = upload(alice_client, text)
    html = response.content.decode()
    assert response.status_code == 400
    assert "line 1: a comment ends with" in html
    assert "line 2: include is not allowed" in html
    assert not proof.exists()
    assert Submission.objects.count() == 0


@pytest.mark.parametrize("field", ["output", "error", "log", "output_files"])
def test_the_live_preview_refuses_submit_lines_smuggled_in_a_form_field(
    alice_client: Any, tmp_path: Path, field: str
) -> None:
    proof = tmp_path / "proof"
    value = f"x.out\n# note \\\ninclude command : /usr/bin/touch {proof}\n"
    response = alice_client.post("/batch/preview/", form(**{field: value}))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Use a plain file name" in html and "queue arguments from" not in html
    assert not proof.exists()
    response = alice_client.post("/batch/new/", form(**{field: value}))
    assert response.status_code == 400 and not proof.exists()
    assert Submission.objects.count() == 0


@pytest.mark.parametrize(
    "value", ["../x.out", "/tmp/x.out", "x out", "x.out\nqueue", "$(F).out", "$ENV(HOME)", ".hidden"]
)
def test_the_form_takes_only_plain_file_name_patterns(alice_client: Any, value: str) -> None:
    html = alice_client.post("/batch/preview/", form(output=value)).content.decode()
    assert "Use a plain file name" in html and 'data-testid="preview-count"' not in html


def test_include_of_any_kind_is_refused_with_its_line(tmp_path: Path) -> None:
    proof = tmp_path / "proof"
    text = f"{HEAD}include : /etc/passwd\nINCLUDE command : touch {proof}\ninclude ifexist : x\n{SEED_ITEMS}"
    assert problems_of(text)[:3] == [
        f"line {n}: include is not allowed; put everything in one file." for n in (2, 3, 4)
    ]
    assert not proof.exists()


# ---------------------------------------------------------------------------- 2. the portal's environment


def test_a_continued_env_macro_is_seen_as_htcondor_joins_it(sentinel_env: str) -> None:
    text = f"{HEAD}arguments = $E\\\nNV(PORTAL_SENTINEL)\nqueue\n"
    assert problems_of(text) == ["line 2: $ENV() is not allowed; it would read the portal's environment."]
    # the same with the continuation's white space, which HTCondor drops
    text = f"{HEAD}arguments = $E\\   \n     NV(PWD)\nqueue\n"
    assert problems_of(text)[0].startswith("line 2: $ENV() is not allowed")


def test_no_environment_value_reaches_a_jobs_argv_or_its_job_ad(sentinel_env: str, tmp_path: Path) -> None:
    """A literal '$' next to an item would make HTCondor's own expansion build $ENV(...): it is escaped."""
    text = (
        f"{HEAD}D = $\narguments = $(D)E$(id)(PORTAL_SENTINEL) $E$(id)(PORTAL_SENTINEL)\n"
        "output = o-$(Process).out\nqueue id from (\n  NV\n)\n"
    )
    parsed = parse_submit(text, "do_catalogue.bash")
    assert parsed.jobs[0].argv == [
        "$ENV(PORTAL_SENTINEL)",
        "$ENV(PORTAL_SENTINEL)",
    ]  # literal text, never expanded
    schedd = FakeSchedd()  # expands the description with the real htcondor2, in this process
    executor = HTCondorExecutor(lambda: schedd, PoolProfile.NONE, tmp_path / "stage")
    cluster = executor.submit(parsed, {"do_catalogue.bash": SEED_SCRIPT.encode()}, "env-1").cluster
    ad = schedd.query(f"ClusterId == {cluster}")[0]
    assert ad["Args"] == "$ENV(PORTAL_SENTINEL) $ENV(PORTAL_SENTINEL)"
    assert SENTINEL not in str(ad)


@pytest.mark.parametrize(
    "queue",
    [
        "queue arguments from (\n  $ENV(PORTAL_SENTINEL)\n)\n",
        "queue arguments from ( $ENV(PORTAL_SENTINEL) )\n",
        "queue arguments in ( a $ENV(PORTAL_SENTINEL) )\n",
        "queue arguments from (\n  $E\\\n  NV(PORTAL_SENTINEL)\n)\n",
        "queue arguments from (\n  $$(Cmd)\n)\n",
    ],
)
def test_queue_items_never_expand_the_environment(sentinel_env: str, queue: str) -> None:
    problems = problems_of(HEAD + queue)
    assert any("items may not contain '$'" in p for p in problems), problems
    assert all(p.startswith("line ") for p in problems) and SENTINEL not in str(problems)


@pytest.mark.parametrize(
    "queue, message",
    [
        ("queue arguments from /etc/passwd\n", "line 2: items must be listed inline"),
        ("queue arguments from $ENV(PORTAL_SENTINEL)\n", "line 2: items must be listed inline"),
        ("queue arguments matching *.sub\n", "line 2: 'queue ... matching' is not supported"),
        ("queue arguments in /etc/passwd\n", "line 2: put the items of 'queue ... in' between"),
    ],
)
def test_queue_items_are_never_read_from_a_file(queue: str, message: str) -> None:
    assert any(p.startswith(message) for p in problems_of(HEAD + queue))


@pytest.mark.parametrize("line", ["getenv = True", "environment = SECRET=$ENV(SECRET_KEY)", "env = A=1"])
def test_nothing_copies_the_environment_into_jobs(line: str) -> None:
    assert problems_of(f"{HEAD}{line}\nqueue\n")[0].startswith("line 2: ")


# ---------------------------------------------------------------------------- 3. host paths in the job ad


@pytest.mark.parametrize(
    "line",
    [
        '+TransferInput = "/etc/passwd"',
        'MY.TransferInput = "/etc/passwd"',
        '+Cmd = "/bin/sh"',
        '+Iwd = "/"',
        '+In = "/etc/shadow"',
        '+Out = "/srv/portal/var/portal.sqlite3"',
        '+Err = "/tmp/err"',
        '+x509userproxy = "/etc/ssl/private/key.pem"',
        'MY.x509userproxy = "/etc/ssl/private/key.pem"',
        '+UserLog = "/tmp/log"',
        '+TransferOutput = "/etc/cron.d/x"',
        '+Owner = "root"',
        '+SomethingElse = "x"',
        "initialdir = /etc",
        "iwd = /",
        "input = /etc/passwd",
        "x509userproxy = /etc/ssl/private/key.pem",
        "transfer_output_remaps = x=/etc/x",
        "output_destination = file:///etc",
        "universe = docker",
        "universe = local",
        "universe = scheduler",
        "owner = root",
        "accounting_group_user = root",
        "cmd = /bin/sh",
    ],
)
def test_every_command_or_attribute_naming_a_host_path_or_owner_is_refused(line: str) -> None:
    problems = problems_of(f"{HEAD}{line}\n{SEED_ITEMS}")
    assert problems and problems[0].startswith("line 2: "), problems
    assert "not allowed" in problems[0] or "not a submit command" in problems[0]


@pytest.mark.parametrize(
    "use, message",
    [
        ("input = $(F)", "line 3: input is not allowed"),
        ("output = $(F)", "line 3: output must name files without directories"),
        ("transfer_input_files = $(F)", "line 3: transfer_input_files must name files without directories"),
        (
            "transfer_output_files = a, $(F)",
            "line 3: transfer_output_files must name files without directories",
        ),
        ("log = x$(F)", "line 3: log must name files without directories"),
    ],
)
def test_a_macro_cannot_smuggle_a_host_path(use: str, message: str) -> None:
    problems = problems_of(f"{HEAD}F = /etc/passwd\n{use}\n{SEED_ITEMS}")
    assert any(p.startswith(message) for p in problems), problems


def test_macros_only_refer_to_the_file_and_to_per_job_names() -> None:
    problems = problems_of(f"{HEAD}output = $(FULL_HOSTNAME)-$(TILDE).out\n{SEED_ITEMS}")
    assert problems[0] == (
        "line 2: $(FULL_HOSTNAME) is neither defined in this file nor a queue variable, Process or Cluster."
    )
    parsed = parse_submit(f"{HEAD}stem = do_catalogue\noutput = $(stem)-$(arguments).out\n{SEED_ITEMS}")
    assert parsed.jobs[1].output == "do_catalogue-1056216p.out"
    assert parsed.body["output"] == "do_catalogue-$(arguments).out"  # the file's macros are expanded


def test_queue_variables_can_never_set_a_submit_command(tmp_path: Path) -> None:
    for var in ("iwd", "initialdir", "input", "executable", "transfer_input_files", "stream_output"):
        problems = problems_of(f"{HEAD}queue {var} from (\n  x\n)\n")
        assert problems[0].startswith(f"line 2: the queue variable {var} would set the submit command"), var
    parsed = parse_submit(f"{HEAD}arguments = $(id)\noutput = $(id).out\nqueue id from (\n  a\n  b\n)\n")
    assert [j.item_vars for j in parsed.jobs] == [{"PortalItem_id": "a"}, {"PortalItem_id": "b"}]
    assert parsed.body["arguments"] == "$(PortalItem_id)" and parsed.queue_vars == ["PortalItem_id"]
    assert [j.argv for j in parsed.jobs] == [["a"], ["b"]]


def test_only_the_allowed_job_attributes_pass_and_only_as_labels() -> None:
    parsed = parse_submit(f'{HEAD}+ProjectName = "lensing survey"\nMY.JobBatchName = 3\n{SEED_ITEMS}')
    assert parsed.body["MY.ProjectName"] == '"lensing survey"' and parsed.body["MY.JobBatchName"] == "3"
    problems = problems_of(f"{HEAD}+ProjectName = strcat(Cmd, Iwd)\n{SEED_ITEMS}")
    assert problems[0].startswith("line 2: +ProjectName must be a quoted label")


def test_the_body_handed_to_htcondor2_holds_only_allowed_keys() -> None:
    text = (
        f"{HEAD}universe = vanilla\nstem = x\noutput = $(stem)-$(arguments).out\n"
        "arguments_note = $(stem)\nerror = $(arguments_note)-$(Process).err\nrequest_memory = 2 GB\n"
        f"should_transfer_files = YES\nnotification = Never\n{SEED_ITEMS}"
    )
    parsed = parse_submit(text, "do_catalogue.bash")
    assert set(parsed.body) == {
        "executable",
        "output",
        "error",
        "request_memory",
        "should_transfer_files",
        "notification",
    }
    assert parsed.body["error"] == "x-$(Process).err"


# ---------------------------------------------------------------------------- messages, never a 500


def test_a_hostile_upload_gets_every_problem_with_its_line_and_no_500(alice_client: Any) -> None:
    text = (
        "# note \\\n"
        "include command : /usr/bin/touch /nonexistent/proof\n"
        "executable = /bin/sh\n"
        "arguments = $ENV(SECRET_KEY)\n"
        '+TransferInput = "/etc/passwd"\n'
        "if true\n"
        "queue arguments from /etc/passwd\n"
    )
    response = upload(alice_client, text)
    html = response.content.decode()
    assert response.status_code == 400
    for n in range(1, 8):
        assert f"line {n}: " in html, n


@pytest.mark.parametrize(
    "text",
    [
        "\x00executable = a\nqueue\n",
        "executable = a\u202e\nqueue\n",
        "a = $(b)\nb = $(a)\nexecutable = $(a)\nqueue\n",
        "".join(f"m{i} = $(m{i + 1})$(m{i + 1})\n" for i in range(40))
        + "m40 = x\nexecutable = $(m0)\nqueue\n",
        "".join(f"m{i} = $(m{i + 1})\n" for i in range(3000)) + "executable = $(m0)\nqueue\n",
        "queue arguments from (\n" + "x\n" * 30_000 + ")\n",
        "executable = a\\\n",
        "queue 999999999999999999999\n",
    ],
)
def test_odd_files_get_a_message_not_a_crash(alice_client: Any, text: str) -> None:
    with pytest.raises(BatchValidationError):
        parse_submit(text, "a")
    page = upload(alice_client, text)
    assert page.status_code == 400
    problems = page.content.decode().split('data-testid="form-errors"')[1].split("</ul>")[0]
    assert "The submit file cannot be used as it is:" in problems and "<li>" in problems


def test_the_parse_is_the_portals_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """htcondor2 is never asked to read a user's text: the reader works with htcondor2 unusable."""
    import htcondor2

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("htcondor2.Submit called while parsing user text")

    monkeypatch.setattr(htcondor2, "Submit", refuse)
    parsed = parse_submit(HEAD + "output = o-$(arguments).out\n" + SEED_ITEMS, "do_catalogue.bash")
    assert [j.output for j in parsed.jobs] == ["o-1056215p.out", "o-1056216p.out"]


def test_the_environment_is_not_read_by_the_parse(sentinel_env: str) -> None:
    text = f"{HEAD}output = $(PORTAL_SENTINEL).out\n{SEED_ITEMS}"
    problems = problems_of(text)
    assert SENTINEL not in str(problems) and os.environ["PORTAL_SENTINEL"] == SENTINEL


# ---------------------------------------------------------------------------- whatever the text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuzz.TEXTS)
@example(f"# note \\\ninclude command : /usr/bin/touch proof\n{HEAD}queue\n")
@example(f"{HEAD}arguments = $E\\\nNV({fuzz.ENV_NAME})\nqueue\n")
@example(f"{HEAD}include : {fuzz.FILE_NAME}\nqueue x from {fuzz.FILE_NAME}\n")
def test_whatever_the_text_parsing_reads_writes_and_leaks_nothing(text: str) -> None:
    fuzz.check(text)


def test_the_property_would_catch_a_parse_that_reads_a_file_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = fuzz.parse_submit

    def reads_a_file(text: str) -> Any:
        if Path(fuzz.FILE_NAME).exists():
            Path(fuzz.FILE_NAME).read_text()
        return real(text)

    monkeypatch.setattr(fuzz, "parse_submit", reads_a_file)
    with pytest.raises(AssertionError, match="acted on the machine"):
        fuzz.check(HEAD + "queue\n")

    def leaks(text: str) -> Any:
        raise BatchValidationError([os.environ.get(fuzz.ENV_NAME, "not in the sandbox")])

    monkeypatch.setattr(fuzz, "parse_submit", leaks)
    with pytest.raises(AssertionError, match="environment value came out"):
        fuzz.check(HEAD + "queue\n")


def test_the_fuzz_target_runs() -> None:
    fuzz.run(examples=50)


def test_a_body_recorded_before_the_grammar_is_checked_again_before_htcondor2() -> None:
    parsed = parse_submit(
        f"{HEAD}D = $\narguments = $(D)E$(id)\noutput = $(id).out\nqueue id from (\n  NV\n)\n"
    )
    check_body(parsed.body, [j.item_vars for j in parsed.jobs])  # what the grammar makes passes
    for body, items in (
        ({"+TransferInput": '"/etc/passwd"'}, []),
        ({"arguments": "$ENV(SECRET_KEY)"}, []),
        ({"arguments": "$E$(x)(SECRET_KEY)"}, [{"x": "NV"}]),
        ({"output": "$(F).out"}, []),
        ({"output": "$(PortalItem_x).out"}, [{"iwd": "/"}]),
        ({"arguments": "$(arguments)"}, [{"arguments": "$ENV(HOME)"}]),
    ):
        with pytest.raises(BatchValidationError, match="recorded before the current checks"):
            check_body(body, items)


def test_a_submission_recorded_with_an_unvetted_body_never_reaches_the_schedd(
    alice: Any, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.portal.test_batch_tasks import recorded, run_submit

    settings.BATCH_ROOT = tmp_path / "batch"
    schedd = FakeSchedd()
    monkeypatch.setattr(backends, "SCHEDD_FACTORY", lambda: schedd)
    sub = recorded(alice, "htcondor")
    Submission.objects.filter(pk=sub.pk).update(body={**sub.body, "MY.TransferInput": '"/etc/passwd"'})
    with pytest.raises(tasks.UserFacingError, match="recorded before the current checks"):
        run_submit(sub)
    assert schedd.submissions == 0
    assert Submission.objects.get(pk=sub.pk).state == Submission.FAILED


def test_no_literal_dollar_next_to_an_item_lets_htcondor_build_a_function(sentinel_env: str) -> None:
    """What the grammar accepts, expanded by the real htcondor2 as the executor's submit does."""
    import itertools

    import htcondor2

    pieces = ["$", "(", ")", "ENV", "PORTAL_SENTINEL", "E", "$(x)", "$(DOLLAR)"]
    accepted = 0
    for k in range(1, 5):
        for combo in itertools.product(pieces, repeat=k):
            text = f"{HEAD}arguments = {''.join(combo)}\nqueue x from (\n  NV\n  ENV\n  E\n)\n"
            try:
                parsed = parse_submit(text, "do_catalogue.bash")
            except BatchValidationError:
                continue
            accepted += 1
            for job in parsed.jobs:
                expanded = htcondor2.Submit({**parsed.body, **job.item_vars}).expand("arguments")
                assert SENTINEL not in expanded, text
                assert split_arguments(expanded) == job.argv, text
    assert accepted > 1000  # the grammar takes literal dollars; they stay literal
