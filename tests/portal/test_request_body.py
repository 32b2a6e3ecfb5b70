"""SocketBody on a real socket pair: what was buffered, then the rest spliced into a real file."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestration.storage.base import StorageError
from portal.request_body import SocketBody


def body_over_socket(data: bytes, buffered: int, send: int | None = None) -> SocketBody:
    """The server end of a socket pair; the client sends ``data[buffered:send]`` then closes."""
    server, client = socket.socketpair()

    def sender() -> None:
        with client:
            client.sendall(data[buffered:send])

    threading.Thread(target=sender, daemon=True).start()
    reader = SimpleNamespace(length=len(data) - buffered)
    return SocketBody(server, reader, data[:buffered])


def test_it_writes_the_buffered_start_and_splices_the_rest(tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    body = body_over_socket(data, buffered=4000)
    target = tmp_path / "out.bin"
    with open(target, "wb") as out:
        assert body.copy_to_fd(out.fileno(), max_bytes=len(data)) == len(data)
    assert target.read_bytes() == data
    assert body.reader.length == 0  # gunicorn is told the whole body was read


def test_a_body_over_the_limit_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    body = body_over_socket(b"x" * 10_000, buffered=100)
    with open(tmp_path / "out.bin", "wb") as out, pytest.raises(StorageError, match="upload limit"):
        body.copy_to_fd(out.fileno(), max_bytes=9_999)
    assert (tmp_path / "out.bin").stat().st_size == 0


def test_a_client_that_stops_early_is_an_error_not_a_short_file(tmp_path: Path) -> None:
    body = body_over_socket(os.urandom(300_000), buffered=10, send=200_000)
    with open(tmp_path / "out.bin", "wb") as out, pytest.raises(StorageError, match="interrupted"):
        body.copy_to_fd(out.fileno())


def test_read_gives_the_same_bytes_in_pieces() -> None:
    data = os.urandom(200_000)
    body = body_over_socket(data, buffered=50)
    pieces = []
    while chunk := body.read(7000):
        pieces.append(chunk)
    assert b"".join(pieces) == data
