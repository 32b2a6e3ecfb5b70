"""The storage interface shared by the local-directory and VOSpace implementations.

Paths are always relative to the user's own space ("", "results", "results/cat 1.fits").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import unicodedata
from dataclasses import dataclass
from typing import IO, BinaryIO, Protocol

from orchestration.errors import TransientError, UserFacingError

CHUNK_SIZE = 1024 * 1024  # copy granularity: big enough to be fast, small enough to keep memory flat


@dataclass(frozen=True)
class Node:
    """A file or folder; `path` is relative to the user's space ("" is the top)."""

    name: str
    path: str
    is_dir: bool
    size: int
    modified: dt.datetime


class StorageError(UserFacingError):
    """Base class; `str(error)` is a message for the user."""


class NotFound(StorageError):
    pass


class AlreadyExists(StorageError):
    pass


class PermissionDenied(StorageError):
    pass


class InvalidPath(PermissionDenied):
    """A path that tries to leave the user's space or is not a valid name."""


class StorageUnavailable(StorageError, TransientError):
    """The storage service cannot be used right now; try again later."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail  # technical reason, for logs


class Storage(Protocol):
    def list(self, path: str = "", offset: int = 0, limit: int | None = None) -> list[Node]:
        """Children of a folder, folders first then by name; a page when `limit` is given."""
        ...

    def count(self, path: str = "") -> int: ...

    def info(self, path: str) -> Node: ...

    def mkdir(self, path: str) -> Node: ...

    def upload(
        self, path: str, fileobj: BinaryIO, max_bytes: int | None = None, overwrite: bool = False
    ) -> Node: ...

    def open_read(self, path: str) -> BinaryIO:
        """A binary file object streaming the content; the caller closes it."""
        ...

    def move(self, src: str, dest: str) -> Node:
        """Move or rename; `dest` is the new full path and must not exist."""
        ...

    def delete(self, path: str, recursive: bool = False) -> None: ...

    def usage(self) -> int:
        """Bytes used by the user's files."""
        ...


def normalize(path: str) -> str:
    """Canonical relative form of a user path; InvalidPath for anything that could escape."""
    if not isinstance(path, str):
        raise InvalidPath("A path must be text.")
    if "\0" in path:
        raise InvalidPath("File names cannot contain NUL characters.")
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        raise InvalidPath("Paths are relative to your storage space; absolute paths are not allowed.")
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidPath("Paths cannot contain '..'.")
    for part in parts:
        if len(part.encode()) > 255:
            raise InvalidPath("A file or folder name is too long (255 bytes at most).")
    return "/".join(parts)


# What a new name may not hold: controls, format characters (right-to-left overrides and other bidi
# controls, zero-width spaces and joiners, the BOM), surrogates, private-use and unassigned code
# points, line and paragraph separators. They make a name show as another ("cat\u202etxt.exe") or
# vanish on screen. Names that exist already stay readable, movable and deletable.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def hidden_character(name: str) -> str | None:
    """The first character of `name` that hides or reorders text, as 'U+202E RIGHT-TO-LEFT OVERRIDE'."""
    for char in name:
        if unicodedata.category(char) in _HIDDEN_CATEGORIES:
            label = unicodedata.name(char, "")
            return f"U+{ord(char):04X}{' ' + label if label else ''}"
    return None


def hidden_character_message(name: str) -> str | None:
    hidden = hidden_character(name)
    if hidden is None:
        return None
    return (
        "A name cannot contain control characters, invisible characters or text-direction controls"
        f" (this one has {hidden})."
    )


def check_new_name(rel: str) -> None:
    """InvalidPath when the last part of a normalized path, a name about to be created, hides characters."""
    message = hidden_character_message(rel.rsplit("/", 1)[-1])
    if message:
        raise InvalidPath(message)


def sort_key(node: Node) -> tuple[bool, str, str]:
    return (not node.is_dir, node.name.casefold(), node.name)


def page(nodes: list[Node], offset: int, limit: int | None) -> list[Node]:
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError("offset and limit must not be negative")
    nodes.sort(key=sort_key)
    return nodes[offset : None if limit is None else offset + limit]


def too_large(max_bytes: int) -> StorageError:
    return StorageError(f"The file is larger than the {max_bytes // (1024 * 1024)} MB upload limit.")


def copy_stream(src: IO[bytes], dest: IO[bytes], max_bytes: int | None = None) -> int:
    """Copy in chunks; StorageError when more than `max_bytes` arrive.

    A source that can write itself to a file descriptor (``copy_to_fd(fd, max_bytes)``, as the web
    layer's request body does) is asked to, when ``dest`` is a real file: that skips Python's copies.
    """
    copy_to_fd = getattr(src, "copy_to_fd", None)
    if copy_to_fd is not None:
        try:
            fd = dest.fileno()
        except (AttributeError, OSError, ValueError):
            fd = -1
        if fd >= 0:
            dest.flush()
            return int(copy_to_fd(fd, max_bytes))
    total = 0
    while chunk := src.read(CHUNK_SIZE):
        total += len(chunk)
        if max_bytes is not None and total > max_bytes:
            raise too_large(max_bytes)
        dest.write(chunk)
    return total


def makedirs(storage: Storage, folder: str) -> None:
    """Create ``folder`` and its parents where missing, like ``mkdir -p``; a file in the way is an error."""
    path = ""
    for part in [p for p in folder.split("/") if p]:
        path = f"{path}/{part}" if path else part
        try:
            node = storage.info(path)
        except NotFound:
            with contextlib.suppress(AlreadyExists):  # made meanwhile by a parallel task
                storage.mkdir(path)
            continue
        if not node.is_dir:
            raise StorageError(f"'{path}' in your storage is a file, so nothing can be stored in it.")
