"""The local job sandbox: what a user's job may see and do on a portal worker.

Each job runs as a dedicated unprivileged uid (BATCH_JOB_UID, not root and not the portal's
user), set by ``setpriv`` before anything of the job runs, inside bubblewrap with new PID, IPC,
UTS, cgroup and network namespaces, no capabilities (none in any set, and no_new_privs), a new
session, a fresh ``/proc``, a minimal ``/dev`` and a private ``/tmp``. bubblewrap itself starts as
the worker (root) so that it can bind the job's folders wherever they are; the job's uid is a real
one, not a user-namespace mapping of the worker's. Mounts are an allow-list: the system directories and the
few files of ``/etc`` programs need, read-only; the job's scratch folder read-write; the job tools,
the archive and the owner's own storage read-only. Nothing else of the machine exists inside.

The network is the namespace's own loopback only (``none``, the one value supported): no host
service, loopback or other, and no outside address is reachable from a job.

Where the sandbox cannot be had (bwrap or setpriv missing, a worker that is not root and so cannot
switch to the job uid, or a failed self-test), ``required`` mode refuses to run jobs; ``trusted`` mode is for
single-user installs and runs jobs as the worker's own user, without the sandbox.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED, TRUSTED = "required", "trusted"
MODES = (REQUIRED, TRUSTED)
NETWORK_NONE = "none"
# Only "none": a user-mode network for CADC egress (pasta) needs a network namespace that pasta, as
# an unprivileged user, may join but the job may not reconfigure; not built yet.
NETWORKS = (NETWORK_NONE,)

# Read-only inside every job: the system's programs and libraries...
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# ... and of /etc only what programs need to load, resolve names and check certificates.
ETC_ALLOWED = (
    "/etc/alternatives",  # e.g. libblas for source-extractor
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/protocols",
    "/etc/services",
    "/etc/mime.types",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/profile",
    "/etc/bash.bashrc",
    "/etc/inputrc",
    "/etc/magic",
    "/etc/papersize",
)


@dataclass(frozen=True)
class SandboxConfig:
    """How local jobs are confined (from the BATCH_SANDBOX, BATCH_JOB_* settings)."""

    mode: str = REQUIRED
    uid: int = 65534
    gid: int = 65534
    network: str = NETWORK_NONE
    readonly_paths: tuple[Path, ...] = field(default_factory=tuple)  # more read-only folders for jobs

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"the sandbox mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.network not in NETWORKS:
            raise ValueError(f"the job network must be one of {', '.join(NETWORKS)}, not {self.network!r}")
        if self.uid <= 0 or self.gid <= 0:
            raise ValueError("jobs never run as root: the job uid and gid must be above 0")


def tool(name: str) -> str | None:
    return shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")


def drop_privileges(config: SandboxConfig) -> list[str]:
    """setpriv, the first program inside the sandbox: the job's uid and gid, no supplementary groups,
    no capabilities left in any set (bounding included), and no way to gain any (no_new_privs)."""
    setpriv = tool("setpriv")
    assert setpriv is not None  # checked by sandbox_problem
    return [
        setpriv,
        f"--reuid={config.uid}",
        f"--regid={config.gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def _system_mounts() -> list[str]:
    args: list[str] = []
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC_ALLOWED:
        args += ["--ro-bind-try", name, name]
    return args


def _bind(option: str, path: Path, made: set[Path]) -> list[str]:
    """A bind mount at the same path inside, its parent folders made first as 0755 (bubblewrap would
    make them 0700, which the job's uid could not pass through)."""
    args: list[str] = []
    for parent in reversed(path.parents):
        if parent != Path("/") and parent not in made:
            made.add(parent)
            args += ["--perms", "0755", "--dir", str(parent)]
    made.add(path)
    return [*args, option, str(path), str(path)]


def identity_files(directory: Path, config: SandboxConfig) -> tuple[Path, Path]:
    """passwd and group files naming only root and the job's own user (not the machine's accounts)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = "nobody" if config.uid == 65534 else "job"
    group = "nogroup" if config.gid == 65534 else "job"
    passwd = directory / f"passwd-{config.uid}-{config.gid}"
    groups = directory / f"group-{config.gid}"
    for path, text in (
        (passwd, f"root:x:0:0:root:/root:/bin/sh\n{name}:x:{config.uid}:{config.gid}:{name}:/tmp:/bin/sh\n"),
        (groups, f"root:x:0:\n{group}:x:{config.gid}:\n"),
    ):
        if not path.exists() or path.read_text() != text:
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.chmod(0o644)
            os.replace(tmp, path)
    return passwd, groups


@dataclass(frozen=True)
class Mounts:
    """What one job sees besides the system: its scratch (read-write), and read-only folders."""

    scratch: Path
    tmp_bytes: int = 64 * 1024 * 1024  # the size of its private /tmp (memory, counted as the job's)
    readonly: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()  # masked where they fall inside a mounted folder (the portal's data)


# Kept by bubblewrap for setpriv alone, which drops them with everything else: to change uid and gid,
# drop the bounding set, and enter the job's scratch folder (owned by the job uid, mode 0700).
_SETPRIV_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_DAC_READ_SEARCH")


def bwrap_argv(config: SandboxConfig, mounts: Mounts, support_dir: Path) -> list[str]:
    """The sandbox's command line up to (not including) the job's own argv.

    bubblewrap starts as the worker (root), makes the namespaces and mounts, and keeps for its child
    only the capabilities setpriv needs to become the job's uid and drop them all.
    """
    bwrap = tool("bwrap")
    assert bwrap is not None  # checked by sandbox_problem
    passwd, group = identity_files(support_dir, config)
    args = [
        bwrap,
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--unshare-net",  # its own loopback, nothing else
        "--hostname",
        "job",
        "--cap-drop",
        "ALL",
        *[arg for cap in _SETPRIV_CAPS for arg in ("--cap-add", cap)],
        "--new-session",
        "--die-with-parent",
        *_system_mounts(),
        "--ro-bind",
        str(passwd),
        "/etc/passwd",
        "--ro-bind",
        str(group),
        "/etc/group",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--size",
        str(mounts.tmp_bytes),
        "--tmpfs",
        "/tmp",
    ]
    made = {Path("/tmp"), Path("/etc"), Path("/proc"), Path("/dev")}
    mounted = [*(Path(p) for p in (*SYSTEM_DIRS, "/etc")), *config.readonly_paths]
    for path in config.readonly_paths:
        args += _bind("--ro-bind", path, made)
    for hidden in mounts.hidden:  # an allow-list with one safety net: portal data inside a mounted folder
        if hidden.is_dir() and any(hidden == m or m in hidden.parents for m in mounted):
            args += ["--tmpfs", str(hidden)]
    for path in mounts.readonly:  # after the masks: the job's own services stay visible
        args += _bind("--ro-bind", path, made)
    args += [*_bind("--bind", mounts.scratch, made), "--chdir", str(mounts.scratch)]
    return [*args, "--", *drop_privileges(config)]


# What the self-test job prints when the sandbox holds: its uid, no capabilities, alone in its /proc.
_SELF_TEST = 'grep -q "^CapEff:[[:space:]]*0*$" /proc/self/status && echo "uid=$(id -u)" && ls /proc | grep -c "^[0-9]"'


@functools.lru_cache(maxsize=8)
def sandbox_problem(config: SandboxConfig) -> str | None:
    """Why the sandbox cannot be had on this machine, or None when a test job ran in it as it should.

    Checked once per worker process (and per configuration)."""
    missing = [name for name in ("bwrap", "setpriv") if tool(name) is None]
    if missing:
        return f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed"
    if os.geteuid() != 0:
        return (
            f"the job workers run as uid {os.geteuid()}, not root, so they cannot start jobs as the "
            f"unprivileged uid {config.uid}"
        )
    with tempfile.TemporaryDirectory(prefix="sandbox-self-test-") as tmp:
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        os.chown(scratch, config.uid, config.gid)
        argv = [*bwrap_argv(config, Mounts(scratch), Path(tmp) / "etc"), "/bin/sh", "-c", _SELF_TEST]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"}
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"a test job could not run in it ({exc})"
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 2:
        detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return f"a test job failed in it: {detail[:300]}"
    if lines[0] != f"uid={config.uid}" or int(lines[1]) > 5:
        return f"a test job saw the wrong thing in it ({' '.join(lines)})"
    return None


def describe(config: SandboxConfig) -> str:
    """One line for the pages: which mode the local executor runs in."""
    if config.mode == TRUSTED:
        return "Trusted mode: local jobs run as the workers' own OS user, without a sandbox (single-user installs)."
    return (
        f"Sandboxed: each local job runs as unprivileged uid {config.uid} with no capabilities, "
        f"alone in its namespaces, sees only its own files, no network."
    )
