"""The HTCondor executor against a fake schedd; descriptions are parsed by the real htcondor2."""

from __future__ import annotations

from pathlib import Path

import classad2
import htcondor2
import pytest

from orchestration.batch.base import (
    BatchError,
    ExecutorUnavailable,
    JobState,
    PoolProfile,
    SubmissionLost,
    WorkerTarget,
)
from orchestration.batch.htcondor import HTCondorExecutor
from orchestration.batch.submit import parse_submit
from tests.batch.fake_schedd import FakeSchedd, Killed

IDS = ["1056215p", "1056216p", "1056217p", "1056218p"]
TARGET = WorkerTarget("myproject", "image-reduction-2023-08-21", "abc-123", "c2-7.5gb-31")


@pytest.fixture
def schedd() -> FakeSchedd:
    return FakeSchedd()


@pytest.fixture
def executor(schedd: FakeSchedd, tmp_path: Path) -> HTCondorExecutor:
    return HTCondorExecutor(lambda: schedd, PoolProfile.V1, tmp_path / "stage")


def _submit(executor: HTCondorExecutor, seed_submit: str, seed_script: str, key: str = "sub-1") -> int:
    parsed = parse_submit(seed_submit, "do_catalogue.bash")
    files = {"do_catalogue.bash": seed_script.encode()}
    handle = executor.submit(parsed, files, key, proxy=b"PEM", target=TARGET)
    assert handle.num_jobs == 4
    return handle.cluster


def test_it_submits_the_seeds_example_as_canfar_submit_would(
    executor: HTCondorExecutor, schedd: FakeSchedd, seed_submit: str, seed_script: str
) -> None:
    cluster = _submit(executor, seed_submit, seed_script)
    ads = sorted(schedd.query(f"ClusterId == {cluster}"), key=lambda ad: ad["ProcId"])
    assert [ad["Args"] for ad in ads] == IDS
    assert [ad["Out"] for ad in ads] == [f"do_catalogue-{i}.out" for i in IDS]
    wanted = classad2.ExprTree('VMType =?= "myproject:image-reduction-2023-08-21" && Arch == "x86_64"')
    # the user's part first, then condor_submit's own clauses
    assert str(ads[0]["Requirements"]).startswith(f"({wanted}) && ")
    assert ads[0]["VMAMI"] == "canfar:abc-123"
    assert ads[0]["VMInstanceType"] == "canfar:c2-7.5gb-31"
    assert ads[0]["PreArguments"] == "cadcproxy.pem"
    # spooled: the script and the proxy reached the schedd's spool, and the jobs left the spooling hold
    spool = schedd.spool_dir / f"{cluster}.0"
    assert (spool / "cadcproxy.pem").read_bytes() == b"PEM"
    assert (spool / "do_catalogue.bash").read_text() == seed_script
    assert {s.state for s in executor.status(cluster)} == {JobState.IDLE}


def test_it_does_not_submit_twice_with_the_same_key(
    executor: HTCondorExecutor, schedd: FakeSchedd, seed_submit: str, seed_script: str
) -> None:
    first = _submit(executor, seed_submit, seed_script, key="same")
    second = _submit(executor, seed_submit, seed_script, key="same")
    assert first == second
    assert schedd.submissions == 1
    assert executor.find("same") == first
    assert executor.find("other") is None


def test_it_reports_states_exit_codes_and_hosts(
    executor: HTCondorExecutor, schedd: FakeSchedd, seed_submit: str, seed_script: str
) -> None:
    cluster = _submit(executor, seed_submit, seed_script)
    schedd.run(cluster, 0, exit_code=0, out="catalogue written\n")
    schedd.run(cluster, 1, exit_code=2)
    schedd.run(cluster, 2, signal=9)
    executor.hold(cluster, [3], reason="checking the inputs")
    statuses = executor.status(cluster)
    assert [s.state for s in statuses] == [JobState.DONE, JobState.FAILED, JobState.FAILED, JobState.HELD]
    assert [s.exit_code for s in statuses] == [0, 2, None, None]
    assert statuses[2].signal == 9
    assert statuses[0].host == "worker-7"
    assert statuses[3].hold_reason == "checking the inputs."  # the reason reached the schedd
    assert statuses[0].started_at == 1700000005  # from the start of execution, after the input transfer

    executor.release(cluster, [3])
    assert executor.status(cluster)[3].state == JobState.IDLE
    executor.remove(cluster, [3])
    removed = executor.status(cluster)[3]
    assert removed.state == JobState.REMOVED  # found in the history
    assert removed.remove_reason == "Removed from the portal."

    out_dir = executor.retrieve(cluster)
    assert (out_dir / "do_catalogue-1056215p.out").read_text() == "catalogue written\n"


