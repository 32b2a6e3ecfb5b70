"""Parsing uploaded submit files and building them from the batch form."""

from __future__ import annotations

import htcondor2
import pytest

from orchestration.batch.base import BatchSpec, BatchValidationError, PoolProfile, WorkerTarget
from orchestration.batch.submit import (
    MAX_PROBLEMS,
    build_submit,
    build_user_submit,
    parse_spec,
    parse_submit,
    raise_if_problems,
)

IDS = ["1056215p", "1056216p", "1056217p", "1056218p"]


def _problems(text: str, script_name: str | None = None) -> list[str]:
    with pytest.raises(BatchValidationError) as info:
        parse_submit(text, script_name)
    return info.value.problems


def test_it_parses_the_seeds_example_into_four_jobs(seed_submit: str) -> None:
    parsed = parse_submit(seed_submit, "do_catalogue.bash")
    assert parsed.executable == "do_catalogue.bash"
    assert [j.proc for j in parsed.jobs] == [0, 1, 2, 3]
    assert [j.argv for j in parsed.jobs] == [[i] for i in IDS]
    assert [j.output for j in parsed.jobs] == [f"do_catalogue-{i}.out" for i in IDS]
    assert [j.error for j in parsed.jobs] == [f"do_catalogue-{i}.err" for i in IDS]
    assert [j.log for j in parsed.jobs] == [f"do_catalogue-{i}.log" for i in IDS]


def test_it_refuses_keys_the_portal_owns_with_their_lines(seed_submit: str) -> None:
    text = seed_submit.replace(
        "queue", 'Requirements = Arch == "x86_64"\n+VMType = "mine"\ngetenv = True\nqueue'
    )
    problems = _problems(text)
    assert any(p.startswith("line 7: Requirements is not allowed") for p in problems)
    assert any(p.startswith("line 8: +VMType is not allowed") for p in problems)
    assert any(p.startswith("line 9: getenv is not allowed") for p in problems)


def test_it_gives_the_line_of_an_unclosed_queue_block(seed_submit: str) -> None:
    problems = _problems(seed_submit.replace(")\n", ""))
    assert problems == ["line 7: the 'queue ... from (' block is never closed by a line holding only ')'."]


def test_it_gives_the_line_of_a_line_without_equals(seed_submit: str) -> None:
    problems = _problems(seed_submit.replace("error  =", "error"))
    assert problems[0].startswith("line 4: expected 'key = value'")


def test_it_never_runs_include_commands(tmp_path) -> None:
    marker = tmp_path / "ran"
    problems = _problems(f"include command : touch {marker}\nexecutable = a.sh\nqueue\n")
    assert problems == ["line 1: include is not allowed; put everything in one file."]
    assert not marker.exists()


def test_it_refuses_env_macros_and_file_item_sources() -> None:
    problems = _problems("executable = a.sh\noutput = $ENV(SECRET_KEY)\nqueue arguments from /etc/passwd\n")
    assert problems[0].startswith("line 2: $ENV() is not allowed")
    assert problems[1].startswith("line 3: items must be listed inline")


def test_it_refuses_paths_outside_the_submission() -> None:
    problems = _problems("executable = /bin/sh\noutput = ../../config/settings.py\nqueue\n")
    assert "line 1: executable must name files without directories (found '/bin/sh')." in problems
    assert any(p.startswith("line 2: output must name files without directories") for p in problems)


def test_it_reports_jobs_that_would_overwrite_each_others_output(seed_submit: str) -> None:
    problems = _problems(seed_submit.replace("do_catalogue-$(arguments).out", "all.out"))
    assert problems == [
        "jobs 0, 1, 2, 3 all write their output to 'all.out'; put $(arguments) or $(Process) in the pattern."
    ]


def test_it_checks_the_executable_is_the_given_script(seed_submit: str) -> None:
    assert _problems(seed_submit, "other.bash") == [
        "executable is 'do_catalogue.bash' but the script you gave is 'other.bash'."
    ]


