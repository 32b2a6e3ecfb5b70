"""The second wall (htcondor2 in a confined child), and the portal's reader checked against HTCondor's.

The conformance test writes a few hundred ordinary submit files (continuation lines, comments,
macros, every queue form the portal takes) and asserts that the portal's grammar makes of each
exactly the jobs htcondor2 makes of it; htcondor2 reads them in the confined child.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from orchestration.batch.condor_child import read_with_htcondor
from orchestration.batch.submit import parse_submit
from orchestration.batch.validate import split_arguments

SENTINEL = "child-sentinel-5be1"
KEYS = ["output", "error", "log", "arguments", "transfer_output_files"]


def test_htcondor2_in_the_child_can_run_nothing_read_nothing_and_see_no_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTAL_SENTINEL", SENTINEL)
    proof = tmp_path / "proof"
    secret = tmp_path / "secret.sub"
    secret.write_text(f"leak = {SENTINEL}\n")
    items = tmp_path / "items.txt"
    items.write_text(f"{SENTINEL}\n")
    texts = [
        f"include command : /usr/bin/touch {proof}\nqueue\n",
        f"# note \\\ninclude command : /usr/bin/touch {proof}\nqueue\n",
        "a = $ENV(PORTAL_SENTINEL)\nqueue\n",
        "queue a from (\n  $ENV(PORTAL_SENTINEL)\n)\n",
        f"include : {secret}\nqueue\n",
        f"queue a from {items}\n",
    ]
    run = read_with_htcondor(texts, ["a", "leak"])
    assert not proof.exists()
    assert not run.results[0].ok and not run.results[1].ok  # the command could not start
    assert SENTINEL not in repr(run.results)
    assert set(run.environment) <= {"CONDOR_CONFIG", "LC_CTYPE"}  # set by htcondor2 and Python themselves
    assert run.isolation["network"] and run.isolation["files"] and run.isolation["processes"]
    assert run.isolation["user"] == (os.geteuid() == 0)


# ---------------------------------------------------------------------------- conformance


def _word(rng: random.Random) -> str:
    rest = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_.-") for _ in range(rng.randint(0, 5)))
    return rng.choice("abcdefghijklmnopqrstuvwxyz") + rest


def _item_word(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(1, 5)))


def _continued(rng: random.Random, key: str, value: str) -> list[str]:
    """`key = value`, sometimes broken over lines with backslashes and indented continuations."""
    line = f"{key}{rng.choice(['', ' ', '  '])}={rng.choice(['', ' '])}{value}"
    if rng.random() < 0.5 or len(line) < 4:
        return [line]
    cut = rng.randint(len(key) + 1, len(line) - 1)
    head, tail = line[:cut], line[cut:]
    if not tail.strip():
        return [line]
    return [head + "\\" + rng.choice(["", " ", "\t "]), rng.choice(["", " ", "    "]) + tail]


def _submit_file(rng: random.Random) -> str:
    variables = rng.choice([[], ["arguments"], ["v"], ["v", "w"], ["arguments", "w"]])
    form = rng.choice(["block", "oneline", "in"] if len(variables) == 1 else ["block", "oneline"])
    count = rng.choice([None, 1, 2]) if variables else rng.choice([None, 1, 3])
    refs = ["$(Process)", *[f"$({v})" for v in variables], "$(stem)"]
    # values of the last variable may hold spaces: only single-word ones go into file names
    single = variables[:1] if len(variables) > 1 or form == "in" else []
    file_refs = ["$(Process)", "$(stem)", *[f"$({v})" for v in single]]
    statements: list[list[str]] = [["executable = a.sh"], [f"stem = {_word(rng)}"]]
    unique = "$(Process)"
    for key in ("output", "error", "log"):
        if key == "output" or rng.random() < 0.8:
            extra = "$(stem)" if key == "output" else rng.choice(file_refs)
            statements.append(_continued(rng, key, f"{key[0]}{extra}-{unique}.{key[:3]}"))
    if "arguments" not in variables and rng.random() < 0.7:
        statements.append(
            _continued(rng, "arguments", " ".join(rng.choice([*refs, _word(rng)]) for _ in range(3)))
        )
    if rng.random() < 0.4:
        statements.append(
            _continued(rng, "transfer_output_files", f"r-{unique}.cat, {rng.choice(file_refs)}-{unique}.txt")
        )
    if rng.random() < 0.5:
        statements.insert(rng.randint(0, len(statements)), ["# " + _word(rng)])
    lines = [line for statement in statements for line in statement]
    head = "queue" + (f" {count}" if count else "")
    if not variables:
        return "\n".join(lines) + f"\n{head}\n"
    names = rng.choice([", ", ",", " "]).join(variables)
    if form == "in":
        words = [_item_word(rng) for _ in range(rng.randint(1, 4))]
        return "\n".join(lines) + f"\n{head} {names} in ({rng.choice([' ', ', '])}{' '.join(words)} )\n"
    if form == "oneline":
        words = [_item_word(rng) for _ in range(rng.randint(1, 3))]
        return "\n".join(lines) + f"\n{head} {names} from ( {' '.join(words)} )\n"
    block = []
    for _ in range(rng.randint(1, 4)):
        parts = [_item_word(rng) for _ in range(rng.randint(1, len(variables) + 1))]
        block.append(rng.choice(["  ", "", "\t"]) + rng.choice([" ", ", ", ",", "\t"]).join(parts))
        if rng.random() < 0.2:
            block.append("  # " + _word(rng))
    return "\n".join(lines) + f"\n{head} {names} from (\n" + "\n".join(block) + "\n)\n"


def test_the_portals_reader_makes_the_jobs_htcondor_makes() -> None:
    rng = random.Random(12)
    texts = [_submit_file(rng) for _ in range(300)]
    run = read_with_htcondor(texts, KEYS)
    for text, theirs in zip(texts, run.results, strict=True):
        assert theirs.ok, (text, theirs.error)
        ours = parse_submit(text, "a.sh")
        assert len(ours.jobs) == len(theirs.jobs), text
        for job, values in zip(ours.jobs, theirs.jobs, strict=True):
            assert (job.output, job.error, job.log) == (values["output"], values["error"], values["log"]), (
                text
            )
            assert job.argv == split_arguments(values["arguments"]), text
            declared = [n.strip() for n in values["transfer_output_files"].split(",") if n.strip()]
            assert job.output_files == list(dict.fromkeys(declared)), text
        step = len(ours.jobs) // max(1, len(theirs.items))
        ours_items = [list(j.item_vars.values()) for j in ours.jobs[::step]] if theirs.items else []
        assert ours_items == [list(i.values()) for i in theirs.items], text
