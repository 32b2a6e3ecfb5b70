"""The local executor's job runner: one user job as a sandboxed process on this machine.

The job gets a private scratch directory (its cwd, HOME and TMPDIR), an argv list
(never a shell), a scrubbed environment, resource limits, a control group that limits
memory and processes across all of its processes and kills them all when it ends, and
the sandbox of ``sandbox.py`` (an unprivileged uid in its own namespaces, seeing only
an allow-list of folders). Without the sandbox a job is not run, unless the operator
chose the trusted single-user mode. The runner writes the job's .out, .err and
HTCondor event log, so the log viewer reads local and HTCondor jobs alike.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestration.batch import cgroups
from orchestration.batch.base import JobState, LocalServices
from orchestration.batch.eventlog import (
    HOLD_DURATION_EXCEEDED,
    HOLD_FAILED_TO_START,
    HOLD_OUT_OF_RESOURCES,
    EventLogWriter,
    JobEvent,
    read_events,
)
from orchestration.batch.sandbox import (
    NETWORK_EGRESS,
    REQUIRED,
    Egress,
    Mounts,
    NoFreeJobUid,
    SandboxConfig,
    bwrap_argv,
    job_identity,
    sandbox_problem,
    seccomp_fd,
)

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_PRLIMIT = shutil.which("prlimit", path="/usr/bin:/bin")
_DU = shutil.which("du", path="/usr/bin:/bin") or "du"
_RM = shutil.which("rm", path="/usr/bin:/bin") or "rm"
_OUTBOX_DEPTH, _OUTBOX_PATH = 32, 1024  # folders deeper, or paths longer, in a job's outbox are not taken
_FIRST_POLL = 0.002  # most jobs in a big batch are short: look early, then back off
_MAX_POLL = 0.25


@dataclass(frozen=True)
class Limits:
    """What one job may use. Memory is its resident size (all its processes); output per file."""

    wall_seconds: float = 24 * 3600
    memory_mb: int = 2048
    output_mb: int = 1024
    cpu_seconds: int | None = None
    # Address space is capped too, to stop a runaway between two polls; programs
    # reserve more address space than they touch, hence the headroom.
    address_space_factor: float = 4.0
    kill_grace_seconds: float = 1.0  # Hold and Remove stop a job within this (and the poll)
    max_processes: int = 256  # processes and threads of the whole job at once
    scratch_mb: int = 10240  # what its scratch folder may hold (on the worker's disk)
    scratch_files: int = 100_000  # files and folders in it
    scratch_check_seconds: float = 1.0  # how often a running job's scratch folder is measured


@dataclass(frozen=True)
class LocalJob:
    """Everything the runner needs; paths are on this machine."""

    cluster: int
    proc: int
    script: Path  # the user's script, copied into scratch and run as ./<name>
    argv: list[str]
    job_dir: Path  # where .out, .err and the log go (and output files come back)
    output: str
    error: str
    log: str
    scratch_root: Path  # outside the portal's data
    limits: Limits = field(default_factory=Limits)
    input_files: list[Path] = field(default_factory=list)
    output_files: list[str] = field(default_factory=list)  # names copied back from scratch
    env: dict[str, str] = field(default_factory=dict)  # e.g. X509_USER_PROXY
    proxy: Path | None = None  # copied into scratch; X509_USER_PROXY points at it
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    hidden_paths: list[Path] = field(default_factory=list)  # the portal's data: masked if ever mounted
    keep_scratch: bool = False
    stop_file: Path | None = None  # appears when the portal holds or removes the job from any host
    services: LocalServices | None = None  # local archive and storage behind cadcget and vcp


@dataclass(frozen=True)
class JobResult:
    """How the job ended. `state` is DONE, FAILED, HELD or REMOVED."""

    state: JobState
    exit_code: int | None = None
    signal: int | None = None
    hold_reason: str = ""
    hold_code: int | None = None
    host: str = ""
    pid: int | None = None
    started_at: float = 0.0
    finished_at: float = 0.0


OnStart = Callable[[int, str], None]


OUTBOX = ".vospace-outbox"  # in scratch: what the job copies to vos: with the stand-in vcp


def job_environment(job: LocalJob, scratch: Path) -> dict[str, str]:
    """The job's whole environment: nothing inherited from the worker but these."""
    env = {
        "PATH": os.environ.get("BATCH_JOB_PATH", DEFAULT_PATH),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "_CONDOR_SCRATCH_DIR": str(scratch),
        "LANG": "C.UTF-8",
    }
    if job.proxy is not None:
        env["X509_USER_PROXY"] = str(scratch / job.proxy.name)
    if job.services is not None:
        env["PATH"] = f"{job.services.tools_dir}:{env['PATH']}"
        env["PORTAL_ARCHIVE_DIR"] = str(job.services.archive_dir)
        env["PORTAL_STORAGE_DIR"] = str(job.services.storage_dir)
        env["PORTAL_VOS_URI"] = job.services.vos_uri
        env["PORTAL_VOS_OUTBOX"] = str(scratch / OUTBOX)
    env.update(job.env)
    return env


