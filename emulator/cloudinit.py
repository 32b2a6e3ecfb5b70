"""What cloud-init would print on an emulated VM's console for the user-data it was launched with.

No VM runs here, so the emulator plays cloud-init's part: it creates the users of a `#cloud-config`,
and when the config carries a script that reports its steps with `CANFAR-READY:` lines (the portal's
"prepare for batch"), it prints those lines as the script would, one step at a time after boot:
the user, /mnt/scratch (on the ephemeral disk when the flavor has one), each package (installed when
the image's package manager knows the name), then `done` or `failed: <the line that failed>`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import yaml

MARKER = "CANFAR-READY:"
# Names one family of distributions uses and the other does not (the emulator's package index).
DEBIAN_ONLY = {"source-extractor", "libcfitsio-bin", "libcfitsio-dev", "build-essential", "python3-dev"}
RPM_ONLY = {"sextractor", "cfitsio", "cfitsio-devel", "python3-devel", "gcc-c++", "epel-release"}


def decode_user_data(value: Any) -> str:
    """Nova's user_data is base64; anything else is stored as nothing, as Nova refuses it."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


def _config(user_data: str) -> dict[str, Any]:
    if not user_data.startswith("#cloud-config"):
        return {}
    try:
        config = yaml.safe_load(user_data)
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


def _reporting_script(config: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(user, packages) of a runcmd entry that runs a written script reporting CANFAR-READY steps."""
    scripts = {
        str(f.get("path")): str(f.get("content", ""))
        for f in config.get("write_files") or []
        if isinstance(f, dict)
    }
    for command in config.get("runcmd") or []:
        if isinstance(command, list) and len(command) >= 2 and MARKER in scripts.get(str(command[0]), ""):
            return str(command[1]), [str(p) for p in command[2:]]
    return None


def _install_error(family: str, package: str) -> str | None:
    if family == "dnf" and (package in DEBIAN_ONLY or package.endswith("-dev")):
        return f"Error: Unable to find a match: {package}"
    if family == "apt" and (package in RPM_ONLY or package.endswith("-devel")):
        return f"E: Unable to locate package {package}"
    return None


def console_lines(
    server: dict[str, Any], image: dict[str, Any] | None, now: float, step_seconds: float
) -> list[str]:
    """The console after boot, with the steps that have had time to run by ``now``."""
    hostname = server["hostname"]
    props = (image or {}).get("properties", {})
    distro = f"{props.get('os_distro', '')} {(image or {}).get('name', '')}".lower()
    family = "dnf" if any(d in distro for d in ("rocky", "centos", "alma", "rhel", "fedora")) else "apt"
    lines = [
        f"[    0.000000] Linux version 5.4.0 (emulated cloud: no real VM runs here) {hostname}",
        "[    1.234567] cloud-init: running modules for config",
        (
            f"ci-info: key pair {server['key_name']} installed in the default user's authorized_keys"
            if server.get("key_name")
            else "ci-info: no authorized SSH keys fingerprints found (launched without a key pair)"
        ),
    ]
    config = _config(server.get("user_data", ""))
    users = [u for u in config.get("users") or [] if isinstance(u, dict) and u.get("name")]
    lines += [f"cloud-init[812]: Adding user {u['name']}" for u in users]
    script = _reporting_script(config)
    lines.append(f"{hostname} login:")
    if script is None:
        return lines
    user, packages = script
    booted = float(server.get("launched") or now)
    steps = [f"{MARKER} start"]
    if user not in {str(u["name"]) for u in users}:
        steps.append(f"{MARKER} failed: user {user} was not created")
    else:
        steps.append(f"{MARKER} user created {user}")
        where = "ephemeral disk" if int(server["flavor"].get("ephemeral") or 0) > 0 else "root disk"
        steps.append(f"{MARKER} scratch mounted /mnt/scratch ({where})")
        first_error = ""
        for package in packages:
            error = _install_error(family, package)
            steps.append(f"{MARKER} package {package} {'failed' if error else 'installed'}")
            first_error = first_error or (error or "")
        steps.append(f"{MARKER} failed: {first_error}" if first_error else f"{MARKER} done")
    elapsed = max(0.0, now - booted)
    shown = min(len(steps), int(elapsed / step_seconds) + 1) if step_seconds > 0 else len(steps)
    return lines + steps[:shown]  # the script writes straight to /dev/console
