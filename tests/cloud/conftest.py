"""A real emulator on loopback, the portal pointed at it, and a way to run operations to the end in-process."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.contrib.auth.models import User

from emulator.server import RunningEmulator, start_emulator
from orchestration import operations
from orchestration.cloud.client import close_sessions
from orchestration.tasks.cloud import sync_project_now
from portal.models import Operation, Project

DEMO_PASSWORD = "canfar-demo"


@dataclass
class Target:
    """A cloud the journey runs against, and who signs in to it."""

    kind: str  # "emulator" or "real"
    username: str
    password: str
    project: str  # the user's first project
    other: str  # and the second


EMULATED = Target("emulator", "demo", DEMO_PASSWORD, "demo-lensing", "demo-survey")
# ../shared/real-openstack: alice is a member of proj-a (floating IP quota 1) and proj-b.
REAL = Target("real", "alice", "alicepass", "proj-a", "proj-b")
REAL_AUTH_URL = os.environ.get("REAL_OPENSTACK_AUTH_URL", "http://127.0.0.1:5000/v3")
CURRENT = [EMULATED]  # the target of the test running now (tests run one at a time)
_cleaned: list[bool] = []


def real_cloud_or_skip() -> str:
    """The real cloud's Keystone URL, or a skip saying why not; with REAL_OPENSTACK=required (CI) a
    cloud that is not up fails the test instead; REAL_OPENSTACK=off skips them (CI's second run)."""
    if os.environ.get("REAL_OPENSTACK") == "off":
        pytest.skip("REAL_OPENSTACK=off: the tests against the real cloud ran in another pass")
    try:
        with urllib.request.urlopen(REAL_AUTH_URL, timeout=3) as answer:  # noqa: S310 (a fixed local URL)
            up = answer.status == 200
    except OSError:
        up = False
    if not up:
        reason = (
            f"the real OpenStack is not answering at {REAL_AUTH_URL}: start it with "
            "../shared/real-openstack/up.sh (as root)"
        )
        if os.environ.get("REAL_OPENSTACK") == "required":
            pytest.fail(reason + " (REAL_OPENSTACK=required)")
        pytest.skip(reason)
    return REAL_AUTH_URL


def sdk_as(target: Target, project_name: str | None = None) -> Any:
    """openstacksdk as the target's user, for acting on the cloud behind the portal's back."""
    import openstack
    from django.conf import settings

    return openstack.connect(
        auth_url=settings.OPENSTACK_AUTH_URL,
        username=target.username,
        password=target.password,
        project_name=project_name or target.project,
        user_domain_name="Default",
        project_domain_name="Default",
        load_yaml_config=False,
        load_envvars=False,
    )


def clean_real_cloud() -> None:
    """Leave the real cloud's projects as up.sh made them: no servers, IPs, keys, snapshots or
    application credentials of the test user."""
    for name in (REAL.project, REAL.other):
        conn = sdk_as(REAL, name)
        try:
            servers = list(conn.compute.servers())
            for server in servers:
                conn.compute.delete_server(server.id, ignore_missing=True)
            for server in servers:
                conn.compute.wait_for_delete(server, interval=0.5, wait=120)
            for ip in conn.network.ips(project_id=conn.current_project_id):
                conn.network.delete_ip(ip.id, ignore_missing=True)
            for image in conn.image.images(owner=conn.current_project_id):
                if image.visibility != "public":
                    conn.image.delete_image(image.id, ignore_missing=True)
            for key in conn.compute.keypairs():
                conn.compute.delete_keypair(key.name, ignore_missing=True)
            for cred in conn.identity.application_credentials(conn.current_user_id):
                conn.identity.delete_application_credential(conn.current_user_id, cred.id)
        finally:
            conn.close()


@pytest.fixture(params=["emulator", pytest.param("real", marks=pytest.mark.real_cloud)])
def target(request: Any, tmp_path: Path, settings: Any) -> Iterator[Target]:
    """The journey's cloud: the emulator, and the real OpenStack (tests marked real_cloud)."""
    if request.param == "emulator":
        running = start_emulator(
            state_path=tmp_path / "cloud.sqlite3", build_seconds=0.3, snapshot_seconds=0.4
        )
        settings.OPENSTACK_AUTH_URL = running.auth_url
        CURRENT[0] = EMULATED
        yield EMULATED
        close_sessions()
        running.stop()
    else:
        settings.OPENSTACK_AUTH_URL = real_cloud_or_skip()
        CURRENT[0] = REAL
        if not _cleaned:  # what an earlier, interrupted run left; later tests clean up after themselves
            clean_real_cloud()
            _cleaned.append(True)
        yield REAL
        close_sessions()
        clean_real_cloud()
    CURRENT[0] = EMULATED


@pytest.fixture
def cloud(tmp_path: Path, settings: Any) -> Iterator[RunningEmulator]:
    running = start_emulator(state_path=tmp_path / "cloud.sqlite3", build_seconds=0.3, snapshot_seconds=0.4)
    settings.OPENSTACK_AUTH_URL = running.auth_url
    yield running
    close_sessions()
    running.stop()


@pytest.fixture
def no_dispatch(monkeypatch: Any) -> list[Any]:
    """Operations are driven in-process by ``drive``; nothing goes to the broker."""
    sent: list[Any] = []
    monkeypatch.setattr(operations.run_operation, "apply_async", lambda *a, **k: sent.append((a, k)))
    return sent


def drive(op: Operation | int, timeout: float | None = None) -> Operation:
    """Run an operation as a worker would, including its waits, until it ends."""
    pk = op if isinstance(op, int) else op.pk
    timeout = timeout or (30 if CURRENT[0].kind == "emulator" else 180)  # a real boot takes 10-40 s
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        operations.run_operation.apply(args=[pk])
        current = Operation.objects.get(pk=pk)
        if current.state in (Operation.SUCCEEDED, Operation.FAILED):
            return current
        time.sleep(0.15)
    raise AssertionError(f"operation {pk} did not finish: {Operation.objects.get(pk=pk).message}")


@pytest.fixture
def demo(db: Any, target: Target) -> User:
    return User.objects.create_user(target.username, password=target.password)


@pytest.fixture
def demo_client(client: Any, demo: User, target: Target, no_dispatch: Any) -> Any:
    """Signed in through the real sign-in page, with the cloud connection completed."""
    client.post("/accounts/login/", {"username": target.username, "password": target.password})
    op = Operation.objects.get(owner=demo, kind="cloud_connect")
    assert drive(op).state == "succeeded", Operation.objects.get(pk=op.pk).error
    return client


def demo_sdk(project_name: str | None = None) -> Any:
    """openstacksdk as the signed-in user of the current target."""
    return sdk_as(CURRENT[0], project_name)


def project(name: str | None = None) -> Project:
    return Project.objects.get(name=name or CURRENT[0].project)


def sync(name: str | None = None) -> None:
    sync_project_now(project(name), force=True)


def public_key(comment: str = "astronomer@laptop") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{raw} {comment}"


def last_op(kind: str) -> Operation:
    return Operation.objects.filter(kind=kind).latest("pk")


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Tests marked emulator_only (they need the emulator's seed or timing) run on the emulator only."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_real = callspec is not None and callspec.params.get("target") == "real"
        (drop if on_real and item.get_closest_marker("emulator_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
