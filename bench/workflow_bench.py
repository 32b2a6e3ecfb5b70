"""Workflows: what the user waits for, against the batch equivalent in the same process.

1. A 10,000-node DAG (1 + 3,333 x 3, the LSST shape) validated and recorded (target < 3 s),
   against recording a 10,000-job batch from its submit file.
2. Local scheduling overhead per node: N trivial nodes in chains of 10 against N independent jobs
   of one batch, run by the same worker slot of this process one after the other (target < 20 ms).
3. The workflow page at 10,000 nodes, p95 over HTTP (target < 300 ms), against the batch page of a
   10,000-job batch.

Run: .venv/bin/python bench/workflow_bench.py [N]   (N trivial nodes for 2; default 1000)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._django import measure, report, serve, session_for, setup_django  # noqa: E402


def main(n: int) -> None:
    setup_django()
    from unittest import mock

    from django.contrib.auth.models import User

    from orchestration import local_wake, workflow_engine
    from orchestration.batch.dag import StageSpec, check_workflow, form_dag
    from orchestration.batch.submit import parse_submit
    from orchestration.tasks import batch as batch_tasks
    from orchestration.tasks import local_pulling
    from portal.models import Job, Submission, Workflow
    from portal.models.batch import record_submission
    from portal.models.workflows import record_workflow

    user = User.objects.create_user("bench", password="x")
    items = [f"im{i:05d}" for i in range(3333)]
    steps = [StageSpec(f"step{i}", f"step{i}.sh") for i in (1, 2, 3)]
    text, submits = form_dag(items, steps, StageSpec("init", "init.sh"), None)
    files = {**submits, **{f"step{i}.sh": "#!/bin/sh\n" for i in (1, 2, 3)}, "init.sh": "#!/bin/sh\n"}

    # 1. validate + record
    batch_text = (
        "executable = run.sh\noutput = run-$(arguments).out\nerror = run-$(arguments).err\n"
        "log = run-$(arguments).log\nqueue arguments from (\n"
        + "\n".join(f"  j{i}" for i in range(10_000))
        + "\n)\n"
    )
    start = time.perf_counter()
    parsed = parse_submit(batch_text)
    record_submission(
        owner=user,
        project=None,
        name="ref",
        executor="local",
        script_name="run.sh",
        script="#!/bin/sh\n",
        submit_text=batch_text,
        parsed=parsed,
    )
    reference = time.perf_counter() - start
    start = time.perf_counter()
    vetted = check_workflow(text, files)
    checked = time.perf_counter() - start
    big = record_workflow(owner=user, project=None, name="big", executor="local", vetted=vetted, files=files)
    took = time.perf_counter() - start
    print(
        f"validate+record 10,000 nodes: {took:5.2f} s (validate {checked:4.2f} s)  "
        f"x{took / reference:4.2f} of a 10,000-job batch ({reference:4.2f} s)  "
        f"target < 3 s: {'OK' if took < 3 else 'MISSED'}"
    )

    # 3. the page at 10,000 nodes
    base, stop = serve()
    session = session_for(user)
    ref_sub = Submission.objects.get(name="ref")
    ref_page = measure(session, f"{base}/batch/{ref_sub.pk}/", n=30)
    page = measure(session, f"{base}/workflows/{big.pk}/", n=30)
    report("batch page, 10,000 jobs (reference)", ref_page, ref_page, None)
    report("workflow page, 10,000 nodes", page, ref_page, 300)
    stop()

    # 2. scheduling overhead, same worker slot, same run
    import tempfile

    from django.conf import settings

    tmp = Path(tempfile.mkdtemp(prefix="wf-bench-"))
    settings.BATCH_ROOT, settings.BATCH_SCRATCH_ROOT = tmp / "batch", tmp / "scratch"
    Job.objects.all().delete()
    Submission.objects.all().delete()
    Workflow.objects.all().delete()

    def run_until_idle() -> int:
        ran = 0
        while (k := local_pulling.pull_local_jobs()) or local_pulling._pullable().exists():
            ran += k
        return ran

    with mock.patch.object(local_wake, "wake_local_workers", lambda n: None):
        flat_text = (
            "executable = t.sh\noutput = t-$(arguments).out\nerror = t-$(arguments).err\nlog = t-$(arguments).log\n"
            "queue arguments from (\n" + "\n".join(f"  j{i}" for i in range(n)) + "\n)\n"
        )
        sub = record_submission(
            owner=user,
            project=None,
            name="flat",
            executor="local",
            script_name="t.sh",
            script="#!/bin/sh\n",
            submit_text=flat_text,
            parsed=parse_submit(flat_text),
        )
        start = time.perf_counter()
        op = batch_tasks.Operation.objects.create(
            owner=user, kind="batch_submit", params={"submission": sub.pk}
        )
        batch_tasks.batch_submit(op, lambda *a: None)  # type: ignore[arg-type]
        flat_ran = run_until_idle()
        flat = time.perf_counter() - start
        chains = n // 10
        node_sub = "executable = t.sh\narguments = $(x)\noutput = $(x).out\nerror = $(x).err\nlog = $(x).log\nqueue\n"
        lines = []
        for c in range(chains):
            for k in range(10):
                lines += [f"JOB c{c}_{k} t.sub", f'VARS c{c}_{k} x="c{c}_{k}"']
                if k:
                    lines.append(f"PARENT c{c}_{k - 1} CHILD c{c}_{k}")
        wf_files = {"t.sub": node_sub, "t.sh": "#!/bin/sh\n"}
        wf = record_workflow(
            owner=user,
            project=None,
            name="chains",
            executor="local",
            vetted=check_workflow("\n".join(lines) + "\n", wf_files),
            files=wf_files,
        )
        start = time.perf_counter()
        workflow_engine.start_local(wf)
        wf_ran = run_until_idle()
        chained = time.perf_counter() - start
    wf.refresh_from_db()
    assert flat_ran == n and wf_ran == chains * 10 and wf.state == Workflow.DONE, (flat_ran, wf_ran, wf.state)
    per_job = flat / n * 1000
    per_node = chained / (chains * 10) * 1000
    overhead = per_node - per_job
    print(
        f"local: {n} independent jobs {per_job:6.1f} ms/job; {chains * 10} nodes in chains of 10 "
        f"{per_node:6.1f} ms/node (x{per_node / per_job:4.2f}); overhead {overhead:5.1f} ms/node  "
        f"target < 20 ms: {'OK' if overhead < 20 else 'MISSED'}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
