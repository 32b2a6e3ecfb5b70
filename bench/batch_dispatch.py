"""Dispatch of a 5,000-job local submission on the worker (the batch_submit operation).

Run: .venv/bin/python bench/batch_dispatch.py [N]
Measures batch_submit (executor records the jobs, rows updated, workers woken with BATCH_PULLERS
messages) against the reference it replaced in the same process: one broker message per job.
Uses a fresh SQLite database and the embedded broker in a temporary directory.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="batch-dispatch-bench-"))
os.environ["PORTAL_VAR_DIR"] = str(TMP)
os.environ["DATABASE_URL"] = f"sqlite:///{TMP / 'bench.sqlite3'}"
os.environ["CELERY_BROKER_URL"] = f"sqla+sqlite:///{TMP / 'broker.sqlite3'}"
os.environ["BATCH_ROOT"] = str(TMP / "batch")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

from config.celery import app  # noqa: E402
from orchestration.batch.base import BatchSpec  # noqa: E402
from orchestration.batch.submit import build_submit, parse_spec  # noqa: E402
from orchestration.operations import Progress  # noqa: E402
from orchestration.tasks.batch import batch_submit  # noqa: E402
from portal.models import Operation  # noqa: E402
from portal.models.batch import record_submission  # noqa: E402


def main(n: int) -> None:
    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench", "b@example.org", "x")
    spec = BatchSpec(name="big", script_name="do_catalogue.bash", items=[f"{1000000 + i}p" for i in range(n)])
    parsed = parse_spec(spec)
    sub = record_submission(
        owner=user,
        project=None,
        name="big",
        executor="local",
        script_name="do_catalogue.bash",
        script="#!/bin/bash\ntrue\n",
        submit_text=build_submit(spec),
        parsed=parsed,
    )
    op = Operation.objects.create(
        owner=user,
        kind="batch_submit",
        title="t",
        state="running",
        params={"submission": sub.pk, "part": "all"},
    )
    start = time.perf_counter()
    batch_submit(op, Progress(op))
    new_s = time.perf_counter() - start
    op.refresh_from_db()
    assert op.result == {"cluster": 1, "jobs": n}, op.result

    # Reference: what dispatch cost before, one message per job to the same broker.
    start = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for proc in range(n):
            app.send_task(
                "orchestration.tasks.batch.run_batch_job",
                args=[1, proc],
                queue="bench-ref",
                producer=producer,
            )
    ref_s = time.perf_counter() - start
    print(f"{n:,}-job local dispatch (batch_submit on the worker): {new_s * 1000:.0f} ms")
    print(f"  reference, one broker message per job: {ref_s * 1000:.0f} ms; ratio {new_s / ref_s:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
