"""The HTCondor executor: spooled submission to a schedd with htcondor2, canfar_submit style.

Each submission is staged in its own directory (the jobs' initialdir), so the
bindings read only the user's files, and the output comes back there.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import htcondor2

from orchestration.batch.base import (
    BatchError,
    ExecutorUnavailable,
    JobState,
    JobStatus,
    ParsedSubmit,
    PoolProfile,
    SubmitHandle,
    WorkerTarget,
)
from orchestration.batch.submit import PROXY_FILE_NAME, profile_lines
from orchestration.batch.validate import check_file_name

KEY_ATTR = "PortalSubmitKey"
HOLD_SPOOLING_INPUT = 16  # jobs submitted with spool=True wait on hold until their files arrive
_KEY_OK = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PROJECTION = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "HoldReason",
    "HoldReasonCode",
    "RemoteHost",
    "LastRemoteHost",
    "JobStartDate",
    "JobCurrentStartDate",
    "CompletionDate",
]


def _unavailable(exc: Exception) -> ExecutorUnavailable:
    return ExecutorUnavailable(f"The HTCondor pool cannot be reached now: {exc}")


class HTCondorExecutor:
    """Submit, follow and control jobs on a schedd.

    `schedd_factory` returns an `htcondor2.Schedd` (or a test double with its
    methods); it is called for every operation, since a Schedd object holds the
    schedd's address, which may change.
    """

    def __init__(
        self,
        schedd_factory: Callable[[], Any],
        profile: PoolProfile,
        work_root: Path,
        default_target: WorkerTarget | None = None,
    ) -> None:
        self.schedd_factory = schedd_factory
        self.profile = PoolProfile(profile)
        self.work_root = Path(work_root)
        self.default_target = default_target

    def _stage_dir(self, key: str) -> Path:
        if not _KEY_OK.fullmatch(key):
            raise BatchError("A submission key is 1-64 letters, digits, '-' or '_'.")
        return self.work_root / key

    def description(
        self, parsed: ParsedSubmit, key: str, proxy: bool, target: WorkerTarget | None
    ) -> htcondor2.Submit:
        """The submit description sent to the schedd (without its queue statement)."""
        desc: dict[str, str] = {k: v for k, v in parsed.body.items() if k.lower() != "should_transfer_files"}
        proxy_name = PROXY_FILE_NAME if proxy else None
        for k, v in profile_lines(self.profile, target or self.default_target, proxy_name):
            desc["MY." + k[1:] if k.startswith("+") else k] = v
        inputs = list(parsed.transfer_input_files)
        if proxy_name and self.profile == PoolProfile.V1:
            # canfar_submit's way: the file travels with the inputs and +PreCmd installs it.
            if proxy_name not in inputs:
                inputs.append(proxy_name)
        elif proxy_name:
            # HTCondor's own way: it sends the proxy and sets X509_USER_PROXY in the job.
            inputs = [n for n in inputs if n != proxy_name]
            desc["x509userproxy"] = str(self._stage_dir(key) / proxy_name)
        if inputs:
            desc["transfer_input_files"] = ", ".join(inputs)
        desc["initialdir"] = str(self._stage_dir(key))
        desc[f"MY.{KEY_ATTR}"] = f'"{key}"'
        return htcondor2.Submit(desc)

    def submit(
        self,
        parsed: ParsedSubmit,
        files: dict[str, bytes],
        key: str,
        proxy: bytes | None = None,
        target: WorkerTarget | None = None,
    ) -> SubmitHandle:
        """Stage the files, submit on hold with spooling, then upload the files. Idempotent per key."""
        existing = self.find(key)
        if existing is not None:
            return SubmitHandle(existing, len(self.status(existing)))
        missing = [n for n in [parsed.executable, *parsed.transfer_input_files] if n not in files]
        if proxy is not None:
            missing = [n for n in missing if n != PROXY_FILE_NAME]
        if missing:
            raise BatchError(
                f"These files are named in the submit file but were not given: {', '.join(missing)}"
            )
        stage = self._stage_dir(key)
        stage.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            problem = check_file_name(name, "file")
            if problem:
                raise BatchError(problem)
            (stage / name).write_bytes(content)
        (stage / parsed.executable).chmod(0o755)
        if proxy is not None:
            path = stage / PROXY_FILE_NAME
            path.write_bytes(proxy)
            path.chmod(0o600)
        sub = self.description(parsed, key, proxy is not None, target)
        items = [job.item_vars for job in parsed.jobs]
        try:
            schedd = self.schedd_factory()
            if parsed.queue_vars:
                result = schedd.submit(sub, spool=True, itemdata=iter(items))
            else:
                result = schedd.submit(sub, count=len(parsed.jobs), spool=True)
            schedd.spool(result)
        except htcondor2.HTCondorException as exc:
            raise _unavailable(exc) from exc
        finally:
            # The schedd holds its own copy once spooled; a retry writes it again. Never left on disk.
            (stage / PROXY_FILE_NAME).unlink(missing_ok=True)
        return SubmitHandle(result.cluster(), result.num_procs())

    def find(self, key: str) -> int | None:
        """The cluster submitted with this key, if the schedd knows it (queue or history)."""
        constraint = f'{KEY_ATTR} == "{self._stage_dir(key).name}"'
        try:
            schedd = self.schedd_factory()
            ads = schedd.query(constraint, ["ClusterId"], limit=1) or schedd.history(
                constraint, ["ClusterId"], match=1
            )
        except htcondor2.HTCondorException as exc:
            raise _unavailable(exc) from exc
        return int(ads[0]["ClusterId"]) if ads else None

    def status(self, cluster: int) -> list[JobStatus]:
        """Every job of the cluster: the queue first, then the history for jobs that left it."""
        constraint = f"ClusterId == {int(cluster)}"
        try:
            schedd = self.schedd_factory()
            queued = schedd.query(constraint, _PROJECTION)
            done = schedd.history(constraint, _PROJECTION, match=-1)
        except htcondor2.HTCondorException as exc:
            raise _unavailable(exc) from exc
        by_proc: dict[int, JobStatus] = {}
        for ad in [*done, *queued]:  # the queue is newer than the history
            status = _job_status(ad)
            by_proc[status.proc] = status
        return [by_proc[p] for p in sorted(by_proc)]

    def _act(self, action: htcondor2.JobAction, cluster: int, procs: list[int] | None, reason: str) -> None:
        spec: str | list[str] = (
            str(int(cluster)) if procs is None else [f"{int(cluster)}.{int(p)}" for p in procs]
        )
        try:
            self.schedd_factory().act(action, spec, reason=reason or None)
        except htcondor2.HTCondorException as exc:
            raise _unavailable(exc) from exc

    def hold(self, cluster: int, procs: list[int] | None = None, reason: str = "") -> None:
        self._act(htcondor2.JobAction.Hold, cluster, procs, reason or "held from the portal")

    def release(self, cluster: int, procs: list[int] | None = None) -> None:
        self._act(htcondor2.JobAction.Release, cluster, procs, "released from the portal")

    def remove(self, cluster: int, procs: list[int] | None = None) -> None:
        self._act(htcondor2.JobAction.Remove, cluster, procs, "removed from the portal")

    def retrieve(self, cluster: int) -> Path:
        """Bring finished jobs' output back into the submission's staging directory and return it."""
        try:
            schedd = self.schedd_factory()
            ads = schedd.query(f"ClusterId == {int(cluster)}", ["ClusterId", "Iwd", KEY_ATTR], limit=1)
            schedd.retrieve(f"ClusterId == {int(cluster)} && JobStatus == 4")
        except htcondor2.HTCondorException as exc:
            raise _unavailable(exc) from exc
        if not ads:
            raise BatchError(
                f"Cluster {cluster} is no longer in the queue; its output was already retrieved."
            )
        return self._stage_dir(str(ads[0][KEY_ATTR]))

    def forget(self, key: str) -> None:
        """Delete a submission's staging directory once its output is stored elsewhere."""
        shutil.rmtree(self._stage_dir(key), ignore_errors=True)


