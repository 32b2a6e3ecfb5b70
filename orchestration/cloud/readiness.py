""" "Prepare for batch": the cloud-config that sets a VM up, and reading its progress from the console.

The cloud-config runs one small script as cloud-init's last stage. The script writes one marker line
per step to the console (``CANFAR-READY: ...``), which Nova's console log keeps; the portal reads the
console in a task and turns the markers into steps. Markers are fixed text plus names the form has
already checked against allow-lists (user and package names), so the parser needs no trust in them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

MARKER = "CANFAR-READY:"
SCRIPT_PATH = "/usr/local/sbin/canfar-prepare-batch"

# The script cloud-init runs (runcmd). POSIX sh; every step ends with a marker on the console.
# $1 is the user name, the rest are packages; both were checked by the launch form.
PREPARE_SCRIPT = r"""#!/bin/sh
mark() { { echo "CANFAR-READY: $*" >> /dev/console; } 2> /dev/null || echo "CANFAR-READY: $*"; }
fail() { mark "failed: $*"; exit 1; }
user="$1"; shift
mark "start"
id "$user" > /dev/null 2>&1 || fail "user $user was not created"
mark "user created $user"
if mountpoint -q /mnt; then where="ephemeral disk"; else where="root disk"; fi
mkdir -p /mnt/scratch && chmod 1777 /mnt/scratch || fail "cannot create /mnt/scratch"
mark "scratch mounted /mnt/scratch ($where)"
if command -v apt-get > /dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q > /dev/null 2>&1
  install() { apt-get install -y -q "$1" 2>&1; }
elif command -v dnf > /dev/null 2>&1; then
  install() { dnf install -y -q "$1" 2>&1; }
else
  fail "no apt-get or dnf on this image"
fi
failed=""
for package in "$@"; do
  if out=$(install "$package"); then
    mark "package $package installed"
  else
    mark "package $package failed"
    failed="$failed
$(printf '%s\n' "$out" | grep -v '^ *$' | tail -n 1)"
  fi
done
if [ -n "$failed" ]; then fail "$(printf '%s\n' "$failed" | grep -v '^$' | head -n 1)"; fi
mark "done"
"""


def cloud_config(username: str, packages: list[str], public_key: str | None) -> str:
    """The user-data of a VM prepared for batch."""
    user: dict[str, object] = {"name": username, "sudo": "ALL=(ALL) NOPASSWD:ALL", "shell": "/bin/bash"}
    if public_key:
        user["ssh_authorized_keys"] = [public_key]
    config = {
        "users": ["default", user],
        "write_files": [{"path": SCRIPT_PATH, "permissions": "0755", "content": PREPARE_SCRIPT}],
        "runcmd": [[SCRIPT_PATH, username, *packages]],
    }
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False, width=1000)


@dataclass
class Readiness:
    """What the console says about "prepare for batch" so far."""

    state: str = "waiting"  # waiting (no marker yet), preparing, ready, failed
    steps: list[dict[str, str]] = field(default_factory=list)  # {"text": ..., "state": "ok" | "failed"}
    failure: str = ""

    @property
    def finished(self) -> bool:
        return self.state in ("ready", "failed")


_PACKAGE = re.compile(r"^package (\S+) (installed|failed)$")


def parse_console(output: str) -> Readiness:
    """The steps reported by the markers of the latest boot (a reboot starts the markers again)."""
    result, previous = Readiness(), ""
    for raw in output.splitlines():
        at = raw.find(MARKER)
        if at < 0:
            continue
        text = raw[at + len(MARKER) :].strip()[:300]
        if text == previous:
            continue  # the same line through two channels (the console and cloud-init's own output)
        previous = text
        if text == "start":
            result = Readiness(state="preparing")
            continue
        if result.state == "waiting":
            result.state = "preparing"
        if text == "done":
            result.state = "ready"
        elif text.startswith("failed:"):
            result.state, result.failure = "failed", text[len("failed:") :].strip()
        elif match := _PACKAGE.match(text):
            state = "ok" if match.group(2) == "installed" else "failed"
            result.steps.append({"text": text, "state": state})
        elif text.startswith(("user created ", "scratch mounted ")):
            result.steps.append({"text": text, "state": "ok"})
    return result


# Package families ---------------------------------------------------------------------------------

# Names that exist in one family only, with what the other family calls them (None: no equivalent).
DEBIAN_ONLY: dict[str, str | None] = {
    "source-extractor": "sextractor",
    "libcfitsio-bin": "cfitsio",
    "libcfitsio-dev": "cfitsio-devel",
    "build-essential": "gcc make",
    "python3-dev": "python3-devel",
    "python3-venv": None,
    "wcslib-tools": "wcslib-utils",
}
RPM_ONLY: dict[str, str | None] = {
    "sextractor": "source-extractor",
    "cfitsio": "libcfitsio-bin",
    "cfitsio-devel": "libcfitsio-dev",
    "python3-devel": "python3-dev",
    "gcc-c++": "g++",
    "wcslib-utils": "wcslib-tools",
}
DNF_DISTROS = ("rocky", "centos", "alma", "rhel", "fedora", "redhat")
APT_DISTROS = ("ubuntu", "debian")


def package_family(image_name: str, os_distro: str = "") -> str:
    """'apt', 'dnf' or '' (unknown) for an image, from its os_distro or its name."""
    text = f"{os_distro} {image_name}".lower()
    if any(d in text for d in DNF_DISTROS):
        return "dnf"
    if any(d in text for d in APT_DISTROS):
        return "apt"
    return ""


def foreign_packages(family: str, packages: list[str]) -> dict[str, str | None]:
    """The packages named as the other family names them: {name: this family's name or None}."""
    if family == "dnf":
        return {p: DEBIAN_ONLY[p] for p in packages if p in DEBIAN_ONLY} | {
            p: None for p in packages if p not in DEBIAN_ONLY and p.endswith("-dev")
        }
    if family == "apt":
        return {p: RPM_ONLY[p] for p in packages if p in RPM_ONLY} | {
            p: None for p in packages if p not in RPM_ONLY and p.endswith("-devel")
        }
    return {}
