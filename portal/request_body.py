"""The raw body of an upload request as a file, read as fast as the web server allows.

Under gunicorn (the portal's server) the body is read straight from the client's socket: what
gunicorn has already buffered first, then the rest moved into the destination file inside the
kernel with splice(2), never through Python objects. A 1 GB upload then costs about what a plain
file copy costs instead of several copies per chunk through the server's buffers. Any other server
(Django's test server, another WSGI server) gets the portable path through ``wsgi.input``.

Either way a body that ends early (the client went away) is an error, never a shorter file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from typing import Any

from django.http import HttpRequest

from orchestration.storage.base import CHUNK_SIZE, StorageError, too_large

INTERRUPTED = "The upload was interrupted before the whole file arrived."
_PIPE_SIZE = 1024 * 1024  # Linux's default /proc/sys/fs/pipe-max-size; a smaller pipe still works


class StreamBody:
    """The body through the WSGI input stream (any server)."""

    def __init__(self, request: HttpRequest, length: int) -> None:
        self.request, self.remaining = request, length

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        want = self.remaining if size < 0 else min(size, self.remaining)
        data = self.request.read(want)
        if not data:
            raise StorageError(INTERRUPTED)
        self.remaining -= len(data)
        return data


class SocketBody:
    """The body read from gunicorn's client socket, after the bytes gunicorn already holds.

    gunicorn's own reader is told how much is still unread at every step, so if the storage stops
    early (a full disk) gunicorn drains the rest as usual and a kept-alive connection stays in step.
    """

    def __init__(self, sock: socket.socket, reader: Any, buffered: bytes) -> None:
        self.sock, self.reader, self.buffered = sock, reader, buffered

    @property
    def remaining(self) -> int:
        return int(self.reader.length) + len(self.buffered)

    def read(self, size: int = -1) -> bytes:
        if self.buffered:
            want = len(self.buffered) if size < 0 else size
            data, self.buffered = self.buffered[:want], self.buffered[want:]
            return data
        if self.reader.length <= 0:
            return b""
        want = self.reader.length if size < 0 else min(size, self.reader.length, CHUNK_SIZE)
        try:
            data = self.sock.recv(want)
        except OSError as exc:  # reset by the client, or a server-side socket timeout
            raise StorageError(INTERRUPTED) from exc
        if not data:
            raise StorageError(INTERRUPTED)
        self.reader.length -= len(data)
        return data

    def copy_to_fd(self, fd: int, max_bytes: int | None = None) -> int:
        """Write the whole body to the file descriptor ``fd``; the number of bytes written."""
        total = self.remaining
        if max_bytes is not None and total > max_bytes:  # the view checks first; this is a backstop
            raise too_large(max_bytes)
        if self.buffered:
            _write_all(fd, self.buffered)
            self.buffered = b""
        if self.reader.length > 0:
            if self.sock.gettimeout() is None and hasattr(os, "splice"):
                self._splice_to(fd)
            while chunk := self.read(CHUNK_SIZE):  # what splice did not move (or no splice here)
                _write_all(fd, chunk)
        return total

    def _splice_to(self, fd: int) -> None:
        read_end, write_end = os.pipe()
        try:
            with contextlib.suppress(OSError):  # a smaller pipe only means more system calls
                fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
            step = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
            while self.reader.length > 0:
                try:
                    moved = os.splice(self.sock.fileno(), write_end, min(step, self.reader.length))
                except OSError:
                    return  # no splice from this kind of socket, or an error read() will report
                if moved == 0:
                    raise StorageError(INTERRUPTED)
                self.reader.length -= moved
                try:
                    while moved:
                        moved -= os.splice(read_end, fd, moved)
                except OSError:
                    # This file system takes no splice: write out what the pipe holds, then go on
                    # with ordinary reads.
                    _write_all(fd, os.read(read_end, moved))
                    return
        finally:
            os.close(read_end)
            os.close(write_end)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def request_body(request: HttpRequest, length: int) -> StreamBody | SocketBody:
    """The body of ``request``, ``length`` bytes long (its Content-Length)."""
    return _gunicorn_body(request, length) or StreamBody(request, length)


def _gunicorn_body(request: HttpRequest, length: int) -> SocketBody | None:
    sock = request.META.get("gunicorn.socket")
    if sock is None or length <= 0:
        return None
    try:
        from gunicorn.http.body import Body, LengthReader
    except ImportError:
        return None
    body = request.META.get("wsgi.input")
    reader = getattr(body, "reader", None)
    # Only a fixed-length body nobody has started reading: otherwise gunicorn's reader is used.
    if not (isinstance(body, Body) and isinstance(reader, LengthReader)) or body.buf.tell():
        return None
    if reader.length != length or not isinstance(sock, socket.socket):
        return None
    held = reader.unreader.take_buffered()
    buffered, beyond = held[:length], held[length:]
    if beyond:  # a pipelined next request: it stays with gunicorn
        reader.unreader.unread(beyond)
    reader.length -= len(buffered)
    return SocketBody(sock, reader, buffered)
