"""Prepare for batch: the cloud-config, its script run with stand-ins for the system tools, the parser."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestration.cloud.readiness import (
    PREPARE_SCRIPT,
    SCRIPT_PATH,
    cloud_config,
    foreign_packages,
    package_family,
    parse_console,
)


def test_it_writes_a_cloud_config_that_runs_the_script() -> None:
    text = cloud_config("demo", ["source-extractor", "libcfitsio-bin"], "ssh-ed25519 AAAA demo@laptop")
    assert text.startswith("#cloud-config\n")
    config = yaml.safe_load(text)
    assert config["users"][1]["name"] == "demo"
    assert config["users"][1]["ssh_authorized_keys"] == ["ssh-ed25519 AAAA demo@laptop"]
    assert config["write_files"][0] == {"path": SCRIPT_PATH, "permissions": "0755", "content": PREPARE_SCRIPT}
    assert config["runcmd"] == [[SCRIPT_PATH, "demo", "source-extractor", "libcfitsio-bin"]]


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _run_script(tmp_path: Path, *, user_exists: bool, mounted: bool, apt: bool, packages: list[str]) -> str:
    """Run the real script with /dev/console as a file and stand-ins for id, mountpoint and the installer."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    console = tmp_path / "console"
    console.touch()
    _stub(bin_dir, "id", "exit 0" if user_exists else "exit 1")
    _stub(bin_dir, "mountpoint", "exit 0" if mounted else "exit 1")
    _stub(bin_dir, "mkdir", "exit 0")
    _stub(bin_dir, "chmod", "exit 0")
    installer = 'for a; do last="$a"; done\ncase "$last" in bad*) echo "E: Unable to locate package $last"; exit 100;; esac'
    _stub(bin_dir, "apt-get" if apt else "dnf", installer)
    script = tmp_path / "prepare"
    script.write_text(PREPARE_SCRIPT.replace("/dev/console", str(console)))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    if not apt:  # hide the machine's own apt-get so the script picks dnf
        env["PATH"] = f"{bin_dir}:{tmp_path / 'nothing'}"
        for tool in ("grep", "tail", "head", "printf", "cat"):
            real = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout
            if real.strip().startswith("/"):
                os.symlink(real.strip(), bin_dir / tool)
    subprocess.run(["/bin/sh", str(script), "demo", *packages], env=env, capture_output=True, check=False)
    return console.read_text()


def test_the_script_reports_every_step_and_done(tmp_path: Path) -> None:
    out = _run_script(tmp_path, user_exists=True, mounted=True, apt=True, packages=["source-extractor"])
    result = parse_console(out)
    assert result.state == "ready"
    assert [s["text"] for s in result.steps] == [
        "user created demo",
        "scratch mounted /mnt/scratch (ephemeral disk)",
        "package source-extractor installed",
    ]


def test_the_script_names_the_line_that_failed(tmp_path: Path) -> None:
    out = _run_script(tmp_path, user_exists=True, mounted=False, apt=False, packages=["git", "bad-one"])
    result = parse_console(out)
    assert result.state == "failed"
    assert result.failure == "E: Unable to locate package bad-one"
    assert result.steps[1]["text"] == "scratch mounted /mnt/scratch (root disk)"
    assert result.steps[-2:] == [
        {"text": "package git installed", "state": "ok"},
        {"text": "package bad-one failed", "state": "failed"},
    ]


def test_the_script_stops_when_the_user_is_missing(tmp_path: Path) -> None:
    result = parse_console(_run_script(tmp_path, user_exists=False, mounted=True, apt=True, packages=[]))
    assert (result.state, result.failure, result.steps) == ("failed", "user demo was not created", [])


def test_the_parser_reads_the_latest_run_and_ignores_other_lines() -> None:
    console = "\n".join(
        [
            "[ 0.1] boot",
            "CANFAR-READY: start",
            "CANFAR-READY: user created demo",
            "CANFAR-READY: failed: old failure",
            "[ 9.0] reboot",
            "CANFAR-READY: start",
            "cloud-init[812]: CANFAR-READY: user created demo",
            "CANFAR-READY: user created demo",  # the same line through a second channel
            "CANFAR-READY: something unknown",
        ]
    )
    result = parse_console(console)
    assert (result.state, result.failure) == ("preparing", "")
    assert result.steps == [{"text": "user created demo", "state": "ok"}]
    assert parse_console("no markers at all").state == "waiting"


@pytest.mark.parametrize(
    ("image", "distro", "family"),
    [
        ("canfar-rocky-8", "rocky", "dnf"),
        ("canfar-ubuntu-22.04", "ubuntu", "apt"),
        ("image-reduction-2023-08-21", "ubuntu", "apt"),
        ("my-centos-7", "", "dnf"),
        ("mystery", "", ""),
    ],
)
def test_it_tells_the_package_family(image: str, distro: str, family: str) -> None:
    assert package_family(image, distro) == family


def test_it_finds_package_names_of_the_other_family() -> None:
    assert foreign_packages("dnf", ["source-extractor", "git", "libfoo-dev"]) == {
        "source-extractor": "sextractor",
        "libfoo-dev": None,
    }
    assert foreign_packages("apt", ["cfitsio-devel", "git"]) == {"cfitsio-devel": "libcfitsio-dev"}
    assert foreign_packages("apt", ["source-extractor", "libcfitsio-bin"]) == {}
    assert foreign_packages("", ["sextractor"]) == {}
