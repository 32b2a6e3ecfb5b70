"""Jobs of different users never share a uid: each running local job has a uid of its own, so one job
cannot signal another's processes or open its scratch folder even with the namespaces out of the way
(the attacks below are made from the host, as the other job's uid)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestration.batch.base import JobState
from orchestration.batch.local_runner import JobResult
from orchestration.batch.sandbox import SandboxConfig, job_identity, sandbox_problem, tool, uid_range_problem
from tests.conftest import host_pids
from tests.security.test_sandbox import Probe, batch_here, wait_for

__all__ = ["batch_here"]  # the fixture: sandbox required, batch folders in tmp_path

SLEEPER = '#!/bin/sh\necho "$(id -u) $(id -g)"\necho "private to this job" > secret\nchmod 600 secret\nexec sleep {marker}\n'


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def _as_uid(uid: int, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run from the host as ``uid`` (no capabilities): what another job's process could do."""
    setpriv = tool("setpriv")
    assert setpriv is not None
    argv = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
    argv += ["--bounding-set=-all", "--no-new-privs", "--", "/bin/sh", "-c", script]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd="/", check=False)


class Running:
    """A probe job running in a thread until held."""

    def __init__(self, script: str = SLEEPER) -> None:
        self.marker = f"305.{uuid.uuid4().int % 10**6}"
        self.probe = Probe(script.format(marker=self.marker))
        self.results: list[JobResult] = []
        self.thread = threading.Thread(target=lambda: self.results.append(self.probe.run()))
        self.thread.start()

    def pid(self) -> int:
        wait_for(lambda: host_pids(self.marker), "the job to start")
        return host_pids(self.marker)[0]

    def stop(self) -> JobResult:
        self.probe.executor.hold(self.probe.cluster, reason="held by the test")
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.results[0]


@pytest.fixture
def open_scratch_root(settings: Any) -> Iterator[Path]:
    """A scratch root whose parents every uid may pass through (pytest's tmp_path is 0700 root's), so
    only the job scratch folders' own modes and owners stand between one job's uid and another's."""
    root = Path(tempfile.mkdtemp(prefix="job-uids-", dir="/tmp"))
    root.chmod(0o711)
    settings.BATCH_SCRATCH_ROOT = root / "scratch"
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_two_running_jobs_have_different_uids_and_cannot_reach_each_other(
    settings: Any, open_scratch_root: Path
) -> None:
    first, second = Running(), Running()
    try:
        pids = first.pid(), second.pid()
        uids = [_uid_of(pid) for pid in pids]
        scratch = [Path(os.readlink(f"/proc/{pid}/cwd")) for pid in pids]
        wait_for(lambda: all((s / "secret").exists() for s in scratch), "the jobs' secrets")
        job_uids = range(
            settings.BATCH_JOB_UID_BASE, settings.BATCH_JOB_UID_BASE + settings.BATCH_JOB_UID_COUNT
        )
        assert uids[0] != uids[1] and all(u in job_uids for u in uids)
        probe = "kill -0 {pid} && echo signalled; cat {secret} 2>/dev/null && echo read; ls {scratch} >/dev/null 2>&1 && echo listed"
        own = _as_uid(uids[0], probe.format(pid=pids[0], secret=scratch[0] / "secret", scratch=scratch[0]))
        assert own.stdout.split() == [
            "signalled",
            "private",
            "to",
            "this",
            "job",
            "read",
            "listed",
        ]  # the attack works on itself...
        other = _as_uid(uids[0], probe.format(pid=pids[1], secret=scratch[1] / "secret", scratch=scratch[1]))
        assert other.stdout == "", other.stdout  # ... and not on the other job
        assert "Operation not permitted" in other.stderr
    finally:
        results = [first.stop(), second.stop()]
    assert [r.state for r in results] == [JobState.HELD, JobState.HELD]
    assert host_pids(first.marker) == host_pids(second.marker) == []


def test_a_job_finding_every_uid_taken_is_held_and_the_uid_is_free_again_after(settings: Any) -> None:
    settings.BATCH_JOB_UID_COUNT = 1
    running = Running()
    try:
        uid = _uid_of(running.pid())
        assert uid == settings.BATCH_JOB_UID_BASE
        refused = Probe("#!/bin/sh\necho ran\n")
        result = refused.run()
        assert result.state == JobState.HELD
        assert "all 1 job uids" in result.hold_reason and "BATCH_JOB_UID_COUNT" in result.hold_reason
        assert refused.out == ""
    finally:
        running.stop()
    again = Probe("#!/bin/sh\nid -u\n")
    assert again.run().state == JobState.DONE, again.err
    assert again.out.split() == [str(uid)]


def test_a_range_holding_an_account_of_the_machine_is_refused(settings: Any) -> None:
    config = SandboxConfig(uid=65534, gid=65534, uid_count=4)  # holds nobody (65534)
    assert "holds the account id 65534 of this machine" in (uid_range_problem(config) or "")
    assert sandbox_problem(config) == uid_range_problem(config)
    settings.BATCH_JOB_UID_BASE, settings.BATCH_JOB_UID_COUNT = 65534, 4
    probe = Probe("#!/bin/sh\necho ran\n")
    result = probe.run()
    assert result.state == JobState.HELD and "holds the account id 65534" in result.hold_reason
    assert probe.out == ""


def test_the_network_uid_may_not_be_a_job_uid() -> None:
    with pytest.raises(ValueError, match="network uid must not be one of the job uids"):
        SandboxConfig(uid=1_900_000_000, gid=1_900_000_000, uid_count=4, network_uid=1_900_000_002)


def test_without_a_range_every_job_shares_the_one_uid_and_a_warning_says_so(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.BATCH_JOB_UID_COUNT = 0
    with caplog.at_level(logging.WARNING, logger="orchestration.batch.sandbox"):
        probe = Probe("#!/bin/sh\nid -u\n")
        assert probe.run().state == JobState.DONE, probe.err
    assert probe.out.split() == [str(settings.BATCH_JOB_UID)]
    config = SandboxConfig(uid=settings.BATCH_JOB_UID, gid=settings.BATCH_JOB_GID)
    with job_identity(config, Path(settings.BATCH_SCRATCH_ROOT) / ".sandbox" / "uids") as same:
        assert same == config
