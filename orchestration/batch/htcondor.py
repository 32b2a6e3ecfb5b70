"""The HTCondor executor: spooled submission to a schedd with htcondor2, canfar_submit style.

Each submission is staged in its own directory (the jobs' initialdir), so the
bindings read only the user's files, and the output comes back there.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import classad2
import htcondor2

from orchestration.batch.base import (
    BatchError,
    ClusterGone,
    ExecutorUnavailable,
    IdleExplanation,
    JobState,
    JobStatus,
    LocalServices,
    ParsedSubmit,
    PoolProfile,
    SubmissionLost,
    SubmitHandle,
    WorkerTarget,
)
from orchestration.batch.submit import PROXY_FILE_NAME, profile_lines
from orchestration.batch.validate import check_file_name

KEY_ATTR = "PortalSubmitKey"
_BREAKS_LINES = re.compile(r"[\n\r\x00]")
HOLD_SPOOLING_INPUT = 16  # jobs submitted with spool=True wait on hold until their files arrive
HOLD_TRANSFER_OUTPUT = 12  # "Transfer output files failure": the job exited without a declared output
REASON_CODE = 0  # sent with every reason (the bindings need a (text, code) tuple)
HELD_FROM_PORTAL = "Held from the portal"
REMOVED_FROM_PORTAL = "Removed from the portal"
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
    "JobCurrentStartExecutingDate",
    "CompletionDate",
    "RemoveReason",
    "EnteredCurrentStatus",
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
        collector_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.schedd_factory = schedd_factory
        self.collector_factory = collector_factory  # for the slot ads that explain idle jobs
        self._slots: list[Any] | None = None
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
        return htcondor2.Submit(self.submit_values(parsed, key, proxy, target))

    def submit_values(
        self, parsed: ParsedSubmit, key: str, proxy: bool, target: WorkerTarget | None
    ) -> dict[str, str]:
        """The values of the submit description, checked to stay one line each in submit language.

        The executable and every input are absolute paths inside the staged submission: the
        bindings resolve a relative executable against the submitting process's working directory
        (the worker's), never initialdir, and would spool whatever file has that name there.
        """
        stage = self._stage_dir(key)
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
            desc["x509userproxy"] = str(stage / proxy_name)
        for k in [k for k in desc if k.lower() in ("executable", "transfer_input_files", "initialdir")]:
            del desc[k]
        present = {k.lower() for k in desc}
        for name, value in (
            ("request_cpus", str(parsed.request_cpus)),
            ("request_memory", f"{parsed.request_memory_mb}MB"),
            ("request_disk", f"{parsed.request_disk_mb}MB"),  # HTCondor's unit for disk is KB
        ):
            if name not in present:  # what the portal recorded and shows is what the pool is asked for
                desc[name] = value
        desc["executable"] = str(stage / parsed.executable)
        if inputs:
            desc["transfer_input_files"] = ", ".join(str(stage / name) for name in inputs)
        desc["initialdir"] = str(stage)
        desc[f"MY.{KEY_ATTR}"] = f'"{key}"'
        for name, value in desc.items():
            # htcondor2.Submit(dict) and Schedd.submit write `key = value` lines and parse them: a line
            # end would start a statement, a trailing backslash would join the next line into this one.
            if _BREAKS_LINES.search(value) or value.rstrip(" \t\f\v").endswith("\\"):
                raise BatchError(
                    f"{name} holds a line end or a trailing backslash; it is not sent to HTCondor."
                )
        return desc

    def submit(
        self,
        parsed: ParsedSubmit,
        files: dict[str, bytes],
        key: str,
        proxy: bytes | None = None,
        target: WorkerTarget | None = None,
        services: LocalServices | None = None,  # unused: pool jobs use the real CADC tools
    ) -> SubmitHandle:
        """Stage the files, submit on hold with spooling, then upload the files. Idempotent per key.

        SubmissionLost when a cluster of this key exists but its files never arrived (this call's
        spool failed, or an earlier worker died before or while spooling): the schedd removes such
        a cluster, so it is removed here too, and the jobs must be sent again under a new key.
        """
        for cluster, through in self._clusters(key):
            if through:
                return SubmitHandle(cluster, len(self.status(cluster)))
            self._drop(cluster, "staging of its files never finished")
            raise SubmissionLost(
                f"Cluster {cluster} never received its files (the submission was cut off); "
                "the schedd removed it.",
                cluster,
            )
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
            try:
                schedd = self.schedd_factory()
                if parsed.queue_vars:
                    result = schedd.submit(sub, spool=True, itemdata=iter(items))
                else:
                    result = schedd.submit(sub, count=len(parsed.jobs), spool=True)
            except htcondor2.HTCondorException as exc:
                raise _unavailable(exc) from exc  # a retry under the same key finds what got through
            cluster = result.cluster()
            try:
                schedd.spool(result)
            except htcondor2.HTCondorException as exc:
                # The schedd removes a cluster whose spooling failed; nothing of it will run.
                self._drop(cluster, "staging of its files failed")
                raise SubmissionLost(
                    f"HTCondor could not receive the job files of cluster {cluster} ({exc}); "
                    "the schedd removed the cluster.",
                    cluster,
                ) from exc
        finally:
            # The schedd holds its own copy once spooled; a retry writes it again. Never left on disk.
            (stage / PROXY_FILE_NAME).unlink(missing_ok=True)
        for found, through in self._clusters(key):
            if found == cluster and not through:  # spool() returned, yet the schedd removed the jobs
                self._drop(cluster, "staging of its files never finished")
                raise SubmissionLost(
                    f"The schedd removed cluster {cluster}: staging of its files failed.", cluster
                )
        return SubmitHandle(cluster, result.num_procs())

    def _clusters(self, key: str) -> list[tuple[int, bool]]:
        """Clusters submitted with this key, each with whether its files reached the schedd.

        A cluster did not get through when a job still waits on its spooling hold (code 16) or was
        removed because its staging failed; a cluster the user removed did get through.
        """
        constraint = f'{KEY_ATTR} == "{self._stage_dir(key).name}"'
        projection = ["ClusterId", "JobStatus", "HoldReasonCode", "RemoveReason"]
        try:
            schedd = self.schedd_factory()
            ads = [*schedd.query(constraint, projection), *schedd.history(constraint, projection, match=-1)]
        except htcondor2.HTCondorException as exc:
            raise _unavailable(exc) from exc
        through: dict[int, bool] = {}
        for ad in ads:
            cluster = int(ad["ClusterId"])
            through[cluster] = through.get(cluster, True) and not _lost_in_staging(ad)
        return sorted(through.items())

    def _drop(self, cluster: int, why: str) -> None:
        """Remove a cluster that cannot run (the schedd may have done so already).

        `why` names the staging, so a later look at the key still sees the cluster as lost
        (`_lost_in_staging`) even if the worker dies before the new key is recorded.
        """
        with contextlib.suppress(ExecutorUnavailable):  # the schedd removes such a cluster by itself
            self._act(htcondor2.JobAction.Remove, cluster, None, f"Removed by the portal: {why}")

    def find(self, key: str) -> int | None:
        """The cluster submitted with this key whose files reached the schedd (queue or history).

        A cluster the schedd removed because its spooling failed is not "found": it never ran.
        """
        for cluster, through in self._clusters(key):
            if through:
                return cluster
        return None

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
            # A tuple: the bindings (25.14.1) drop a plain string reason without a word.
            self.schedd_factory().act(action, spec, reason=(reason, REASON_CODE))
        except htcondor2.HTCondorException as exc:
            raise _unavailable(exc) from exc

    def hold(self, cluster: int, procs: list[int] | None = None, reason: str = "") -> None:
        self._act(htcondor2.JobAction.Hold, cluster, procs, reason or HELD_FROM_PORTAL)

    def release(self, cluster: int, procs: list[int] | None = None) -> None:
        self._act(htcondor2.JobAction.Release, cluster, procs, "Released from the portal")

    def remove(self, cluster: int, procs: list[int] | None = None, reason: str = "") -> None:
        self._act(htcondor2.JobAction.Remove, cluster, procs, reason or REMOVED_FROM_PORTAL)

    def retrieve(self, cluster: int, procs: list[int] | None = None) -> Path:
        """Bring completed jobs' output (all, or these procs) back into the staging directory; return it.

        Spooled jobs stay in the queue once completed until their output is retrieved; then they
        leave it for the history. Retrieving a job twice is harmless.
        """
        where = f"ClusterId == {int(cluster)}"
        constraint = f"{where} && JobStatus == 4"
        if procs is not None:
            constraint += " && member(ProcId, {" + ", ".join(str(int(p)) for p in procs) + "})"
        try:
            schedd = self.schedd_factory()
            ads = schedd.query(where, ["ClusterId", KEY_ATTR], limit=1) or schedd.history(
                where, ["ClusterId", KEY_ATTR], match=1
            )
            schedd.retrieve(constraint)
        except htcondor2.HTCondorException as exc:
            raise _unavailable(exc) from exc
        if not ads or KEY_ATTR not in ads[0]:
            raise ClusterGone(f"The schedd knows no cluster {cluster}.")
        return self._stage_dir(str(ads[0][KEY_ATTR]))

    def explain_idle(self, cluster: int) -> IdleExplanation | None:
        """Why the cluster's idle jobs are not matched, from the slots the collector advertises.

        What `condor_q -better-analyze` does: the job's Requirements against every slot's ad,
        clause by clause. None when no job of the cluster is idle (or no collector is known).
        """
        if self.collector_factory is None:
            return None
        try:
            ads = self.schedd_factory().query(f"ClusterId == {int(cluster)} && JobStatus == 1", [], limit=1)
            if ads and self._slots is None:  # one collector query per executor (a sync round)
                self._slots = list(self.collector_factory().query(htcondor2.AdType.Startd, projection=[]))
            slots = self._slots or []
        except htcondor2.HTCondorException as exc:
            raise _unavailable(exc) from exc
        if not ads:
            return None
        return analyze_requirements(ads[0], slots)

    def discard_proxy(self, cluster: int) -> None:
        """Nothing to do: the proxy certificate is spooled with the jobs and no copy is kept here."""

    def forget(self, key: str) -> None:
        """Delete a submission's staging directory once its output is stored elsewhere."""
        shutil.rmtree(self._stage_dir(key), ignore_errors=True)


def _lost_in_staging(ad: Any) -> bool:
    """A job that never received its files: still on its spooling hold, or removed for failed staging."""
    code = int(ad.get("JobStatus", 0))
    hold = ad.get("HoldReasonCode")
    if code == 5 and hold == HOLD_SPOOLING_INPUT:
        return True
    reason = str(ad.get("RemoveReason") or "").lower()
    return code == 3 and (hold == HOLD_SPOOLING_INPUT or "staging" in reason or "spool" in reason)


def _conjuncts(text: str) -> list[str]:
    """The top-level `&&` clauses of a ClassAd expression, outer parentheses dropped."""
    out, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith("&&", i):
            out.append(text[start:i])
            start = i + 2
            i += 1
        i += 1
    out.append(text[start:])
    clauses = []
    for part in (p.strip() for p in out):
        while part.startswith("(") and part.endswith(")") and _conjuncts(part[1:-1]) != [part]:
            inner = _conjuncts(part[1:-1])
            if len(inner) > 1:
                clauses += inner
                part = ""
                break
            part = part[1:-1].strip()
        if part:
            clauses.append(part)
    return clauses


_ATTR = re.compile(r"(?<![\w.\"])(?:TARGET\.|MY\.)?([A-Za-z_][A-Za-z0-9_]*)(?![\w\"(])")
_WORDS = {"true", "false", "undefined", "error", "isundefined", "member", "target", "my"}


def analyze_requirements(job: Any, slots: list[Any]) -> IdleExplanation:
    """The job's Requirements clause by clause against the slots: the first clause no slot meets."""
    requirements = str(job.get("Requirements", "true"))
    matching = [s for s in slots if classad2.ExprTree(requirements).eval(job, s) is True]
    if not slots:
        return IdleExplanation("The pool advertises no worker slots at all.", 0, 0)
    if matching:
        return IdleExplanation(
            f"{len(matching)} of {len(slots)} worker slots would run these jobs; they wait for one to be free.",
            len(slots),
            len(matching),
        )
    for clause in _conjuncts(requirements):
        if any(classad2.ExprTree(clause).eval(job, s) is True for s in slots):
            continue
        names = [m.group(1) for m in _ATTR.finditer(clause) if m.group(1).lower() not in _WORDS]
        absent = [n for n in names if n not in job and not any(n in s for s in slots)]
        if absent:
            text = f"No worker offers {absent[0]}: the jobs require {clause}, which none of the {len(slots)} slots in the pool advertises."
        else:
            own = ", ".join(f"{n} is {job[n]}" for n in dict.fromkeys(names) if n in job)
            text = f"No worker meets {clause}{f' ({own})' if own else ''} (0 of {len(slots)} slots)."
        return IdleExplanation(text, len(slots), 0)
    return IdleExplanation(f"No worker meets the jobs' Requirements ({requirements}).", len(slots), 0)


def remove_words(ad: Any) -> str:
    """Why a job was removed, in words: a staging failure and a condor_rm are different stories."""
    reason = " ".join(str(ad.get("RemoveReason") or "").split())
    if _lost_in_staging(ad):
        return f"HTCondor could not stage the job's files, so it never ran ({reason or 'staging failed'})."
    if reason.startswith(REMOVED_FROM_PORTAL) or reason.startswith("Removed by the portal"):
        return f"{reason}."
    if reason:
        return f"Removed on the pool: {reason}."
    return "The job was removed before it finished."


def hold_words(ad: Any) -> str:
    """Why a job is held, in words, with HTCondor's own reason kept."""
    reason = " ".join(str(ad.get("HoldReason") or "").split())
    code = ad.get("HoldReasonCode")
    if code == 1 or code is None:  # by a user (condor_hold, or the portal)
        return f"{reason}." if reason else "Held by a user (no reason given)."
    return f"Held by HTCondor (code {int(code)}): {reason or 'no reason given'}"


def _job_status(ad: Any) -> JobStatus:
    code = int(ad.get("JobStatus", 1))
    hold_code = ad.get("HoldReasonCode")
    exit_code = signal = None
    hold_reason = remove_reason = ""
    if code == 4:
        if ad.get("ExitBySignal"):
            signal = int(ad.get("ExitSignal", 0))
            state = JobState.FAILED
        else:
            exit_code = int(ad.get("ExitCode", 0))
            state = JobState.DONE if exit_code == 0 else JobState.FAILED
    elif code == 5 and hold_code == HOLD_SPOOLING_INPUT:
        state = JobState.IDLE  # still receiving its input files
    elif code == 5 and hold_code == HOLD_TRANSFER_OUTPUT:
        # The job ran and exited, but a declared output file was not there to send back: HTCondor
        # holds it; to the user it is a job that completed without output.
        state = JobState.NO_OUTPUT
        hold_reason = "The job exited, but HTCondor could not bring back its declared output: " + " ".join(
            str(ad.get("HoldReason") or "Transfer output files failure").split()
        )
    elif code == 5:
        state = JobState.HELD
        hold_reason = hold_words(ad)
    elif code == 3:
        state = JobState.REMOVED
        remove_reason = remove_words(ad)
    else:
        state = {1: JobState.IDLE, 2: JobState.RUNNING, 6: JobState.RUNNING, 7: JobState.RUNNING}.get(
            code, JobState.IDLE
        )
    host = str(ad.get("RemoteHost") or ad.get("LastRemoteHost") or "")
    # Execution starts after the input transfer: JobCurrentStartDate would count the transfer too.
    start = ad.get("JobCurrentStartExecutingDate") or ad.get("JobCurrentStartDate") or ad.get("JobStartDate")
    finish = ad.get("CompletionDate")
    return JobStatus(
        cluster=int(ad["ClusterId"]),
        proc=int(ad["ProcId"]),
        state=state,
        exit_code=exit_code,
        signal=signal,
        host=host.split("@")[-1],
        hold_reason=hold_reason,
        remove_reason=remove_reason,
        started_at=float(start) if start else None,
        finished_at=float(finish) if finish else None,
    )
