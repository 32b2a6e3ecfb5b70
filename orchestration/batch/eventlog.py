"""HTCondor job event logs: the local executor writes the classic format, both executors read with htcondor2.

Each event is appended with one write() on an O_APPEND descriptor, so jobs that
share a log file (as HTCondor allows) do not interleave their lines.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import htcondor2

# Hold reason codes, as HTCondor uses them.
HOLD_USER = 1
HOLD_OUT_OF_RESOURCES = 34  # memory (or, here, output size) over the limit
HOLD_DURATION_EXCEEDED = 46  # allowed_job_duration
HOLD_FAILED_TO_START = 6

_USAGE = (
    "\t\tUsr 0 {ru}, Sys 0 {rs}  -  Run Remote Usage\n"
    "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Local Usage\n"
    "\t\tUsr 0 {ru}, Sys 0 {rs}  -  Total Remote Usage\n"
    "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Local Usage\n"
)


@dataclass(frozen=True)
class JobEvent:
    """One event of a job's life, as the log viewer and the status code need it."""

    kind: str  # submit, execute, terminated, held, released, aborted, evicted, image_size, transfer, other
    code: int  # the HTCondor event number (0, 1, 5, 12, 13, 9, ...)
    cluster: int
    proc: int
    time: float  # unix time
    host: str = ""
    return_value: int | None = None
    signal: int | None = None
    reason: str = ""
    hold_code: int | None = None
    hold_subcode: int | None = None
    detail: str = ""  # image size and file transfer events: what happened, in words


def _one_line(text: str) -> str:
    """Event text must stay on one line and never look like the '...' terminator."""
    line = " ".join(text.split())
    return line if line and line != "..." else "(no reason given)"


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class EventLogWriter:
    """Appends classic-format events for one job (cluster.proc) to a log file."""

    def __init__(self, path: str | os.PathLike[str], cluster: int, proc: int) -> None:
        self.path = Path(path)
        self.cluster = cluster
        self.proc = proc

    def _write(self, code: int, headline: str, body: str = "", when: float | None = None) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() if when is None else when))
        text = f"{code:03d} ({self.cluster:03d}.{self.proc:03d}.000) {stamp} {headline}\n{body}...\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode("utf-8", "replace"))
        finally:
            os.close(fd)

    def submitted(self, host: str = "127.0.0.1", when: float | None = None) -> None:
        self._write(0, f"Job submitted from host: <{_one_line(host)}>", when=when)

    def executing(self, host: str, when: float | None = None) -> None:
        self._write(1, f"Job executing on host: <{_one_line(host)}>", when=when)

    def terminated(
        self,
        return_value: int | None = None,
        signal: int | None = None,
        user_cpu: float = 0.0,
        sys_cpu: float = 0.0,
        when: float | None = None,
    ) -> None:
        """Normal termination with a return value, or abnormal termination by a signal."""
        if signal is not None:
            status = f"\t(0) Abnormal termination (signal {signal})\n\t(0) No core file\n"
        else:
            status = f"\t(1) Normal termination (return value {return_value or 0})\n"
        usage = _USAGE.format(ru=_hms(user_cpu), rs=_hms(sys_cpu))
        self._write(5, "Job terminated.", status + usage, when=when)

    def held(self, reason: str, code: int = HOLD_USER, subcode: int = 0, when: float | None = None) -> None:
        self._write(
            12, "Job was held.", f"\t{_one_line(reason)}\n\tCode {code} Subcode {subcode}\n", when=when
        )

    def released(self, reason: str = "via condor_release", when: float | None = None) -> None:
        self._write(13, "Job was released.", f"\t{_one_line(reason)}\n", when=when)

    def aborted(self, reason: str = "via condor_rm", when: float | None = None) -> None:
        self._write(9, "Job was aborted.", f"\t{_one_line(reason)}\n", when=when)


_KINDS = {
    htcondor2.JobEventType.SUBMIT: "submit",
    htcondor2.JobEventType.EXECUTE: "execute",
    htcondor2.JobEventType.JOB_TERMINATED: "terminated",
    htcondor2.JobEventType.JOB_HELD: "held",
    htcondor2.JobEventType.JOB_RELEASED: "released",
    htcondor2.JobEventType.JOB_ABORTED: "aborted",
    htcondor2.JobEventType.JOB_EVICTED: "evicted",
    htcondor2.JobEventType.IMAGE_SIZE: "image_size",
    htcondor2.JobEventType.FILE_TRANSFER: "transfer",
}
# FileTransferEvent "Type" values (HTCondor's FileTransferEventType)
_TRANSFERS = {
    1: "Input files queued for transfer",
    2: "Transferring input files",
    3: "Input files transferred",
    4: "Output files queued for transfer",
    5: "Transferring output files",
    6: "Output files transferred",
}


def _host(value: object) -> str:
    """A daemon's address without the sinful string's parameters: "worker-7 (10.0.0.7:9618)".

    HTCondor writes `<10.0.0.7:9618?addrs=10.0.0.7-9618&alias=worker-7&noUDP&sock=...>`.
    """
    text = str(value or "").strip().strip("<>")
    address, _, params = text.partition("?")
    alias = ""
    for pair in params.split("&"):
        name, _, val = pair.partition("=")
        if name == "alias":
            alias = val
    return f"{alias} ({address})" if alias and alias != address else address


def _detail(kind: str, get: Any) -> str:
    if kind == "image_size":
        memory = get("MemoryUsage")
        size = get("Size")
        if memory is not None:
            return f"Memory in use: {int(memory)} MB"
        return f"Image size: {int(size)} KB" if size is not None else ""
    if kind == "transfer":
        return _TRANSFERS.get(int(get("Type", 0) or 0), "File transfer")
    return ""


def _convert(event: htcondor2.JobEvent) -> JobEvent:
    kind = _KINDS.get(event.type, "other")
    get = event.get
    return_value = signal = None
    if kind == "terminated":
        if get("TerminatedNormally"):
            return_value = int(get("ReturnValue", 0))
        else:
            signal = int(get("TerminatedBySignal", 0))
    reason = str(get("HoldReason") or get("Reason") or "") if kind in ("held", "released", "aborted") else ""
    hold_code = get("HoldReasonCode") if kind == "held" else None
    hold_subcode = get("HoldReasonSubCode") if kind == "held" else None
    host = {"execute": get("ExecuteHost"), "submit": get("SubmitHost"), "transfer": get("Host")}.get(kind, "")
    return JobEvent(
        kind=kind,
        code=int(event.type),
        cluster=event.cluster,
        proc=event.proc,
        time=float(event.timestamp),
        host=_host(host),
        return_value=return_value,
        signal=signal,
        reason=reason,
        hold_code=int(hold_code) if hold_code is not None else None,
        hold_subcode=int(hold_subcode) if hold_subcode is not None else None,
        detail=_detail(kind, get),
    )


def read_events(path: str | os.PathLike[str]) -> list[JobEvent]:
    """Every event in a job event log (classic, XML or JSON), without blocking.

    A missing file is an empty log (the job has not been submitted yet); an event
    still being written at the end of the file is left for the next read.
    """
    if not Path(path).exists():
        return []
    log = htcondor2.JobEventLog(str(path))
    try:
        return [_convert(e) for e in log.events(stop_after=0)]
    finally:
        log.close()
