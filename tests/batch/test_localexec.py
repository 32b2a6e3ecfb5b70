"""The local executor end to end: submit the seeds' example, run the jobs, follow them in the logs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import htcondor2

from orchestration.batch.base import JobState
from orchestration.batch.local import Limits
from orchestration.batch.localexec import LocalExecutor
from orchestration.batch.submit import parse_submit

SCRIPT = '#!/bin/sh\necho "catalogue for $1"\n[ "$1" != 1056217p ] || exit 4\n'


def _executor(tmp_path: Path, queue: list[tuple[int, int]]) -> LocalExecutor:
    return LocalExecutor(
        tmp_path / "batch",
        tmp_path / "scratch",
        lambda c, p: queue.append((c, p)),
        Limits(kill_grace_seconds=1),
    )


def test_it_runs_the_seeds_example(tmp_path: Path, seed_submit: str) -> None:
    queue: list[tuple[int, int]] = []
    executor = _executor(tmp_path, queue)
    handle = executor.submit(parse_submit(seed_submit), {"do_catalogue.bash": SCRIPT.encode()}, "key-1")
    assert queue == [(handle.cluster, p) for p in range(4)]
    assert {s.state for s in executor.status(handle.cluster)} == {JobState.IDLE}

    for cluster, proc in queue:
        executor.run(cluster, proc)
    statuses = executor.status(handle.cluster)
    assert [s.state for s in statuses] == [JobState.DONE, JobState.DONE, JobState.FAILED, JobState.DONE]
    assert statuses[2].exit_code == 4
    out = executor.retrieve(handle.cluster)
    assert (out / "do_catalogue-1056216p.out").read_text() == "catalogue for 1056216p\n"
    events = list(htcondor2.JobEventLog(str(out / "do_catalogue-1056216p.log")).events(stop_after=0))
    assert [int(e.type) for e in events] == [0, 1, 5]


def test_it_runs_a_job_once_even_if_dispatched_twice(tmp_path: Path, seed_submit: str) -> None:
    queue: list[tuple[int, int]] = []
    executor = _executor(tmp_path, queue)
    handle = executor.submit(parse_submit(seed_submit), {"do_catalogue.bash": SCRIPT.encode()}, "key-1")
    assert executor.run(handle.cluster, 0) is not None
    assert executor.run(handle.cluster, 0) is None
    again = executor.submit(parse_submit(seed_submit), {"do_catalogue.bash": SCRIPT.encode()}, "key-1")
    assert again.cluster == handle.cluster
    assert queue.count((handle.cluster, 0)) == 1  # re-dispatches only the jobs nobody claimed
    assert queue.count((handle.cluster, 1)) == 2


def test_it_holds_releases_and_removes(tmp_path: Path) -> None:
    queue: list[tuple[int, int]] = []
    executor = _executor(tmp_path, queue)
    parsed = parse_submit("executable = s.sh\noutput = $(Process).out\nerror = $(Process).err\nqueue 2\n")
    handle = executor.submit(parsed, {"s.sh": b"#!/bin/sh\nsleep 30\n"}, "k")
    cluster = handle.cluster

    executor.hold(cluster, [1], reason="wait for the calibration")
    assert executor.run(cluster, 1) is None  # a held job does not start
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(executor.run(cluster, 0)))
    worker.start()
    for _ in range(100):
        if executor.status(cluster)[0].state == JobState.RUNNING:
            break
        time.sleep(0.05)
    assert executor.status(cluster)[0].state == JobState.RUNNING
    executor.remove(cluster, [0])
    worker.join(10)
    assert results[0].state == JobState.REMOVED  # type: ignore[attr-defined]

    statuses = executor.status(cluster)
    assert [s.state for s in statuses] == [JobState.REMOVED, JobState.HELD]
    assert statuses[1].hold_reason == "wait for the calibration"
    executor.release(cluster, [1])
    assert executor.status(cluster)[1].state == JobState.IDLE
    assert queue[-1] == (cluster, 1)
