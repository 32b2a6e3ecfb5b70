"""`python -m emulator` starts in the foreground, prints its URL and a clouds.yaml, and stops on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_it_starts_from_the_command_line(tmp_path: Path) -> None:
    state = tmp_path / "cloud.sqlite3"
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--state", str(state)],
        cwd=ROOT,
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


# The emulator, with a Ctrl-C (or a SIGTERM) sent to itself the moment its listeners have started:
# before it has printed anything or reached the line that waits for the signal.
_SIGNAL_AT_START = """
import os, signal, sys
from emulator import __main__ as command

start = command.start_emulator

def start_then_signal(*args, **kwargs):
    running = start(*args, **kwargs)
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    return running

command.start_emulator = start_then_signal
sys.exit(command.main(["--port", "0", "--state", sys.argv[2]]))
"""


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_during_start_up_stops_it_cleanly(tmp_path: Path, name: str) -> None:
    """A Ctrl-C between the listeners' start and the wait used to raise KeyboardInterrupt out of the
    start-up code: the listeners were never stopped and the command did not exit 0 (SIGTERM killed
    it outright). Now the signal waits its turn: the emulator prints its URL, then stops."""
    state = tmp_path / "cloud.sqlite3"
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AT_START, name, str(state)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0].startswith("Emulated OpenStack cloud (not a real one) on http://127.0.0.1:")
    assert out[-1] == "stopping"
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
    assert state.exists()