def _limit_args(limits: Limits, limit_processes: bool) -> list[tuple[int, int]]:
    memory = int(limits.memory_mb * 1024 * 1024)
    out = [
        (resource.RLIMIT_AS, int(memory * limits.address_space_factor)),
        (resource.RLIMIT_FSIZE, int(limits.output_mb * 1024 * 1024)),
        (resource.RLIMIT_CORE, 0),
    ]
    if limits.cpu_seconds:
        out.append((resource.RLIMIT_CPU, int(limits.cpu_seconds)))
    if limit_processes:  # only without a pids cgroup: RLIMIT_NPROC counts every job of the same uid
        out.append((resource.RLIMIT_NPROC, int(limits.max_processes)))
    return out


def sandboxed(job: LocalJob) -> bool:
    return job.sandbox.mode == REQUIRED


def _command(job: LocalJob, scratch: Path, netns: str | None = None, seccomp: int | None = None) -> list[str]:
    """The argv to execute: the job's script, inside the sandbox unless the mode is trusted."""
    argv = [f"./{job.script.name}", *job.argv]
    if not sandboxed(job):
        return argv
    readonly: list[Path] = []
    if job.services is not None:
        services = job.services
        readonly = [services.tools_dir, services.archive_dir, services.storage_dir]
    tmp_bytes = max(16, job.limits.memory_mb // 4) * 1024 * 1024
    mounts = Mounts(scratch, tmp_bytes, tuple(readonly), tuple(job.hidden_paths))
    support = job.scratch_root / ".sandbox"
    return [*bwrap_argv(job.sandbox, mounts, support, netns, seccomp), *argv]


# Joins the job's control groups (the files before "--"), then execs the rest: a fixed script, the
# job's argv only passes through "$@". Cheaper than a preexec_fn, which makes Popen fork the worker.
_JOIN_CGROUPS = (
    'for f do shift; [ "$f" = -- ] && exec "$@"; '
    'echo $$ > "$f" || { echo "the job could not join its control group $f" >&2; exit 125; }; done'
)
_PRLIMIT_NAMES = {
    resource.RLIMIT_AS: "as",
    resource.RLIMIT_FSIZE: "fsize",
    resource.RLIMIT_CORE: "core",
    resource.RLIMIT_CPU: "cpu",
    resource.RLIMIT_NPROC: "nproc",
}


def _join_prefix(group: cgroups.JobCgroup) -> list[str]:
    if not group.dirs:
        return []
    return ["/bin/sh", "-c", _JOIN_CGROUPS, "sh", *(str(d / "cgroup.procs") for d in group.dirs), "--"]


def _launcher(
    group: cgroups.JobCgroup, limits: list[tuple[int, int]]
) -> tuple[list[str], Callable[[], None] | None]:
    """What runs before the sandbox, as the worker: join the job's cgroups, set its rlimits (with
    util-linux prlimit, or a preexec function where it is missing)."""
    prefix = _join_prefix(group)
    soft_hard = [(r, v, v + 5 if r == resource.RLIMIT_CPU else v) for r, v in limits]
    if _PRLIMIT:
        return [*prefix, _PRLIMIT, *(f"--{_PRLIMIT_NAMES[r]}={s}:{h}" for r, s, h in soft_hard), "--"], None

    def preexec() -> None:  # pragma: no cover - only where util-linux is missing
        for r, soft, hard in soft_hard:
            resource.setrlimit(r, (soft, hard))

    return prefix, preexec


def _prepare_scratch(job: LocalJob) -> Path:
    job.scratch_root.mkdir(parents=True, exist_ok=True)
    if job.services is not None:  # bubblewrap binds them, so they must exist
        job.services.archive_dir.mkdir(parents=True, exist_ok=True)
        job.services.storage_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"job-{job.cluster}.{job.proc}-", dir=job.scratch_root))
    target = scratch / job.script.name
    shutil.copyfile(job.script, target)
    made = [scratch, target]
    if job.services is not None:
        (scratch / OUTBOX).mkdir()
        made.append(scratch / OUTBOX)
    target.chmod(0o700)
    for path in [*job.input_files, *([job.proxy] if job.proxy else [])]:
        shutil.copyfile(path, scratch / path.name)
        made.append(scratch / path.name)
    if job.proxy is not None:
        (scratch / job.proxy.name).chmod(0o600)
    if sandboxed(job):  # the job's own uid owns its scratch, and nothing else
        for path in made:
            os.chown(path, job.sandbox.uid, job.sandbox.gid)
    return scratch


