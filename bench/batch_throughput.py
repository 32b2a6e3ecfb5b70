"""1,000 trivial jobs through the portal on the local executor: dispatch to all done, on real Celery workers.

Run: .venv/bin/python bench/batch_throughput.py [N] [WORKER_PROCESSES]   (target, issue 5: N=1000 under 60 s)
Reference in the same process: the same N jobs run one after another by the bare runner (no portal, no
Celery, no database), so the ratio shows what the portal adds. Fresh SQLite database and embedded broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="batch-throughput-bench-"))
ENV = {
    "PORTAL_VAR_DIR": str(TMP),
    "DATABASE_URL": f"sqlite:///{TMP / 'bench.sqlite3'}",
    "CELERY_BROKER_URL": f"sqla+sqlite:///{TMP / 'broker.sqlite3'}",
    "BATCH_ROOT": str(TMP / "batch"),
    "BATCH_SCRATCH_ROOT": str(TMP / "scratch"),
    "DJANGO_SETTINGS_MODULE": "config.settings",
}
os.environ.update(ENV)

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

from orchestration.batch.base import BatchSpec  # noqa: E402
from orchestration.batch.local_runner import LocalJob, run_job  # noqa: E402
from orchestration.batch.submit import build_submit, parse_spec  # noqa: E402
from orchestration.operations import Progress  # noqa: E402
from orchestration.tasks.batch import batch_submit  # noqa: E402
from portal.models import Job, Operation  # noqa: E402
from portal.models.batch import record_submission  # noqa: E402

SCRIPT = "#!/bin/sh\nexit 0\n"


def reference(n: int) -> float:
    script = TMP / "true.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    start = time.perf_counter()
    for i in range(n):
        run_job(
            LocalJob(
                cluster=1,
                proc=i,
                script=script,
                argv=[],
                job_dir=TMP / "ref",
                output=f"{i}.out",
                error=f"{i}.err",
                log=f"{i}.log",
                scratch_root=TMP / "ref-scratch",
            )
        )
    return time.perf_counter() - start


def main(n: int, processes: int) -> None:
    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench", "b@example.org", "x")
    spec = BatchSpec(name="trivial", script_name="true.sh", items=[f"{1000000 + i}p" for i in range(n)])
    sub = record_submission(
        owner=user,
        project=None,
        name="trivial",
        executor="local",
        script_name="true.sh",
        script=SCRIPT,
        submit_text=build_submit(spec),
        parsed=parse_spec(spec),
    )
    op = Operation.objects.create(
        owner=user,
        kind="batch_submit",
        title="t",
        state="running",
        params={"submission": sub.pk, "part": "all"},
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--loglevel",
            "WARNING",
            "--concurrency",
            str(processes),
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env={**os.environ, **ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(8)  # the worker is up and waiting
        start = time.perf_counter()
        batch_submit(op, Progress(op))
        jobs = Job.objects.filter(submission=sub)
        while jobs.exclude(state=Job.DONE).exists():
            if time.perf_counter() - start > 600:
                raise SystemExit(f"not finished after 600 s: {jobs.filter(state=Job.DONE).count()} done")
            time.sleep(0.25)
        portal_s = time.perf_counter() - start
    finally:
        worker.terminate()
        worker.wait(30)
    ref_s = reference(n)
    print(
        f"{n:,} trivial jobs through the portal, {processes} worker processes: {portal_s:.1f} s "
        f"({portal_s / n * 1000:.1f} ms per job of wall time); target: {'OK' if portal_s < 60 else 'MISSED'} "
        "(< 60 s for 1,000)"
    )
    print(f"  reference, the bare runner one job after another: {ref_s:.1f} s; ratio {portal_s / ref_s:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, int(sys.argv[2]) if len(sys.argv) > 2 else 2)
