"""The local job sandbox: what a user's job may see and do on a portal worker.

Each running job has an unprivileged uid of its own (one of BATCH_JOB_UID_COUNT uids from
BATCH_JOB_UID_BASE, with the group of the same number; not root, not the portal's user, no account of
the machine), so that no job can signal another job's processes or open what another job's uid owns,
even past the namespaces. A worker takes a free uid for a job by locking its file in the host's scratch
root (``job_identity``) and holds the lock until the job has ended and its cgroup is gone. The uid is
set by ``setpriv`` before anything of the job runs, inside bubblewrap with new PID, IPC,
UTS, cgroup and network namespaces, no capabilities (none in any set, and no_new_privs), a new
session, a fresh ``/proc``, a minimal ``/dev`` and a private ``/tmp``. bubblewrap itself starts as
the worker (root) so that it can bind the job's folders wherever they are; the job's uid is a real
one, not a user-namespace mapping of the worker's. Mounts are an allow-list: the system directories and the
few files of ``/etc`` programs need, read-only; the job's scratch folder read-write; the job tools,
the archive and the owner's own storage read-only. Nothing else of the machine exists inside.

The network is the namespace's own loopback only (``none``): no host service and no outside
address is reachable. With ``egress`` (for jobs that fetch from CADC), the job's network namespace
belongs to a user namespace of a second unprivileged uid (BATCH_JOB_NETWORK_UID), where pasta
(Debian's passt), running as that uid, gives it a user-mode network: pasta forwards no port in
either direction (``-t/-u/-T/-U none``) and does not map the gateway to the host (``--no-map-gw``),
so the job's 127.0.0.1 is its own and the host's loopback services stay out of reach; the job,
with another uid, has no capability over that namespace and cannot reconfigure it.

Where the sandbox cannot be had (bwrap or setpriv missing, a worker that is not root and so cannot
switch to the job uid, a uid range that holds an account or a subordinate-uid range of the machine, or
a failed self-test), ``required`` mode refuses to run jobs, and a job that finds every uid of the range
taken on its host is held rather than run as another job's uid. With BATCH_JOB_UID_COUNT 0 every job
runs as the one BATCH_JOB_UID (the shared uid of earlier versions; a warning is logged); ``trusted`` mode is for
single-user installs and runs jobs as the worker's own user, without the sandbox.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import grp
import logging
import os
import platform
import pwd
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

log = logging.getLogger(__name__)

REQUIRED, TRUSTED = "required", "trusted"
MODES = (REQUIRED, TRUSTED)
NETWORK_NONE, NETWORK_EGRESS = "none", "egress"
NETWORKS = (NETWORK_NONE, NETWORK_EGRESS)

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
    network_uid: int = 65533  # egress only: pasta and the owner of the job's network namespace
    readonly_paths: tuple[Path, ...] = field(default_factory=tuple)  # more read-only folders for jobs
    uid_count: int = 0  # > 0: each running job takes its own uid (and gid) from uid .. uid + uid_count - 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"the sandbox mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.network not in NETWORKS:
            raise ValueError(f"the job network must be one of {', '.join(NETWORKS)}, not {self.network!r}")
        if self.uid <= 0 or self.gid <= 0:
            raise ValueError("jobs never run as root: the job uid and gid must be above 0")
        if self.network == NETWORK_EGRESS and self.network_uid in (0, self.uid):
            raise ValueError("the network uid must be another unprivileged uid than the job's")
        if self.uid_count < 0 or self.uid + self.uid_count > MAX_JOB_UID + 1:
            raise ValueError(f"the job uid range must be within 1 .. {MAX_JOB_UID}")
        if self.uid_count and self.network_uid in self.job_uids:
            raise ValueError("the network uid must not be one of the job uids")

    @property
    def job_uids(self) -> range:
        """The uids jobs run as: the range, or the one shared uid."""
        return range(self.uid, self.uid + self.uid_count) if self.uid_count else range(self.uid, self.uid + 1)


MAX_JOB_UID = 2**31 - 2  # above, some programs take uids for negative numbers; 2**32 - 1 is "no uid"


class NoFreeJobUid(OSError):
    """Every uid of the range runs a job on this host."""


def _subordinate_ranges(path: str) -> list[range]:
    """The uid (or gid) ranges /etc/subuid (/etc/subgid) hands to users' user namespaces."""
    ranges = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            ranges.append(range(int(parts[1]), int(parts[1]) + int(parts[2])))
    return ranges


def uid_range_problem(config: SandboxConfig) -> str | None:
    """Why the job uid range is unsafe on this machine (a uid of it could own its files), or None."""
    if not config.uid_count:
        return None
    uids = config.job_uids
    first, last = uids[0], uids[-1]
    for kind, ids in (
        ("account", [p.pw_uid for p in pwd.getpwall()]),
        ("group", [g.gr_gid for g in grp.getgrall()]),
    ):
        taken = sorted(i for i in ids if first <= i <= last)
        if taken:
            return f"the job uid range {first}-{last} holds the {kind} id {taken[0]} of this machine"
    for path in ("/etc/subuid", "/etc/subgid"):
        for sub in _subordinate_ranges(path):
            if sub and sub.start <= last and first <= sub[-1]:
                return f"the job uid range {first}-{last} overlaps {sub.start}-{sub[-1]} of {path}"
    return None


