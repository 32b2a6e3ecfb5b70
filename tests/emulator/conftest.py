"""Fixtures: a real emulator on a free loopback port, with a temp state file and fast lifecycles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openstack
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from openstack.connection import Connection

from emulator.server import RunningEmulator, start_emulator

FAST = {"build_seconds": 0.2, "snapshot_seconds": 0.3}


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RunningEmulator]:
    running = start_emulator(state_path=tmp_path / "cloud.sqlite3", **FAST)
    yield running
    running.stop()


def connect(
    running: RunningEmulator,
    username: str = "demo",
    password: str = "canfar-demo",  # noqa: S107 (seeded demo user)
    project: str = "demo-lensing",
) -> Connection:
    """A password-authenticated openstacksdk connection, as the portal makes it."""
    return openstack.connect(
        auth_url=running.auth_url,
        username=username,
        password=password,
        project_name=project,
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="RegionOne",
        load_yaml_config=False,
        load_envvars=False,
    )


def connect_app_cred(running: RunningEmulator, cred_id: str, secret: str) -> Connection:
    return openstack.connect(
        auth_type="v3applicationcredential",
        auth_url=running.auth_url,
        application_credential_id=cred_id,
        application_credential_secret=secret,
        region_name="RegionOne",
        load_yaml_config=False,
        load_envvars=False,
    )


def public_key(comment: str = "astronomer@laptop") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return (
        key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
        + " "
        + comment
    )


def ids(resources: Any) -> set[str]:
    return {resource.id for resource in resources}
