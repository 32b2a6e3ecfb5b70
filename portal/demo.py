"""The embedded demo: its account (not a secret: it exists only in the embedded install) and the
synthetic images of its local archive."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "canfar-demo"  # noqa: S105 (documented demo account, embedded install only)
DEMO_PROJECTS = ("demo-lensing", "demo-survey")

DEMO_OBSERVATIONS = ("1056215p", "1056216p", "1056217p", "1056218p")
DEMO_SHAPE = (1153, 512)  # a quarter of MegaCam's 4612 x 2048 on each side: 36 CCDs in about a second


def fill_demo_archive(stdout: Any) -> None:
    """Bootstrap step: synthetic MegaCam-like images named after the tutorial's observation IDs."""
    # numpy and astropy: loaded by the bootstrap command only, not by every page that names the demo.
    from orchestration.catalogue.synth import SynthConfig, make_megacam_image

    if settings.ARCHIVE_BACKEND != "local":
        return
    folder = Path(settings.ARCHIVE_DIR) / "CFHT"
    folder.mkdir(parents=True, exist_ok=True)
    # Four times MegaCam's density, so the small demo CCDs hold a few hundred sources each.
    config = SynthConfig(stars_per_ccd=1200, galaxies_per_ccd=3600, cosmics_per_ccd=400)
    made = []
    for seed, obs in enumerate(DEMO_OBSERVATIONS[: settings.CATALOGUE_DEMO_IMAGES], start=1):
        target = folder / f"{obs}.fits.fz"
        if target.is_file():
            continue
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            part = Path(tmp) / target.name
            make_megacam_image(part, seed=seed, n_ccds=36, shape=DEMO_SHAPE, obs_id=obs, config=config)
            os.replace(part, target)
        made.append(obs)
    if made:
        stdout.write(
            f"Local archive: made SYNTHETIC MegaCam-like images {', '.join(made)} "
            f"(36 CCDs of {DEMO_SHAPE[1]} x {DEMO_SHAPE[0]} px) in {folder}"
        )
