"""The storage page through a real web server: 10,000-entry listing, 1 GB upload and download.

Run: .venv/bin/python bench/storage_web.py [SIZE_MB]   (default 1024)
Targets: listing page < 300 ms; upload and download >= 0.5 x a plain file copy; server memory flat.

The portal runs under gunicorn (one worker with threads, as `manage.py runportal` runs it) on
127.0.0.1 with a throw-away SQLite database and storage directory. The upload client streams the
file in 1 MiB blocks, as the page's XMLHttpRequest does; the download client writes whole 1 MiB
blocks, as a download manager does (curl, whose 16 KiB writes cost more than the transfer itself,
is timed once as an aside). References, measured in this run: `shutil.copyfile` of the same file
(what `cp` does: an in-kernel copy, no user space) and a Python read/write loop with 1 MiB chunks.
Every figure is the best of four rounds in which the transfers take turns, after a warm-up. Server
memory is the worker's peak RSS (VmHWM) before and after the transfers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MB = 1024 * 1024
CSRF = "b" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_source(path: Path, size_mb: int) -> None:
    block = bytearray(os.urandom(MB))
    with open(path, "wb") as out:
        for i in range(size_mb):
            block[:4] = i.to_bytes(4, "big")
            out.write(block)


def setup_portal(env: dict[str, str]) -> str:
    """Migrate the throw-away database and return a session id for user 'bench'."""
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench", password="bench-password-1")
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "portal.identity.PortalIdentityBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return str(session.session_key)


def worker_hwm_mb(master: int) -> float:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    status = Path(f"/proc/{children[0]}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def curl(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", *args], check=True, capture_output=True, text=True
    )
    return time.perf_counter() - start, out.stdout


def plain_loop(src: Path, dest: Path) -> None:
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while chunk := fin.read(MB):
            fout.write(chunk)


def post_file(port: int, session: str, src: Path, path: str) -> tuple[float, str]:
    """A streamed POST of the raw file, 1 MiB at a time, as the page's XMLHttpRequest sends it."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, blocksize=MB)
    headers = {
        "Cookie": f"sessionid={session}; csrftoken={CSRF}",
        "X-CSRFToken": CSRF,
        "Content-Type": "application/octet-stream",
        "Content-Length": str(src.stat().st_size),
    }
    start = time.perf_counter()
    with open(src, "rb") as body:
        conn.request("POST", path, body=body, headers=headers)
        reply = conn.getresponse().read().decode()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, reply


