import os
from typing import Any

from celery import Celery
from celery.signals import worker_init

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


@worker_init.connect
def embedded_broker_polling(**kwargs: Any) -> None:
    """kombu hands the SQLAlchemy transport's options to SQLAlchemy's create_engine, so its polling
    interval (1 s by default: the wait before a worker sees a new task) is set on the transport itself,
    in workers only: importing the transport (and SQLAlchemy) costs every other process 0.25 s."""
    if str(app.conf.broker_url or "").startswith("sqla+"):
        from django.conf import settings
        from kombu.transport import sqlalchemy as sqla  # only workers poll (see the docstring)

        sqla.Transport.polling_interval = settings.CELERY_EMBEDDED_BROKER_POLL_SECONDS
