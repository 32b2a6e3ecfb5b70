"""Measuring a user's storage: at once with local folders, by a worker (sent by name) with VOSpace."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from kombu.simple import SimpleQueue

from config.celery import app
from orchestration import storage_usage
from orchestration.storage.base import StorageUnavailable
from orchestration.storage.local import LocalStorage
from orchestration.tasks.storage import refresh_storage_usage
from portal.models import StorageUsage


def _sent(queue: str) -> list[tuple[str, list[Any]]]:
    """The task messages waiting in a queue of the broker: (task name, positional arguments)."""
    found = []
    with app.connection_for_read() as conn, SimpleQueue(conn, queue) as q:
        while len(found) < 5:
            try:
                message = q.get(block=False)
            except q.Empty:
                break
            args, _kwargs, _embed = message.decode()
            found.append((message.headers["task"], list(args)))
            message.ack()
    return found


def test_it_measures_local_storage_at_once(alice: User, home: Path) -> None:
    (home / "a.fits").write_bytes(b"x" * 2880)
    (home / "sub").mkdir()
    (home / "sub" / "b.txt").write_bytes(b"y" * 20)
    assert storage_usage.refresh_usage(alice) == 2900
    assert StorageUsage.objects.get(user=alice).bytes_used == 2900


def test_it_asks_a_worker_to_measure_vospace_once_the_change_is_committed(
    alice: User, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The task is named by its path (this module is below the tasks): the name must be the task's,
    and the message must reach the lane the routes give it, with the user's id."""
    assert refresh_storage_usage.name == storage_usage.USAGE_TASK
    queue = f"usage-{os.getpid()}-{socket.gethostname()}"
    settings.CELERY_TASK_ROUTES = {**settings.CELERY_TASK_ROUTES, storage_usage.USAGE_TASK: {"queue": queue}}
    settings.STORAGE_BACKEND = "vospace"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert storage_usage.refresh_usage(alice) is None
    assert _sent(queue) == []  # nothing before the commit: the worker would not see the change
    assert len(callbacks) == 1
    callbacks[0]()
    assert _sent(queue) == [(refresh_storage_usage.name, [alice.pk])]
    assert not StorageUsage.objects.filter(user=alice).exists()  # the page did not measure


def test_the_task_records_what_it_measures_and_ignores_a_gone_user(alice: User, home: Path) -> None:
    (home / "c.txt").write_bytes(b"z" * 7)
    refresh_storage_usage(alice.pk)
    assert StorageUsage.objects.get(user=alice).bytes_used == 7
    refresh_storage_usage(alice.pk + 1000)
    assert StorageUsage.objects.count() == 1


class _Down(LocalStorage):
    def usage(self) -> int:
        raise StorageUnavailable("VOSpace did not answer")


def test_a_storage_that_fails_leaves_the_last_figure_and_logs_why(
    alice: User, home: Path, caplog: Any
) -> None:
    StorageUsage.record(alice, 123)
    with caplog.at_level(logging.WARNING, logger="orchestration.storage_usage"):
        assert storage_usage.refresh_usage(alice, _Down(home)) is None
    assert StorageUsage.objects.get(user=alice).bytes_used == 123
    assert f"storage usage of user {alice.pk} not measured: StorageUnavailable" in caplog.text
