import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")


def route_by_lane(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> Any:
    """The lane of a task, from settings.CELERY_TASK_ROUTES, read when the task is sent (so a test can
    override it); tasks not listed there go to CELERY_TASK_DEFAULT_QUEUE."""
    from django.conf import settings

    route = settings.CELERY_TASK_ROUTES.get(name)
    return dict(route) if route else None  # a copy: Celery's router merges a call's options into it


app.conf.task_routes = (route_by_lane,)

if str(app.conf.broker_url or "").startswith("sqla+"):
    # kombu hands this transport's options to SQLAlchemy's create_engine, so its polling interval
    # (1 s by default: the wait before a worker sees a new task) is set on the transport itself.
    from django.conf import settings as _settings
    from kombu.transport import sqlalchemy as _sqla

    _sqla.Transport.polling_interval = _settings.CELERY_EMBEDDED_BROKER_POLL_SECONDS
