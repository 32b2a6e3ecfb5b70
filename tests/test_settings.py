"""Configuration: bad values stop start-up with a message; production settings pass check --deploy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_manage(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DATABASE_URL", "CELERY_", "SECRET_KEY", "DJANGO_ALLOW_ASYNC", "OPENSTACK_", "PORTAL_")
        )
    }
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "PORTAL_VAR_DIR": str(ROOT / "var" / "test")})
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"IDENTITY_BACKEND": "ldap"}, "IDENTITY_BACKEND='ldap' is not one of: local, cadc"),
        ({"AXES_FAILURE_LIMIT": "many"}, "AXES_FAILURE_LIMIT must be an integer"),
        ({"PORTAL_EMBEDDED": "false"}, "SECRET_KEY must be set"),
        ({"CLOUD_BACKEND": "openstack"}, "OPENSTACK_AUTH_URL must be set"),
        ({"BATCH_EXECUTORS": "htcondor,lsf"}, "BATCH_EXECUTORS item 'lsf' is not one of: local, htcondor"),
    ],
)
def test_it_fails_at_start_up_on_a_bad_value(overrides: dict[str, str], message: str) -> None:
    result = run_manage(overrides, "check")
    assert result.returncode != 0
    assert message in result.stderr


def test_it_starts_with_both_batch_executors() -> None:
    result = run_manage({"BATCH_EXECUTORS": "htcondor,local"}, "check")
    assert result.returncode == 0, result.stderr


def test_it_passes_check_deploy_with_production_settings() -> None:
    production = {
        "SECRET_KEY": "a-long-random-production-secret-key-" + "k9" * 20,
        "ALLOWED_HOSTS": "portal.example.org",
        "DATABASE_URL": "postgres://portal@127.0.0.1:5432/portal",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "IDENTITY_BACKEND": "cadc",
        "OPENSTACK_AUTH_URL": "https://cloud.example.org:5000/v3",
        "FERNET_KEYS": "q1tYqq3g5tEJYpA0VtzG5n5tQm1Fc4sK3r7sR0mI8kE=",
    }
    result = run_manage(production, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr + result.stdout
