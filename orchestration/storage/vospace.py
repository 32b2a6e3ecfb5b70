"""Storage in VOSpace (CADC vault) through the real `vos` client."""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import requests
from cadcutils import exceptions as cadc_exc

from orchestration.identity.cadc_registry import certificate_refused, http_status, use_registry
from orchestration.storage.base import (
    AlreadyExists,
    InvalidPath,
    Node,
    NotFound,
    PermissionDenied,
    StorageError,
    StorageUnavailable,
    copy_stream,
    normalize,
    page,
)

# What vos.Client.fix_uri accepts in a name (vos.vos.FILENAME_PATTERN_MAGIC); no spaces.
_VOS_NAME = re.compile(r"^[_\-=+!,;:@&*$.\w~]+$")
_CREDENTIALS_MESSAGE = "VOSpace did not accept your credentials. Sign in again or renew your certificate."


class VOSpaceStorage:
    """A user's VOSpace, e.g. `VOSpaceStorage("vos:alice", token=...)`."""

    def __init__(
        self,
        base_uri: str,
        token: str | None = None,
        certfile: str | None = None,
        registry_url: str | None = None,
    ) -> None:
        import vos

        if not re.match(r"^vos:[^/]", base_uri or ""):
            raise ValueError("base_uri must look like 'vos:username'")
        if not token and not certfile:
            raise ValueError("VOSpaceStorage needs a token or a certificate file")
        if not token and certfile and not os.path.isfile(certfile):
            # vos would silently fall back to ~/.netrc or anonymous access
            raise ValueError(f"certificate file {certfile} does not exist")
        use_registry(registry_url)
        self.base_uri = base_uri.rstrip("/")
        self.client = vos.Client(vospace_token=token) if token else vos.Client(vospace_certfile=certfile)
        self._ready = False

    # -- helpers ---------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Resolve the service once and turn off the library's own retries.

        cadcutils/vos retry a 503 for up to 15 minutes; a request or Celery task must fail fast
        and let its caller retry with back-off instead.
        """
        if self._ready:
            return
        with _errors(""):
            endpoints = self.client.get_endpoints(self.base_uri)
            endpoints.conn.ws_client.retry = False
            endpoints.session.retry = False
            data_client = self.client._get_si_client(self.base_uri)  # private, but the only handle
            data_client.retry = False
            data_client._get_session().retry = False
        self._ready = True

    def _uri(self, path: str) -> tuple[str, str]:
        rel = normalize(path)
        for part in rel.split("/") if rel else []:
            if not _VOS_NAME.match(part):
                raise InvalidPath(
                    f"'{part}' is not a valid VOSpace name: use letters, digits and _-.+=~ (no spaces)."
                )
        self._prepare()
        return rel, f"{self.base_uri}/{rel}" if rel else self.base_uri

    def _node(self, rel: str, vnode: Any) -> Node:
        is_dir = vnode.isdir()
        return Node(
            name=vnode.name if rel else "",
            path=rel,
            is_dir=is_dir,
            size=0 if is_dir else int(vnode.props.get("length") or 0),
            modified=_parse_date(vnode.props.get("date")),
        )

    def _get(self, rel: str, uri: str) -> Any:
        with _errors(rel):
            return self.client.get_node(uri, limit=0, force=True)

    def _exists(self, rel: str, uri: str) -> bool:
        try:
            self._get(rel, uri)
        except NotFound:
            return False
        return True

    def _children(self, rel: str, uri: str) -> list[Node]:
        vnode = self._get(rel, uri)
        if not vnode.isdir():
            raise StorageError(f"'{rel}' is a file, not a folder.")
        prefix = f"{rel}/" if rel else ""
        with _errors(rel):
            return [
                self._node(prefix + child.name, child)
                for child in vnode.get_children(self.client, None, None, 500)
            ]

    # -- interface -------------------------------------------------------------------------------
    def list(self, path: str = "", offset: int = 0, limit: int | None = None) -> list[Node]:
        rel, uri = self._uri(path)
        return page(self._children(rel, uri), offset, limit)

    def count(self, path: str = "") -> int:
        rel, uri = self._uri(path)
        return len(self._children(rel, uri))

    def info(self, path: str) -> Node:
        rel, uri = self._uri(path)
        return self._node(rel, self._get(rel, uri))

    def mkdir(self, path: str) -> Node:
        rel, uri = self._uri(path)
        if not rel:
            raise AlreadyExists("Your storage space already exists.")
        with _errors(rel):
            self.client.mkdir(uri)
        return self.info(rel)

    def upload(
        self, path: str, fileobj: BinaryIO, max_bytes: int | None = None, overwrite: bool = False
    ) -> Node:
        rel, uri = self._uri(path)
        if not rel:
            raise InvalidPath("Choose a file name.")
        if self._exists(rel, uri) and not overwrite:
            raise AlreadyExists(f"'{rel}' already exists.")
        # vos uploads from a named file: spool to disk in chunks, never into memory.
        with tempfile.NamedTemporaryFile(prefix="vos-upload-") as tmp:
            copy_stream(fileobj, tmp, max_bytes)
            tmp.flush()
            with _errors(rel):
                self.client.copy(tmp.name, uri)
        return self.info(rel)

    def open_read(self, path: str) -> BinaryIO:
        rel, uri = self._uri(path)
        if self._get(rel, uri).isdir():
            raise StorageError(f"'{rel or '/'}' is a folder, not a file.")
        tmpdir = tempfile.mkdtemp(prefix="vos-download-")
        target = os.path.join(tmpdir, "data")
        try:
            with _errors(rel):
                self.client.copy(uri, target)
            handle = open(target, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        finally:
            # The open handle keeps the data readable; the name goes now so nothing is left behind.
            for name in os.listdir(tmpdir):
                os.unlink(os.path.join(tmpdir, name))
            os.rmdir(tmpdir)
        return handle

    def move(self, src: str, dest: str) -> Node:
        src_rel, src_uri = self._uri(src)
        dest_rel, dest_uri = self._uri(dest)
        if not src_rel or not dest_rel:
            raise InvalidPath("Your top folder cannot be moved or replaced.")
        if dest_rel == src_rel:
            raise InvalidPath(f"'{src_rel}' is already there: give a new name or another folder.")
        if dest_rel.startswith(src_rel + "/"):
            raise InvalidPath("A folder cannot be moved into itself.")
        self._get(src_rel, src_uri)
        if self._exists(dest_rel, dest_uri):
            raise AlreadyExists(f"'{dest_rel}' already exists.")
        with _errors(src_rel):
            self.client.move(src_uri, dest_uri)
        return self.info(dest_rel)

    def delete(self, path: str, recursive: bool = False) -> None:
        rel, uri = self._uri(path)
        if not rel:
            raise InvalidPath("Your top folder cannot be deleted.")
        if self._get(rel, uri).isdir():
            children = self._children(rel, uri)
            if children and not recursive:
                raise StorageError(f"The folder '{rel}' is not empty.")
            for child in children:  # depth first, so each DELETE is small
                self.delete(child.path, recursive=True)
        with _errors(rel):
            self.client.delete(uri)

    def usage(self) -> int:
        """Walks the whole tree: one request per folder."""
        total = 0
        pending = [""]
        while pending:
            for node in self.list(pending.pop()):
                if node.is_dir:
                    pending.append(node.path)
                else:
                    total += node.size
        return total


def _parse_date(value: str | None) -> dt.datetime:
    if not value:
        return dt.datetime.fromtimestamp(0, dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.fromtimestamp(0, dt.UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@contextmanager
def _errors(rel: str) -> Iterator[None]:
    """Turn vos/cadcutils/requests failures into storage errors a user understands."""
    shown = rel or "your top folder"
    try:
        yield
    except StorageError:
        raise
    except cadc_exc.NotFoundException:
        raise NotFound(f"'{shown}' does not exist.") from None
    except cadc_exc.UnauthorizedException:
        raise PermissionDenied(_CREDENTIALS_MESSAGE) from None
    except cadc_exc.ForbiddenException:
        raise PermissionDenied(f"You are not allowed to access '{shown}'.") from None
    except cadc_exc.AlreadyExistsException:
        raise AlreadyExists(f"'{shown}' already exists.") from None
    except (cadc_exc.HttpException, requests.RequestException) as exc:
        if certificate_refused(exc):
            raise PermissionDenied(_CREDENTIALS_MESSAGE) from None
        raise _service_error(exc, http_status(exc)) from None
    except OSError as exc:
        code = exc.errno
        if code in (errno.ENOENT, 404):
            raise NotFound(f"'{shown}' does not exist.") from None
        if code in (errno.EACCES, 401):
            raise PermissionDenied(_CREDENTIALS_MESSAGE) from None
        if code in (errno.EPERM, 403):
            raise PermissionDenied(f"You are not allowed to access '{shown}'.") from None
        if code in (errno.EEXIST, 409):
            raise AlreadyExists(f"'{shown}' already exists.") from None
        text = str(exc)
        if code == errno.EFAULT and "Unauthorized" in text:
            raise PermissionDenied(_CREDENTIALS_MESSAGE) from None
        status = 503 if code == 503 or "503" in text else None
        raise _service_error(exc, status) from None
    except (RuntimeError, AttributeError, ValueError, KeyError) as exc:
        # registry or capabilities could not be read: the service is not usable right now
        raise _service_error(exc, None) from None


def _service_error(exc: BaseException, status: int | None) -> StorageUnavailable:
    if status == 503:
        message = "VOSpace is temporarily unavailable. Please try again in a few minutes."
    elif status:
        message = f"VOSpace answered with an error (HTTP {status}). Please try again later."
    else:
        message = "VOSpace cannot be reached right now. Please try again later."
    return StorageUnavailable(message, f"{type(exc).__name__}: {exc}")
