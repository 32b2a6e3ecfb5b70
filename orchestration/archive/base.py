"""The archive interface: where pipeline input images come from."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

from orchestration.errors import TransientError, UserFacingError

_ARCHIVE = re.compile(r"^[A-Za-z0-9_]+$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
DEFAULT_ARCHIVE = "CFHT"
DEFAULT_SUFFIX = ".fits.fz"


class ArchiveError(UserFacingError):
    """Base class; `str(error)` is a message for the user."""


class InvalidObservation(ArchiveError):
    pass


class NotFound(ArchiveError):
    pass


class ArchiveAccessDenied(ArchiveError):
    pass


class ArchiveUnavailable(ArchiveError, TransientError):
    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class Archive(Protocol):
    def fetch(self, observation: str, dest: str | os.PathLike[str]) -> Path:
        """Download an observation ("1056213p" or "cadc:CFHT/1056213p.fits.fz"); returns the file."""
        ...


def observation_uri(observation: str) -> str:
    """'1056213p' -> 'cadc:CFHT/1056213p.fits.fz'; 'CFHT/x.fits' -> 'cadc:CFHT/x.fits'."""
    text = (observation or "").strip()
    scheme, _, rest = text.partition(":") if ":" in text else ("cadc", "", text)
    archive, _, name = rest.partition("/") if "/" in rest else (DEFAULT_ARCHIVE, "", rest)
    if name and "." not in name:
        name += DEFAULT_SUFFIX
    if scheme != "cadc" or not _ARCHIVE.match(archive) or not FILE_NAME.match(name) or "/" in name:
        raise InvalidObservation(
            f"'{observation}' is not an observation ID such as 1056213p or cadc:CFHT/1056213p.fits.fz."
        )
    return f"cadc:{archive}/{name}"


def destination(uri: str, dest: str | os.PathLike[str]) -> Path:
    """The file to write: `dest` itself, or the URI's file name inside `dest` when it is a folder."""
    path = Path(dest)
    return path / uri.rsplit("/", 1)[1] if path.is_dir() else path
