"""The system check: a harmless operation that proves the background machinery works end to end."""

from __future__ import annotations

import shutil
import time
import uuid

from django.conf import settings
from django.db import connection

from orchestration.errors import UserFacingError
from orchestration.operations import Progress, handler
from portal.models import Operation


@handler("system_check")
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
    if settings.BATCH_EXECUTOR == "local" and settings.BATCH_USE_BWRAP and not shutil.which("bwrap"):
        progress(
            100, "All checks passed, but bubblewrap is not installed: local batch jobs run without a sandbox"
        )
    else:
        progress(100, "All checks passed")


def _check_var_dir() -> None:
    probe = settings.VAR_DIR / f".probe-{uuid.uuid4().hex}"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserFacingError(f"The portal cannot write to its data directory: {exc.strerror}") from exc
