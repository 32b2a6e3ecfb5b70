"""The fake schedd itself, behaviour by behaviour, as a real schedd (HTCondor 25.14) does it.

Each test is a fact from ../shared/INTEGRATION.md ("Behaviour of a real schedd") or from
issue 13's run against a real personal pool, so the stand-in cannot drift back into
behaving as the adapter expects. Event logs are read with the real htcondor2 parser.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import classad2
import htcondor2
import pytest

from tests.batch.fake_schedd import (
    HOLD_SPOOLING,
    HOLD_TRANSFER_OUTPUT,
    SPOOL_FAILED,
    STAGING_FAILED,
    FakeSchedd,
    Killed,
)


@pytest.fixture
def schedd() -> FakeSchedd:
    return FakeSchedd()


@pytest.fixture
def stage(tmp_path: Path) -> Path:
    d = tmp_path / "stage"
    d.mkdir()
    (d / "do_catalogue.bash").write_text("#!/bin/bash\necho $1\n")
    (d / "params.txt").write_text("x\n")
    return d


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    """The submitting process (a Celery worker) runs in a directory of its own."""
    d = tmp_path / "worker-cwd"
    d.mkdir()
    old = os.getcwd()
    os.chdir(d)
    yield d
    os.chdir(old)


def _desc(stage: Path, executable: str, **extra: str) -> htcondor2.Submit:
    return htcondor2.Submit(
        {
            "executable": executable,
            "arguments": "$(item)",
            "output": "job-$(item).out",
            "error": "job-$(item).err",
            "log": "job-$(item).log",
            "initialdir": str(stage),
            **extra,
        }
    )


def _send(schedd: FakeSchedd, desc: htcondor2.Submit, items: int = 2) -> htcondor2.SubmitResult:
    return schedd.submit(desc, spool=True, itemdata=iter([{"item": f"i{n}"} for n in range(items)]))


def _ads(schedd: FakeSchedd, cluster: int) -> list[classad2.ClassAd]:
    return sorted(schedd.query(f"ClusterId == {cluster}"), key=lambda ad: ad["ProcId"])


def _events(path: Path) -> list[int]:
    return [int(e.type) for e in htcondor2.JobEventLog(str(path)).events(stop_after=0)]


def test_it_resolves_a_bare_executable_against_the_submitters_directory_not_initialdir(
    schedd: FakeSchedd, stage: Path, elsewhere: Path
) -> None:
    result = _send(schedd, _desc(stage, "do_catalogue.bash"))
    assert _ads(schedd, result.cluster())[0]["Cmd"] == str(elsewhere / "do_catalogue.bash")
    # no such file in the worker's directory: staging fails and the schedd removes the cluster
    with pytest.raises(htcondor2.HTCondorException, match=SPOOL_FAILED):
        schedd.spool(result)
    assert _ads(schedd, result.cluster()) == []
    gone = schedd.history(f"ClusterId == {result.cluster()}")
    assert [ad["JobStatus"] for ad in gone] == [3, 3]
    assert {ad["RemoveReason"] for ad in gone} == {STAGING_FAILED}


def test_it_spools_the_file_of_that_name_in_the_submitters_directory(
    schedd: FakeSchedd, stage: Path, elsewhere: Path
) -> None:
    (elsewhere / "do_catalogue.bash").write_text("#!/bin/bash\necho not the user's script\n")
    result = _send(schedd, _desc(stage, "do_catalogue.bash"))
    schedd.spool(result)
    spooled = schedd.spool_dir / f"{result.cluster()}.0" / "do_catalogue.bash"
    assert "not the user's script" in spooled.read_text()


def test_it_starts_spooled_jobs_held_until_their_files_arrive(schedd: FakeSchedd, stage: Path) -> None:
    result = _send(schedd, _desc(stage, str(stage / "do_catalogue.bash"), transfer_input_files="params.txt"))
    ads = _ads(schedd, result.cluster())
    assert [(ad["JobStatus"], ad["HoldReasonCode"]) for ad in ads] == [(5, HOLD_SPOOLING)] * 2
    schedd.spool(result)
    ads = _ads(schedd, result.cluster())
    assert [ad["JobStatus"] for ad in ads] == [1, 1] and "HoldReasonCode" not in ads[0]
    # inputs named relative to initialdir are found there
    assert (schedd.spool_dir / f"{result.cluster()}.1" / "params.txt").read_text() == "x\n"


def test_it_removes_a_cluster_whose_spooling_was_cut_off_once_it_notices(
    schedd: FakeSchedd, stage: Path
) -> None:
    result = _send(schedd, _desc(stage, str(stage / "do_catalogue.bash")), items=50)
    schedd.kill_during_spool = True
    schedd.notices_lost_spools = False
    with pytest.raises(Killed):
        schedd.spool(result)
    # until the schedd notices, the jobs wait on their spooling hold; none runs
    assert {(ad["JobStatus"], ad["HoldReasonCode"]) for ad in _ads(schedd, result.cluster())} == {(5, 16)}
    schedd.notices_lost_spools = True
    assert _ads(schedd, result.cluster()) == []
    assert len(schedd.history(f'ClusterId == {result.cluster()} && RemoveReason == "{STAGING_FAILED}"')) == 50


def test_it_drops_a_plain_string_reason_and_keeps_a_tuple(schedd: FakeSchedd, stage: Path) -> None:
    result = _send(schedd, _desc(stage, str(stage / "do_catalogue.bash")))
    schedd.spool(result)
    c = result.cluster()
    schedd.act(htcondor2.JobAction.Hold, f"{c}.0", reason="checking the inputs")
    schedd.act(htcondor2.JobAction.Hold, f"{c}.1", reason=("checking the inputs", 0))
    ads = _ads(schedd, c)
    assert [ad["JobStatus"] for ad in ads] == [5, 5]
    assert [ad["HoldReason"] for ad in ads] == ["", "checking the inputs"]
    schedd.act(htcondor2.JobAction.Remove, f"{c}.0", reason="no longer needed")
    schedd.act(htcondor2.JobAction.Remove, f"{c}.1", reason=("no longer needed", 0))
    gone = sorted(schedd.history(f"ClusterId == {c}"), key=lambda ad: ad["ProcId"])
    assert "RemoveReason" not in gone[0] and gone[1]["RemoveReason"] == "no longer needed"


def test_it_holds_a_job_that_exits_without_its_declared_outputs(schedd: FakeSchedd, stage: Path) -> None:
    desc = _desc(stage, str(stage / "do_catalogue.bash"), transfer_output_files="$(item).cat")
    result = _send(schedd, desc)
    schedd.spool(result)
    c = result.cluster()
    schedd.run(c, 0, files={"i0.cat": "catalogue"})
    schedd.run(c, 1, out="no image\n")  # exits 0 without i1.cat
    ads = _ads(schedd, c)
    assert ads[0]["JobStatus"] == 4
    assert (ads[1]["JobStatus"], ads[1]["HoldReasonCode"]) == (5, HOLD_TRANSFER_OUTPUT)
    assert ads[1]["HoldReason"].startswith("Transfer output files failure")


def test_it_keeps_completed_spooled_jobs_in_the_queue_until_their_output_is_retrieved(
    schedd: FakeSchedd, stage: Path
) -> None:
    result = _send(schedd, _desc(stage, str(stage / "do_catalogue.bash")))
    schedd.spool(result)
    c = result.cluster()
    schedd.run(c, 0, out="done 0\n")
    schedd.run(c, 1, out="done 1\n")
    assert [ad["JobStatus"] for ad in _ads(schedd, c)] == [4, 4]
    assert schedd.history(f"ClusterId == {c}") == []
    assert not (stage / "job-i0.out").exists()  # the output stays in the spool until retrieved
    schedd.retrieve(f"ClusterId == {c} && ProcId == 0 && JobStatus == 4")
    assert (stage / "job-i0.out").read_text() == "done 0\n"
    assert [ad["ProcId"] for ad in _ads(schedd, c)] == [1]
    assert [ad["ProcId"] for ad in schedd.history(f"ClusterId == {c}")] == [0]


def test_it_writes_a_classic_event_log_that_htcondor_reads(schedd: FakeSchedd, stage: Path) -> None:
    result = _send(schedd, _desc(stage, str(stage / "do_catalogue.bash")))
    schedd.spool(result)
    c = result.cluster()
    schedd.run(c, 0, exit_code=3)
    schedd.retrieve(f"ClusterId == {c}")
    # submitted, input transfer started/done, executing, image size, output transfer, terminated
    assert _events(stage / "job-i0.log") == [0, 40, 40, 1, 6, 40, 40, 5]
    events = list(htcondor2.JobEventLog(str(stage / "job-i0.log")).events(stop_after=0))
    assert events[-1]["ReturnValue"] == 3
    assert "?addrs=" in events[3]["ExecuteHost"]  # a real sinful string, as the schedd writes it
    assert events[4]["MemoryUsage"] == 3


def test_it_offers_the_slots_of_a_plain_pool_through_its_collector(schedd: FakeSchedd) -> None:
    slots = schedd.collector.query(htcondor2.AdType.Startd, projection=["Name", "Arch"])
    assert [ad["Name"] for ad in slots] == ["slot1@worker-7", "slot2@worker-7"]
    assert all("VMType" not in ad and "group_name" not in ad for ad in slots)


def _dagman_job(stage: Path, inputs: list[str]) -> htcondor2.Submit:
    """A DAGMan job as the portal sends it: scheduler universe, the schedd's condor_dagman, spooled."""
    return htcondor2.Submit(
        {
            "universe": "scheduler",
            "executable": "/usr/bin/condor_dagman",
            "transfer_executable": "false",
            "arguments": "\"-p 0 -f -l . -Lockfile wf.dag.lock -Dag wf.dag -CsdVersion '$CondorVersion: 25 $'\"",
            "output": "wf.dag.lib.out",
            "error": "wf.dag.lib.err",
            "log": "wf.dag.dagman.log",
            "initialdir": str(stage),
            "transfer_input_files": ", ".join(str(stage / n) for n in inputs),
        }
    )


