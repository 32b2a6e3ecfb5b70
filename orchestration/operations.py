"""Starting operations and running them on Celery workers.

``start_operation`` records an ``Operation`` row in the request's transaction and
sends it to a worker once that transaction commits. Each operation kind has one
handler, named in the table of ``orchestration/kinds.py``. ``run_operation`` claims the row
with a conditional update, so a redelivered message (late acknowledgement after a
worker died) or a repair by beat never runs one operation twice at the same time.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from orchestration.errors import TransientError, UserFacingError, Wait, portal_fault
from orchestration.kinds import HANDLERS
from portal.models import Operation

log = logging.getLogger(__name__)

Handler = Callable[[Operation, "Progress"], None]

# A running operation whose row has not moved for this long is taken to be
# orphaned by a dead worker and is queued again by ``repair_operations``.
LEASE = timedelta(seconds=getattr(settings, "OPERATION_LEASE_SECONDS", 120))
MAX_ATTEMPTS = 5


def operation_reference(op: Operation) -> str:
    """How a crash of this operation is named to the user and in the log."""
    return f"op-{op.pk}"


@functools.cache
def handler_for(kind: str) -> Handler | None:
    """The function that runs operations of this kind (``orchestration/kinds.py``), or None."""
    path = HANDLERS.get(kind)
    return None if path is None else cast(Handler, import_string(path))


def start_operation(
    *,
    owner: Any,
    kind: str,
    title: str,
    project: Any = None,
    target: str = "",
    params: dict[str, Any] | None = None,
) -> Operation:
    """Record an operation and send it to a worker once the surrounding transaction commits."""
    op = Operation.objects.create(
        owner=owner, project=project, kind=kind, title=title, target=target, params=params or {}
    )
    dispatch_operation(op.pk)
    return op


def dispatch_operation(op_id: int) -> None:
    """Send an operation to a worker once the surrounding transaction commits."""

    def send() -> None:
        result = run_operation.apply_async(args=[op_id])
        Operation.objects.filter(pk=op_id, celery_task_id="").update(celery_task_id=result.id)

    transaction.on_commit(send)


class Progress:
    """Writes progress to the operation row; each write also renews its lease."""

    def __init__(self, op: Operation) -> None:
        self.op = op

    def __call__(self, percent: int, message: str = "") -> None:
        percent = max(0, min(100, int(percent)))
        fields = {"progress": percent, "updated": timezone.now()}
        if message:
            fields["message"] = message[:500]
        Operation.objects.filter(pk=self.op.pk).update(**fields)
        self.op.progress = percent


def _claim(op_id: int) -> Operation | None:
    now = timezone.now()
    waiting = Q(state=Operation.RUNNING, waiting=True)
    stale = Q(state=Operation.RUNNING, updated__lt=now - LEASE)
    resumed = Operation.objects.filter(waiting, pk=op_id).update(waiting=False, updated=now)
    if not resumed:
        claimed = Operation.objects.filter(Q(state=Operation.QUEUED) | stale, pk=op_id).update(
            state=Operation.RUNNING, updated=now, attempts=F("attempts") + 1, error="", waiting=False
        )
        if not claimed:
            return None
        Operation.objects.filter(pk=op_id, started__isnull=True).update(started=now)
    return Operation.objects.select_related("owner", "project").get(pk=op_id)


def _finish(op: Operation, state: str, error: str = "", message: str | None = None) -> None:
    fields: dict[str, object] = {"state": state, "finished": timezone.now(), "error": error, "waiting": False}
    if state == Operation.SUCCEEDED:
        fields["progress"] = 100
    if message is not None:
        fields["message"] = message[:500]
    Operation.objects.filter(pk=op.pk).update(**fields)


@shared_task(bind=True, acks_late=True, max_retries=MAX_ATTEMPTS)
def run_operation(self, op_id: int) -> str:  # type: ignore[no-untyped-def]
    op = _claim(op_id)
    if op is None:
        return "not claimable"
    func = handler_for(op.kind)
    if func is None:
        _finish(op, Operation.FAILED, f"This portal does not know how to run “{op.kind}”.")
        return "unknown kind"
    try:
        func(op, Progress(op))
    except Wait as wait:
        fields: dict[str, object] = {"waiting": True, "updated": timezone.now()}
        if wait.message:
            fields["message"] = wait.message[:500]
        Operation.objects.filter(pk=op.pk, state=Operation.RUNNING).update(**fields)
        run_operation.apply_async(args=[op.pk], countdown=wait.seconds)
        return "waiting"
    except TransientError as exc:  # before UserFacingError: "unavailable" errors are both
        if op.attempts >= MAX_ATTEMPTS:
            _finish(op, Operation.FAILED, f"{exc} (gave up after {op.attempts} attempts)")
            return "failed"
        delay = min(300, 2**op.attempts)
        Operation.objects.filter(pk=op.pk).update(
            state=Operation.QUEUED, message=f"Retrying in {delay} s: {exc}"[:500]
        )
        raise self.retry(countdown=delay, exc=exc) from exc
    except UserFacingError as exc:
        _finish(op, Operation.FAILED, str(exc))
        return "failed"
    except Exception:
        reference = operation_reference(op)
        log.exception("operation %s (%s) crashed: reference %s", op.pk, op.kind, reference)
        _finish(op, Operation.FAILED, portal_fault(reference))
        return "crashed"
    op.refresh_from_db(fields=["state"])
    if op.state == Operation.RUNNING:
        _finish(op, Operation.SUCCEEDED)
    return "succeeded"


@shared_task
def repair_operations() -> int:
    """Re-dispatch operations whose worker died or whose message was lost."""
    now = timezone.now()
    stale = Q(state__in=Operation.ACTIVE_STATES, updated__lt=now - LEASE)
    count = 0
    for op in Operation.objects.filter(stale).only("pk", "attempts")[:200]:
        if op.attempts >= MAX_ATTEMPTS:
            _finish(op, Operation.FAILED, "The worker running this operation stopped too many times.")
            continue
        # Conditional, so two beat runs (or a live worker renewing its lease) never race.
        if Operation.objects.filter(stale, pk=op.pk).update(state=Operation.QUEUED, updated=now):
            run_operation.apply_async(args=[op.pk])
            count += 1
    return count
