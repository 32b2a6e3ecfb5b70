"""``extract_catalogue IMAGE --output DIR [--jobs N]``: the catalogue pipeline as a command.

One implementation with two entrances: the Django management command
(``portal/management/commands/extract_catalogue.py``: ``call_command``, ``manage.py help``) and
``manage.py extract_catalogue`` itself, which runs :func:`main` before Django is set up. The
pipeline uses nothing of Django, whose set-up (settings, apps, models, the Celery app) is 0.45 s
of the command's start-up, a tenth of a whole exposure's run. The two limits that the settings
give it are read here from the same environment variables, with the same defaults.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from orchestration.catalogue.extract import ExtractionParams, extract_file
from orchestration.catalogue.formats import write_all
from orchestration.catalogue.sexdefaults import tutorial_defaults
from orchestration.catalogue.validate import (
    DEFAULT_MAX_CCD_PIXELS,
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    CatalogueInputError,
)

NAME = "extract_catalogue"
HELP = "Extract a source catalogue (SExtractor-like, with sep) from a FITS/MEF image into every format."
PARAMETERS = (
    ("--detect-thresh", "DETECT_THRESH", float),
    ("--detect-minarea", "DETECT_MINAREA", int),
    ("--deblend-nthresh", "DEBLEND_NTHRESH", int),
    ("--deblend-mincont", "DEBLEND_MINCONT", float),
    ("--mag-zeropoint", "MAG_ZEROPOINT", float),
)
# (environment variable, default, minimum): as config/settings.py reads them
LIMITS = {
    "max_decompressed_bytes": ("CATALOGUE_MAX_DECOMPRESSED_BYTES", DEFAULT_MAX_DECOMPRESSED_BYTES, 1024),
    "max_ccd_pixels": ("CATALOGUE_MAX_CCD_PIXELS", DEFAULT_MAX_CCD_PIXELS, 1024),
}


class UsageError(Exception):
    """A bad argument or environment value: printed as the command's error, without a traceback."""


def image_stem(path: Path) -> str:
    """1056213p.fits.fz -> 1056213p (catalogues are stored next to the image's name)."""
    return re.sub(r"(\.fits|\.fit|\.fts)?(\.fz|\.gz)?$", "", path.name, flags=re.IGNORECASE) or path.name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ExtractionParams.defaults()
    parser.add_argument("image", help="path to a .fits or .fits.fz image")
    parser.add_argument("--output", required=True, help="directory for the catalogue files")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (one CCD each)")
    parser.epilog = f"Defaults are the tutorial's source-extractor run: {tutorial_defaults().source}."
    for flag, name, kind in PARAMETERS:
        parser.add_argument(flag, type=kind, default=None, help=f"{name} (default {getattr(defaults, name)})")
    parser.add_argument(
        "--votable-tabledata",
        action="store_true",
        help="also write the VOTable as TABLEDATA (XML text; the .cat.vot is BINARY2)",
    )


def limits_from_environment(environ: dict[str, str] | None = None) -> dict[str, int]:
    """The settings' CATALOGUE_MAX_* values, read as config/settings.py reads them."""
    environ = dict(os.environ) if environ is None else environ
    limits = {}
    for key, (name, default, minimum) in LIMITS.items():
        raw = environ.get(name, "").strip()
        try:
            value = int(raw) if raw else default
        except ValueError:
            raise UsageError(f"{name} must be an integer") from None
        if value < minimum:
            raise UsageError(f"{name} must be at least {minimum}")
        limits[key] = value
    return limits


def run(options: dict[str, Any], limits: dict[str, int], write: Callable[[str], None]) -> None:
    """Extract and write every format; CatalogueInputError or UsageError for bad input."""
    image = Path(options["image"])
    if options["jobs"] < 1:
        raise UsageError("--jobs must be at least 1")
    overrides = {name: options[flag[2:].replace("-", "_")] for flag, name, _ in PARAMETERS}
    verbose = options.get("verbosity", 1) >= 1

    def progress(done: int, total: int, name: str) -> None:
        if verbose:
            write(f"  {name} done ({done}/{total})")

    started = time.perf_counter()
    params = ExtractionParams.from_dict({k: v for k, v in overrides.items() if v is not None})
    catalogue = extract_file(image, params, jobs=options["jobs"], progress=progress, **limits)
    extracted = time.perf_counter()
    paths = write_all(catalogue, options["output"], image_stem(image), tabledata=options["votable_tabledata"])
    elapsed = time.perf_counter() - started
    write(
        f"{len(catalogue)} sources on {len(catalogue.ccds)} CCD(s) in {elapsed:.1f} s from {image.name}"
        f" (extraction {extracted - started:.2f} s, files {elapsed - (extracted - started):.2f} s)"
    )
    for fmt, path in paths.items():
        write(f"  {fmt}: {path}")


def main(argv: Sequence[str], prog: str = f"manage.py {NAME}") -> int:
    """The command without Django: exit status 0, or 1 with ``CommandError: ...`` as Django prints it."""
    parser = argparse.ArgumentParser(prog=prog, description=HELP)
    add_arguments(parser)
    parser.add_argument("-v", "--verbosity", type=int, choices=[0, 1, 2, 3], default=1)
    options = vars(parser.parse_args(list(argv)))
    try:
        run(options, limits_from_environment(), lambda line: print(line, flush=True))
    except (CatalogueInputError, UsageError) as exc:
        print(f"CommandError: {exc}", file=sys.stderr)
        return 1
    return 0
