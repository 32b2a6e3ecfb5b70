"""Celery tasks, one module per area; importing this package registers them."""

from orchestration.tasks import system  # noqa: F401
