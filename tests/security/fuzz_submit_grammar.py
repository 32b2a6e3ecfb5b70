"""Fuzz target for the submit grammar: whatever the text, parsing acts on nothing and leaks nothing.

Run it longer than the test suite does with
`.venv/bin/python -m tests.security.fuzz_submit_grammar --examples 20000`.

`check(text)` parses in an empty temporary directory holding one sentinel file, with a sentinel
environment variable set, while a Python audit hook records every file, process, socket and
library event. It fails if parsing raises anything but BatchValidationError, opens a file,
starts a process, touches the network, changes the directory, or lets the sentinel value or
the sentinel file's content out; and, when the file is accepted, if the dictionary given to
htcondor2 holds anything but allowed keys and `$(name)` references to per-job names.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.batch.allowlist import ALLOWED_COMMANDS, BUILTINS, QUEUE_VAR_PREFIX
from orchestration.batch.base import BatchValidationError, ParsedSubmit
from orchestration.batch.submit import parse_submit
from orchestration.batch.validate import check_file_name

ENV_NAME = "PORTAL_FUZZ_SENTINEL"
ENV_VALUE = "fz-env-sentinel-91c2"
FILE_NAME = "secret.txt"
FILE_VALUE = "fz-file-sentinel-33d7"
_WATCHED = ("open", "os.", "subprocess.", "socket.", "shutil.", "ctypes.", "glob.", "tempfile.", "urllib.")
_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_PER_JOB = {"arguments", "DOLLAR", *BUILTINS.values()}

FRAGMENTS = [
    "executable = a.sh",
    "executable = /bin/sh",
    "arguments = $(x)",
    "arguments = \"one 'two $HOME'\"",
    "arguments = $E\\",
    f"NV({ENV_NAME})",
    "output = o-$(Process).out",
    "error = e-$(arguments).err",
    "log = l.log",
    "transfer_output_files = $(arguments).cat",
    "request_memory = 2 GB",
    "universe = vanilla",
    "universe = docker",
    "# a comment",
    "# note \\",
    "include command : /usr/bin/touch proof",
    f"include : {FILE_NAME}",
    f"x = $ENV({ENV_NAME})",
    f"x = $({ENV_NAME})",
    f"F = {FILE_NAME}",
    "F = /etc/passwd",
    "input = $(F)",
    "output = $(F)",
    "transfer_input_files = $(F)",
    '+Cmd = "/bin/sh"',
    '+TransferInput = "/etc/passwd"',
    '+ProjectName = "p"',
    "getenv = True",
    "D = $",
    "arguments = $(D)E$(x)(PWD)",
    "a = $(a)",
    "a = $(b)$(b)",
    "b = $(a)",
    "if true",
    "endif",
    "queue",
    "queue 2",
    "queue 0",
    "queue x from (",
    "queue arguments from (",
    "queue 2 x, y from (",
    "queue x in (a b, c)",
    "queue x from ( a b )",
    f"queue x from {FILE_NAME}",
    "queue x matching *",
    "  item1",
    "  item2 two",
    f"  $ENV({ENV_NAME})",
    "  $$(Cmd)",
    ")",
    "\\",
    "",
    "   ",
]
_ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("$()#=\\\n \t+.:,")
LINES = st.one_of(st.sampled_from(FRAGMENTS), st.text(_ALPHABET, max_size=40))
TEXTS = st.one_of(
    st.lists(LINES, max_size=30).map("\n".join),
    st.lists(LINES, max_size=30).map(lambda ls: "\\\n".join(ls) + "\n"),
    st.text(_ALPHABET, max_size=400),
)

_events: list[tuple[str, Any]] | None = None


def _audit(event: str, args: Any) -> None:
    if _events is not None and event.startswith(_WATCHED):
        _events.append((event, args))


sys.addaudithook(_audit)


@contextmanager
def _sandbox() -> Iterator[Path]:
    """An empty directory with one sentinel file as cwd, and a sentinel in the environment."""
    old_cwd = os.getcwd()
    old_env = os.environ.get(ENV_NAME)
    with tempfile.TemporaryDirectory(prefix="fuzz-submit-") as folder:
        (Path(folder) / FILE_NAME).write_text(FILE_VALUE)
        os.environ[ENV_NAME] = ENV_VALUE
        os.chdir(folder)
        try:
            yield Path(folder)
        finally:
            os.chdir(old_cwd)
            if old_env is None:
                os.environ.pop(ENV_NAME, None)
            else:
                os.environ[ENV_NAME] = old_env


def check(text: str) -> None:
    """Parse `text` and check every invariant; raise AssertionError on the first broken one."""
    global _events
    with suppress(BatchValidationError):
        parse_submit("executable = a.sh\nqueue\n")  # anything imported lazily is imported now
    with _sandbox() as folder:
        before = sorted(p.name for p in folder.iterdir())
        _events = []
        try:
            result: ParsedSubmit | BatchValidationError = parse_submit(text)
        except BatchValidationError as exc:
            result = exc
        finally:
            events, _events = _events, None
        assert events == [], f"parsing acted on the machine: {events[:5]}"
        assert sorted(p.name for p in folder.iterdir()) == before, "parsing changed the directory"
        assert os.getcwd() == str(folder)
    shown = repr(result.problems) if isinstance(result, BatchValidationError) else repr(result)
    assert ENV_VALUE not in shown, "an environment value came out of the parse"
    assert FILE_VALUE not in shown, "a file's content came out of the parse"
    if isinstance(result, ParsedSubmit):
        _check_accepted(result)
    else:
        assert result.problems and all(isinstance(p, str) and p for p in result.problems)


def _check_accepted(parsed: ParsedSubmit) -> None:
    allowed = set(ALLOWED_COMMANDS) | {"MY.ProjectName", "MY.JobBatchName"}
    assert set(parsed.body) <= allowed, set(parsed.body) - allowed
    for key, value in parsed.body.items():
        bare = _REF.sub("", value)
        assert "$" not in bare, f"{key} holds a '$' that is not a reference: {value!r}"
        for name in _REF.findall(value):
            assert name in _PER_JOB or name.startswith(QUEUE_VAR_PREFIX), f"{key} refers to $({name})"
    assert check_file_name(parsed.executable, "executable") is None
    for job in parsed.jobs:
        for name in (job.output, job.error, job.log, *job.output_files):
            assert not name or check_file_name(name, "file") is None, name
        assert all(k == "arguments" or k.startswith(QUEUE_VAR_PREFIX) for k in job.item_vars)
        assert all("$" not in v for v in job.item_vars.values())


def run(examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(TEXTS)
    def fuzz(text: str) -> None:
        check(text)

    fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    run(parser.parse_args().examples)
    print("no invariant broken")


if __name__ == "__main__":
    main()
