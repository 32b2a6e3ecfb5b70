"""The main steps of the journey with the `openstack` command line client, a second real client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emulator.server import RunningEmulator
from tests.emulator.conftest import public_key

OPENSTACK = Path(sys.executable).with_name("openstack")


@pytest.fixture
def cli(emulator: RunningEmulator, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run `openstack ARGS` against the emulator with the clouds.yaml it prints for users."""
    (tmp_path / "clouds.yaml").write_text(emulator.clouds_yaml())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OS_")},
        "OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml"),
        "OS_CLOUD": "canfar-emulator",
        "HOME": str(tmp_path),
    }

    def run(*args: str, ok: bool = True) -> Any:
        done = subprocess.run([str(OPENSTACK), *args], env=env, capture_output=True, text=True, timeout=120)
        if ok:
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout) if "json" in args else done.stdout
        assert done.returncode != 0
        return done.stderr

    return run


@pytest.mark.skipif(not OPENSTACK.exists(), reason="python-openstackclient is not installed")
def test_it_serves_the_main_journey_to_the_openstack_cli(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert {p["Name"] for p in cli("project", "list", "-f", "json")} == {"demo-lensing", "demo-survey"}
    assert "c2-7.5gb-31" in {f["Name"] for f in cli("flavor", "list", "-f", "json")}
    (tmp_path / "laptop.pub").write_text(public_key())
    cli("keypair", "create", "--public-key", str(tmp_path / "laptop.pub"), "laptop", "-f", "json")

    server = cli(
        "server", "create", "--flavor", "c2-7.5gb-31", "--image", "canfar-ubuntu-20.04",
        "--key-name", "laptop", "--wait", "reduction-vm", "-f", "json",
    )  # fmt: skip
    assert server["status"] == "ACTIVE"
    snapshot = cli("server", "image", "create", "--wait", "--name", "snap-1", "reduction-vm", "-f", "json")
    assert snapshot["status"] == "active"

    ip = cli("floating", "ip", "create", "public", "-f", "json")["floating_ip_address"]
    cli("server", "add", "floating", "ip", "reduction-vm", ip)
    listed = cli("server", "list", "-f", "json")
    assert ip in json.dumps(listed[0]["Networks"])
    assert "Quota exceeded for resources: ['floatingip']" in cli(
        "floating", "ip", "create", "public", ok=False
    )

    cli("server", "delete", "--wait", "reduction-vm")
    cli("image", "delete", "snap-1")
    cli("floating", "ip", "delete", ip)
    assert cli("server", "list", "-f", "json") == []
    assert "snap-1" not in {i["Name"] for i in cli("image", "list", "-f", "json")}
