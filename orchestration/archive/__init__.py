"""Input images: from CADC (cadcdata) or from a local directory (the demo)."""

from orchestration.archive.base import (
    Archive,
    ArchiveAccessDenied,
    ArchiveError,
    ArchiveUnavailable,
    InvalidObservation,
    NotFound,
    observation_uri,
)
from orchestration.archive.cadc import CadcArchive
from orchestration.archive.local import LocalArchive

__all__ = [
    "Archive",
    "ArchiveAccessDenied",
    "ArchiveError",
    "ArchiveUnavailable",
    "CadcArchive",
    "InvalidObservation",
    "LocalArchive",
    "NotFound",
    "observation_uri",
]
