"""`python -m emulator` starts in the foreground, prints its URL and a clouds.yaml, and stops on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import requests
import yaml


def test_it_starts_from_the_command_line(tmp_path: Path) -> None:
    state = tmp_path / "cloud.sqlite3"
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--state", str(state)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(16)]
        url = lines[0].split(" on ")[1].split()[0]
        clouds = yaml.safe_load("".join(lines[2:]))
        auth = clouds["clouds"]["canfar-emulator"]["auth"]
        assert auth["auth_url"] == f"{url}/identity/v3"
        assert requests.get(auth["auth_url"], timeout=10).json()["version"]["id"] == "v3.14"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode == 0
    assert state.exists()
