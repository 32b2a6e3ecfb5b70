"""Celery tasks, one module per area; importing this package registers them."""

from orchestration.tasks import batch, catalogues, cloud, cloud_actions, storage, system  # noqa: F401