def test_it_refuses_a_submission_missing_its_files(executor: HTCondorExecutor, seed_submit: str) -> None:
    parsed = parse_submit(seed_submit)
    with pytest.raises(BatchError, match="do_catalogue.bash"):
        executor.submit(parsed, {}, "k1")


def test_it_reports_an_unreachable_pool(
    executor: HTCondorExecutor, schedd: FakeSchedd, seed_submit: str, seed_script: str
) -> None:
    schedd.down = True
    with pytest.raises(ExecutorUnavailable, match="cannot be reached"):
        _submit(executor, seed_submit, seed_script)


def test_it_sends_the_proxy_as_x509userproxy_outside_v1_pools(
    schedd: FakeSchedd, tmp_path: Path, seed_submit: str, seed_script: str
) -> None:
    executor = HTCondorExecutor(lambda: schedd, PoolProfile.CSV2, tmp_path / "stage")
    cluster = _submit(executor, seed_submit, seed_script)
    ad = schedd.query(f"ClusterId == {cluster}")[0]
    assert ad["x509userproxy"] == str(tmp_path / "stage" / "sub-1" / "cadcproxy.pem")
    assert "cadcproxy.pem" not in ad["TransferInput"] and "PreCmd" not in ad
    assert (schedd.spool_dir / f"{cluster}.0" / "cadcproxy.pem").read_bytes() == b"PEM"


def test_it_retrieves_declared_output_files(
    executor: HTCondorExecutor, schedd: FakeSchedd, seed_submit: str, seed_script: str
) -> None:
    text = seed_submit.replace("queue", "transfer_output_files = $(arguments).cat\nqueue")
    parsed = parse_submit(text, "do_catalogue.bash")
    assert parsed.jobs[0].output_files == ["1056215p.cat"]
    cluster = executor.submit(parsed, {"do_catalogue.bash": seed_script.encode()}, "outs").cluster
    schedd.run(cluster, 0, files={"1056215p.cat": "NUMBER MAG_AUTO\n"})
    out_dir = executor.retrieve(cluster)
    assert (out_dir / "1056215p.cat").read_text() == "NUMBER MAG_AUTO\n"


