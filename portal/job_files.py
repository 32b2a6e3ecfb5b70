"""A job's .out, .err and event log as the pages show them: one reader for a batch job's page and a
workflow node's page (templates batch/_job_file.html and batch/_job_events.html).

Files are found from the job's own record (its directory and its vetted file names), never from
the request; a name that is not a plain file name, a symlink or a missing file shows as nothing.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestration.batch.eventlog import read_events

TAIL_BYTES = 64 * 1024
_CSI = re.compile(r"\x1b\[([0-9;?]*)([@-~])")


def terminal_text(raw: str) -> str:
    """Text as a terminal would have left it: programs such as source-extractor redraw their progress
    line with escape codes (cursor up, erase line) and carriage returns; only the final lines stay."""
    lines: list[str] = []
    for line in raw.split("\n"):
        up = sum(
            # at most 9 digits: more lines than any tail holds (int() refuses 4300+ digits)
            int(m.group(1)[:9]) if m.group(1).isdigit() else 1
            for m in _CSI.finditer(line)
            if m.group(2) == "A"
        )
        del lines[max(0, len(lines) - up) :]
        lines.append(_CSI.sub("", line).removesuffix("\r").rsplit("\r", 1)[-1])  # CRLF ends stay
    return "\n".join(lines)


def file_in(directory: Path | None, name: str) -> Path | None:
    """The job's file `name` in its directory, if the name is a plain file name."""
    if directory is None or not name or Path(name).name != name or name in (".", ".."):
        return None
    return directory / name


def tail(path: Path | None) -> tuple[str, int, bool]:
    """The end of a text file: (text, size, truncated)."""
    if path is None or path.is_symlink() or not path.is_file():
        return "", 0, False
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - TAIL_BYTES))
        data = f.read(TAIL_BYTES)
    return terminal_text(data.decode("utf-8", "replace")), size, size > TAIL_BYTES


def job_events(path: Path | None, cluster: int | None, proc: int) -> list[dict[str, Any]]:
    """The job's events from an HTCondor event log (a log shared by several jobs: only this job's)."""
    if path is None or path.is_symlink() or not path.is_file():
        return []
    return [
        {**asdict(e), "when": datetime.fromtimestamp(e.time, tz=UTC)}
        for e in read_events(path)
        if cluster is None or (e.cluster, e.proc) == (cluster, proc)
    ]


def files_context(
    directory: Path | None, output: str, error: str, log: str, cluster: int | None, proc: int
) -> dict[str, Any]:
    """What the two templates need: each file's end, size and whether it was cut, and the events."""
    out, out_size, out_cut = tail(file_in(directory, output))
    err, err_size, err_cut = tail(file_in(directory, error))
    return {
        "out": out,
        "out_size": out_size,
        "out_cut": out_cut,
        "err": err,
        "err_size": err_size,
        "err_cut": err_cut,
        "events": job_events(file_in(directory, log), cluster, proc),
        "file_names": {"out": output, "err": error, "log": log},
    }