def _job_status(ad: Any) -> JobStatus:
    code = int(ad.get("JobStatus", 1))
    hold_code = ad.get("HoldReasonCode")
    exit_code = signal = None
    if code == 4:
        if ad.get("ExitBySignal"):
            signal = int(ad.get("ExitSignal", 0))
            state = JobState.FAILED
        else:
            exit_code = int(ad.get("ExitCode", 0))
            state = JobState.DONE if exit_code == 0 else JobState.FAILED
    elif code == 5 and hold_code == HOLD_SPOOLING_INPUT:
        state = JobState.IDLE  # still receiving its input files
    else:
        state = {
            1: JobState.IDLE,
            2: JobState.RUNNING,
            3: JobState.REMOVED,
            5: JobState.HELD,
            6: JobState.RUNNING,
            7: JobState.RUNNING,
        }.get(code, JobState.IDLE)
    host = str(ad.get("RemoteHost") or ad.get("LastRemoteHost") or "")
    start = ad.get("JobCurrentStartDate") or ad.get("JobStartDate")
    finish = ad.get("CompletionDate")
    return JobStatus(
        cluster=int(ad["ClusterId"]),
        proc=int(ad["ProcId"]),
        state=state,
        exit_code=exit_code,
        signal=signal,
        host=host.split("@")[-1],
        hold_reason=str(ad.get("HoldReason") or "") if state == JobState.HELD else "",
        started_at=float(start) if start else None,
        finished_at=float(finish) if finish else None,
    )