def test_dagman_reads_only_its_spool_and_runs_node_jobs_there(
    schedd: FakeSchedd, stage: Path, elsewhere: Path
) -> None:
    (stage / "wf.dag").write_text(
        'JOB a:0 a.sub\nJOB b:0 b.sub\nJOB c:0 a.sub\nVARS b:0 try="$(RETRY)"\nRETRY b:0 1\n'
        "PARENT a:0 CHILD b:0\nPARENT b:0 CHILD c:0\n"
    )
    (stage / "a.sub").write_text(
        "executable = do_catalogue.bash\noutput = a.out\nerror = a.err\nlog = a.log\nqueue\n"
    )
    (stage / "b.sub").write_text(
        'executable = do_catalogue.bash\nenvironment = "TRY=$(try)"\noutput = b.out\nerror = b.err\nlog = b.log\nqueue\n'
    )
    # Not sent with the job: DAGMan cannot find the DAG in its spool directory, whatever our disk holds.
    lost = schedd.submit(_dagman_job(stage, ["a.sub", "b.sub", "do_catalogue.bash"]), spool=True)
    schedd.spool(lost)
    assert schedd.jobs[(lost.cluster(), 0)]["JobStatus"] == 1
    assert not (schedd.spool_dir / f"{lost.cluster()}.0" / "condor_dagman").exists()  # never sent
    with pytest.raises(FileNotFoundError):
        schedd.run_dagman(lost.cluster())

    result = schedd.submit(_dagman_job(stage, ["wf.dag", "a.sub", "b.sub", "do_catalogue.bash"]), spool=True)
    schedd.spool(result)
    spool = schedd.spool_dir / f"{result.cluster()}.0"
    nodes = schedd.run_dagman(result.cluster(), exits={"b:0": [5, 0]})
    assert len(nodes) == 4  # a, b twice (RETRY 1), c
    history = {int(ad["ClusterId"]): ad for ad in schedd.history(f"DAGManJobId == {result.cluster()}")}
    assert sorted(history) == nodes  # node jobs are not spooled: done, they leave the queue
    assert [history[c]["DAGNodeName"] for c in nodes] == ["a:0", "b:0", "b:0", "c:0"]
    assert {history[c]["Iwd"] for c in nodes} == {str(spool)}  # submitted from DAGMan's directory
    assert [history[c].get("Environment") for c in nodes[1:3]] == ["TRY=0", "TRY=1"]
    assert _events(spool / "b.log") == [0, 40, 40, 1, 6, 40, 40, 5] * 2  # written where the job ran
    dag_ad = schedd.jobs[(result.cluster(), 0)]
    assert (dag_ad["JobStatus"], dag_ad["ExitCode"]) == (4, 0)  # spooled: it waits to be retrieved
    assert not (stage / "b.out").exists()
    schedd.retrieve(f"ClusterId == {result.cluster()}")
    assert (stage / "b.out").read_text() == "node b:0 attempt 1\n" and (stage / "b.log").is_file()
    assert (stage / "wf.dag.lib.out").is_file()  # DAGMan's own output comes back too
    assert schedd.history(f"ClusterId == {result.cluster()}")[0]["JobStatus"] == 4


def test_dagman_does_not_run_the_descendants_of_a_failed_node(schedd: FakeSchedd, stage: Path) -> None:
    (stage / "wf.dag").write_text("JOB a:0 a.sub\nJOB b:0 a.sub\nFINAL z:0 a.sub\nPARENT a:0 CHILD b:0\n")
    (stage / "a.sub").write_text(
        "executable = do_catalogue.bash\noutput = $(Cluster).out\nlog = n.log\nqueue\n"
    )
    result = schedd.submit(_dagman_job(stage, ["wf.dag", "a.sub", "do_catalogue.bash"]), spool=True)
    schedd.spool(result)
    nodes = schedd.run_dagman(result.cluster(), exits={"a:0": 2})
    names = [ad["DAGNodeName"] for ad in schedd.history(f"DAGManJobId == {result.cluster()}")]
    assert len(nodes) == 2 and names == ["a:0", "z:0"]  # b never ran; the FINAL node did
    assert schedd.jobs[(result.cluster(), 0)]["ExitCode"] == 1