@contextlib.contextmanager
def job_identity(config: SandboxConfig, lock_dir: Path) -> Iterator[SandboxConfig]:
    """The configuration one job runs with: in required mode with a uid range, a uid of its own.

    A uid is taken by an exclusive lock on its file in ``lock_dir`` (on this host, out of the jobs'
    sight), held until the block ends: after the job and everything it started have ended. The search
    starts at a place of its own (the worker's pid) so that workers rarely try the same uid.
    Raises NoFreeJobUid when every uid of the range is taken."""
    if config.mode != REQUIRED or not config.uid_count:
        if config.mode == REQUIRED:
            _warn_shared_uid(config.uid)
        yield config
        return
    lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    uids = config.job_uids
    start = os.getpid() % len(uids)
    for k in range(len(uids)):
        uid = uids[(start + k) % len(uids)]
        fd = os.open(lock_dir / f"uid-{uid}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield replace(config, uid=uid, gid=uid, uid_count=0)
        finally:
            os.close(fd)  # releases the lock
        return
    raise NoFreeJobUid(
        f"all {len(uids)} job uids ({uids[0]}-{uids[-1]}) run jobs on this host; the operator can raise"
        " BATCH_JOB_UID_COUNT"
    )


@functools.lru_cache(maxsize=4)
def _warn_shared_uid(uid: int) -> None:
    log.warning(
        "BATCH_JOB_UID_COUNT is 0: every local job runs as the one uid %s, so one user's running job"
        " can signal another's processes; set a uid range (BATCH_JOB_UID_BASE, BATCH_JOB_UID_COUNT)",
        uid,
    )


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
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}-")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
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


def bwrap_argv(
    config: SandboxConfig,
    mounts: Mounts,
    support_dir: Path,
    netns: str | None = None,
    seccomp: int | None = None,
) -> list[str]:
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
        *([] if netns else ["--unshare-net"]),  # its own loopback, nothing else; or egress's namespace
        "--hostname",
        "job",
        "--cap-drop",
        "ALL",
        *[arg for cap in _SETPRIV_CAPS for arg in ("--cap-add", cap)],
        "--new-session",
        "--die-with-parent",
        *(["--seccomp", str(seccomp)] if seccomp is not None else []),
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
    nsenter = [tool("nsenter") or "nsenter", f"--net={netns}", "--"] if netns else []
    return [*nsenter, *args, "--", *drop_privileges(config)]


# A seccomp filter bubblewrap installs before the job's first program, for what namespaces do not
# confine: the kernel keyrings (a uid's keyring outlives its processes and a uid serves one job after
# another, or every job with BATCH_JOB_UID_COUNT 0, so one user's job could leave keys for the next)
# and new user namespaces (root inside one of its own opens much of the kernel to the job). Those calls fail with EPERM;
# clone3, whose flags a filter cannot see, fails with ENOSYS so that libc falls back to clone.
_CLONE_NEWUSER = 0x10000000
# arch (AUDIT_ARCH_*) -> (add_key, request_key, keyctl, unshare, clone); clone3 is 435 on all.
_SYSCALLS = {
    "x86_64": {0xC000003E: (248, 249, 250, 272, 56), 0x40000003: (286, 287, 288, 310, 120)},
    "aarch64": {0xC00000B7: (217, 218, 219, 97, 220)},
}
_CLONE3 = 435
_X32_BIT = 0x40000000  # x86_64's x32 syscalls: not used by the job's programs
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_EPERM, _ENOSYS = 1, 38


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes | None:
    """The filter as classic BPF for bwrap --seccomp, or None on a machine it is not written for."""
    arches = _SYSCALLS.get(platform.machine())
    if arches is None:
        return None
    ld_w, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    deny, nosys = _RET_ERRNO | _EPERM, _RET_ERRNO | _ENOSYS
    blocks = []
    for arch, (add_key, request_key, keyctl, unshare, clone) in arches.items():
        body = [_insn(ld_w, 0)]  # the syscall number
        if arch == 0xC000003E:
            body.append(_insn(jge, _X32_BIT, jt=0, jf=1))
            body.append(_insn(ret, nosys))
        for nr in (add_key, request_key, keyctl):
            body += [_insn(jeq, nr, jt=0, jf=1), _insn(ret, deny)]
        body += [_insn(jeq, _CLONE3, jt=0, jf=1), _insn(ret, nosys)]
        for nr in (unshare, clone):  # the flags are the first argument of both
            body += [_insn(jeq, nr, jt=0, jf=3), _insn(ld_w, 16), _insn(jset, _CLONE_NEWUSER, jt=0, jf=1)]
            body += [_insn(ret, deny), _insn(ld_w, 0)]
        body.append(_insn(ret, _RET_ALLOW))
        blocks.append((arch, body))
    program = [_insn(ld_w, 4)]  # the architecture
    for arch, body in blocks:
        program += [_insn(jeq, arch, jt=0, jf=len(body)), *body]
    program.append(_insn(ret, nosys))  # any other architecture's calls
    return b"".join(program)


