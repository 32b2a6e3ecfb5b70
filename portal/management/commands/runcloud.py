"""`python manage.py runcloud --port PORT [--state PATH]`: the bundled OpenStack emulator, foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from emulator.__main__ import serve


class Command(BaseCommand):
    help = "Serve the emulated OpenStack cloud and print a clouds.yaml entry for the demo user."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.CLOUD_EMULATOR_PORT)
        parser.add_argument("--state", type=Path, default=settings.VAR_DIR / "cloud.sqlite3")
        parser.add_argument("--seed", type=Path, default=None, help="seed YAML (default: emulator/seed.yaml)")
        parser.add_argument("--build-seconds", type=float, default=3.0)
        parser.add_argument("--snapshot-seconds", type=float, default=4.0)
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        status = serve(
            options["host"],
            options["port"],
            options["state"],
            options["seed"],
            options["build_seconds"],
            options["snapshot_seconds"],
            quiet=options["quiet"],
        )
        if status:
            raise CommandError("the emulated cloud could not start (see the message above)")
