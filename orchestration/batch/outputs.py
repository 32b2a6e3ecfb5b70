"""A finished job's outputs: which declared files did not arrive, and copying them into storage.

The rule shown in the batch form: a job's outputs are its .out, .err and .log plus the files
it declares in `transfer_output_files` (the form's "Output files", e.g. `$(arguments).cat`).
A job that exits 0 without writing every declared file is "completed without output".
Plain Python: works with any object that has the Storage methods used here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from orchestration.storage.base import makedirs, normalize


def missing_outputs(job_dir: Path | None, declared: Iterable[str]) -> list[str]:
    """The declared output files that are not (regular files) in the job's directory."""
    names = list(declared)
    if job_dir is None:
        return names
    return [n for n in names if not (job_dir / n).is_file() or (job_dir / n).is_symlink()]


def no_output_note(missing: list[str]) -> str:
    listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return (
        f"The job exited with code 0 but did not write {listed}, which it declares as output "
        "(transfer_output_files). Look at its error output."
    )


def ensure_folder(storage: Any, folder: str) -> str:
    """Create `folder` (and its parents) in the user's storage if needed; return its normal form."""
    folder = normalize(folder)
    makedirs(storage, folder)
    return folder


def store_outputs(storage: Any, folder: str, job_dir: Path, names: Iterable[str]) -> list[str]:
    """Copy the named files that exist in `job_dir` into `folder` (replacing older copies).

    Returns the storage paths written. `folder` must exist (see `ensure_folder`).
    """
    stored = []
    for name in dict.fromkeys(names):  # a log shared by several jobs is named once
        source = job_dir / name
        if not name or not source.is_file() or source.is_symlink():
            continue
        with open(source, "rb") as f:
            node = storage.upload(f"{folder}/{name}" if folder else name, f, overwrite=True)
        stored.append(node.path)
    return stored