def _group_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    total, todo, page = 0, [pid], os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                total += int(f.read().split()[1]) * page
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", "rb") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue  # the process ended while we looked
    return total


def _scratch_usage(scratch: Path, max_entries: int) -> tuple[int, int]:
    """(bytes, entries) of a scratch folder, links not followed; stops counting past max_entries. A file
    counts by its size or its blocks on disk, whichever is larger (a sparse file is copied back whole).

    Where the job made what a path cannot name (folders nested past PATH_MAX), du measures it."""
    used, entries, todo = 0, 0, [str(scratch)]
    try:
        while todo and entries <= max_entries:
            with os.scandir(todo.pop()) as it:
                for entry in it:
                    entries += 1
                    info = entry.stat(follow_symlinks=False)
                    used += max(info.st_blocks * 512, info.st_size)  # sparse files are copied whole
                    if stat.S_ISDIR(info.st_mode):
                        todo.append(entry.path)
    except FileNotFoundError:
        pass  # removed while we looked: the next look counts the rest
    except OSError:
        return _du(scratch, "--apparent-size", "--block-size=1"), _du(scratch, "--inodes")
    return used, entries


def _du(path: Path, *unit: str) -> int:
    done = subprocess.run(  # noqa: S603 - a fixed command line
        [_DU, "--summarize", "--one-file-system", *unit, "--", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )
    try:
        return int(done.stdout.split()[0])
    except (IndexError, ValueError):
        return 2**62  # not measurable: over any limit


def _scratch_reason(limits: Limits, scratch: Path) -> str:
    """Why the job's scratch folder is over its limits ("" when it is not)."""
    used, entries = _scratch_usage(scratch, limits.scratch_files)
    if used > limits.scratch_mb * 1024 * 1024:
        return f"The job wrote more than its scratch-space limit of {_mb(limits.scratch_mb)} and was stopped."
    if entries > limits.scratch_files:
        return f"The job made more than {limits.scratch_files} files and folders in its scratch space and was stopped."
    return ""


def _gone(pid: int) -> bool:
    """True once the process has ended (a zombie not yet reaped by its parent has ended)."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def kill_job(pgid: int, grace_seconds: float = 1.0) -> bool:
    """Terminate a job: SIGTERM to its process group, SIGKILL after the grace period, then every
    process left in its control group (whatever it double-forked or started in a new session).

    Returns False when the job was already gone. Used for Remove and Hold from another process.
    """
    group = cgroups.group_of(pgid)
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        if group is not None:
            group.kill_all()
        return False
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and not _gone(pgid):
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if group is not None:
        group.remove(timeout=1.0)  # also when the worker that made it died with the job
    return True


def _stop(proc: subprocess.Popen[bytes], group: cgroups.JobCgroup, grace_seconds: float) -> None:
    """Stop the job this runner started: the sandbox ends at SIGTERM (its PID namespace with it);
    a trusted-mode job gets the grace period; then nothing of the job is left alive."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    group.kill_all()


def _mb(n: float) -> str:
    return f"{n / 1024:.1f} GB" if n >= 1024 else f"{n:.0f} MB"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def run_job(job: LocalJob, on_start: OnStart | None = None) -> JobResult:
    """Run one job to the end and record it; never raises for anything the job does."""
    host = socket.gethostname()
    log = EventLogWriter(job.job_dir / job.log, job.cluster, job.proc)
    job.job_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    problem = sandbox_problem(job.sandbox) if sandboxed(job) else None
    if problem is not None:
        reason = (
            f"The job was not run: the job sandbox is not available on {host} ({problem}). "
            "The operator can fix that, or set BATCH_SANDBOX=trusted on a single-user install."
        )
        log.held(reason, HOLD_FAILED_TO_START)
        return JobResult(JobState.HELD, hold_reason=reason, hold_code=HOLD_FAILED_TO_START, host=host)
    try:  # a uid of its own, held until the job and its cgroup are gone
        with job_identity(job.sandbox, job.scratch_root / ".sandbox" / "uids") as identity:
            return _run_as(replace(job, sandbox=identity), host, log, started, on_start)
    except NoFreeJobUid as exc:
        reason = f"The job was not run on {host}: {exc}."
        log.held(reason, HOLD_FAILED_TO_START)
        return JobResult(JobState.HELD, hold_reason=reason, hold_code=HOLD_FAILED_TO_START, host=host)


def _run_as(
    job: LocalJob, host: str, log: EventLogWriter, started: float, on_start: OnStart | None
) -> JobResult:
    try:
        scratch = _prepare_scratch(job)
    except OSError as exc:
        reason = f"The job could not be prepared on {host}: {exc.strerror or exc}"
        log.held(reason, HOLD_FAILED_TO_START)
        return JobResult(JobState.HELD, hold_reason=reason, hold_code=HOLD_FAILED_TO_START, host=host)
    limits = job.limits
    group = cgroups.create(scratch.name, limits.memory_mb * 1024 * 1024, limits.max_processes)
    try:
        return _run_in(job, scratch, group, host, log, started, on_start)
    finally:
        group.remove()  # whatever the job left running ends here
        if not job.keep_scratch:
            remove_tree(scratch)


def remove_tree(path: Path) -> None:
    """Remove a folder a job wrote, however deep it nested folders (shutil.rmtree recurses; rm does not)."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except (OSError, RecursionError):
        subprocess.run(  # noqa: S603 - a fixed command line
            [_RM, "-rf", "--one-file-system", "--", str(path)],
            capture_output=True,
            env={"PATH": "/usr/bin:/bin"},
        )


def _memory_reason(limits: Limits, used_bytes: float | None) -> str:
    if used_bytes is None:  # the kernel enforced the limit: the job reached it
        used = f"more than its limit of {_mb(limits.memory_mb)} of memory and was stopped"
    else:
        used = f"{_mb(used_bytes / 2**20)} of memory, more than its limit of {_mb(limits.memory_mb)}, and was stopped"
    return f"The job used {used}. Ask for more memory (request_memory)."


def _run_in(
    job: LocalJob,
    scratch: Path,
    group: cgroups.JobCgroup,
    host: str,
    log: EventLogWriter,
    started: float,
    on_start: OnStart | None,
) -> JobResult:
    egress = None
    if sandboxed(job) and job.sandbox.network == NETWORK_EGRESS:
        egress = Egress(job.sandbox, _join_prefix(group))
    try:
        return _run_with(job, scratch, group, host, log, started, on_start, egress)
    finally:
        if egress is not None:
            egress.close()


def _run_with(
    job: LocalJob,
    scratch: Path,
    group: cgroups.JobCgroup,
    host: str,
    log: EventLogWriter,
    started: float,
    on_start: OnStart | None,
    egress: Egress | None,
) -> JobResult:
    limits = job.limits
    out_path, err_path = job.job_dir / job.output, job.job_dir / job.error
    with open(out_path, "ab") as out, open(err_path, "ab") as err, seccomp_fd() as seccomp:
        try:
            prefix, preexec = _launcher(group, _limit_args(limits, not group.limits_processes))
            netns = None
            if egress is not None:
                netns = egress.start()
            sandbox_fd = seccomp if sandboxed(job) else None
            argv = [*prefix, *_command(job, scratch, netns, sandbox_fd)]
            proc = subprocess.Popen(
                argv,
                cwd=scratch,
                env=job_environment(job, scratch),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # own session and process group, so kill_job reaches all of it
                close_fds=True,
                pass_fds=() if sandbox_fd is None else (sandbox_fd,),
                preexec_fn=preexec,  # noqa: PLW1509 - None unless util-linux prlimit is missing
            )
        except (OSError, subprocess.SubprocessError) as exc:
            reason = f"The job could not start on {host}: {getattr(exc, 'strerror', None) or exc}"
            log.held(reason, HOLD_FAILED_TO_START)
            return JobResult(JobState.HELD, hold_reason=reason, hold_code=HOLD_FAILED_TO_START, host=host)
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    log.executing(host, when=started)
    if on_start is not None:
        on_start(proc.pid, host)
    hold_reason, hold_code = "", None
    deadline = time.monotonic() + limits.wall_seconds
    memory_limit = limits.memory_mb * 1024 * 1024
    poll = _FIRST_POLL
    stopped = False
    next_scratch_check = time.monotonic() + limits.scratch_check_seconds
    while True:
        try:
            proc.wait(timeout=poll)
            break
        except subprocess.TimeoutExpired:
            poll = min(poll * 2, _MAX_POLL)
        if job.stop_file is not None and job.stop_file.exists():
            stopped = True
            _stop(proc, group, limits.kill_grace_seconds)
            break
        if time.monotonic() >= deadline:
            hold_reason = (
                f"The job ran longer than its wall-time limit of {_duration(limits.wall_seconds)} "
                "and was stopped."
            )
            hold_code = HOLD_DURATION_EXCEEDED
        elif group.limits_memory:
            if group.oom_kills():  # the kernel stopped one of its processes: the job is over
                hold_reason, hold_code = _memory_reason(limits, None), HOLD_OUT_OF_RESOURCES
        elif (rss := _group_rss_bytes(proc.pid)) > memory_limit:
            hold_reason, hold_code = _memory_reason(limits, rss), HOLD_OUT_OF_RESOURCES
        if hold_code is None and time.monotonic() >= next_scratch_check:
            next_scratch_check = time.monotonic() + limits.scratch_check_seconds
            if hold_reason := _scratch_reason(limits, scratch):
                hold_code = HOLD_OUT_OF_RESOURCES
        if hold_code is not None:
            _stop(proc, group, limits.kill_grace_seconds)
            break
    group.kill_all()  # nothing of the job outlives it (the PID namespace already saw to it when sandboxed)
    status = proc.returncode
    if sandboxed(job) and status > 128:
        status = 128 - status  # bwrap reports a child killed by signal N as exit status 128 + N
    sig = -status if status < 0 else None
    code = status if status >= 0 else None
    if hold_code is None and not stopped and group.oom_kills():
        hold_reason, hold_code = _memory_reason(limits, None), HOLD_OUT_OF_RESOURCES
    base = JobResult(
        JobState.FAILED, code, sig, host=host, pid=proc.pid, started_at=started, finished_at=time.time()
    )
    if hold_code is None and (stopped or sig is not None or (code or 0) > 128):
        # Hold or Remove from the portal log first, then kill the group: the log has the last word.
        outside = _held_or_removed_since_start(job)
        if outside is not None:
            state = JobState.HELD if outside.kind == "held" else JobState.REMOVED
            return replace(base, state=state, hold_reason=outside.reason, hold_code=outside.hold_code)
    if hold_code is None:
        hold_reason, hold_code = _limit_hit(sig, code, out_path, err_path, limits)
    if hold_code is None and (hold_reason := _scratch_reason(limits, scratch)):  # nothing over it is copied
        hold_code = HOLD_OUT_OF_RESOURCES
    if hold_code is not None:
        log.held(hold_reason, hold_code)
        return replace(base, state=JobState.HELD, hold_reason=hold_reason, hold_code=hold_code)
    _copy_back(job, scratch)
    _collect_outbox(job, scratch)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # cumulative over this worker's children
    user_cpu, sys_cpu = usage.ru_utime - usage_before.ru_utime, usage.ru_stime - usage_before.ru_stime
    log.terminated(return_value=code, signal=sig, user_cpu=user_cpu, sys_cpu=sys_cpu)
    return replace(base, state=JobState.DONE if code == 0 else JobState.FAILED)


def _held_or_removed_since_start(job: LocalJob) -> JobEvent | None:
    events = [
        e for e in read_events(job.job_dir / job.log) if e.proc == job.proc and e.cluster == job.cluster
    ]
    for event in reversed(events):
        if event.kind == "execute":
            return None
        if event.kind in ("held", "aborted"):
            return event
    return None


def _limit_hit(
    sig: int | None, code: int | None, out_path: Path, err_path: Path, limits: Limits
) -> tuple[str, int | None]:
    """Recognise a job the kernel stopped at a resource limit (also inside a shell script: 128+signal)."""
    fsize = limits.output_mb * 1024 * 1024
    too_big = any(p.exists() and p.stat().st_size >= fsize for p in (out_path, err_path))
    if sig == signal.SIGXFSZ or code == 128 + signal.SIGXFSZ or too_big:
        return (
            f"The job wrote a file larger than its output limit of {_mb(limits.output_mb)} and was stopped.",
            HOLD_OUT_OF_RESOURCES,
        )
    if sig == signal.SIGXCPU or code == 128 + signal.SIGXCPU:
        return (
            f"The job used more than its CPU-time limit of {_duration(limits.cpu_seconds or 0)} "
            "and was stopped.",
            HOLD_DURATION_EXCEEDED,
        )
    return "", None


def outbox_dir(job_dir: Path, proc: int) -> Path:
    """Where a finished job's vcp copies wait for the portal to store them in the user's space."""
    return job_dir / f".vospace-{int(proc)}"


def _collect_outbox(job: LocalJob, scratch: Path) -> None:
    """Take what the job copied to vos: (the stand-in vcp's outbox) out of its scratch folder.

    Regular files and folders only, opened without following links: the job wrote this tree, so a
    link in it must not make the worker read anything of its own.
    """
    root = scratch / OUTBOX
    if job.services is None or root.is_symlink() or not root.is_dir():
        return
    target_root = outbox_dir(job.job_dir, job.proc)
    remove_tree(target_root)
    for dirpath, dirnames, filenames in os.walk(root):  # does not descend into linked folders
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
        if len(rel.parts) >= _OUTBOX_DEPTH:
            dirnames[:] = []  # and os.walk, which recurses, never goes deeper than this
        try:
            (target_root / rel).mkdir(parents=True, exist_ok=True)
            for name in filenames:
                if len(str(rel / name)) <= _OUTBOX_PATH:
                    _copy_regular_file(Path(dirpath) / name, target_root / rel / name)
        except OSError:
            dirnames[:] = []  # a name too long for the worker's folders: not taken


def _copy_regular_file(source: Path, target: Path) -> bool:
    """Copy a file the job wrote, only if it is a regular file, opened without following a link (a
    job's link must not make the worker read one of its own files); False when it was not copied."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False  # a link, or gone
    with os.fdopen(fd, "rb") as src:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False  # a folder, FIFO or device: nothing to copy
        with open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
    return True


def _copy_back(job: LocalJob, scratch: Path) -> None:
    for name in job.output_files:
        _copy_regular_file(scratch / name, job.job_dir / name)