def test_it_spools_the_users_script_whatever_the_workers_directory_holds(
    executor: HTCondorExecutor,
    schedd: FakeSchedd,
    seed_submit: str,
    seed_script: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker_cwd = tmp_path / "worker"
    worker_cwd.mkdir()
    (worker_cwd / "do_catalogue.bash").write_text("#!/bin/bash\necho a stranger's script\n")
    monkeypatch.chdir(worker_cwd)
    text = seed_submit.replace("queue", "transfer_input_files = params.txt\nqueue")
    parsed = parse_submit(text, "do_catalogue.bash")
    files = {"do_catalogue.bash": seed_script.encode(), "params.txt": b"p\n"}
    cluster = executor.submit(parsed, files, "abs", proxy=b"PEM", target=TARGET).cluster
    ad = schedd.jobs[(cluster, 0)]
    assert ad["Cmd"] == str(tmp_path / "stage" / "abs" / "do_catalogue.bash")
    assert all(Path(n.strip()).is_absolute() for n in ad["TransferInput"].split(","))
    assert (schedd.spool_dir / f"{cluster}.0" / "do_catalogue.bash").read_text() == seed_script
    assert (schedd.spool_dir / f"{cluster}.3" / "params.txt").read_text() == "p\n"


def test_a_failed_spool_is_a_lost_submission_never_found_again(
    executor: HTCondorExecutor, schedd: FakeSchedd, seed_submit: str, seed_script: str
) -> None:
    parsed = parse_submit(seed_submit, "do_catalogue.bash")
    real_spool = schedd.spool

    def failing_spool(result: object) -> None:
        schedd._remove_cluster(result.cluster(), "Staging of job files failed")  # type: ignore[attr-defined]
        raise htcondor2.HTCondorException("DCSchedd::spoolJobFiles:7002:File transfer failed")

    schedd.spool = failing_spool  # type: ignore[method-assign]
    with pytest.raises(SubmissionLost, match="could not receive the job files") as lost:
        executor.submit(parsed, {"do_catalogue.bash": seed_script.encode()}, "k-1")
    schedd.spool = real_spool  # type: ignore[method-assign]
    assert executor.find("k-1") is None  # the removed cluster is not "sent"
    assert schedd.history(f"ClusterId == {lost.value.cluster}")[0]["JobStatus"] == 3
    # the same key again: still lost (a retry under it must not report the removed cluster)
    with pytest.raises(SubmissionLost):
        executor.submit(parsed, {"do_catalogue.bash": seed_script.encode()}, "k-1")
    cluster = executor.submit(parsed, {"do_catalogue.bash": seed_script.encode()}, "k-2").cluster
    assert cluster != lost.value.cluster and executor.find("k-2") == cluster


def test_a_cluster_left_waiting_for_its_files_is_removed_and_reported_lost(
    executor: HTCondorExecutor, schedd: FakeSchedd, seed_submit: str, seed_script: str
) -> None:
    parsed = parse_submit(seed_submit, "do_catalogue.bash")
    schedd.kill_after_submit = True
    with pytest.raises(Killed):
        executor.submit(parsed, {"do_catalogue.bash": seed_script.encode()}, "k-1")
    schedd.kill_after_submit = False
    assert executor.find("k-1") is None
    with pytest.raises(SubmissionLost, match="never received its files"):
        executor.submit(parsed, {"do_catalogue.bash": seed_script.encode()}, "k-1")
    assert not schedd.jobs  # removed, so nothing of it can ever run


def test_a_job_held_for_its_missing_outputs_completed_without_output(
    executor: HTCondorExecutor, schedd: FakeSchedd, seed_submit: str, seed_script: str
) -> None:
    text = seed_submit.replace("queue", "transfer_output_files = $(arguments).cat\nqueue")
    parsed = parse_submit(text, "do_catalogue.bash")
    cluster = executor.submit(parsed, {"do_catalogue.bash": seed_script.encode()}, "outs").cluster
    schedd.run(cluster, 0, out="no image\n")
    status = executor.status(cluster)[0]
    assert status.state == JobState.NO_OUTPUT
    assert "could not bring back its declared output" in status.hold_reason
    assert "1056215p.cat" in status.hold_reason


def test_it_says_why_jobs_for_a_cloud_scheduler_pool_never_match_a_plain_pool(
    schedd: FakeSchedd, tmp_path: Path, seed_submit: str, seed_script: str
) -> None:
    executor = HTCondorExecutor(
        lambda: schedd, PoolProfile.V1, tmp_path / "stage", collector_factory=lambda: schedd.collector
    )
    cluster = _submit(executor, seed_submit, seed_script)
    why = executor.explain_idle(cluster)
    assert why is not None and why.matching == 0 and why.slots == 2
    assert why.text.startswith("No worker offers VMType")
    assert "myproject:image-reduction-2023-08-21" in why.text


def test_it_says_idle_jobs_wait_for_a_free_slot_when_some_slot_would_take_them(
    schedd: FakeSchedd, tmp_path: Path, seed_submit: str, seed_script: str
) -> None:
    executor = HTCondorExecutor(
        lambda: schedd, PoolProfile.NONE, tmp_path / "stage", collector_factory=lambda: schedd.collector
    )
    cluster = _submit(executor, seed_submit, seed_script)
    why = executor.explain_idle(cluster)
    assert why is not None and why.matching == 2
    assert "wait for one to be free" in why.text
    executor = HTCondorExecutor(
        lambda: schedd, PoolProfile.NONE, tmp_path / "stage", collector_factory=lambda: schedd.collector
    )  # a new sync round reads the slots again
    schedd.collector.slots = [
        classad2.ClassAd({"Name": "slot1@small", "Arch": "X86_64", "Memory": 512, "HasFileTransfer": True})
    ]
    why = executor.explain_idle(cluster)
    assert why is not None and why.text.startswith("No worker meets")
    assert (
        why.text == "No worker meets TARGET.Memory >= RequestMemory (RequestMemory is 2048) (0 of 1 slots)."
    )
