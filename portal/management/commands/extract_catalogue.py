"""``manage.py extract_catalogue IMAGE --output DIR [--jobs N]``: the catalogue pipeline without the web."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.catalogue.extract import ExtractionParams, extract_file
from orchestration.catalogue.formats import write_all
from orchestration.catalogue.sexdefaults import tutorial_defaults
from orchestration.catalogue.validate import CatalogueInputError

_D = ExtractionParams.defaults()


def image_stem(path: Path) -> str:
    """1056213p.fits.fz -> 1056213p (catalogues are stored next to the image's name)."""
    return re.sub(r"(\.fits|\.fit|\.fts)?(\.fz|\.gz)?$", "", path.name, flags=re.IGNORECASE) or path.name


class Command(BaseCommand):
    # The system checks import every view (and openstacksdk): a second of start-up this command never uses.
    requires_system_checks: list[str] = []
    help = "Extract a source catalogue (SExtractor-like, with sep) from a FITS/MEF image into every format."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("image", help="path to a .fits or .fits.fz image")
        parser.add_argument("--output", required=True, help="directory for the catalogue files")
        parser.add_argument("--jobs", type=int, default=1, help="worker processes (one CCD each)")
        src = tutorial_defaults().source
        parser.epilog = f"Defaults are the tutorial's source-extractor run: {src}."
        for flag, name, kind in (
            ("--detect-thresh", "DETECT_THRESH", float),
            ("--detect-minarea", "DETECT_MINAREA", int),
            ("--deblend-nthresh", "DEBLEND_NTHRESH", int),
            ("--deblend-mincont", "DEBLEND_MINCONT", float),
            ("--mag-zeropoint", "MAG_ZEROPOINT", float),
        ):
            parser.add_argument(flag, type=kind, default=None, help=f"{name} (default {getattr(_D, name)})")
        parser.add_argument(
            "--votable-tabledata",
            action="store_true",
            help="also write the VOTable as TABLEDATA (XML text; the .cat.vot is BINARY2)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        image = Path(options["image"])
        if options["jobs"] < 1:
            raise CommandError("--jobs must be at least 1")
        overrides = {
            "DETECT_THRESH": options["detect_thresh"],
            "DETECT_MINAREA": options["detect_minarea"],
            "DEBLEND_NTHRESH": options["deblend_nthresh"],
            "DEBLEND_MINCONT": options["deblend_mincont"],
            "MAG_ZEROPOINT": options["mag_zeropoint"],
        }
        verbose = options["verbosity"] >= 1

        def progress(done: int, total: int, name: str) -> None:
            if verbose:
                self.stdout.write(f"  {name} done ({done}/{total})")

        started = time.perf_counter()
        try:
            params = ExtractionParams.from_dict({k: v for k, v in overrides.items() if v is not None})
            catalogue = extract_file(
                image,
                params,
                jobs=options["jobs"],
                progress=progress,
                max_decompressed_bytes=settings.CATALOGUE_MAX_DECOMPRESSED_BYTES,
                max_ccd_pixels=settings.CATALOGUE_MAX_CCD_PIXELS,
            )
            extracted = time.perf_counter()
            paths = write_all(
                catalogue, options["output"], image_stem(image), tabledata=options["votable_tabledata"]
            )
        except CatalogueInputError as exc:
            raise CommandError(str(exc)) from exc
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"{len(catalogue)} sources on {len(catalogue.ccds)} CCD(s) in {elapsed:.1f} s from {image.name}"
            f" (extraction {extracted - started:.2f} s, files {elapsed - (extracted - started):.2f} s)"
        )
        for fmt, path in paths.items():
            self.stdout.write(f"  {fmt}: {path}")
