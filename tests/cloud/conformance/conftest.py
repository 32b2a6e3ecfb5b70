"""One cloud per module, the emulator or the real OpenStack, laid out alike (the real one by up.sh)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openstack
import pytest

from emulator.server import start_emulator
from orchestration.cloud.client import close_sessions
from tests.cloud.conftest import real_cloud_or_skip

# ../shared/real-openstack's layout, for the emulator: alice in proj-a (one floating IP) and proj-b
# (a stock project: no quotas of its own), the public network, a CANFAR image and flavors.
SEED: dict[str, Any] = {
    "region": "RegionOne",
    "projects": [{"name": "proj-a", "quotas": {"floatingip": 1}}, {"name": "proj-b"}],
    "users": [{"name": "alice", "password": "alicepass", "projects": ["proj-a", "proj-b"]}],
    "images": [{"name": "canfar-ubuntu-20.04", "min_disk": 0, "properties": {"default_user": "ubuntu"}}],
    "flavors": [
        {"name": "c2-7.5gb-31", "vcpus": 2, "ram": 7680, "disk": 20, "ephemeral": 31},
        {"name": "p2-7.5gb", "vcpus": 2, "ram": 7680, "disk": 20, "ephemeral": 0},
    ],
    "public_network": {"name": "public", "cidr": "203.0.113.0/24"},
}


@dataclass
class Site:
    kind: str
    auth_url: str

    def sdk(self, project: str = "proj-a") -> Any:
        return openstack.connect(
            auth_url=self.auth_url,
            username="alice",
            password="alicepass",  # noqa: S106 (the test cloud's account)
            project_name=project,
            user_domain_name="Default",
            project_domain_name="Default",
            load_yaml_config=False,
            load_envvars=False,
        )


@pytest.fixture(scope="module", params=["emulator", pytest.param("real", marks=pytest.mark.real_cloud)])
def site(request: Any, tmp_path_factory: Any) -> Iterator[Site]:
    if request.param == "emulator":
        running = start_emulator(
            state_path=tmp_path_factory.mktemp("conformance") / "cloud.sqlite3",
            seed=SEED,
            build_seconds=0.5,
            snapshot_seconds=0.5,
            separate_ports=True,
        )
        yield Site("emulator", running.auth_url)
        close_sessions()
        running.stop()
    else:
        yield Site("real", real_cloud_or_skip())
        close_sessions()
