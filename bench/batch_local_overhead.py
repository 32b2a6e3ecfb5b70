"""Per-job overhead of the local executor's runner: N `/bin/true` jobs in the job sandbox, against the
runner with the sandbox it replaced (bubblewrap as root over `--ro-bind / /`, no namespaces, kept here
only as the reference) and against plain subprocess.run; a few with the egress network; and how long
Hold takes to stop a job.

Run: .venv/bin/python bench/batch_local_overhead.py [N]   (target: < 50 ms per job)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestration.batch import cgroups, local_runner
from orchestration.batch.base import JobState
from orchestration.batch.local_runner import JobResult, LocalJob, run_job
from orchestration.batch.sandbox import TRUSTED, SandboxConfig


def old_command(
    job: LocalJob, scratch: Path, netns: str | None = None, seccomp: int | None = None
) -> list[str]:
    """The reference: the runner's command line before the job sandbox (root, every capability, no
    seccomp filter)."""
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    wrap = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    wrap += ["--bind", str(scratch), str(scratch), "--chdir", str(scratch), "--die-with-parent", "--"]
    return [*wrap, f"./{job.script.name}", *job.argv]


def _job(
    root: Path, proc: int, script: Path, sandbox: SandboxConfig, stop_file: Path | None = None
) -> LocalJob:
    return LocalJob(
        cluster=1,
        proc=proc,
        script=script,
        argv=[str(proc)],
        job_dir=root / "jobs",
        output=f"job-{proc}.out",
        error=f"job-{proc}.err",
        log=f"job-{proc}.log",
        scratch_root=root / "scratch",
        sandbox=sandbox,
        stop_file=stop_file,
    )


def _jobs(root: Path, n: int, sandbox: SandboxConfig) -> float:
    start = time.perf_counter()
    for proc in range(n):
        result = run_job(_job(root, proc, Path("/bin/true"), sandbox))
        assert result.state == JobState.DONE, result
    return time.perf_counter() - start


def _hold_seconds(root: Path) -> float:
    """From the stop request (the file Hold and Remove create) to the runner's return, job all gone."""
    script = root / "sleeper.sh"
    script.write_text("#!/bin/sh\ntrap '' TERM\nsetsid sleep 60 &\nsleep 60\n")
    stop = root / "stop-0"
    results: list[JobResult] = []
    thread = threading.Thread(
        target=lambda: results.append(run_job(_job(root, 99, script, SandboxConfig(), stop)))
    )
    thread.start()
    time.sleep(0.5)
    begun = time.perf_counter()
    stop.touch()
    thread.join()
    return time.perf_counter() - begun


def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        for _ in range(n):
            subprocess.run(["/bin/true"], check=True)
        plain = time.perf_counter() - start
        run_job(_job(root, 0, Path("/bin/true"), SandboxConfig()))  # the sandbox's self-test, once
        sandboxed = _jobs(root, n, SandboxConfig())
        with (
            mock.patch.object(local_runner, "_command", old_command),
            mock.patch.object(cgroups, "create", lambda *a: cgroups.JobCgroup()),
        ):
            old = _jobs(root, n, SandboxConfig(mode=TRUSTED))
        egress_n = max(1, n // 10)
        run_job(_job(root, 0, Path("/bin/true"), SandboxConfig(network="egress")))  # its self-test
        egress = _jobs(root, egress_n, SandboxConfig(network="egress"))
        hold = _hold_seconds(root)

    print(f"jobs: {n}")
    print(f"plain subprocess.run: {plain / n * 1000:.2f} ms per job")
    print(f"old runner (bwrap as root over /, the reference): {old / n * 1000:.2f} ms per job")
    print(
        f"job sandbox (uid, namespaces, allow-list, cgroups): {sandboxed / n * 1000:.2f} ms per job (target < 50 ms)"
    )
    print(f"ratio sandbox / old: {sandboxed / old:.2f}x")
    print(f"ratio sandbox / plain: {sandboxed / plain:.1f}x")
    print(f"job sandbox with egress (pasta), {egress_n} jobs: {egress / egress_n * 1000:.2f} ms per job")
    print(
        f"hold of a running job (TERM ignored, a setsid child): stopped in {hold * 1000:.0f} ms (target < 2000 ms)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
