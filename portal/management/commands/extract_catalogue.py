"""``manage.py extract_catalogue IMAGE --output DIR [--jobs N]``: the catalogue pipeline without the web.

The command itself is ``orchestration/catalogue/command.py``; ``manage.py extract_catalogue`` runs it
before Django is set up. This class is its Django face: ``call_command`` and ``manage.py help``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.catalogue import command
from orchestration.catalogue.validate import CatalogueInputError


class Command(BaseCommand):
    # The system checks import every view (and openstacksdk): a second of start-up this command never uses.
    requires_system_checks: list[str] = []
    help = command.HELP

    def add_arguments(self, parser: CommandParser) -> None:
        command.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        limits = {
            "max_decompressed_bytes": settings.CATALOGUE_MAX_DECOMPRESSED_BYTES,
            "max_ccd_pixels": settings.CATALOGUE_MAX_CCD_PIXELS,
        }
        try:
            command.run(options, limits, self.stdout.write)
        except (CatalogueInputError, command.UsageError) as exc:
            raise CommandError(str(exc)) from exc
