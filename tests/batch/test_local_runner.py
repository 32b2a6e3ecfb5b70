"""The local runner: real processes, real limits, real event logs."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from orchestration.batch.base import JobState
from orchestration.batch.eventlog import read_events
from orchestration.batch.local_runner import Limits, LocalJob, kill_job, run_job
from orchestration.batch.sandbox import SandboxConfig
from tests.conftest import host_pids


def _job(tmp_path: Path, script: str, argv: list[str] | None = None, **kw: object) -> LocalJob:
    path = tmp_path / "job.sh"
    path.write_text(script)
    return LocalJob(
        cluster=7,
        proc=0,
        script=path,
        argv=argv or [],
        job_dir=tmp_path / "out",
        output="job.out",
        error="job.err",
        log="job.log",
        scratch_root=tmp_path / "scratch",
        **kw,  # type: ignore[arg-type]
    )


def _out(job: LocalJob) -> str:
    return (job.job_dir / job.output).read_text()


def test_it_records_the_exit_code_and_logs(tmp_path: Path) -> None:
    job = _job(tmp_path, "#!/bin/sh\necho hello\necho oops >&2\nexit 3\n")
    result = run_job(job)
    assert (result.state, result.exit_code, result.signal) == (JobState.FAILED, 3, None)
    assert _out(job) == "hello\n"
    assert (job.job_dir / "job.err").read_text() == "oops\n"
    events = read_events(job.job_dir / "job.log")
    assert [e.kind for e in events] == ["execute", "terminated"]
    assert events[1].return_value == 3


def test_it_reports_a_signal(tmp_path: Path) -> None:
    result = run_job(_job(tmp_path, "#!/bin/sh\nkill -SEGV $$\n"))
    assert (result.state, result.exit_code, result.signal) == (JobState.FAILED, None, signal.SIGSEGV)
    assert read_events(tmp_path / "out" / "job.log")[-1].signal == signal.SIGSEGV


def test_it_passes_arguments_without_a_shell(tmp_path: Path) -> None:
    argv = ["two words", 'it\'s "quoted"', "$(touch pwned)", "`id`", "*", "; ls"]
    job = _job(tmp_path, '#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done\nls\n', argv)
    assert run_job(job).state == JobState.DONE
    lines = _out(job).splitlines()
    assert lines[:6] == [f"[{a}]" for a in argv]
    assert lines[6:] == ["job.sh"]  # the scratch dir holds only the script: nothing was touched


def test_it_scrubs_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "django-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://portal:pw@db/portal")
    job = _job(tmp_path, "#!/bin/sh\nenv\npwd\n", env={"X509_USER_PROXY": "/nowhere/proxy.pem"})
    run_job(job)
    lines = _out(job).splitlines()
    env = dict(line.split("=", 1) for line in lines[:-1])
    scratch = lines[-1]
    assert "django-secret" not in _out(job) and "postgres://" not in _out(job)
    assert env["HOME"] == env["TMPDIR"] == scratch
    assert scratch.startswith(str(tmp_path / "scratch"))
    assert env["X509_USER_PROXY"] == "/nowhere/proxy.pem"
    assert set(env) <= {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "_CONDOR_SCRATCH_DIR",
        "X509_USER_PROXY",
        "PWD",
        "SHLVL",
        "_",
    }
    assert not Path(scratch).exists()  # cleaned up afterwards


def test_it_holds_a_job_over_its_wall_time(tmp_path: Path) -> None:
    job = _job(
        tmp_path, "#!/bin/sh\nsleep 30 &\nwait\n", limits=Limits(wall_seconds=0.5, kill_grace_seconds=1)
    )
    result = run_job(job)
    assert result.state == JobState.HELD
    assert "wall-time limit of 0 s" in result.hold_reason
    held = read_events(job.job_dir / "job.log")[-1]
    assert (held.kind, held.hold_code) == ("held", 46)


def test_it_holds_a_job_over_its_memory(tmp_path: Path) -> None:
    script = "#!/usr/bin/env python3\nimport time\nx = b'x' * (200 * 1024 * 1024)\ntime.sleep(30)\n"
    job = _job(tmp_path, script, limits=Limits(memory_mb=50, address_space_factor=20, kill_grace_seconds=1))
    result = run_job(job)
    assert result.state == JobState.HELD
    assert "more than its limit of 50 MB" in result.hold_reason
    assert "request_memory" in result.hold_reason


def test_it_holds_a_job_over_its_output_size(tmp_path: Path) -> None:
    script = "#!/bin/sh\nhead -c 3000000 /dev/zero\necho still running\n"
    job = _job(tmp_path, script, limits=Limits(output_mb=1))
    result = run_job(job)
    assert result.state == JobState.HELD
    assert result.hold_reason == "The job wrote a file larger than its output limit of 1 MB and was stopped."
    assert (job.job_dir / "job.out").stat().st_size <= 1024 * 1024


def test_it_kills_the_whole_job(tmp_path: Path) -> None:
    marker = f"61.{uuid.uuid4().int % 10**6}"  # names the job's child among the machine's processes
    job = _job(tmp_path, f"#!/bin/sh\nsleep {marker} &\necho started\nwait\n")
    started = threading.Event()
    pids: list[int] = []

    def on_start(pid: int, host: str) -> None:
        pids.append(pid)
        started.set()

    thread = threading.Thread(target=lambda: pids.append(run_job(job, on_start).signal or 0))
    thread.start()
    assert started.wait(10)
    for _ in range(200):
        if host_pids(marker):
            break
        time.sleep(0.05)
    children = host_pids(marker)
    assert children, "the job's child never started"
    assert kill_job(pids[0], grace_seconds=2)
    thread.join(10)
    assert pids[1] == signal.SIGTERM
    assert all(_gone(child) for child in children)


def _gone(pid: int) -> bool:
    """True once the process is dead (a zombie waiting for init to reap it counts as dead)."""
    for _ in range(100):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_it_confines_a_job_to_its_scratch_directory_with_bubblewrap(tmp_path: Path) -> None:
    assert shutil.which("bwrap"), "bubblewrap is part of the test set-up (make test installs it)"
    # Outside /tmp (which the sandbox replaces by a private tmpfs): a folder like the portal's data.
    portal_data = Path(__file__).resolve().parents[2] / "var" / "test" / f"bwrap-{uuid.uuid4().hex}"
    portal_data.mkdir(parents=True)
    try:
        secrets, shared = portal_data / "secrets", portal_data / "shared"
        secrets.mkdir()
        shared.mkdir()
        (secrets / "settings.env").write_text("SECRET_KEY=do-not-leak\n")
        script = (
            "#!/bin/sh\n"
            f"echo tampered > {shared}/outside.txt 2>/dev/null && echo wrote-outside\n"
            f"cat {secrets}/settings.env 2>/dev/null || echo hidden\n"
            "echo fine > inside.txt && echo wrote-inside\n"
        )
        job = _job(tmp_path, script, hidden_paths=[secrets])
        result = run_job(job)
        assert result.state == JobState.DONE
        out = _out(job)
        assert "wrote-inside" in out and "hidden" in out  # its scratch is writable; hidden paths are masked
        assert "wrote-outside" not in out and "do-not-leak" not in out  # the rest of the disk is read-only
        assert not (shared / "outside.txt").exists()
    finally:
        shutil.rmtree(portal_data)


def test_it_reports_a_signal_through_bubblewrap_as_a_signal(tmp_path: Path) -> None:
    result = run_job(_job(tmp_path, "#!/bin/sh\nkill -KILL $$\n"))
    assert (result.state, result.exit_code, result.signal) == (JobState.FAILED, None, signal.SIGKILL)


def test_it_binds_the_jobs_scratch_back_inside_a_hidden_scratch_root(tmp_path: Path) -> None:
    other_job = tmp_path / "scratch" / "other-job"
    other_job.mkdir(parents=True)
    (other_job / "result.txt").write_text("someone else's data\n")
    script = f"#!/bin/sh\nls {other_job} 2>/dev/null | grep -q result && echo saw-other\necho ok > mine.txt && echo own\n"
    job = _job(tmp_path, script, hidden_paths=[tmp_path / "scratch"])
    assert run_job(job).state == JobState.DONE
    out = _out(job)
    assert "own" in out and "saw-other" not in out


def test_the_tutorials_cadc_commands_use_the_local_archive_and_the_owners_storage(tmp_path: Path) -> None:
    """With local backends, cadcget reads the archive and vls/vcp the owner's space, both read-only
    inside bubblewrap (other users' storage stays hidden); what vcp sends to vos: waits in an outbox,
    taken out of scratch without following links, for the portal to store."""
    from orchestration.backends import JOB_TOOLS
    from orchestration.batch.base import LocalServices
    from orchestration.batch.local_runner import outbox_dir

    # Outside /tmp (which the sandbox replaces by a private tmpfs), like the portal's var/.
    portal_data = Path(__file__).resolve().parents[2] / "var" / "test" / f"tools-{uuid.uuid4().hex}"
    archive, storage = portal_data / "archive", portal_data / "storage"
    (archive / "CFHT").mkdir(parents=True)
    (archive / "CFHT" / "1056215p.fits.fz").write_bytes(b"pixels of 1056215p")
    (storage / "bob").mkdir(parents=True)
    (storage / "bob" / "private.txt").write_text("bob's\n")
    (storage / "alice" / "old").mkdir(parents=True)
    (storage / "alice" / "old" / "earlier.cat").write_text("earlier\n")
    try:
        script = (
            "#!/bin/bash\n"
            "set -u\n"
            "cadcget cadc:CFHT/1056215p.fits.fz && cat 1056215p.fits.fz && echo\n"
            "cadcget cadc:CFHT/1056299p.fits.fz || echo no-such-observation\n"
            "cadcget cadc:CFHT/../../storage/bob/private.txt || echo no-dotdot\n"
            "echo 'NUMBER MAG_AUTO' > 1056215p.cat\n"
            "vcp 1056215p.cat vos:alice/ && echo sent\n"
            "vmkdir vos:alice/run1 && vcp 1056215p.cat vos:alice/run1/copy.cat && vls vos:alice/run1\n"
            "vcp vos:alice/old/earlier.cat back.cat && cat back.cat\n"
            "vls vos:alice\n"
            "vcp 1056215p.cat vos:bob/ || echo not-bobs\n"
            "vcp 1056215p.cat 'vos:[VOSpace]/' || echo placeholder\n"
            "vcp 1056215p.cat vos:alice/nowhere/x.cat || echo no-folder\n"
            "echo x > $PORTAL_STORAGE_DIR/direct.txt 2>/dev/null || echo storage-read-only\n"
            f"cat {storage}/bob/private.txt 2>/dev/null || echo bob-hidden\n"
            "ln -s /etc/hostname $PORTAL_VOS_OUTBOX/leak.txt\n"
        )
        services = LocalServices(JOB_TOOLS, archive, storage / "alice", "vos:alice")
        job = _job(tmp_path, script, services=services, hidden_paths=[portal_data])
        assert run_job(job).state == JobState.DONE
        out, err = _out(job), (job.job_dir / job.error).read_text()
        assert "pixels of 1056215p" in out
        assert (
            "no-such-observation" in out
            and "cadc:CFHT/1056299p.fits.fz is not in this portal's archive" in err
        )
        assert "no-dotdot" in out and "may not contain '..'" in err
        assert "sent" in out and "copy.cat" in out and "earlier" in out
        assert "1056215p.cat\nold/\nrun1/" in out  # vls: the space and what this job sent, together
        assert "not-bobs" in out and "jobs here reach only your own space vos:alice/" in err
        assert "placeholder" in out and "replace the placeholder" in err
        assert "no-folder" in out and "the folder nowhere does not exist" in err
        assert "storage-read-only" in out and not (storage / "alice" / "direct.txt").exists()
        assert "bob-hidden" in out and "bob's" not in out
        outbox = outbox_dir(job.job_dir, job.proc)
        assert (outbox / "1056215p.cat").read_text() == "NUMBER MAG_AUTO\n"
        assert (outbox / "run1" / "copy.cat").exists()
        assert not (outbox / "leak.txt").exists()  # a link is never followed out of the outbox
        assert not (storage / "alice" / "1056215p.cat").exists()  # the portal stores it, not the job
    finally:
        shutil.rmtree(portal_data)


def test_it_holds_a_job_with_the_reason_when_the_sandbox_cannot_be_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration.batch import sandbox

    real = sandbox.tool
    monkeypatch.setattr(sandbox, "tool", lambda name: None if name == "bwrap" else real(name))
    sandbox.sandbox_problem.cache_clear()
    try:
        job = _job(tmp_path, "#!/bin/sh\necho ran\n")
        result = run_job(job)
    finally:
        sandbox.sandbox_problem.cache_clear()
    assert (result.state, result.hold_code) == (JobState.HELD, 6)
    assert "the job sandbox is not available" in result.hold_reason
    assert "bwrap is not installed" in result.hold_reason and "BATCH_SANDBOX=trusted" in result.hold_reason
    held = read_events(job.job_dir / "job.log")[-1]
    assert (held.kind, held.reason) == ("held", result.hold_reason)
    assert not (job.job_dir / "job.out").exists()  # the script never ran


def test_trusted_mode_runs_a_job_as_the_workers_user_without_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration.batch import sandbox

    monkeypatch.setattr(sandbox, "tool", lambda name: None)  # no bubblewrap at all: trusted mode needs none
    job = _job(
        tmp_path, "#!/bin/sh\nid -u\nls /proc | grep -c '^[0-9]'\n", sandbox=SandboxConfig(mode="trusted")
    )
    assert run_job(job).state == JobState.DONE
    uid, processes = _out(job).split()
    assert int(uid) == os.getuid() and int(processes) > 6  # the machine's processes are in view


def test_the_sandbox_refuses_root_as_the_job_uid() -> None:
    with pytest.raises(ValueError, match="never run as root"):
        SandboxConfig(uid=0)
    with pytest.raises(ValueError, match="sandbox mode must be one of required, trusted"):
        SandboxConfig(mode="off")
