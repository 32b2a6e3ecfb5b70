"""The web side of production: static files, start-up checks, Content-Security-Policy, names, the queue."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
FERNET_KEY = "q1tYqq3g5tEJYpA0VtzG5n5tQm1Fc4sK3r7sR0mI8kE="

# The README's production environment, on this machine: no service is reached by these commands.
PRODUCTION = {
    "SECRET_KEY": "a-long-random-production-secret-key-" + "k9" * 20,
    "ALLOWED_HOSTS": "portal.example.org",
    "BEHIND_PROXY": "true",
    "IDENTITY_BACKEND": "cadc",
    "CLOUD_BACKEND": "openstack",
    "OPENSTACK_AUTH_URL": "https://cloud.example.org:5000/v3",
    "BATCH_EXECUTOR": "htcondor",
    "HTCONDOR_COLLECTOR": "condor.example.org",
    "STORAGE_BACKEND": "vospace",
    "ARCHIVE_BACKEND": "cadc",
    "FERNET_KEYS": FERNET_KEY,
}


def run(var: Path, overrides: dict[str, str | None], *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DATABASE_URL", "CELERY_", "SECRET_KEY", "DJANGO_", "OPENSTACK_", "PORTAL_", "FERNET")
        )
    }
    env |= PRODUCTION | {"DJANGO_SETTINGS_MODULE": "config.settings", "PORTAL_VAR_DIR": str(var)}
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


_RENDER = """
import django
django.setup()
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
page = Client().get("/accounts/login/", secure=True, headers={"host": "portal.example.org"})
print(page.status_code)
html = page.content.decode()
css = html.split('href="/static/vendor/bootstrap.min.')[1].split('"')[0]
print("bootstrap.min." + css)
static = Client().get("/static/vendor/bootstrap.min." + css, secure=True, headers={"host": "portal.example.org"})
print(static.status_code)
"""


def test_collectstatic_works_and_a_production_page_renders(tmp_path: Path) -> None:
    collected = run(tmp_path, {}, "manage.py", "collectstatic", "--noinput")
    assert collected.returncode == 0, collected.stderr
    assert (tmp_path / "static" / "staticfiles.json").is_file()
    rendered = run(tmp_path, {"DEBUG": "false"}, "-c", _RENDER)
    assert rendered.returncode == 0, rendered.stderr
    status, css, static_status = rendered.stdout.splitlines()[:4]
    assert status == "200"
    assert css.startswith("bootstrap.min.") and css.endswith(".css") and css != "bootstrap.min.css"  # hashed
    assert static_status == "200"


def test_check_deploy_without_openstack_auth_url_says_so(tmp_path: Path) -> None:
    result = run(tmp_path, {"OPENSTACK_AUTH_URL": None}, "manage.py", "check", "--deploy")
    assert result.returncode != 0
    assert "OPENSTACK_AUTH_URL must be set when CLOUD_BACKEND=openstack" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_without_fernet_keys_refuses_to_start(tmp_path: Path) -> None:
    for command in (["manage.py", "check"], ["-c", "import config.wsgi"]):
        result = run(tmp_path, {"FERNET_KEYS": None}, *command)
        assert result.returncode != 0
        assert "FERNET_KEYS must be set when PORTAL_EMBEDDED is off" in result.stderr
    bad = run(tmp_path, {"FERNET_KEYS": "not-a-key"}, "manage.py", "check")
    assert bad.returncode != 0
    assert "FERNET_KEYS holds a value that is not a Fernet key" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_embedded_demo_still_starts_without_fernet_keys(tmp_path: Path) -> None:
    demo = {key: None for key in PRODUCTION}
    result = run(tmp_path, demo, "manage.py", "check")
    assert result.returncode == 0, result.stderr
