"""The sharing calls against a real OpenStack (../shared/real-openstack): the same checks as the emulator's.

Skipped unless that cloud answers on loopback and its clouds.yaml is there (alice-a and alice-b are two
projects of one user).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.emulator.sharing_checks import check_member_errors, check_sharing

pytestmark = pytest.mark.real_cloud
CLOUDS_YAML = Path("/tmp/os-state/clouds.yaml")
KEYSTONE = "http://127.0.0.1:5000/v3"


def _real_cloud_up() -> bool:
    try:
        return CLOUDS_YAML.is_file() and requests.get(KEYSTONE, timeout=3).ok
    except requests.RequestException:
        return False


def _connect(name: str) -> Any:
    import openstack.config
    from openstack.connection import Connection

    region = openstack.config.OpenStackConfig(config_files=[str(CLOUDS_YAML)]).get_one(cloud=name)
    return Connection(config=region)


@pytest.fixture
def two_projects() -> Iterator[tuple[Any, Any]]:
    if not _real_cloud_up():
        pytest.skip("the real OpenStack (../shared/real-openstack) is not up")
    a, b = _connect("alice-a"), _connect("alice-b")
    yield a, b
    a.close()
    b.close()


def _private_image(owner: Any) -> Any:
    image = owner.image.create_image(
        name=f"portal-sharing-{uuid.uuid4().hex[:8]}",
        disk_format="raw",
        container_format="bare",
        visibility="private",
        data=b"\0" * 4096,
    )
    deadline = time.monotonic() + 60
    while owner.image.get_image(image.id).status != "active":
        assert time.monotonic() < deadline, "the real Glance did not make the image active"
        time.sleep(0.5)
    return image


@pytest.mark.parametrize("check", [check_sharing, check_member_errors])
def test_it_shares_an_image_as_the_emulator_does(two_projects: tuple[Any, Any], check: Any) -> None:
    owner, other = two_projects
    image = _private_image(owner)
    try:
        check(owner, other, image.id)
    finally:
        owner.image.delete_image(image.id, ignore_missing=True)
