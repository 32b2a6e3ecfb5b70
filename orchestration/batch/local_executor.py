"""The local executor: submissions kept as directories, jobs run by workers with `run_job`.

Layout under `root` (a directory all workers share):
  <cluster>/submission.json   the parsed jobs and the key, written last: the submission is complete
  <cluster>/files/            the script and input files as uploaded
  <cluster>/out/              each job's .out, .err and event log (the job state lives in the log)
  <cluster>/claims/<proc>     which worker runs the job (created with O_EXCL: a job runs once)
  <cluster>/stop/<proc>       asks the worker running the job to stop it (hold, remove)
  keys/<key>                  symlink to the cluster, made right after the cluster is allocated, so a
                              submit that dies half way is completed by the retry (no duplicate, no orphan)

The executor sends no messages: the caller decides how workers learn about runnable jobs
(the portal's workers pull idle jobs from its database and call `run`).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict
from pathlib import Path

from orchestration.batch.base import (
    BatchError,
    IdleExplanation,
    JobState,
    JobStatus,
    LocalServices,
    ParsedJob,
    ParsedSubmit,
    SubmitHandle,
    WorkerTarget,
)
from orchestration.batch.eventlog import HOLD_FAILED_TO_START, EventLogWriter, JobEvent, read_events
from orchestration.batch.local_runner import JobResult, Limits, LocalJob, OnStart, kill_job, run_job
from orchestration.batch.sandbox import SandboxConfig
from orchestration.batch.submit import PROXY_FILE_NAME
from orchestration.batch.validate import check_file_name


def state_from_events(cluster: int, proc: int, events: list[JobEvent]) -> JobStatus:
    """The state of a job from its event log, read the way condor_q would report it."""
    state, exit_code, signal, host, reason = JobState.IDLE, None, None, "", ""
    started = finished = None
    for e in events:
        if e.cluster != cluster or e.proc != proc:
            continue
        if e.kind in ("submit", "released", "evicted"):
            state, reason = JobState.IDLE, ""
        elif e.kind == "execute":
            state, host, started, finished = JobState.RUNNING, e.host, e.time, None
        elif e.kind == "terminated":
            exit_code, signal, finished = e.return_value, e.signal, e.time
            state = JobState.DONE if exit_code == 0 and signal is None else JobState.FAILED
        elif e.kind == "held":
            state, reason = JobState.HELD, e.reason
        elif e.kind == "aborted":
            state, finished = JobState.REMOVED, e.time
    return JobStatus(cluster, proc, state, exit_code, signal, host, reason, started, finished)


class LocalExecutor:
    """The Executor interface over a shared directory; workers run its jobs with `run`."""

    def __init__(
        self,
        root: Path,
        scratch_root: Path,
        limits: Limits | None = None,
        sandbox: SandboxConfig | None = None,
        hidden_paths: list[Path] | None = None,
    ) -> None:
        self.root = Path(root)
        self.scratch_root = Path(scratch_root)
        self.limits = limits or Limits()
        self.sandbox = sandbox or SandboxConfig()
        self.hidden_paths = list(hidden_paths or [])

    # ------------------------------------------------------------------ submission
    def _dir(self, cluster: int) -> Path:
        return self.root / str(int(cluster))

    def _key_link(self, key: str) -> Path:
        problem = check_file_name(key, "submission key")
        if problem:
            raise BatchError(problem)
        return self.root / "keys" / key

    def discard_proxy(self, cluster: int) -> None:
        """Delete the cluster's copy of the proxy certificate once none of its jobs can run again."""
        (self._dir(cluster) / "files" / PROXY_FILE_NAME).unlink(missing_ok=True)

    def find(self, key: str) -> int | None:
        """The cluster of a complete submission with this key, or None."""
        cluster = self._linked(key)
        if cluster is None or not (self._dir(cluster) / "submission.json").exists():
            return None
        return cluster

    def _linked(self, key: str) -> int | None:
        try:
            return int(os.readlink(self._key_link(key)))
        except FileNotFoundError:
            return None

    def _new_cluster(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name) for p in self.root.iterdir() if p.name.isdigit()]
        cluster = max(numbers, default=0) + 1
        while True:
            try:
                self._dir(cluster).mkdir()
                return cluster
            except FileExistsError:  # another worker took it
                cluster += 1

    def _allocate(self, key: str) -> tuple[int, bool]:
        """The cluster for this key: (cluster, True) when new, (cluster, False) when an attempt made it."""
        existing = self._linked(key)
        if existing is not None:
            return existing, False
        cluster = self._new_cluster()
        link = self._key_link(key)
        link.parent.mkdir(exist_ok=True)
        try:
            link.symlink_to(str(cluster))  # atomic: from now on a retry completes this cluster
        except FileExistsError:  # a concurrent attempt with the same key won
            self._dir(cluster).rmdir()
            return self._linked(key) or cluster, False
        return cluster, True

    def submit(
        self,
        parsed: ParsedSubmit,
        files: dict[str, bytes],
        key: str,
        proxy: bytes | None = None,
        target: WorkerTarget | None = None,  # unused: jobs run here, not on cloud workers
        services: LocalServices | None = None,
    ) -> SubmitHandle:
        """Record the submission and log each job as submitted. Safe to repeat, or to resume, with a key."""
        existing = self.find(key)
        if existing is not None:
            return SubmitHandle(existing, len(self._jobs(existing)))
        needed = [parsed.executable, *(n for n in parsed.transfer_input_files if n != PROXY_FILE_NAME)]
        missing = [n for n in needed if n not in files]
        if missing:
            raise BatchError(
                f"These files are named in the submit file but were not given: {', '.join(missing)}"
            )
        for name in files:
            problem = check_file_name(name, "file")
            if problem:
                raise BatchError(problem)
        cluster, fresh = self._allocate(key)
        base = self._dir(cluster)
        for sub in ("files", "out", "claims", "stop"):
            (base / sub).mkdir(exist_ok=True)
        for name, content in files.items():
            (base / "files" / name).write_bytes(content)
        if proxy is not None:
            fd = os.open(base / "files" / PROXY_FILE_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(proxy)
        host = socket.gethostname()
        logged: dict[str, set[int]] = {}  # a resumed attempt logs only the jobs the first one did not
        for job in parsed.jobs:
            name = self._log_name(job)
            if not fresh and name not in logged:
                logged[name] = {e.proc for e in read_events(base / "out" / name) if e.cluster == cluster}
            if job.proc not in logged.get(name, ()):
                EventLogWriter(base / "out" / name, cluster, job.proc).submitted(host)
        record = {
            "key": key,
            "executable": parsed.executable,
            "inputs": [n for n in parsed.transfer_input_files if n != PROXY_FILE_NAME],
            "proxy": proxy is not None,
            "services": services.to_json() if services else None,
            "jobs": [asdict(job) for job in parsed.jobs],
        }
        tmp = base / ".submission.json.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, base / "submission.json")  # the submission is complete
        return SubmitHandle(cluster, len(parsed.jobs))

    @staticmethod
    def _log_name(job: ParsedJob) -> str:
        return job.log or f"job-{job.proc}.log"

    def _jobs(self, cluster: int) -> list[ParsedJob]:
        try:
            record = json.loads((self._dir(cluster) / "submission.json").read_text())
        except FileNotFoundError as exc:
            raise BatchError(f"There is no batch submission {cluster}.") from exc
        return [ParsedJob(**job) for job in record["jobs"]]

    def runnable(self, cluster: int) -> list[int]:
        """Jobs that are idle and claimed by no worker (for callers without the portal's database)."""
        claims = self._dir(cluster) / "claims"
        return [
            s.proc
            for s in self.status(cluster)
            if s.state == JobState.IDLE and not (claims / str(s.proc)).exists()
        ]

    # ------------------------------------------------------------------ running
    def run(self, cluster: int, proc: int, on_start: OnStart | None = None) -> JobResult | None:
        """Run one job on this worker; None if another worker claimed it or it is no longer idle."""
        base = self._dir(cluster)
        record = json.loads((base / "submission.json").read_text())
        job = ParsedJob(**record["jobs"][proc])
        if self._status_of(cluster, job).state != JobState.IDLE:
            return None
        try:
            fd = os.open(base / "claims" / str(proc), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return None
        claim = os.fdopen(fd, "w")

        def started(pid: int, host: str) -> None:
            claim.write(json.dumps({"host": host, "pid": pid}))
            claim.close()
            if on_start is not None:
                on_start(pid, host)

        files = base / "files"
        local = LocalJob(
            cluster=cluster,
            proc=proc,
            script=files / record["executable"],
            argv=job.argv,
            job_dir=base / "out",
            output=job.output or f"job-{proc}.out",
            error=job.error or f"job-{proc}.err",
            log=self._log_name(job),
            scratch_root=self.scratch_root,
            limits=self.limits,
            input_files=[files / n for n in record["inputs"]],
            output_files=list(job.output_files),
            proxy=files / PROXY_FILE_NAME if record["proxy"] else None,
            sandbox=self.sandbox,
            hidden_paths=[*self.hidden_paths, self.root],
            stop_file=base / "stop" / str(proc),
            services=LocalServices.from_json(record["services"]) if record.get("services") else None,
        )
        try:
            return run_job(local, on_start=started)
        finally:
            claim.close()  # a no-op once the job started

    # ------------------------------------------------------------------ watching
    def _status_of(self, cluster: int, job: ParsedJob) -> JobStatus:
        return state_from_events(
            cluster, job.proc, read_events(self._dir(cluster) / "out" / self._log_name(job))
        )

    def status(self, cluster: int) -> list[JobStatus]:
        jobs = self._jobs(cluster)
        cache: dict[str, list[JobEvent]] = {}  # jobs may share one log
        out = []
        for job in jobs:
            name = self._log_name(job)
            if name not in cache:
                cache[name] = read_events(self._dir(cluster) / "out" / name)
            out.append(state_from_events(cluster, job.proc, cache[name]))
        return out

    def log_path(self, cluster: int, proc: int) -> Path:
        return self._dir(cluster) / "out" / self._log_name(self._jobs(cluster)[proc])

    # ------------------------------------------------------------------ control
    def _select(self, cluster: int, procs: list[int] | None) -> list[ParsedJob]:
        jobs = self._jobs(cluster)
        return jobs if procs is None else [j for j in jobs if j.proc in set(procs)]

    def _stop(self, cluster: int, job: ParsedJob) -> None:
        """Ask the worker running the job to stop it; kill it directly when it runs on this host."""
        base = self._dir(cluster)
        (base / "stop" / str(job.proc)).touch()
        try:
            claim = json.loads((base / "claims" / str(job.proc)).read_text() or "{}")
        except FileNotFoundError:
            return
        if claim.get("host") == socket.gethostname() and claim.get("pid"):
            kill_job(int(claim["pid"]), self.limits.kill_grace_seconds)

    def hold(self, cluster: int, procs: list[int] | None = None, reason: str = "") -> None:
        for job, status in zip(self._select(cluster, procs), self._statuses(cluster, procs), strict=True):
            if status.state in (JobState.IDLE, JobState.RUNNING):
                log = EventLogWriter(self._dir(cluster) / "out" / self._log_name(job), cluster, job.proc)
                log.held(reason or "via condor_hold (by the portal)")
                self._stop(cluster, job)

    def release(self, cluster: int, procs: list[int] | None = None) -> None:
        base = self._dir(cluster)
        for job, status in zip(self._select(cluster, procs), self._statuses(cluster, procs), strict=True):
            if status.state == JobState.HELD:
                (base / "stop" / str(job.proc)).unlink(missing_ok=True)
                (base / "claims" / str(job.proc)).unlink(missing_ok=True)
                EventLogWriter(base / "out" / self._log_name(job), cluster, job.proc).released()

    def remove(self, cluster: int, procs: list[int] | None = None, reason: str = "") -> None:
        """Remove the jobs (the event log says "via condor_rm (by the portal)", whatever `reason`)."""
        for job, status in zip(self._select(cluster, procs), self._statuses(cluster, procs), strict=True):
            if status.state in (JobState.IDLE, JobState.RUNNING, JobState.HELD):
                log = EventLogWriter(self._dir(cluster) / "out" / self._log_name(job), cluster, job.proc)
                log.aborted("via condor_rm (by the portal)")
                self._stop(cluster, job)

    def _statuses(self, cluster: int, procs: list[int] | None) -> list[JobStatus]:
        return [s for s in self.status(cluster) if procs is None or s.proc in set(procs)]

    def abandon(self, cluster: int, proc: int, reason: str, retry: bool) -> tuple[JobStatus, JobStatus]:
        """Clean up after a worker that died while it held the job.

        A job that was running is stopped (its process group outlives the worker), held with
        `reason` and, if `retry`, released to run again; a job claimed but never started is
        simply unclaimed. Finished jobs are left alone. Safe to repeat. Returns (before, after).
        """
        base = self._dir(cluster)
        job = self._jobs(cluster)[proc]
        claim_path = base / "claims" / str(proc)
        try:
            claim = json.loads(claim_path.read_text() or "{}")
        except (FileNotFoundError, ValueError):
            claim = {}
        if claim.get("pid") and claim.get("host") == socket.gethostname():
            kill_job(int(claim["pid"]), min(self.limits.kill_grace_seconds, 1.0))
        status = self._status_of(cluster, job)
        if status.state == JobState.RUNNING:
            EventLogWriter(base / "out" / self._log_name(job), cluster, proc).held(
                reason, HOLD_FAILED_TO_START
            )
            if retry:
                self.release(cluster, [proc])
        elif status.state == JobState.IDLE:
            claim_path.unlink(missing_ok=True)  # never started: free for the next worker
        return status, self._status_of(cluster, job)

    def retrieve(self, cluster: int, procs: list[int] | None = None) -> Path:
        """The jobs write straight into this directory: nothing to fetch."""
        return self._dir(cluster) / "out"

    def explain_idle(self, cluster: int) -> IdleExplanation | None:
        """Idle local jobs wait for a free worker slot, not for a match: nothing to explain."""
        return None
