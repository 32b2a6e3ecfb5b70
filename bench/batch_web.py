"""Batch pages at scale: a 5,000-item submission through the form, and the queue with 20,000 jobs.

Run: .venv/bin/python bench/batch_web.py
Targets (issue 5): submit (validate + record + dispatch) < 3 s; queue page p95 < 150 ms.
Uses a fresh SQLite database and broker in a temporary directory; reference runs in the
same process: a bare bulk insert of the same rows, and the dashboard page.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="batch-web-bench-"))
os.environ["PORTAL_VAR_DIR"] = str(TMP)
os.environ["DATABASE_URL"] = f"sqlite:///{TMP / 'bench.sqlite3'}"
os.environ["CELERY_BROKER_URL"] = f"sqla+sqlite:///{TMP / 'broker.sqlite3'}"
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.test import Client  # noqa: E402

from portal.forms.batch import SEED_SCRIPT  # noqa: E402
from portal.models import Job, Membership, Project, Submission  # noqa: E402


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def timed_get(client: Client, url: str, n: int) -> list[float]:
    client.get(url)  # warm up
    out = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(url)
        out.append(time.perf_counter() - start)
        assert response.status_code == 200, (url, response.status_code)
    return out


def main() -> None:
    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench", "b@example.org", "x")
    project = Project.objects.create(name="bench-project", external_id="bench")
    Membership.objects.create(user=user, project=project)
    client = Client()
    client.force_login(user)

    items = "\n".join(f"{1000000 + i}p" for i in range(5000))
    form = {
        "name": "big",
        "script_name": "do_catalogue.bash",
        "script": SEED_SCRIPT,
        "items": items,
        "request_cpus": 1,
        "request_memory_mb": 2048,
        "request_disk_mb": 4096,
        "executor": "local",
    }
    start = time.perf_counter()
    response = client.post("/batch/new/", form)  # on_commit sends the Operation to the broker
    submit_s = time.perf_counter() - start
    assert response.status_code == 302, response.content[:2000]
    sub = Submission.objects.get(name="big")
    assert sub.jobs.count() == 5000

    start = time.perf_counter()
    with transaction.atomic():
        ref = Submission.objects.create(owner=user, name="ref", script_name="x", script="x", submit_text="")
        Job.objects.bulk_create(
            [
                Job(submission=ref, index=i, proc=i, item=str(i), output="o", error="e", log="l")
                for i in range(5000)
            ],
            batch_size=1000,
        )
    insert_s = time.perf_counter() - start
    print(f"5,000-item submission: {submit_s * 1000:.0f} ms (target 3000 ms, {submit_s / 3:.2f} of budget)")
    print(
        f"  reference bulk insert of 5,000 rows: {insert_s * 1000:.0f} ms; ratio {submit_s / insert_s:.1f}x"
    )

    # 20,000 jobs in the database: the two above plus 10 more submissions, states mixed.
    states = ["done", "done", "done", "failed", "running", "idle", "held"]
    for n in range(10):
        s = Submission.objects.create(
            owner=user,
            name=f"s{n}",
            script_name="x",
            script="x",
            submit_text="",
            state="active",
            num_jobs=1000,
        )
        Job.objects.bulk_create(
            [
                Job(
                    submission=s,
                    index=i,
                    proc=i,
                    item=f"i{i}",
                    output="o",
                    error="e",
                    log="l",
                    state=states[i % 7],
                )
                for i in range(1000)
            ],
            batch_size=1000,
        )
    total = Job.objects.count()
    queue = timed_get(client, "/batch/", 60)
    detail = timed_get(client, f"/batch/{sub.pk}/", 60)
    dashboard = timed_get(client, "/", 60)
    print(f"queue page with {total:,} jobs: p95 {p95(queue) * 1000:.1f} ms (target 150 ms)")
    print(f"  submission page (5,000 jobs, paginated): p95 {p95(detail) * 1000:.1f} ms")
    ratio = p95(queue) / p95(dashboard)
    print(f"  reference dashboard page: p95 {p95(dashboard) * 1000:.1f} ms; queue/dashboard {ratio:.2f}x")

    # The worker side of the same submission: the local executor records 5,000 jobs and queues 5,000 tasks.
    from orchestration.operations import Progress
    from orchestration.tasks.batch import batch_submit
    from portal.models import Operation

    op = Operation.objects.get(kind="batch_submit", params__submission=sub.pk)
    start = time.perf_counter()
    batch_submit(op, Progress(op))
    worker_s = time.perf_counter() - start
    print(
        f"worker side (batch_submit handler, 5,000 local jobs sent to the broker): {worker_s * 1000:.0f} ms"
    )


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
