"""The local executor end to end: submit the tutorial's example, run the jobs, follow them in the logs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import htcondor2

from orchestration.batch.base import JobState
from orchestration.batch.local_executor import LocalExecutor
from orchestration.batch.local_runner import Limits
from orchestration.batch.submit import parse_submit

SCRIPT = '#!/bin/sh\necho "catalogue for $1"\n[ "$1" != 1056217p ] || exit 4\n'


def _executor(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(tmp_path / "batch", tmp_path / "scratch", Limits(kill_grace_seconds=1))


def test_it_runs_the_seeds_example(tmp_path: Path, seed_submit: str) -> None:
    executor = _executor(tmp_path)
    handle = executor.submit(parse_submit(seed_submit), {"do_catalogue.bash": SCRIPT.encode()}, "key-1")
    assert executor.runnable(handle.cluster) == [0, 1, 2, 3]
    assert {s.state for s in executor.status(handle.cluster)} == {JobState.IDLE}

    for proc in executor.runnable(handle.cluster):
        executor.run(handle.cluster, proc)
    statuses = executor.status(handle.cluster)
    assert [s.state for s in statuses] == [JobState.DONE, JobState.DONE, JobState.FAILED, JobState.DONE]
    assert statuses[2].exit_code == 4
    out = executor.retrieve(handle.cluster)
    assert (out / "do_catalogue-1056216p.out").read_text() == "catalogue for 1056216p\n"
    events = list(htcondor2.JobEventLog(str(out / "do_catalogue-1056216p.log")).events(stop_after=0))
    assert [int(e.type) for e in events] == [0, 1, 5]


def test_it_runs_a_job_once_even_if_dispatched_twice(tmp_path: Path, seed_submit: str) -> None:
    executor = _executor(tmp_path)
    handle = executor.submit(parse_submit(seed_submit), {"do_catalogue.bash": SCRIPT.encode()}, "key-1")
    assert executor.run(handle.cluster, 0) is not None
    assert executor.run(handle.cluster, 0) is None
    again = executor.submit(parse_submit(seed_submit), {"do_catalogue.bash": SCRIPT.encode()}, "key-1")
    assert again.cluster == handle.cluster
    assert executor.runnable(handle.cluster) == [1, 2, 3]  # the job that ran is not offered again


def test_it_completes_a_submission_whose_first_attempt_died_half_way(
    tmp_path: Path, seed_submit: str
) -> None:
    executor = _executor(tmp_path)
    parsed = parse_submit(seed_submit)
    files = {"do_catalogue.bash": SCRIPT.encode()}
    handle = executor.submit(parsed, files, "key-1")
    base = tmp_path / "batch" / str(handle.cluster)
    # What a worker killed half way leaves: the key and some jobs logged, no submission record.
    (base / "submission.json").unlink()
    (base / "out" / "do_catalogue-1056218p.log").unlink()
    assert executor.find("key-1") is None
    again = executor.submit(parsed, files, "key-1")
    assert again == handle  # the same cluster, completed: no duplicate and no orphan
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == [str(handle.cluster), "keys"]
    for name in ("do_catalogue-1056215p.log", "do_catalogue-1056218p.log"):
        assert (base / "out" / name).read_text().count("Job submitted") == 1
    assert executor.runnable(handle.cluster) == [0, 1, 2, 3]


def test_it_frees_a_claimed_job_whose_worker_died_before_starting_it(
    tmp_path: Path, seed_submit: str
) -> None:
    executor = _executor(tmp_path)
    handle = executor.submit(parse_submit(seed_submit), {"do_catalogue.bash": SCRIPT.encode()}, "key-1")
    (tmp_path / "batch" / str(handle.cluster) / "claims" / "1").touch()  # claimed, then the worker died
    assert executor.run(handle.cluster, 1) is None
    before, after = executor.abandon(handle.cluster, 1, "The worker stopped", retry=True)
    assert (before.state, after.state) == (JobState.IDLE, JobState.IDLE)
    assert executor.run(handle.cluster, 1).state == JobState.DONE  # type: ignore[union-attr]


def test_it_copies_declared_output_files_back(tmp_path: Path) -> None:
    executor = _executor(tmp_path)
    parsed = parse_submit(
        "executable = s.sh\noutput = $(arguments).out\nerror = $(arguments).err\nlog = $(arguments).log\n"
        "transfer_output_files = $(arguments).cat\nqueue arguments from (\n  a\n  b\n)\n"
    )
    assert [j.output_files for j in parsed.jobs] == [["a.cat"], ["b.cat"]]
    script = b'#!/bin/sh\n[ "$1" = b ] || echo "catalogue $1" > "$1.cat"\n'
    handle = executor.submit(parsed, {"s.sh": script}, "k")
    for proc in (0, 1):
        executor.run(handle.cluster, proc)
    out = executor.retrieve(handle.cluster)
    assert (out / "a.cat").read_text() == "catalogue a\n"
    assert not (out / "b.cat").exists()


def test_it_holds_releases_and_removes(tmp_path: Path) -> None:
    executor = _executor(tmp_path)
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
    assert executor.runnable(cluster) == [1]
