"""Observations from a local directory: the embedded default (the demo fills it with synthetic images)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from orchestration.archive.base import DEFAULT_ARCHIVE, FILE_NAME, NotFound, destination, observation_uri


class LocalArchive:
    """Observations as files under `directory` (<directory>/<ARCHIVE>/<file> or <directory>/<file>)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _source(self, uri: str) -> Path:
        archive, name = uri.split(":", 1)[1].split("/", 1)
        for candidate in (self.directory / archive / name, self.directory / name):
            if candidate.is_file():
                return candidate
        raise NotFound(f"Observation {name} is not in the local archive.")

    def available(self) -> list[str]:
        """URIs of the observations present, sorted."""
        found = set()
        if self.directory.is_dir():
            for path in self.directory.rglob("*"):
                rel = path.relative_to(self.directory).parts
                if path.is_file() and len(rel) <= 2 and FILE_NAME.match(path.name):
                    archive = rel[0] if len(rel) == 2 else DEFAULT_ARCHIVE
                    found.add(f"cadc:{archive}/{path.name}")
        return sorted(found)

    def fetch(self, observation: str, dest: str | os.PathLike[str]) -> Path:
        uri = observation_uri(observation)
        source = self._source(uri)
        target = destination(uri, dest)
        part = target.with_name(target.name + ".part")
        part.unlink(missing_ok=True)
        try:
            os.link(source, part)  # archive files never change: on the same file system, no copy at all
        except OSError:
            shutil.copyfile(source, part)  # chunked copy (sendfile), never whole file in memory
        os.replace(part, target)
        return target
