"""Lanes: a user's action starts at once however many jobs run, and Remove stops a running job at once.

Run: .venv/bin/python bench/lanes.py [N ...]        (default N = 2 8 32)
Targets (issue 15): from click (the form's POST) to "started" < 1 s while N jobs run, at every N;
from Remove's POST to the last process of the removed job gone < 2 s.

The Celery workers are started as `make run` starts them (runportal's command for each lane), on a
fresh SQLite database and the embedded SQLite broker in a temporary directory; the jobs lane gets N
slots so that N jobs really run (`sleep`, no CPU). The reference, in the same process, is the same
click with no job running.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="lanes-bench-"))
os.environ["PORTAL_VAR_DIR"] = str(TMP)
os.environ["DATABASE_URL"] = f"sqlite:///{TMP / 'bench.sqlite3'}"
os.environ["CELERY_BROKER_URL"] = f"sqla+sqlite:///{TMP / 'broker.sqlite3'}"
os.environ["BATCH_SCRATCH_ROOT"] = str(TMP / "scratch")
os.environ["OPENSTACK_AUTH_URL"] = "http://127.0.0.1:9/identity/v3"
os.environ["BATCH_PULLERS"] = "64"  # a submission asks this many job slots to pull: all of the largest N
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"

import django  # noqa: E402

django.setup()

import psutil  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from portal.management.commands.runportal import lane_worker_argv  # noqa: E402
from portal.models import Job, Membership, Operation, Project, Submission  # noqa: E402

CLICKS = 5  # operations timed at each N
JOB_SCRIPT = "#!/bin/bash\nsleep 900\n"


def wait_for(check: Callable[[], Any], seconds: float, what: str, every: float = 0.005) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)
    return value


def start_lanes(sizes: dict[str, int]) -> list[subprocess.Popen[bytes]]:
    """Each lane's worker as runportal starts it; returns once all are ready."""
    procs, logs = [], []
    for lane, size in sizes.items():
        log = TMP / f"worker-{lane}-{size}.log"
        with open(log, "wb") as out:
            procs.append(
                subprocess.Popen(
                    lane_worker_argv(lane, size, f"bench-{lane}-{size}", "INFO"),
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        logs.append(log)
    wait_for(lambda: all(b"ready." in log.read_bytes() for log in logs), 300, "the workers", every=0.2)
    return procs


def stop_lanes(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def submit(client: Client, user: User, n: int) -> Submission:
    response = client.post(
        "/batch/new/",
        {
            "name": f"hold-{n}",
            "script_name": "hold.bash",
            "script": JOB_SCRIPT,
            "items": "\n".join(f"item{i}" for i in range(n)),
            "request_cpus": 1,
            "request_memory_mb": 256,
            "request_disk_mb": 64,
            "executor": "local",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    return Submission.objects.filter(owner=user).latest("pk")


def click_to_started(client: Client, user: User) -> list[float]:
    """The system check's button, CLICKS times: seconds from the POST to the operation's start."""
    out = []
    for _ in range(CLICKS):
        before = Operation.objects.filter(owner=user, kind="system_check").count()
        start = time.perf_counter()
        assert client.post("/operations/system-check/").status_code == 302
        op = Operation.objects.filter(owner=user, kind="system_check").order_by("-pk").first()
        assert op is not None and before + 1 == Operation.objects.filter(kind="system_check").count()
        wait_for(
            lambda op=op: Operation.objects.filter(pk=op.pk, started__isnull=False).exists(), 120, "start"
        )
        out.append(time.perf_counter() - start)
        wait_for(lambda op=op: not Operation.objects.get(pk=op.pk).is_active, 120, "the check to end", 0.05)
    return out


def remove_one(client: Client, sub: Submission) -> float:
    """Remove one running job from its page: seconds from the POST until its last process is gone."""
    job = sub.jobs.filter(state=Job.RUNNING).exclude(pid=None).order_by("index").first()
    assert job is not None and job.pid
    leader = psutil.Process(job.pid)
    procs = [leader, *leader.children(recursive=True)]
    start = time.perf_counter()
    assert client.post(f"/batch/{sub.pk}/remove/", {"jobs": [job.pk]}).status_code == 302

    def gone() -> bool:
        return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)

    wait_for(gone, 60, "the removed job's processes to go")
    return time.perf_counter() - start


def remove_all(client: Client, sub: Submission) -> None:
    client.post(f"/batch/{sub.pk}/remove/")
    wait_for(
        lambda: not sub.jobs.filter(state__in=[Job.IDLE, Job.RUNNING]).exists(), 120, "all jobs removed", 0.1
    )


def line(name: str, samples: list[float], reference: float | None, target: float) -> None:
    worst, median = max(samples), statistics.median(samples)
    verdict = "OK" if worst < target else "MISSED"
    ratio = f"x{median / reference:5.2f} of reference" if reference else " " * 18
    print(
        f"{name:<44} median {median * 1000:6.0f} ms  max {worst * 1000:6.0f} ms  "
        f"{ratio}  target < {target:.0f} s: {verdict}"
    )


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [2, 8, 32]
    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench", "b@example.org", "x")
    project = Project.objects.create(name="bench-project", external_id="bench")
    Membership.objects.create(user=user, project=project)
    client = Client()
    client.force_login(user)
    print(
        f"CPUs: {os.cpu_count()}; embedded broker polled every {settings.CELERY_EMBEDDED_BROKER_POLL_SECONDS} s"
    )
    portal = start_lanes({"ops": 2, "sync": 1, "ccd": 1})
    try:
        jobs = start_lanes({"jobs": 2})
        try:
            click_to_started(client, user)  # warm-up: each worker process's first task
            reference = click_to_started(client, user)
        finally:
            stop_lanes(jobs)
        ref = statistics.median(reference)
        line("click to started, no job running (ref)", reference, ref, 1)
        for n in counts:
            jobs = start_lanes({"jobs": n})
            try:
                sub = submit(client, user, n)
                wait_for(
                    lambda sub=sub, n=n: sub.jobs.filter(state=Job.RUNNING).count() == n, 300, "jobs", 0.2
                )
                clicks = click_to_started(client, user)
                still = sub.jobs.filter(state=Job.RUNNING).count()
                removal = remove_one(client, sub)
                remove_all(client, sub)
            finally:
                stop_lanes(jobs)
            line(f"click to started, {n} jobs running ({still} still)", clicks, ref, 1)
            line(f"Remove to last process gone, {n} jobs", [removal], None, 2)
    finally:
        stop_lanes(portal)
    shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
