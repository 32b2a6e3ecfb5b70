"""The bootstrap step that fills the local archive with synthetic images named after the tutorial's IDs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from astropy.io import fits

from orchestration.archive import LocalArchive
from portal import demo as catalogue_tasks


def test_it_fills_the_local_archive_once_with_labelled_synthetic_images(
    settings: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    settings.ARCHIVE_BACKEND = "local"
    settings.ARCHIVE_DIR = tmp_path / "archive"
    settings.CATALOGUE_DEMO_IMAGES = 2
    monkeypatch.setattr(catalogue_tasks, "DEMO_SHAPE", (96, 64))  # the real step uses 1153 x 512
    out = io.StringIO()
    catalogue_tasks.fill_demo_archive(out)
    assert "SYNTHETIC" in out.getvalue() and "1056215p, 1056216p" in out.getvalue()
    assert LocalArchive(settings.ARCHIVE_DIR).available() == [
        "cadc:CFHT/1056215p.fits.fz",
        "cadc:CFHT/1056216p.fits.fz",
    ]
    with fits.open(settings.ARCHIVE_DIR / "CFHT" / "1056215p.fits.fz") as hdul:
        assert hdul[0].header["SYNTHETC"] is True
        assert len(hdul) == 37 and hdul[1].header["EXTNAME"] == "ccd00"
    again = io.StringIO()
    catalogue_tasks.fill_demo_archive(again)
    assert again.getvalue() == ""  # already there: skipped


def test_it_leaves_a_cadc_archive_alone(settings: Any, tmp_path: Path) -> None:
    settings.ARCHIVE_BACKEND = "cadc"
    settings.ARCHIVE_DIR = tmp_path / "archive"
    catalogue_tasks.fill_demo_archive(io.StringIO())
    assert not (tmp_path / "archive").exists()
