"""Run everything the portal needs in the foreground: web server, a Celery worker pool per lane,
beat, and the OpenStack emulator when the cloud is emulated. One Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def lane_queue(lane: str) -> str:
    return settings.BATCH_QUEUE if lane == "jobs" else lane


def lane_worker_argv(lane: str, concurrency: int, name: str = "", loglevel: str = "WARNING") -> list[str]:
    """The command of one lane's Celery worker: its own queue, its own pool of processes."""
    return [
        os.path.join(os.path.dirname(sys.executable), "celery"),
        "-A",
        "config",
        "worker",
        "-Q",
        lane_queue(lane),
        "--loglevel",
        loglevel,
        "--concurrency",
        str(concurrency),
        "-n",
        f"{name or lane}@%h",
        "--without-gossip",
        "--without-mingle",
    ]


class Command(BaseCommand):
    help = (
        "Run the web server, one Celery worker pool per lane (ops, sync, ccd, jobs), Celery beat "
        "and (embedded) the OpenStack emulator."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        py = sys.executable
        bindir = os.path.dirname(py)
        procs: dict[str, list[str]] = {}
        cloud_port = settings.CLOUD_EMULATOR_PORT
        if settings.CLOUD_IS_EMULATED:
            if not _port_free("127.0.0.1", cloud_port):
                if "CLOUD_EMULATOR_PORT" in os.environ or "OPENSTACK_AUTH_URL" in os.environ:
                    raise CommandError(
                        f"Port {cloud_port} (cloud emulator) is in use. "
                        "Stop the other program or set CLOUD_EMULATOR_PORT."
                    )
                # The default port is taken (a real Nova listens there, for one): use a free one. The
                # web server and workers read it from the environment, so their auth URL follows.
                busy, cloud_port = cloud_port, _free_port()
                os.environ["CLOUD_EMULATOR_PORT"] = str(cloud_port)
                self.stdout.write(
                    f"Port {busy} is in use: the cloud emulator listens on {cloud_port} instead."
                )
            procs["cloud"] = [
                py,
                "-m",
                "emulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(cloud_port),
                "--state",
                str(settings.VAR_DIR / "cloud.sqlite3"),
                "--quiet",
            ]
        if not _port_free(host, port):
            raise CommandError(
                f"Port {port} is in use. Stop the other program or run with PORT=<another port>."
            )
        procs["web"] = [
            os.path.join(bindir, "gunicorn"),
            "config.wsgi",
            "--bind",
            f"{host}:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--access-logfile",
            "-",
            "--log-level",
            "warning",
        ]
        for lane in settings.LANES:
            procs[f"worker-{lane}"] = lane_worker_argv(lane, settings.CELERY_LANE_CONCURRENCY[lane])
        procs["beat"] = [
            os.path.join(bindir, "celery"),
            "-A",
            "config",
            "beat",
            "--loglevel",
            "WARNING",
            "--schedule",
            settings.CELERY_BEAT_SCHEDULE_FILENAME,
        ]
        running: dict[str, subprocess.Popen[bytes]] = {}
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, cmd in procs.items():
            running[name] = subprocess.Popen(cmd, start_new_session=True)
        self.stdout.write(
            self.style.SUCCESS(
                f"\nCANFAR Workbench is running: open http://{host}:{port}/  (Ctrl-C stops everything)\n"
            )
        )
        if settings.CLOUD_IS_EMULATED:
            self.stdout.write(f"Emulated OpenStack cloud at http://127.0.0.1:{cloud_port}/\n")
        exit_code = 0
        while not stopping:
            for name, proc in running.items():
                if proc.poll() is not None:
                    self.stderr.write(
                        f"The {name} process stopped (exit code {proc.returncode}); stopping the rest."
                    )
                    stopping, exit_code = True, 1
                    break
            time.sleep(0.3)
        for proc in running.values():
            if proc.poll() is None:
                proc.terminate()  # the main process only: Celery and gunicorn stop their own children
        deadline = time.monotonic() + 10
        for proc in running.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.stdout.write("Stopped.")
        if exit_code:
            raise SystemExit(exit_code)
