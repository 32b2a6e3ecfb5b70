"""Hostile DAG files: nothing in them reaches the portal's machine, its shell or its environment."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.batch.base import BatchValidationError
from orchestration.batch.dag import MAX_DAG_BYTES, check_workflow, read_dag

SUB = "executable = run.sh\narguments = $(item)\noutput = job-$(item).out\nerror = job-$(item).err\nlog = job.log\nqueue\n"
FILES = {"a.sub": SUB, "run.sh": "#!/bin/sh\n", "pre.sh": "#!/bin/sh\n"}


def problems(text: str) -> list[str]:
    with pytest.raises(BatchValidationError) as exc:
        check_workflow(text, FILES)
    return exc.value.problems


@pytest.mark.parametrize(
    "value, expected",
    [
        ("$ENV(HOME)", "contains '$': no macros, $ENV or $-functions"),
        ("$(Cluster)", "contains '$'"),
        ("$INT(x)", "contains '$'"),
        ("$$(Name)", "contains '$'"),
        ("a`id`", "may not contain '`'"),
        ("a;rm -rf ~", "may not contain ';'"),
        ("\u202eevil", "control or invisible character U+202E"),
        ('x\\" executable=\\"/bin/sh', "may not contain '\"'"),
    ],
)
def test_hostile_vars_values_are_refused(value: str, expected: str) -> None:
    got = problems(f'JOB a a.sub\nVARS a item="{value}"\n')
    assert any(expected in p for p in got), got
    assert all(p.startswith("line 2: ") for p in got), got


def test_vars_cannot_set_submit_commands_or_queue() -> None:
    for key in (
        "executable",
        "getenv",
        "Requirements",
        "queue",
        "transfer_input_files",
        "Process",
        "include",
    ):
        got = problems(f'JOB a a.sub\nVARS a {key}="x"\n')
        assert any("would set a submit command" in p or "is not allowed" in p for p in got), (key, got)


def test_a_newline_cannot_enter_a_vars_value() -> None:
    # A DAG statement is one line; the half after the line end is a statement of its own, refused.
    got = problems('JOB a a.sub\nVARS a item="x\ngetenv = true"\n')
    assert 'line 2: cannot read VARS from \'item="x\'; write key="value".' in got
    assert any(p.startswith("line 3: 'getenv' is not a DAG statement") for p in got)


@pytest.mark.parametrize("script", ["/bin/sh", "../../bin/sh", "~/x.sh", "sub/dir.sh", "C:\\x.bat"])
def test_a_script_naming_a_host_path_is_refused(script: str) -> None:
    got = problems(f'JOB a a.sub\nVARS a item="x"\nSCRIPT PRE a {script} -c id\n')
    assert any("a path: scripts run inside the node's job" in p for p in got), got


@pytest.mark.parametrize("arg", ["$(id)", "`id`", ";id", "a|b", "$HOME", "'q'", '"q"'])
def test_script_arguments_cannot_reach_a_shell(arg: str) -> None:
    got = problems(f'JOB a a.sub\nVARS a item="x"\nSCRIPT PRE a pre.sh {arg}\n')
    assert got and all(p.startswith("line 3: ") for p in got), got


def test_node_names_cannot_hold_shell_or_path_characters() -> None:
    for name in ("a;b", "../x", "$(x)", "-rf", ".hidden"):
        got = problems(f"JOB {name} a.sub\n")
        assert any("is not a node name the portal accepts" in p for p in got), (name, got)


def test_the_wrapper_quotes_everything_it_writes() -> None:
    wf = check_workflow('JOB a a.sub\nVARS a item="xy"\nSCRIPT PRE a pre.sh $JOB @a,b=c:d%e~f\n', FILES)
    wrapper = wf.nodes[0].wrapper
    assert "./pre.sh a '@a,b=c:d%e~f'" in wrapper  # quoted by shlex (~ is special to sh)
    assert wf.nodes[0].parsed.jobs[0].argv == ["xy"]  # arguments go as argv, through "$@"


def test_a_10_mb_dag_is_refused_before_it_is_read() -> None:
    text = "JOB a a.sub\n" + "# padding\n" * (10 * 1024 * 1024 // 10)
    with pytest.raises(BatchValidationError) as exc:
        read_dag(text)
    assert exc.value.problems == [f"The DAG file is larger than {MAX_DAG_BYTES // (1024 * 1024)} MiB."]


def test_100000_nodes_are_refused_with_one_message() -> None:
    text = "".join(f"JOB n{i} a.sub\n" for i in range(100_000))
    with pytest.raises(BatchValidationError) as exc:
        read_dag(text)
    assert len(exc.value.problems) == 1 and "more than 20000 nodes" in exc.value.problems[0]


def test_a_huge_fan_out_is_refused_before_the_edges_are_made() -> None:
    names = " ".join(f"n{i}" for i in range(1000))
    text = "".join(f"JOB n{i} a.sub\n" for i in range(1000)) + f"PARENT {names} CHILD {names}\n"
    with pytest.raises(BatchValidationError) as exc:
        read_dag(text)
    assert exc.value.problems == ["line 1001: the DAG has more than 200000 dependencies, the limit."]


@pytest.mark.django_db
def test_a_10_mb_dag_upload_gets_a_message_and_records_nothing(alice_client: Any) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from portal.models import Workflow

    big = b"JOB a a.sub\n" + b"# padding\n" * (10 * 1024 * 1024 // 10)
    response = alice_client.post(
        "/workflows/upload/",
        {"name": "big", "executor": "local", "dag_file": SimpleUploadedFile("big.dag", big)},
    )
    assert response.status_code in (400, 413)
    assert b"larger than" in response.content
    assert not Workflow.objects.exists()
