"""Uploads through gunicorn, the portal's web server, where the body is read from the socket itself.

gunicorn already holds the first bytes of the body when the view starts; the rest is moved into
the file by the kernel. These tests speak raw HTTP/1.1 so they control exactly how the bytes arrive,
and check that the connection stays usable for the next request on it (keep-alive).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import ROOT, make_user, worker_env

pytestmark = pytest.mark.django_db(transaction=True)
CSRF = "c" * 32
LIMIT = 8 * 1024 * 1024


class Server:
    def __init__(self, port: int, session: str, storage: Path) -> None:
        self.port, self.session, self.storage = port, session, storage

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def head(self, method: str, path: str, length: int | None = None) -> bytes:
        lines = [
            f"{method} {path} HTTP/1.1",
            "Host: 127.0.0.1",
            f"Cookie: sessionid={self.session}; csrftoken={CSRF}",
            f"X-CSRFToken: {CSRF}",
        ]
        if length is not None:
            lines += ["Content-Type: application/octet-stream", f"Content-Length: {length}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length; (status, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
    length = int(headers.get(b"Content-Length", b"0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of a response"
        body += chunk
    return int(head.split()[1]), body


def listing(server: Server, sock: socket.socket) -> bytes:
    """The storage page, asked for on ``sock``; it must come back 200."""
    sock.sendall(server.head("GET", "/storage/"))
    status, page = read_response(sock)
    assert status == 200
    return page


def send_in_two(server: Server, sock: socket.socket, name: str, body: bytes, first: int) -> None:
    """Headers and the start of the body in one packet (gunicorn reads that part with the headers)."""
    sock.sendall(server.head("POST", f"/storage/upload/?name={name}", len(body)) + body[:first])
    time.sleep(0.2)
    sock.sendall(body[first:])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    user = make_user("alice", ["alice-survey"])
    client = Client()
    client.force_login(user)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = worker_env()
    env.update(
        STORAGE_BACKEND="local",
        STORAGE_ROOT=str(tmp_path / "storage"),
        STORAGE_UPLOAD_MAX_BYTES=str(LIMIT),
    )
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"]
            + ["--threads", "2", "--keep-alive", "30"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start:\n" + log.read_text()) from None
                time.sleep(0.2)
        space = tmp_path / "storage" / "alice"
        space.mkdir(parents=True)
        yield Server(port, client.cookies["sessionid"].value, space)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_the_body_gunicorn_already_holds_and_the_rest_make_the_whole_file(server: Server) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    with server.connect() as sock:
        send_in_two(server, sock, "image%201.fits", body, 5000)
        status, reply = read_response(sock)
        assert status == 200, reply
        assert (server.storage / "image 1.fits").read_bytes() == body
        # The same connection serves the next request: nothing of the body was left behind on it.
        assert b"image 1.fits" in listing(server, sock)


def test_a_body_that_stops_halfway_leaves_no_file(server: Server) -> None:
    body = os.urandom(2 * 1024 * 1024)
    with server.connect() as sock:
        sock.sendall(server.head("POST", "/storage/upload/?name=half.bin", len(body)) + body[:700_000])
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while any(server.storage.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)  # the server notices the closed connection and removes its temporary file
    assert list(server.storage.iterdir()) == []
    with server.connect() as sock:  # and goes on serving
        assert b"half.bin" not in listing(server, sock)


def test_an_upload_over_the_limit_is_refused_before_its_body_is_read(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(server.head("POST", "/storage/upload/?name=big.bin", LIMIT + 1) + b"x" * 1000)
        status, reply = read_response(sock)
    assert status == 413
    assert b"upload limit" in reply
    assert not (server.storage / "big.bin").exists()


def test_an_existing_name_is_refused_and_the_connection_stays_in_step(server: Server) -> None:
    (server.storage / "taken.txt").write_bytes(b"keep me")
    # gunicorn drains an unread body of up to 64 KiB to keep the connection; this one is smaller.
    body = b"new" * 15_000
    with server.connect() as sock:
        send_in_two(server, sock, "taken.txt", body, 1000)
        status, reply = read_response(sock)
        assert status == 409, reply
        listing(server, sock)
    assert (server.storage / "taken.txt").read_bytes() == b"keep me"
