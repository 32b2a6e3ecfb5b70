"""A real emulator on loopback, the portal pointed at it, and a way to run operations to the end in-process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.contrib.auth.models import User

from emulator.server import RunningEmulator, start_emulator
from orchestration import operations
from orchestration.tasks.cloud import sync_project_now
from portal.models import Operation, Project

DEMO_PASSWORD = "canfar-demo"


@pytest.fixture
def cloud(tmp_path: Path, settings: Any) -> Iterator[RunningEmulator]:
    running = start_emulator(state_path=tmp_path / "cloud.sqlite3", build_seconds=0.3, snapshot_seconds=0.4)
    settings.OPENSTACK_AUTH_URL = running.auth_url
    yield running
    running.stop()


@pytest.fixture
def no_dispatch(monkeypatch: Any) -> list[Any]:
    """Operations are driven in-process by ``drive``; nothing goes to the broker."""
    sent: list[Any] = []
    monkeypatch.setattr(operations.run_operation, "apply_async", lambda *a, **k: sent.append((a, k)))
    return sent


def drive(op: Operation | int, timeout: float = 30) -> Operation:
    """Run an operation as a worker would, including its waits, until it ends."""
    pk = op if isinstance(op, int) else op.pk
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        operations.run_operation.apply(args=[pk])
        current = Operation.objects.get(pk=pk)
        if current.state in (Operation.SUCCEEDED, Operation.FAILED):
            return current
        time.sleep(0.15)
    raise AssertionError(f"operation {pk} did not finish: {Operation.objects.get(pk=pk).message}")


@pytest.fixture
def demo(db: Any) -> User:
    return User.objects.create_user("demo", password=DEMO_PASSWORD)


@pytest.fixture
def demo_client(client: Any, demo: User, cloud: RunningEmulator, no_dispatch: Any) -> Any:
    """Signed in through the real sign-in page, with the cloud connection completed."""
    client.post("/accounts/login/", {"username": "demo", "password": DEMO_PASSWORD})
    op = Operation.objects.get(owner=demo, kind="cloud_connect")
    assert drive(op).state == "succeeded", Operation.objects.get(pk=op.pk).error
    return client


def demo_sdk(project_name: str = "demo-lensing") -> Any:
    """openstacksdk as the demo user, for acting on the cloud behind the portal's back."""
    import openstack
    from django.conf import settings

    return openstack.connect(
        auth_url=settings.OPENSTACK_AUTH_URL,
        username="demo",
        password=DEMO_PASSWORD,
        project_name=project_name,
        user_domain_name="Default",
        project_domain_name="Default",
        load_yaml_config=False,
        load_envvars=False,
    )


def project(name: str = "demo-lensing") -> Project:
    return Project.objects.get(name=name)


def sync(name: str = "demo-lensing") -> None:
    sync_project_now(project(name), force=True)


def public_key(comment: str = "astronomer@laptop") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{raw} {comment}"


def last_op(kind: str) -> Operation:
    return Operation.objects.filter(kind=kind).latest("pk")
