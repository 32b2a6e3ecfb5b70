"""Test settings: the main settings module with test-only defaults for the environment.

Only defaults change: a separate var directory and broker, so a running `make run`
is never disturbed; CI overrides DATABASE_URL and CELERY_BROKER_URL to test against
PostgreSQL and Redis.
"""

import os
from pathlib import Path

_var = Path(__file__).resolve().parent.parent / "var" / "test"
_var.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("PORTAL_VAR_DIR", str(_var))
# Per test run, so concurrent runs on one machine never share a database or a queue.
_run = os.environ.setdefault("PORTAL_TEST_RUN", str(os.getpid()))
os.environ.setdefault("CELERY_BROKER_URL", f"sqla+sqlite:///{_var / f'broker-{_run}.sqlite3'}")
os.environ.setdefault("OPERATION_LEASE_SECONDS", "30")
# No cloud unless a test starts an emulator (port 9 refuses connections at once).
os.environ.setdefault("OPENSTACK_AUTH_URL", "http://127.0.0.1:9/identity/v3")

from config.settings import *  # noqa: E402,F403
from config.settings import DATABASES, VAR_DIR  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so a Celery worker process and the live server share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{_run}.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
