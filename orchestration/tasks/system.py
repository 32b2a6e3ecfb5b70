"""The system check: a harmless operation that proves the background machinery works end to end."""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.db import connection

from orchestration.backends import sandbox_config
from orchestration.batch.sandbox import TRUSTED, sandbox_problem
from orchestration.errors import UserFacingError
from orchestration.operations import Progress
from portal.models import Operation


def system_check(op: Operation, progress: Progress) -> None:
    step_seconds = float(op.params.get("step_seconds", 0.4))
    checks = [
        ("Worker picked up the operation", lambda: None),
        ("Database answers", lambda: connection.ensure_connection()),
        ("Working directory is writable", _check_var_dir),
        ("Background processing works", lambda: None),
    ]
    for index, (label, check) in enumerate(checks, start=1):
        check()
        time.sleep(step_seconds)
        progress(round(100 * index / len(checks)) - (1 if index == len(checks) else 0), label)
    op.result = {"checks": [label for label, _ in checks]}
    op.save(update_fields=["result"])
    progress(100, f"All checks passed{_sandbox_note()}")


def _sandbox_note() -> str:
    """Which mode local batch jobs run in on this machine (they are held when the sandbox is missing)."""
    if "local" not in settings.BATCH_EXECUTORS:
        return ""
    config = sandbox_config()
    if config.mode == TRUSTED:
        return "; local batch jobs run in trusted mode, as the workers' user, without a sandbox"
    problem = sandbox_problem(config)
    if problem is not None:
        return (
            f", but the job sandbox is not available here ({problem}): local batch jobs are held "
            "until it is (or BATCH_SANDBOX=trusted on a single-user install)"
        )
    return "; local batch jobs run in the sandbox"


def _check_var_dir() -> None:
    probe = settings.VAR_DIR / f".probe-{uuid.uuid4().hex}"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserFacingError(f"The portal cannot write to its data directory: {exc.strerror}") from exc
