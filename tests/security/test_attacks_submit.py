"""Attacks on the submit grammar from the outside: what the portal accepts, read by the REAL htcondor2.

htcondor2.Submit(dict) does not keep the values apart: it writes `key = value` lines and parses them
as submit language, and Schedd.submit writes that text again with the items. So what the portal
accepts is checked here against htcondor2's reading of exactly that text (in the confined child of
`condor_child`): the jobs' argv, the portal's own keys (Requirements, executable, initialdir) and
the job attributes must be what the portal recorded and shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.batch.base import BatchError, BatchValidationError, ParsedSubmit, PoolProfile, WorkerTarget
from orchestration.batch.condor_child import read_with_htcondor
from orchestration.batch.htcondor import HTCondorExecutor
from orchestration.batch.submit import check_body, parse_submit
from orchestration.batch.validate import split_arguments

HEAD = "executable = run.sh\n"
TARGET = WorkerTarget(project="proj", image_name="img", image_id="ami-1", flavor="c2")
KEYS = ["arguments", "output", "Requirements", "executable", "initialdir", "MY.VMAMI", "MY.PortalSubmitKey"]


def problems_of(text: str) -> list[str]:
    with pytest.raises(BatchValidationError) as caught:
        parse_submit(text, "run.sh")
    return caught.value.problems


def schedd_text(values: dict[str, str], parsed: ParsedSubmit) -> str:
    """The text htcondor2 parses for Schedd.submit(Submit(values), itemdata=...): as its code writes it."""
    text = "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
    if not parsed.queue_vars:
        return text + f"queue {len(parsed.jobs)}\n"
    rows = ["\x1f".join(job.item_vars[k] for k in parsed.queue_vars) for job in parsed.jobs]
    return text + f"QUEUE {','.join(parsed.queue_vars)} FROM (\n" + "".join(r + "\n" for r in rows) + ")\n"


def as_htcondor_reads(texts: list[str], tmp_path: Path) -> list[tuple[ParsedSubmit, dict[str, str], list]]:
    executor = HTCondorExecutor(lambda: None, PoolProfile.V1, tmp_path, TARGET)
    cases = []
    for text in texts:
        parsed = parse_submit(text, "run.sh")
        values = executor.submit_values(parsed, "key-1", False, None)
        cases.append((parsed, values, schedd_text(values, parsed)))
    run = read_with_htcondor([c[2] for c in cases], KEYS)
    out = []
    for (parsed, values, _), result in zip(cases, run.results, strict=True):
        assert result.ok, result.error
        out.append((parsed, values, result.jobs))
    return out


def assert_same_jobs(parsed: ParsedSubmit, values: dict[str, str], jobs: list[dict[str, str]]) -> None:
    assert len(jobs) == len(parsed.jobs)
    for ours, theirs in zip(parsed.jobs, jobs, strict=True):
        assert split_arguments(theirs["arguments"]) == ours.argv
        assert theirs["output"] == ours.output
        for key in ("Requirements", "executable", "initialdir", "MY.VMAMI", "MY.PortalSubmitKey"):
            assert theirs[key] == values[key], key


# Python's str.strip() takes these for white space; HTCondor (C isspace) does not.
UNICODE_SPACES = ["\u00a0", "\u1680", "\u2002", "\u2009", "\u202f", "\u205f", "\u3000"]


@pytest.mark.parametrize("space", UNICODE_SPACES)
def test_a_backslash_before_unicode_white_space_cannot_swallow_the_portals_requirements(
    space: str, tmp_path: Path
) -> None:
    """`arguments = foo \\<NBSP>`: the grammar stripped the NBSP, the value ended in '\\', and
    htcondor2 joined the next line (the portal's Requirements) into the job's arguments."""
    texts = [
        f"{HEAD}arguments = foo \\{space}\nqueue\n",
        f"{HEAD}m = x\\{space}\narguments = a $(m)\nqueue 2\n",
        f"{HEAD}arguments = a \\{space}\nqueue v from (\n  b\n)\n",
    ]
    accepted = []
    for text in texts:
        try:
            parse_submit(text, "run.sh")
        except BatchValidationError:
            continue
        accepted.append(text)
    for parsed, values, jobs in as_htcondor_reads(accepted, tmp_path):
        assert_same_jobs(parsed, values, jobs)


def test_no_value_sent_to_htcondor2_ends_in_a_backslash_or_holds_a_line_end(tmp_path: Path) -> None:
    """The last wall, where the values become submit language: a recorded body that would join or
    split lines never reaches htcondor2.Submit."""
    parsed = parse_submit(f"{HEAD}arguments = a\nqueue\n", "run.sh")
    executor = HTCondorExecutor(lambda: None, PoolProfile.V1, tmp_path, TARGET)
    for value in ("foo \\", "foo \\ \t", "a\ninclude command : /usr/bin/touch /tmp/x", "a\rb", "a\x00b"):
        bad = ParsedSubmit(**{**parsed.__dict__, "body": {**parsed.body, "arguments": value}})
        with pytest.raises(BatchError, match="line end or a trailing backslash"):
            executor.submit_values(bad, "key-1", False, None)
        with pytest.raises(BatchValidationError, match="recorded before the current checks"):
            check_body(bad.body, [])


def test_literal_dollars_stay_literal_when_htcondor_expands_dollar_again(tmp_path: Path) -> None:
    """HTCondor expands `$(DOLLAR)(DOLLAR)` to '$' (it reads its own result again), so the portal's
    rendering of a literal '$(' as `$(DOLLAR)(` made another argv than the portal shows, and
    `$(DOLLAR)(DOLLAR)$(DOLLAR)(X)` put a match-time `$$(` reference into the job ad."""
    import itertools

    pieces = ["$(DOLLAR)", "(", ")", "DOLLAR", "$(Process)", "$", "[", "x"]
    texts = []
    for k in range(1, 5):
        for combo in itertools.product(pieces, repeat=k):
            text = f"{HEAD}arguments = a{''.join(combo)}\nqueue\n"
            try:
                parse_submit(text, "run.sh")
            except BatchValidationError:
                continue
            texts.append(text)
    assert len(texts) > 1000
    for parsed, values, jobs in as_htcondor_reads(texts, tmp_path):
        assert_same_jobs(parsed, values, jobs)
        assert "$$" not in jobs[0]["arguments"]


def test_a_small_file_cannot_make_jobs_that_fill_the_web_workers_memory() -> None:
    """8 KB: a 64 KiB argument (macros within their limits) times `queue 20000` took 1.2 GB and 19 s
    of the upload or the live preview, before anything was shown."""
    import tracemalloc

    x = "x" * 8000
    text = f"{HEAD}a = {x}\nb = {'$(a)' * 8}\narguments = $(b) $(Process)\noutput = o$(Process).out\nqueue 20000\n"
    assert len(text) < 9000
    tracemalloc.start()
    try:
        problems = problems_of(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert any("the jobs' arguments and file names come to about" in p for p in problems), problems
    assert peak < 32 * 1024**2
    ordinary = parse_submit(
        f"{HEAD}arguments = {x[:200]} $(Process)\noutput = o$(Process).out\nqueue 20000\n"
    )
    assert len(ordinary.jobs) == 20000