def test_it_splits_new_syntax_arguments_without_a_shell() -> None:
    parsed = parse_submit(
        """executable = a.sh\narguments = "one 'two three' '$HOME;`id`' 'it''s'"\nqueue 2\n"""
    )
    assert [j.argv for j in parsed.jobs] == [["one", "two three", "$HOME;`id`", "it's"]] * 2
    assert [j.proc for j in parsed.jobs] == [0, 1]


def test_it_reads_request_units() -> None:
    text = "executable = a.sh\nrequest_cpus = 2\nrequest_memory = 3 GB\nrequest_disk = 2048000\nqueue\n"
    parsed = parse_submit(text)
    assert (parsed.request_cpus, parsed.request_memory_mb, parsed.request_disk_mb) == (2, 3072, 2000)


def test_it_builds_a_v1_description_that_htcondor_reads() -> None:
    spec = BatchSpec(
        name="do_catalogue",
        script_name="do_catalogue.bash",
        items=IDS,
        profile=PoolProfile.V1,
        target=WorkerTarget("myproject", "image-reduction-2023-08-21", "abc-123", "c2-7.5gb-31"),
        proxy_cert="cadcproxy.pem",
    )
    sub = htcondor2.Submit(build_submit(spec))
    assert sub["Requirements"] == 'VMType =?= "myproject:image-reduction-2023-08-21" && Arch == "x86_64"'
    assert sub["MY.VMAMI"] == '"canfar:abc-123"'
    assert sub["MY.VMInstanceType"] == '"canfar:c2-7.5gb-31"'
    assert sub["MY.PreArguments"] == '"cadcproxy.pem"'
    assert sub["transfer_input_files"] == "cadcproxy.pem"
    assert [i["arguments"] for i in sub.itemdata()] == IDS


def test_it_builds_a_csv2_description() -> None:
    spec = BatchSpec(name="b", script_name="b.sh", items=["x"], profile=PoolProfile.CSV2)
    sub = htcondor2.Submit(build_submit(spec))
    assert sub["Universe"] == "vanilla"
    assert sub["Requirements"] == 'group_name =?= "canfar" && Arch == "x86_64"'


def test_it_parses_the_form_like_an_upload() -> None:
    spec = BatchSpec(name="do_catalogue", script_name="do_catalogue.bash", items=IDS, request_memory_mb=4096)
    assert "Requirements" not in build_user_submit(spec)
    parsed = parse_spec(spec)
    assert [j.output for j in parsed.jobs] == [f"do_catalogue-{i}.out" for i in IDS]
    assert parsed.request_memory_mb == 4096


def test_it_reads_declared_output_files_and_refuses_shared_ones(seed_submit: str) -> None:
    per_item = parse_submit(
        seed_submit.replace("queue", "transfer_output_files = $(arguments).cat, x-$(Process).txt\nqueue")
    )
    assert per_item.jobs[1].output_files == ["1056216p.cat", "x-1.txt"]
    with pytest.raises(BatchValidationError) as caught:
        parse_submit(seed_submit.replace("queue", "transfer_output_files = result.cat\nqueue"))
    assert "all write their transfer_output_files to 'result.cat'" in str(caught.value)
    with pytest.raises(BatchValidationError, match="is the job's output, error or log file"):
        parse_submit(
            seed_submit.replace("queue", "transfer_output_files = do_catalogue-$(arguments).out\nqueue")
        )


def test_raise_if_problems_sorts_by_line_drops_repeats_and_cuts_a_long_list() -> None:
    raise_if_problems([])  # nothing to say: no exception
    with pytest.raises(BatchValidationError) as exc:
        raise_if_problems([(3, "line 3: c"), (1, "line 1: a"), (3, "line 3: c"), (0, "whole file")])
    assert exc.value.problems == ["whole file", "line 1: a", "line 3: c"]
    with pytest.raises(BatchValidationError) as exc:
        raise_if_problems([(n, f"line {n}: x") for n in range(MAX_PROBLEMS + 7)])
    assert len(exc.value.problems) == MAX_PROBLEMS + 1 and exc.value.problems[-1] == "… and 7 more problems."
