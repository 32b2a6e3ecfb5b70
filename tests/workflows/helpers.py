"""Shared pieces of the workflow tests: the LSST tutorial's shape with trivial scripts."""

from __future__ import annotations

from typing import Any

from orchestration.batch.dag import StageSpec, check_workflow, form_dag
from portal.models import Workflow
from portal.models.workflows import record_workflow

# Each step records when it started and ended (the job's own clock) in its output.
STEP = '#!/bin/sh\necho "start $(date +%s.%N) $0 $1"\n{body}echo "end $(date +%s.%N) $0 $1"\n'
FAIL_ON = '#!/bin/sh\necho "start $(date +%s.%N) $0 $1"\nif [ "$1" = "{bad}" ]; then echo "bad item $1" >&2; exit 3; fi\necho "end $(date +%s.%N) $0 $1"\n'


def lsst_files(items: list[str], bad: str = "") -> tuple[str, dict[str, str]]:
    """1 init job, then three steps per item (the LSST tutorial's shape): the DAG and every file."""
    steps = [StageSpec("step1", "step1.sh"), StageSpec("step2", "step2.sh"), StageSpec("step3", "step3.sh")]
    text, submits = form_dag(items, steps, StageSpec("init", "init.sh"), None)
    files = dict(submits)
    files["init.sh"] = STEP.format(body="")
    files["step1.sh"] = STEP.format(body="")
    files["step2.sh"] = FAIL_ON.format(bad=bad) if bad else STEP.format(body="")
    files["step3.sh"] = STEP.format(body="")
    return text, files


def record(owner: Any, text: str, files: dict[str, str], name: str = "lsst", **kw: Any) -> Workflow:
    vetted = check_workflow(text, files)
    return record_workflow(
        owner=owner, project=None, name=name, executor="local", vetted=vetted, files=files, **kw
    )


def times(out: str) -> tuple[float, float]:
    """(start, end) from a step's .out."""
    start = end = 0.0
    for line in out.splitlines():
        word, _, rest = line.partition(" ")
        if word == "start":
            start = float(rest.split()[0])
        elif word == "end":
            end = float(rest.split()[0])
    return start, end
