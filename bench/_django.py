"""Shared set-up for page benchmarks: a throwaway database, a real HTTP server on loopback, a signed-in client."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django() -> None:
    """A fresh SQLite database in a temp dir unless DATABASE_URL is set; then migrate."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    os.environ.setdefault("PORTAL_VAR_DIR", str(tmp))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("OPENSTACK_AUTH_URL", "http://127.0.0.1:9/identity/v3")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def serve() -> tuple[str, Callable[[], None]]:
    from django.core.wsgi import get_wsgi_application

    httpd = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_port}", httpd.shutdown


def session_for(user: Any) -> Any:
    import requests
    from django.test import Client

    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    return session


def measure(session: Any, url: str, n: int = 60, warmup: int = 5) -> dict[str, float]:
    for _ in range(warmup):
        session.get(url).raise_for_status()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = session.get(url)
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    times.sort()
    return {
        "p50": statistics.median(times),
        "p95": times[int(0.95 * (len(times) - 1))],
        "bytes": len(response.content),
    }


def report(
    name: str, figures: dict[str, float], reference: dict[str, float], target_ms: float | None
) -> None:
    ratio = figures["p95"] / reference["p95"] if reference["p95"] else float("nan")
    verdict = ""
    if target_ms is not None:
        verdict = f"  target p95 < {target_ms:.0f} ms: {'OK' if figures['p95'] < target_ms else 'MISSED'}"
    print(
        f"{name:<34} p50 {figures['p50']:7.1f} ms  p95 {figures['p95']:7.1f} ms  "
        f"{figures['bytes'] / 1024:6.0f} KiB  x{ratio:5.2f} of reference{verdict}"
    )