@contextlib.contextmanager
def seccomp_fd() -> Iterator[int | None]:
    """A readable descriptor of the filter for one job's bwrap (pass it with pass_fds)."""
    program = seccomp_program()
    if program is None:
        yield None
        return
    read, write = os.pipe()
    try:
        os.write(write, program)  # a few hundred bytes: fits a pipe's buffer
        os.close(write)
        write = -1
        yield read
    finally:
        os.close(read)
        if write != -1:
            os.close(write)


class Egress:
    """The network namespace of an egress job, with pasta attached, made before the job starts."""

    def __init__(self, config: SandboxConfig, launcher: list[str]) -> None:
        self.config = config
        self.launcher = launcher  # joins the job's cgroups: both end with the job
        self.processes: list[subprocess.Popen[bytes]] = []

    def _start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        uid = self.config.network_uid
        drop = [tool("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        drop += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        proc = subprocess.Popen(  # noqa: S603 - fixed command lines
            [*self.launcher, *drop, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        self.processes.append(proc)
        return proc

    def start(self, timeout: float = 10.0) -> str:
        """The path of the job's network namespace, once pasta has set it up; raises OSError."""
        holder = self._start([tool("unshare") or "unshare", "--user", "--net", "--", "sleep", "infinity"])
        netns = f"/proc/{holder.pid}/ns/net"
        deadline = time.monotonic() + timeout
        own = os.readlink("/proc/self/ns/net")
        while _readlink(netns) in (own, None):
            if holder.poll() is not None or time.monotonic() > deadline:
                raise OSError("its network namespace could not be made")
            time.sleep(0.002)
        argv = [tool("pasta") or "pasta", "--config-net", "--foreground", "--quiet", "--no-map-gw"]
        argv += ["-t", "none", "-u", "none", "-T", "none", "-U", "none", str(holder.pid)]
        pasta = self._start(argv)
        while not _has_default_route(holder.pid):
            if pasta.poll() is not None or time.monotonic() > deadline:
                raise OSError("its network (pasta) could not be set up")
            time.sleep(0.002)
        return netns

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _has_default_route(pid: int) -> bool:
    try:
        lines = Path(f"/proc/{pid}/net/route").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(len(fields) > 1 and fields[1] == "00000000" for fields in (line.split() for line in lines))


# What the self-test job prints when the sandbox holds: its uid, no capabilities, alone in its /proc.
_SELF_TEST = 'grep -q "^CapEff:[[:space:]]*0*$" /proc/self/status && echo "uid=$(id -u)" && ls /proc | grep -c "^[0-9]"'


@functools.lru_cache(maxsize=8)
def sandbox_problem(config: SandboxConfig) -> str | None:
    """Why the sandbox cannot be had on this machine, or None when a test job ran in it as it should.

    Checked once per worker process (and per configuration)."""
    needed = ["bwrap", "setpriv"] + (
        ["pasta", "unshare", "nsenter"] if config.network == NETWORK_EGRESS else []
    )
    missing = [name for name in needed if tool(name) is None]
    if missing:
        return f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed"
    if problem := uid_range_problem(config):
        return problem
    if os.geteuid() != 0:
        return (
            f"the job workers run as uid {os.geteuid()}, not root, so they cannot start jobs as the "
            f"unprivileged uid {config.uid}"
        )
    with tempfile.TemporaryDirectory(prefix="sandbox-self-test-") as tmp:
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        os.chown(scratch, config.uid, config.gid)
        egress = Egress(config, []) if config.network == NETWORK_EGRESS else None
        try:
            netns = egress.start() if egress is not None else None
            with seccomp_fd() as fd:
                argv = [
                    *bwrap_argv(config, Mounts(scratch), Path(tmp) / "etc", netns, fd),
                    "/bin/sh",
                    "-c",
                    _SELF_TEST,
                ]
                done = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    timeout=30,
                    env={"PATH": "/usr/bin:/bin"},
                    pass_fds=() if fd is None else (fd,),
                )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"a test job could not run in it ({exc})"
        finally:
            if egress is not None:
                egress.close()
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
    uids = config.job_uids
    who = (
        f"an unprivileged uid of its own ({uids[0]}-{uids[-1]})"
        if config.uid_count
        else f"unprivileged uid {config.uid} (shared by all jobs)"
    )
    return (
        f"Sandboxed: each local job runs as {who} with no capabilities, "
        f"alone in its namespaces, sees only its own files, "
        + (
            "no network."
            if config.network == NETWORK_NONE
            else "internet access only, not the host's services."
        )
    )