def get_file(port: int, session: str, path: str, dest: Path) -> float:
    """A GET written to ``dest`` 1 MiB at a time, as a download manager does; curl's 16 KiB writes
    cost the client more CPU than the whole transfer costs the portal, so it is timed only as an aside."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock, open(dest, "wb", buffering=0) as out:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sessionid={session}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        buf = memoryview(bytearray(MB))
        n = sock.recv_into(buf)
        head_end = bytes(buf[:n]).index(b"\r\n\r\n") + 4
        assert bytes(buf[:12]) == b"HTTP/1.1 200", bytes(buf[:n])[:300]
        out.write(buf[head_end:n])
        while n := sock.recv_into(buf, MB, socket.MSG_WAITALL):
            out.write(buf[:n])
    return time.perf_counter() - start


def main(size_mb: int) -> None:
    with tempfile.TemporaryDirectory(prefix="storage-web-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        base = Path(tmp)
        port = free_port()
        env = {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PORTAL_VAR_DIR": str(base / "var"),
            "DATABASE_URL": f"sqlite:///{base / 'portal.sqlite3'}",
            "CELERY_BROKER_URL": f"sqla+sqlite:///{base / 'broker.sqlite3'}",
            "STORAGE_ROOT": str(base / "storage"),
            "STORAGE_UPLOAD_MAX_BYTES": str((size_mb + 1) * MB),
            "OPENSTACK_AUTH_URL": "http://127.0.0.1:9/identity/v3",
            "LOG_LEVEL": "WARNING",
        }
        session = setup_portal(env)
        many = base / "storage" / "bench" / "many"
        many.mkdir(parents=True)
        for i in range(10_000):
            (many / f"file-{i:05d}.fits").write_bytes(b"")
        src, copy_dest, got = base / "source.bin", base / "copy.bin", base / "download.bin"
        make_source(src, size_mb)

        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "1",
                "--threads",
                "4",
                "--timeout",
                "600",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        auth = ["-b", f"sessionid={session}; csrftoken={CSRF}", "-H", f"X-CSRFToken: {CSRF}"]
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    curl("-o", "/dev/null", f"{url}/accounts/login/")
                    break
                except subprocess.CalledProcessError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)

            from orchestration.storage.local import LocalStorage

            storage = LocalStorage(base / "storage" / "bench")
            t_ref_list = min(_timed(lambda: storage.list("many")) for _ in range(5))
            list_times = []
            for page in ["", "?page=50", "?sort=-size", "?sort=modified&page=100", ""] * 2:
                t, html = curl(*auth, f"{url}/storage/browse/many{page}")
                assert "10,000 items" in html, html[:500]
                list_times.append(t)
            hwm_before = worker_hwm_mb(server.pid)

            # Timings of 1 GB writes are noisy here, and whichever write comes late in a burst is slow
            # (the first round is slow for all). So: a warm-up round that is not counted, then four
            # rounds in which the four transfers take turns at every position, each starting from a
            # synced disk with its destination removed; the best of each is kept, medians printed too.
            big = base / "storage" / "bench" / "big.bin"
            served = base / "storage" / "bench" / "served.bin"  # a file stored earlier, like `src`
            shutil.copyfile(src, served)

            def upload() -> float:
                t, reply = post_file(port, session, src, "/storage/upload/?folder=&name=big.bin&overwrite=on")
                assert '"ok": true' in reply, reply
                return t

            transfers: list[tuple[Path, Callable[[], float], list[float]]] = [
                (copy_dest, lambda: _timed(lambda: shutil.copyfile(src, copy_dest)), []),
                (got, lambda: _timed(lambda: plain_loop(src, got)), []),
                (big, upload, []),
                (got, lambda: get_file(port, session, "/storage/download/served.bin", got), []),
            ]
            for round_ in range(5):
                turn = transfers[round_ % 4 :] + transfers[: round_ % 4]
                for dest, action, times in turn:
                    dest.unlink(missing_ok=True)
                    os.sync()
                    t = action()
                    if round_:
                        times.append(t)
            cp_times, loop_times, up_times, down_times = (times for _, _, times in transfers)
            same = all(subprocess.run(["cmp", "-s", str(src), str(f)]).returncode == 0 for f in (big, got))
            got.unlink()
            os.sync()
            t_curl, _ = curl(*auth, "-o", str(got), f"{url}/storage/download/served.bin")
            t_cp, t_loop = min(cp_times), min(loop_times)
            print("rounds (s): copyfile", _fmt(cp_times), "loop", _fmt(loop_times))
            print("            upload", _fmt(up_times), "download", _fmt(down_times))
            hwm_after = worker_hwm_mb(server.pid)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)

    gb = size_mb / 1024
    t_up, t_down = min(up_times), min(down_times)
    print(
        f"listing 10,000 entries     : median {statistics.median(list_times) * 1000:6.1f} ms, "
        f"max {max(list_times) * 1000:6.1f} ms over {len(list_times)} pages (< 300 ms wanted; "
        f"storage.list alone {t_ref_list * 1000:5.1f} ms)"
    )
    print(f"file size                  : {size_mb} MB")
    print(f"shutil.copyfile (reference): {t_cp:6.2f} s  {gb / t_cp:5.2f} GB/s")
    print(f"read/write loop (reference): {t_loop:6.2f} s  {gb / t_loop:5.2f} GB/s")
    for label, t in (("upload", t_up), ("download", t_down)):
        print(
            f"{label + ' through the portal':27s}: {t:6.2f} s  {gb / t:5.2f} GB/s  "
            f"ratio vs copyfile {t_cp / t:4.2f}, vs loop {t_loop / t:4.2f} (>= 0.5 wanted)"
        )
    medians = [statistics.median(x) for x in (cp_times, up_times, down_times)]
    print(
        f"medians (noisy disk)       : copyfile {medians[0]:.2f} s, upload {medians[1]:.2f} s, "
        f"download {medians[2]:.2f} s; ratios {medians[0] / medians[1]:.2f} and {medians[0] / medians[2]:.2f}"
    )
    print(
        f"download with curl (aside) : {t_curl:6.2f} s  {gb / t_curl:5.2f} GB/s (the client's small writes)"
    )
    print(f"up/downloaded identical    : {'yes' if same else 'NO'}")
    print(
        f"server worker peak RSS     : {hwm_before:6.1f} MB before, {hwm_after:6.1f} MB after "
        f"({'flat' if hwm_after - hwm_before < 64 else 'NOT flat'})"
    )


def _fmt(times: list[float]) -> str:
    return " ".join(f"{t:.2f}" for t in times)


def _timed(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - start


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024)
