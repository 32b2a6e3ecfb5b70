"""Storage in a local directory (one per user): the embedded default."""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from orchestration.storage.base import (
    AlreadyExists,
    InvalidPath,
    Node,
    NotFound,
    PermissionDenied,
    StorageError,
    check_new_name,
    copy_stream,
    normalize,
    page,
)


class LocalStorage:
    """A user's space under `root`; nothing outside it is ever read or written."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        os.makedirs(root, exist_ok=True)
        self.root = Path(os.path.realpath(root))

    # -- paths -----------------------------------------------------------------------------------
    def _resolve(self, path: str) -> tuple[str, Path]:
        rel = normalize(path)
        full = self.root / rel if rel else self.root
        # Resolving every symlink on the way catches links (anywhere in the path) leading out.
        real = os.path.realpath(full)
        if real != str(self.root) and not real.startswith(str(self.root) + os.sep):
            raise InvalidPath("That path leads outside your storage space.")
        return rel, full

    def _node(self, rel: str, full: Path) -> Node:
        st = full.stat()
        return Node(
            name=full.name if rel else "",
            path=rel,
            is_dir=stat.S_ISDIR(st.st_mode),
            size=0 if stat.S_ISDIR(st.st_mode) else st.st_size,
            modified=dt.datetime.fromtimestamp(st.st_mtime, dt.UTC),
        )

    # -- interface -------------------------------------------------------------------------------
    def list(self, path: str = "", offset: int = 0, limit: int | None = None) -> list[Node]:
        rel, full = self._resolve(path)
        nodes = []
        with _errors(rel), os.scandir(full) as entries:
            for entry in entries:
                if entry.name.startswith(".upload-"):
                    continue  # an upload in progress
                # lstat: never report on what a symlink points to outside the space
                st = entry.stat(follow_symlinks=False)
                is_dir = entry.is_dir(follow_symlinks=False)
                nodes.append(
                    Node(
                        name=entry.name,
                        path=f"{rel}/{entry.name}" if rel else entry.name,
                        is_dir=is_dir,
                        size=0 if is_dir else st.st_size,
                        modified=dt.datetime.fromtimestamp(st.st_mtime, dt.UTC),
                    )
                )
        return page(nodes, offset, limit)

    def count(self, path: str = "") -> int:
        rel, full = self._resolve(path)
        with _errors(rel), os.scandir(full) as entries:
            return sum(1 for e in entries if not e.name.startswith(".upload-"))

    def info(self, path: str) -> Node:
        rel, full = self._resolve(path)
        with _errors(rel):
            return self._node(rel, full)

    def mkdir(self, path: str) -> Node:
        rel, full = self._resolve(path)
        if not rel:
            raise AlreadyExists("Your storage space already exists.")
        check_new_name(rel)
        with _errors(rel):
            full.mkdir()
            return self._node(rel, full)

    def upload(
        self, path: str, fileobj: BinaryIO, max_bytes: int | None = None, overwrite: bool = False
    ) -> Node:
        rel, full = self._resolve(path)
        if not rel:
            raise InvalidPath("Choose a file name.")
        check_new_name(rel)
        with _errors(rel):
            if full.is_dir() or (full.exists() and not overwrite):
                raise AlreadyExists(f"'{rel}' already exists.")
            if not full.parent.is_dir():
                raise NotFound(f"The folder '{os.path.dirname(rel)}' does not exist.")
            # Write beside the target and rename: readers never see half a file.
            fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=full.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    copy_stream(fileobj, out, max_bytes)
                os.chmod(tmp, 0o644)
                if not overwrite and full.exists():
                    raise AlreadyExists(f"'{rel}' already exists.")
                os.replace(tmp, full)
            except BaseException:
                os.unlink(tmp)
                raise
            return self._node(rel, full)

    def open_read(self, path: str) -> BinaryIO:
        rel, full = self._resolve(path)
        with _errors(rel):
            if full.is_dir():
                raise StorageError(f"'{rel or '/'}' is a folder, not a file.")
            # O_NOFOLLOW: the last component cannot be swapped for a symlink after the check.
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            return os.fdopen(fd, "rb")

    def move(self, src: str, dest: str) -> Node:
        src_rel, src_full = self._resolve(src)
        dest_rel, dest_full = self._resolve(dest)
        if not src_rel or not dest_rel:
            raise InvalidPath("Your top folder cannot be moved or replaced.")
        if dest_rel == src_rel:
            raise InvalidPath(f"'{src_rel}' is already there: give a new name or another folder.")
        if dest_rel.startswith(src_rel + "/"):
            raise InvalidPath("A folder cannot be moved into itself.")
        if dest_rel.rsplit("/", 1)[-1] != src_rel.rsplit("/", 1)[-1]:  # a move keeps a name it had
            check_new_name(dest_rel)
        with _errors(src_rel):
            if not os.path.lexists(src_full):
                raise NotFound(f"'{src_rel}' does not exist.")
            if os.path.lexists(dest_full):
                raise AlreadyExists(f"'{dest_rel}' already exists.")
            if not dest_full.parent.is_dir():
                raise NotFound(f"The folder '{os.path.dirname(dest_rel)}' does not exist.")
            os.rename(src_full, dest_full)
            return self._node(dest_rel, dest_full)

    def delete(self, path: str, recursive: bool = False) -> None:
        rel = normalize(path)
        if not rel:
            raise InvalidPath("Your top folder cannot be deleted.")
        # Check the parent, not the entry itself, so a symlink can be removed (never followed).
        _, parent = self._resolve(os.path.dirname(rel))
        full = parent / os.path.basename(rel)
        with _errors(rel):
            if full.is_symlink() or not full.is_dir():
                full.unlink()
            elif recursive:
                shutil.rmtree(full)  # does not follow symlinks
            else:
                try:
                    full.rmdir()
                except OSError as exc:
                    if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        raise StorageError(f"The folder '{rel}' is not empty.") from None
                    raise

    def usage(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):  # os.walk does not follow symlinks
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except FileNotFoundError:
                    continue
        return total


@contextmanager
def _errors(rel: str) -> Iterator[None]:
    """Turn OS errors into storage errors a user understands."""
    shown = rel or "your top folder"
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError:
        raise NotFound(f"'{shown}' does not exist.") from None
    except FileExistsError:
        raise AlreadyExists(f"'{shown}' already exists.") from None
    except NotADirectoryError:
        raise NotFound(f"'{shown}' is not a folder.") from None
    except PermissionError:
        raise PermissionDenied(f"Permission denied for '{shown}'.") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidPath("That path leads outside your storage space.") from None
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageError("The storage is full.") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise InvalidPath("That name is too long.") from None
        raise StorageError(f"Storage error on '{shown}': {exc.strerror}.") from None
