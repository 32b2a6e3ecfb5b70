"""The web side of production: static files, start-up checks, Content-Security-Policy, names, the queue."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User

from orchestration.storage.base import InvalidPath
from orchestration.storage.local import LocalStorage
from portal.models import Job, Submission

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
print(page.headers.get("Content-Security-Policy", ""))
"""


def test_collectstatic_works_and_a_production_page_renders(tmp_path: Path) -> None:
    collected = run(tmp_path, {}, "manage.py", "collectstatic", "--noinput")
    assert collected.returncode == 0, collected.stderr
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())["paths"]
    assert {"portal/portal.css", "portal/portal.js", "vendor/htmx.min.js"} <= manifest.keys()  # static/
    rendered = run(tmp_path, {"DEBUG": "false"}, "-c", _RENDER)
    assert rendered.returncode == 0, rendered.stderr
    status, css, static_status, csp = rendered.stdout.splitlines()[:4]
    assert status == "200"
    assert css.startswith("bootstrap.min.") and css.endswith(".css") and css != "bootstrap.min.css"  # hashed
    assert static_status == "200"
    assert "default-src 'self'" in csp


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


# ---------------------------------------------------------------------------- names that hide

HIDING = {
    "right-to-left override": ("invoice\u202etxt.exe", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    "zero-width space": ("cat\u200b.fits", "U+200B ZERO WIDTH SPACE"),
    "zero-width joiner": ("a\u200db", "U+200D ZERO WIDTH JOINER"),
    "first strong isolate": ("x\u2068y", "U+2068 FIRST STRONG ISOLATE"),
    "byte order mark": ("\ufeffname", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    "escape": ("a\x1b[31mb", "U+001B"),
    "line separator": ("a\u2028b", "U+2028 LINE SEPARATOR"),
}


@pytest.fixture
def storage_root(settings: Any, tmp_path: Path) -> Path:
    settings.STORAGE_BACKEND = "local"
    settings.STORAGE_ROOT = tmp_path / "storage"
    (settings.STORAGE_ROOT / "alice").mkdir(parents=True)
    return settings.STORAGE_ROOT


@pytest.mark.parametrize("case", sorted(HIDING))
def test_names_that_hide_characters_are_refused(alice_client: Any, storage_root: Path, case: str) -> None:
    name, shown = HIDING[case]
    query = f"?folder=&name={quote(name)}"
    upload = alice_client.post("/storage/upload/" + query, data=b"x", content_type="application/octet-stream")
    assert upload.status_code == 400
    assert f"text-direction controls (this one has {shown}" in upload.json()["error"]
    made = alice_client.post("/storage/mkdir/", {"folder": "", "name": name}, follow=True)
    assert any(shown in str(m) for m in made.context["messages"])
    (storage_root / "alice" / "plain.txt").write_text("x")
    moved = alice_client.post("/storage/move/", {"path": "plain.txt", "dest": name})
    assert shown in moved.content.decode()
    assert sorted(p.name for p in (storage_root / "alice").iterdir()) == ["plain.txt"]


def test_the_adapter_refuses_them_too_and_keeps_existing_names_usable(storage_root: Path) -> None:
    space = LocalStorage(storage_root / "alice")
    for name, shown in HIDING.values():
        for make in (lambda n: space.mkdir(n), lambda n: space.upload(n, io.BytesIO(b"x"))):
            with pytest.raises(InvalidPath, match=shown.split()[0].replace("+", r"\+")):
                make(name)
    (storage_root / "alice" / "old\u202eexe.txt").write_text("made by a job")  # already there
    assert space.open_read("old\u202eexe.txt").read() == b"made by a job"
    space.move("old\u202eexe.txt", "renamed.txt")
    assert [n.name for n in space.list("")] == ["renamed.txt"]


def test_ordinary_names_in_any_script_still_work(storage_root: Path) -> None:
    space = LocalStorage(storage_root / "alice")
    for name in ("Résultats 2023", "naïve cat ✓.txt", "観測 1056215p.cat", "Ωmega-été.fits"):
        space.mkdir(name)
    assert len(space.list("")) == 4


# ---------------------------------------------------------------------------- the queue page


def _queued(owner: User, n: int) -> None:
    sub = Submission.objects.create(owner=owner, name=f"{owner.username}-run", script_name="a.sh", script="")
    Job.objects.bulk_create(
        Job(submission=sub, index=i, proc=i, output="o", error="e", log="l", state=Job.IDLE) for i in range(n)
    )


def test_the_queue_page_shows_others_to_staff_only(
    client: Any, alice: User, bob: User, settings: Any
) -> None:
    _queued(alice, 2)
    _queued(bob, 3)
    client.force_login(alice)
    html = client.get("/batch/").content.decode()
    summary = html.split('data-testid="pool-summary"')[1]
    assert "Your jobs in the pool" in summary and ">2</div>" in summary
    assert "bob" not in summary and ">5</div>" not in summary
    bob.is_staff = True
    bob.save()
    client.force_login(bob)
    summary = client.get("/batch/").content.decode().split('data-testid="pool-summary"')[1]
    assert "Pool, all users" in summary and "<td>alice</td>" in summary and ">5</div>" in summary
    settings.BATCH_QUEUE_ALL_USERS = True  # a shared submit host where condor_q -all is public anyway
    client.force_login(alice)
    assert "<td>bob</td>" in client.get("/batch/").content.decode()


# ---------------------------------------------------------------------------- Content-Security-Policy

TEMPLATES = ROOT / "templates"
INLINE = {
    "an inline <script>": re.compile(r"<script(?![^>]*\ssrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I),
    "an inline event handler": re.compile(r"<[^>]*\son[a-z]+\s*=", re.I),
    "a <style> element": re.compile(r"<style[\s>]", re.I),
    "a javascript: URL": re.compile(r"javascript:", re.I),
}


def test_templates_hold_nothing_the_policy_blocks() -> None:
    found = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text()
        for what, pattern in INLINE.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{template.relative_to(ROOT)}:{line}: {what}")
    assert found == []


def test_pages_take_their_styles_from_the_one_style_sheet() -> None:
    """base.html links Bootstrap and static/portal/portal.css in its head; no page links a sheet of its own."""
    linking = [
        str(t.relative_to(TEMPLATES)) for t in TEMPLATES.rglob("*.html") if "stylesheet" in t.read_text()
    ]
    assert linking == ["base.html"]


def test_the_scan_finds_what_it_looks_for() -> None:
    hostile = '<script>x()</script><a onclick="y()"><style>p{}</style><a href="javascript:z()">'
    assert all(pattern.search(hostile) for pattern in INLINE.values())
    assert not any(
        p.search('<script src="/static/a.js"></script><a data-confirm="x">') for p in INLINE.values()
    )


def test_pages_carry_the_policy(alice_client: Any, client: Any) -> None:
    expected = "default-src 'self'; script-src 'self'; style-src 'self'"
    assert expected in client.get("/accounts/login/")["Content-Security-Policy"]
    for url in ("/", "/vms/", "/batch/", "/storage/", "/catalogues/", "/no-such-page/"):
        response = alice_client.get(url)
        assert response.status_code in (200, 302, 404), url
        assert expected in response["Content-Security-Policy"], url
        assert "unsafe-eval" not in response["Content-Security-Policy"]
