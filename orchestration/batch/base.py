"""Data types, errors and the executor interface shared by the batch executors.

Plain Python: the portal's views and tasks call these and store what they return.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol


class BatchError(Exception):
    """A batch operation failed; the message is meant for the user."""


class BatchValidationError(BatchError):
    """User input (a submit file, items, a script) has one or more problems.

    `problems` lists every problem found, so the user can fix them all at once.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class ExecutorUnavailable(BatchError):
    """The batch system cannot be reached now; worth retrying later."""


class ClusterGone(BatchError):
    """The batch system knows nothing of the cluster any more (its jobs and their files are gone)."""


class SubmissionLost(BatchError):
    """The schedd took the cluster but its files never arrived, and it removed the cluster (or will).

    Nothing of it can run: the caller sends the jobs again under a new key, or gives up with this
    message. Never retried under the same key, which would find the removed cluster.
    """

    def __init__(self, message: str, cluster: int) -> None:
        self.cluster = cluster
        super().__init__(message)


class PoolProfile(enum.StrEnum):
    """What the pool expects the portal to add to a submit description (see INTEGRATION.md)."""

    V1 = "v1"  # cloud-scheduler v1: VMType/VMAMI/VMInstanceType, proxy hook
    CSV2 = "csv2"  # cloud-scheduler v2: group_name requirement
    NONE = "none"  # a plain pool, or the local executor


@dataclass(frozen=True)
class WorkerTarget:
    """Where jobs run on a cloud pool: the snapshot workers boot from, and their flavor."""

    project: str = ""
    image_name: str = ""
    image_id: str = ""
    flavor: str = ""


@dataclass(frozen=True)
class LocalServices:
    """The archive and storage of a portal whose backends are local folders, offered to its jobs with
    stand-ins for the CADC tools (``jobtools/``: cadcget, vcp, vls, vmkdir), so the tutorial's scripts
    run unchanged. Inside bubblewrap the archive and, of all users' storage, only the job owner's own
    folder are visible, both read-only: vcp writes to an outbox the portal stores when the job ends."""

    tools_dir: Path
    archive_dir: Path
    storage_dir: Path  # the owner's own space
    vos_uri: str  # how the owner's space is named in vos: paths, e.g. vos:alice

    def to_json(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> LocalServices:
        return cls(
            Path(data["tools_dir"]), Path(data["archive_dir"]), Path(data["storage_dir"]), data["vos_uri"]
        )


@dataclass(frozen=True)
class BatchSpec:
    """What the batch form hands to `build_submit`."""

    name: str
    script_name: str
    items: list[str]
    output: str = ""  # default "<name>-$(arguments).out"
    error: str = ""
    log: str = ""
    request_cpus: int = 1
    request_memory_mb: int = 2048
    request_disk_mb: int = 4096
    profile: PoolProfile = PoolProfile.NONE
    target: WorkerTarget | None = None  # snapshot and flavor of the workers (cloud pools)
    proxy_cert: str | None = None  # file name of the proxy certificate sent with each job
    output_files: str = ""  # transfer_output_files pattern, e.g. "$(arguments).cat"


@dataclass(frozen=True)
class ParsedJob:
    """One job of a submission, with its values expanded as HTCondor would."""

    proc: int
    item: str  # the raw item text ("" for `queue N` jobs)
    argv: list[str]  # the arguments, never passed through a shell
    output: str
    error: str
    log: str
    item_vars: dict[str, str] = field(default_factory=dict)  # queue variables, e.g. {"arguments": ...}
    output_files: list[str] = field(default_factory=list)  # declared outputs (transfer_output_files)


@dataclass(frozen=True)
class ParsedSubmit:
    """A checked submit description and the jobs it makes."""

    text: str
    executable: str
    jobs: list[ParsedJob]
    request_cpus: int
    request_memory_mb: int
    request_disk_mb: int
    transfer_input_files: list[str] = field(default_factory=list)
    # the description without its queue statement, for Schedd.submit with itemdata
    body: dict[str, str] = field(default_factory=dict)
    queue_vars: list[str] = field(default_factory=list)


class JobState(enum.StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    HELD = "held"
    DONE = "done"  # finished with exit code 0
    NO_OUTPUT = "nooutput"  # exit code 0, but a declared output file did not arrive
    FAILED = "failed"  # non-zero exit code or killed by a signal
    REMOVED = "removed"


@dataclass(frozen=True)
class JobStatus:
    """The state of one job as the batch system reports it."""

    cluster: int
    proc: int
    state: JobState
    exit_code: int | None = None
    signal: int | None = None
    host: str = ""
    hold_reason: str = ""  # held: why; nooutput: what the pool said about the missing files
    started_at: float | None = None  # unix time the job started executing (after its input transfer)
    finished_at: float | None = None
    remove_reason: str = ""  # removed: why, in words


@dataclass(frozen=True)
class IdleExplanation:
    """Why idle jobs are not matched: the pool's own analysis (condor_q -better-analyze) in words."""

    text: str
    slots: int  # slots in the pool
    matching: int  # slots the job's Requirements accept


@dataclass(frozen=True)
class SubmitHandle:
    """What a submission created: the cluster id and how many jobs."""

    cluster: int
    num_jobs: int


class Executor(Protocol):
    """One interface for the HTCondor and local executors.

    `key` is the portal's idempotency key for a submission: submitting twice
    with the same key returns the first cluster, so a retried task makes no
    duplicate; `find(key)` tells a repair task whether a submission got through.
    """

    def submit(
        self,
        parsed: ParsedSubmit,
        files: dict[str, bytes],
        key: str,
        proxy: bytes | None = None,
        target: WorkerTarget | None = None,
        services: LocalServices | None = None,
    ) -> SubmitHandle:
        """Send the jobs; `target` is where a cloud pool boots its workers, `services` the local
        archive and storage offered to jobs run here (each executor ignores what does not apply)."""
        ...

    def find(self, key: str) -> int | None: ...

    def status(self, cluster: int) -> list[JobStatus]: ...

    def hold(self, cluster: int, procs: list[int] | None = None, reason: str = "") -> None: ...

    def release(self, cluster: int, procs: list[int] | None = None) -> None: ...

    def remove(self, cluster: int, procs: list[int] | None = None, reason: str = "") -> None: ...

    def retrieve(self, cluster: int, procs: list[int] | None = None) -> Path:
        """Fetch finished jobs' .out, .err, .log (and output files) into a local directory; return it."""
        ...

    def explain_idle(self, cluster: int) -> IdleExplanation | None:
        """Why the cluster's idle jobs are not matched (None when there is nothing to explain)."""
        ...

    def discard_proxy(self, cluster: int) -> None:
        """Delete the copies of the proxy certificate kept for the cluster's jobs (if any)."""
        ...
