"""An operation travels through the real broker to a real Celery worker process."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import transaction

from orchestration.operations import start_operation
from tests.conftest import make_user

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_it_runs_an_operation_on_a_worker_process_with_visible_progress(
    client: Any, celery_worker_process: Any
) -> None:
    alice = make_user("alice", ["alice-lensing"])
    client.force_login(alice)
    with transaction.atomic():
        op = start_operation(
            owner=alice, kind="system_check", title="System check", params={"step_seconds": 0.6}
        )
    seen_states, seen_progress = set(), set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        html = client.get("/operations/panel/").content.decode()
        op.refresh_from_db()
        seen_states.add(op.state)
        for value in range(0, 101):
            if f'aria-valuenow="{value}"' in html:
                seen_progress.add(value)
        if op.state in ("succeeded", "failed"):
            break
        time.sleep(0.15)
    assert op.state == "succeeded", op.error
    assert "running" in seen_states
    assert any(0 < p < 100 for p in seen_progress), seen_progress
    assert 'aria-valuenow="100"' in client.get("/operations/panel/").content.decode()
    assert op.celery_task_id
