"""The classic event log the local executor writes, read back by htcondor2.JobEventLog."""

from __future__ import annotations

from pathlib import Path

import htcondor2

from orchestration.batch.eventlog import EventLogWriter, read_events


def _htcondor_types(path: Path) -> list[int]:
    return [int(e.type) for e in htcondor2.JobEventLog(str(path)).events(stop_after=0)]


def test_it_writes_every_event_kind_htcondor_reads(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    log = EventLogWriter(path, 42, 3)
    log.submitted("10.0.0.1")
    log.executing("worker-1")
    log.held("The job used 3.0 GB of memory, more than its limit of 2.0 GB", code=34)
    log.released()
    log.executing("worker-2")
    log.terminated(return_value=3, user_cpu=61.5)
    log.terminated(signal=9)
    log.aborted("via condor_rm (by user alice)")

    assert _htcondor_types(path) == [0, 1, 12, 13, 1, 5, 5, 9]
    events = read_events(path)
    assert [e.kind for e in events] == [
        "submit", "execute", "held", "released", "execute", "terminated", "terminated", "aborted",
    ]  # fmt: skip
    assert {(e.cluster, e.proc) for e in events} == {(42, 3)}
    assert events[1].host == "worker-1"
    assert (events[2].reason, events[2].hold_code) == (
        "The job used 3.0 GB of memory, more than its limit of 2.0 GB",
        34,
    )
    assert (events[5].return_value, events[5].signal) == (3, None)
    assert (events[6].return_value, events[6].signal) == (None, 9)
    assert events[7].reason == "via condor_rm (by user alice)"


def test_it_keeps_multi_line_reasons_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    EventLogWriter(path, 1, 0).held("first\n...\nsecond")
    assert [e.reason for e in read_events(path)] == ["first ... second"]


def test_it_reads_a_missing_log_as_empty(tmp_path: Path) -> None:
    assert read_events(tmp_path / "none.log") == []


def test_it_leaves_a_half_written_event_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    EventLogWriter(path, 1, 0).submitted()
    with open(path, "a") as f:
        f.write("001 (001.000.000) 2024-01-15 10:00:05 Job executing on host: <w1>\n")
    assert [e.kind for e in read_events(path)] == ["submit"]
