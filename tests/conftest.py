"""Shared fixtures: users built in code (alice, bob), a real Celery worker process, a real browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection

from portal.models import Membership, Project

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session", autouse=True)
def _fresh_user_data() -> None:
    """Users' files from an earlier run (var/test outlives it) must not make a test pass or fail:
    a file that "appeared" may be last run's. The database is new each run; so are these folders."""
    for folder in (settings.STORAGE_ROOT, settings.BATCH_ROOT, settings.CATALOGUE_WORK_DIR):
        if Path(folder).resolve().is_relative_to(Path(settings.VAR_DIR).resolve()):  # only ours
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _flush_survives_a_worker_deadlock() -> Iterator[None]:
    """The tests' real Celery workers live for the whole session and may still be finishing a task
    (a pull, a sync) when a test that used them ends. On PostgreSQL the flush that empties the
    tables (TRUNCATE, exclusive locks) can then deadlock with that task's transaction, and
    PostgreSQL may end the flush rather than the task: it is run again, as a later flush would be."""
    from django.db import OperationalError
    from django.db.backends.base.operations import BaseDatabaseOperations

    plain = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self: BaseDatabaseOperations, sql_list: list[str]) -> None:
        for attempt in range(5):
            try:
                return plain(self, sql_list)
            except OperationalError as exc:
                if "deadlock detected" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]
    yield
    BaseDatabaseOperations.execute_sql_flush = plain  # type: ignore[method-assign]


@pytest.fixture
def home(settings: Any, tmp_path: Path) -> Path:
    """alice's folder with the local storage backend, in this test's own directory."""
    settings.STORAGE_BACKEND = "local"
    settings.STORAGE_ROOT = tmp_path / "storage"
    path = settings.STORAGE_ROOT / "alice"
    path.mkdir(parents=True)
    return path


def archive_catalogue(owner: User, observation: str = "1056215p", **fields: Any) -> Any:
    """A catalogue record of an archive observation, in any state the test gives, made without a run."""
    from portal.models import Catalogue

    defaults = {"name": observation, "source_ref": observation, "stem": observation}
    defaults |= {"source": Catalogue.ARCHIVE, "params": {}, "output_dir": "catalogues"}
    return Catalogue.objects.create(owner=owner, **(defaults | fields))


def make_user(username: str, projects: list[str]) -> User:
    user = User.objects.create_user(username, f"{username}@example.org", PASSWORD)
    for name in projects:
        project, _ = Project.objects.get_or_create(name=name, defaults={"external_id": f"id-{name}"})
        Membership.objects.create(user=user, project=project)
    return user


@pytest.fixture
def alice(db: Any) -> User:
    return make_user("alice", ["alice-lensing", "alice-survey"])


@pytest.fixture
def bob(db: Any) -> User:
    return make_user("bob", ["bob-project"])


@pytest.fixture
def alice_client(client: Any, alice: User) -> Any:
    client.force_login(alice)
    return client


@pytest.fixture(scope="session")
def session_cloud(tmp_path_factory: Any) -> Iterator[Any]:
    """One emulated cloud shared by the worker process and the live server of end-to-end tests."""
    from emulator.server import start_emulator

    running = start_emulator(
        state_path=tmp_path_factory.mktemp("cloud") / "cloud.sqlite3", build_seconds=1.0, snapshot_seconds=1.5
    )
    yield running
    running.stop()


def worker_env() -> dict[str, str]:
    """The environment a worker process needs to use this test run's database and broker."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        user = db.get("USER") or ""
        auth = f"{user}:{db.get('PASSWORD')}@" if db.get("PASSWORD") else (f"{user}@" if user else "")
        env["DATABASE_URL"] = (
            f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
        )
    env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    env["PORTAL_VAR_DIR"] = str(settings.VAR_DIR)
    return env


def start_worker(argv: list[str], name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A Celery worker process (argv after ``celery``); returns once it is ready to take tasks."""
    path = settings.VAR_DIR / f"{name}.log"
    with open(path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", *argv],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while b"ready." not in path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"celery worker {name} did not start:\n" + path.read_text())
        time.sleep(0.2)
    return proc


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=15)


@pytest.fixture(scope="session")
def celery_worker_process(
    django_db_setup: Any, django_db_blocker: Any, session_cloud: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process consuming every lane's queue, using the session's cloud."""
    with django_db_blocker.unblock():
        env = worker_env()
    env["OPENSTACK_AUTH_URL"] = session_cloud.auth_url
    from portal.management.commands.runportal import lane_queue

    queues = ",".join(lane_queue(lane) for lane in settings.LANES)
    argv = ["-A", "config", "worker", "-Q", queues, "--loglevel", "INFO", "--concurrency", "2"]
    argv += ["-n", f"test-{os.getpid()}@%h", "--without-gossip", "--without-mingle"]
    proc = start_worker(argv, "worker", env)
    yield proc
    stop_worker(proc)


@pytest.fixture(scope="session")
def lane_workers(
    django_db_setup: Any, django_db_blocker: Any, session_cloud: Any
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """One worker pool per lane, started as `make run` starts them (two job slots, two ops slots)."""
    from portal.management.commands.runportal import lane_worker_argv

    with django_db_blocker.unblock():
        env = worker_env()
    env["OPENSTACK_AUTH_URL"] = session_cloud.auth_url
    sizes = {"ops": 2, "sync": 1, "ccd": 1, "jobs": 2}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for lane in settings.LANES:
            argv = lane_worker_argv(lane, sizes[lane], f"test-{lane}-{os.getpid()}", "INFO")[1:]
            procs[lane] = start_worker(argv, f"worker-{lane}", env)
        yield procs
    finally:
        for proc in procs.values():
            stop_worker(proc)


@pytest.fixture(scope="session", autouse=True)
def _own_test_broker() -> Iterator[None]:
    """This run's embedded broker file starts empty and is removed at the end."""
    url = settings.CELERY_BROKER_URL
    path = Path(url.removeprefix("sqla+sqlite:///")) if url.startswith("sqla+sqlite:///") else None
    if path:
        path.unlink(missing_ok=True)
    yield
    if path:
        path.unlink(missing_ok=True)


def host_pids(marker: str) -> list[int]:
    """Processes of this machine, seen from outside any sandbox, whose command line holds marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
