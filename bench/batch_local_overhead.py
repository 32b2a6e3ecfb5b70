"""Per-job overhead of the local executor's runner: N `/bin/true` jobs against plain subprocess.run.

Run: .venv/bin/python bench/batch_local_overhead.py [N]   (target: < 50 ms per job)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestration.batch.base import JobState
from orchestration.batch.local import LocalJob, run_job


def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        for _ in range(n):
            subprocess.run(["/bin/true"], check=True)
        plain = time.perf_counter() - start

        start = time.perf_counter()
        for proc in range(n):
            job = LocalJob(
                cluster=1,
                proc=proc,
                script=Path("/bin/true"),
                argv=[str(proc)],
                job_dir=root / "jobs",
                output=f"true-{proc}.out",
                error=f"true-{proc}.err",
                log=f"true-{proc}.log",
                scratch_root=root / "scratch",
            )
            result = run_job(job)
            assert result.state == JobState.DONE, result
        runner = time.perf_counter() - start

    print(f"jobs: {n}")
    print(f"plain subprocess.run: {plain / n * 1000:.2f} ms per job")
    print(f"local runner (scratch, limits, logs): {runner / n * 1000:.2f} ms per job (target < 50 ms)")
    print(f"ratio runner / plain: {runner / plain:.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
