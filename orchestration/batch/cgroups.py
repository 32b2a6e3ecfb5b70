"""One control group per local job: memory across all its processes, a process count, and a total kill.

cgroup v2 is used where its memory and pids controllers can be delegated below the worker's own
group; otherwise the v1 ``memory`` and ``pids`` hierarchies (each used when it is mounted and
writable). Each job's group is made under the worker's own group (``portal-jobs/<name>``), so
whatever limits the worker's machine sets still apply. Without either, the runner falls back to
polling the job's resident size and to per-process limits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT_NAME = "portal-jobs"


def _own_paths() -> dict[str, str]:
    """The worker's own group in each hierarchy: {'memory': '/a/b', 'pids': '/', '': '/x'} ('' is v2)."""
    out: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            out[name] = path
    return out


def _v2_mount() -> Path | None:
    for candidate in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        if (candidate / "cgroup.controllers").exists():
            return candidate
    return None


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read_int(path: Path, key: str | None = None) -> int:
    try:
        text = path.read_text()
    except OSError:
        return 0
    if key is None:
        return int(text.split()[0]) if text.strip() else 0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


@dataclass
class JobCgroup:
    """The groups one job runs in (one directory per hierarchy used)."""

    memory: Path | None = None  # the group whose memory is limited (v2 or v1)
    pids: Path | None = None  # the group whose process count is limited (v2 or v1)
    version: int = 0  # 2, 1 or 0 (none)
    dirs: list[Path] = field(default_factory=list)

    @property
    def limits_memory(self) -> bool:
        return self.memory is not None

    @property
    def limits_processes(self) -> bool:
        return self.pids is not None

    def join(self) -> None:
        """Move the calling process into the job's groups (run in the child before it execs)."""
        pid = str(os.getpid())
        for directory in self.dirs:
            _write(directory / "cgroup.procs", pid)

    def oom_kills(self) -> int:
        """How many processes the kernel killed for going over the memory limit."""
        if self.memory is None:
            return 0
        if self.version == 2:
            return _read_int(self.memory / "memory.events", "oom_kill")
        return _read_int(self.memory / "memory.oom_control", "oom_kill")

    def processes(self) -> list[int]:
        pids: set[int] = set()
        for directory in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        return sorted(pids)

    def kill_all(self) -> None:
        """SIGKILL every process left in the job's groups (double-forked, setsid, anything)."""
        if self.version == 2 and self.dirs and (self.dirs[0] / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", "1")
        for _ in range(3):  # a process may fork while we kill: look again
            pids = self.processes()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self, timeout: float = 2.0) -> None:
        """Kill what is left and remove the groups (the kernel refuses while a process is in one)."""
        deadline = time.monotonic() + timeout
        for directory in reversed(self.dirs):
            while True:
                self.kill_all()
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.005)
            with contextlib.suppress(OSError):  # the last job out leaves the worker's group as it was
                directory.parent.rmdir()


STALE_SECONDS = 600


def _sweep(parent: Path) -> None:
    """Remove the empty groups of jobs whose worker died before it could (the kernel refuses to remove
    a group that still has a process, and a group this old is no job's that is starting)."""
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            if entry.is_dir() and entry.name.startswith("job-"):
                with contextlib.suppress(OSError):
                    if (
                        time.time() - entry.stat().st_mtime > STALE_SECONDS
                        and not (entry / "cgroup.procs").read_text()
                    ):
                        entry.rmdir()


def create(name: str, memory_bytes: int, max_processes: int) -> JobCgroup:
    """A job's groups with its limits set, or a JobCgroup that limits nothing where none can be made."""
    own = _own_paths()
    group = _create_v2(name, memory_bytes, max_processes, own)
    if group is not None:
        return group
    group = JobCgroup(version=1)
    for controller in ("memory", "pids"):
        mount = CGROUP_ROOT / controller
        if controller not in own or not (mount / "cgroup.procs").exists():
            continue
        directory = mount / own[controller].lstrip("/") / PARENT_NAME / name
        _sweep(directory.parent)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if controller == "memory":
                _write(directory / "memory.limit_in_bytes", str(memory_bytes))
                with contextlib.suppress(OSError):  # present only with swap accounting
                    _write(directory / "memory.memsw.limit_in_bytes", str(memory_bytes))
                group.memory = directory
            else:
                _write(directory / "pids.max", str(max_processes))
                group.pids = directory
        except OSError:
            with contextlib.suppress(OSError):
                directory.rmdir()
            continue
        group.dirs.append(directory)
    if not group.dirs:
        group.version = 0
    return group


def _create_v2(name: str, memory_bytes: int, max_processes: int, own: dict[str, str]) -> JobCgroup | None:
    mount = _v2_mount()
    if mount is None or "" not in own:
        return None
    base = mount / own[""].lstrip("/")
    try:
        available = (base / "cgroup.controllers").read_text().split()
    except OSError:
        return None
    if "memory" not in available or "pids" not in available:
        return None
    parent = base / PARENT_NAME
    directory = parent / name
    try:
        parent.mkdir(exist_ok=True)
        _write(parent / "cgroup.subtree_control", "+memory +pids")
        directory.mkdir(exist_ok=True)
        _write(directory / "memory.max", str(memory_bytes))
        with contextlib.suppress(OSError):
            _write(directory / "memory.swap.max", "0")
        _write(directory / "pids.max", str(max_processes))
    except OSError:
        with contextlib.suppress(OSError):
            directory.rmdir()
        return None
    return JobCgroup(memory=directory, pids=directory, version=2, dirs=[directory])


def group_of(pid: int) -> JobCgroup | None:
    """The job groups a running process is in (to stop a job from another process), or None."""
    try:
        lines = Path(f"/proc/{int(pid)}/cgroup").read_text().splitlines()
    except OSError:
        return None
    dirs: list[Path] = []
    version = 1
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if f"/{PARENT_NAME}/" not in path:
            continue
        if not controllers:
            mount = _v2_mount()
            if mount is not None:
                dirs.append(mount / path.lstrip("/"))
                version = 2
        elif controllers in ("memory", "pids"):
            dirs.append(CGROUP_ROOT / controllers / path.lstrip("/"))
    return JobCgroup(version=version, dirs=dirs) if dirs else None
