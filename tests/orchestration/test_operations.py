"""run_operation semantics, run in-process (the worker process itself is tested in tests/integration)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from orchestration import operations
from orchestration.errors import TransientError, UserFacingError
from portal.models import Operation


@pytest.fixture
def op(alice: User) -> Operation:
    return Operation.objects.create(owner=alice, kind="test_kind", title="Test")


@pytest.fixture
def register(monkeypatch: Any) -> Any:
    def _register(func: Any) -> None:
        monkeypatch.setattr(operations, "handler_for", lambda kind: func if kind == "test_kind" else None)

    return _register


def test_it_runs_a_handler_and_records_progress(op: Operation, register: Any) -> None:
    seen: list[int] = []

    def work(o: Operation, progress: Any) -> None:
        progress(50, "half way")
        seen.append(Operation.objects.get(pk=o.pk).progress)

    register(work)
    assert operations.run_operation.apply(args=[op.pk]).get() == "succeeded"
    op.refresh_from_db()
    assert (op.state, op.progress, op.message, op.attempts) == ("succeeded", 100, "half way", 1)
    assert seen == [50] and op.started and op.finished


def test_it_shows_a_user_facing_error_as_is(op: Operation, register: Any) -> None:
    def work(o: Operation, progress: Any) -> None:
        raise UserFacingError("Flavor c2-7.5gb-31 does not exist in this project.")

    register(work)
    operations.run_operation.apply(args=[op.pk])
    op.refresh_from_db()
    assert op.state == "failed" and op.error == "Flavor c2-7.5gb-31 does not exist in this project."


def test_it_hides_a_crash_behind_a_reference_that_the_log_line_with_the_traceback_names(
    op: Operation, register: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def work(o: Operation, progress: Any) -> None:
        raise KeyError("internal detail")

    register(work)
    with caplog.at_level(logging.ERROR, logger="orchestration.operations"):
        operations.run_operation.apply(args=[op.pk])
    op.refresh_from_db()
    assert op.state == "failed"
    assert op.error.startswith(f"Something went wrong on the portal's side (reference op-{op.pk}).")
    assert "internal detail" not in op.error and "KeyError" not in op.error
    (record,) = [r for r in caplog.records if f"reference op-{op.pk}" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is KeyError  # the traceback is logged
    assert "internal detail" in caplog.text


def test_it_never_shows_a_crash_as_an_outage(op: Operation, register: Any) -> None:
    def work(o: Operation, progress: Any) -> None:
        raise AttributeError("'NoneType' object has no attribute 'id'")

    register(work)
    operations.run_operation.apply(args=[op.pk])
    op.refresh_from_db()
    assert op.attempts == 1 and op.state == "failed"  # not retried as if the cloud were down
    assert "portal's side" in op.error and "did not answer" not in op.error and "unavailable" not in op.error


def test_it_retries_a_transient_fault_then_gives_up_with_the_reason(op: Operation, register: Any) -> None:
    attempts: list[int] = []

    def work(o: Operation, progress: Any) -> None:
        attempts.append(o.attempts)
        raise TransientError("The cloud answered 503.")

    register(work)
    operations.run_operation.apply(args=[op.pk])  # eager: the retries run in place
    op.refresh_from_db()
    assert attempts == [1, 2, 3, 4, 5]
    assert op.state == "failed" and op.error == "The cloud answered 503. (gave up after 5 attempts)"


def test_it_succeeds_when_a_transient_fault_clears(op: Operation, register: Any) -> None:
    def work(o: Operation, progress: Any) -> None:
        if o.attempts < 3:
            raise TransientError("timeout")

    register(work)
    operations.run_operation.apply(args=[op.pk])
    op.refresh_from_db()
    assert (op.state, op.attempts) == ("succeeded", 3)


def test_it_never_runs_an_operation_twice_at_once(op: Operation, register: Any) -> None:
    calls: list[int] = []
    register(lambda o, p: calls.append(o.pk))
    Operation.objects.filter(pk=op.pk).update(state=Operation.RUNNING, updated=timezone.now())
    assert operations.run_operation.apply(args=[op.pk]).get() == "not claimable"
    assert calls == []


def test_it_reclaims_an_operation_whose_worker_died(op: Operation, register: Any, monkeypatch: Any) -> None:
    calls: list[int] = []
    register(lambda o, p: calls.append(o.pk))
    stale = timezone.now() - operations.LEASE - timedelta(seconds=5)
    Operation.objects.filter(pk=op.pk).update(state=Operation.RUNNING, attempts=1)
    Operation.objects.filter(pk=op.pk).update(updated=stale)  # auto_now is bypassed by update()
    sent: list[Any] = []
    monkeypatch.setattr(operations.run_operation, "apply_async", lambda args: sent.append(args))
    assert operations.repair_operations() == 1 and sent == [[op.pk]]
    operations.run_operation.apply(args=[op.pk])
    op.refresh_from_db()
    assert calls == [op.pk] and op.state == "succeeded" and op.attempts == 2


def test_it_fails_an_unknown_kind_clearly(alice: User) -> None:
    op = Operation.objects.create(owner=alice, kind="nonsense", title="?")
    operations.run_operation.apply(args=[op.pk])
    op.refresh_from_db()
    assert op.state == "failed" and "does not know how to run" in op.error
