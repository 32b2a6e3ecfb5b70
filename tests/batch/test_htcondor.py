"""The HTCondor executor against a fake schedd; descriptions are parsed by the real htcondor2."""

from __future__ import annotations

from pathlib import Path

import classad2
import pytest

from orchestration.batch.base import (
    BatchError,
    ExecutorUnavailable,
    JobState,
    PoolProfile,
    WorkerTarget,
)
from orchestration.batch.htcondor import HTCondorExecutor
from orchestration.batch.submit import parse_submit
from tests.batch.fake_schedd import FakeSchedd

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
