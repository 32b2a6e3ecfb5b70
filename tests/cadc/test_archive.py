"""Fetching input images: LocalArchive and CadcArchive (real cadcdata against the local server)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from orchestration.archive import (
    ArchiveUnavailable,
    CadcArchive,
    InvalidObservation,
    LocalArchive,
    NotFound,
    observation_uri,
)
from tests.cadc_server import CadcTestServer


def _write_compressed_mef(path: Path) -> None:
    data = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    hdus = [fits.PrimaryHDU()] + [fits.CompImageHDU(data + i, name=f"CCD{i:02d}") for i in range(2)]
    fits.HDUList(hdus).writeto(path)


def test_it_names_observations_like_cadcget() -> None:
    assert observation_uri("1056213p") == "cadc:CFHT/1056213p.fits.fz"
    assert observation_uri("CFHT/1056213p.fits.fz") == "cadc:CFHT/1056213p.fits.fz"
    assert observation_uri("cadc:CFHT/1056213p.fits.fz") == "cadc:CFHT/1056213p.fits.fz"
    for bad in ("", "../x", "cadc:CFHT/../x", "http://x/y", "a b", "CFHT/x/y"):
        with pytest.raises(InvalidObservation):
            observation_uri(bad)


def test_it_fetches_from_a_local_directory(tmp_path: Path) -> None:
    (tmp_path / "archive" / "CFHT").mkdir(parents=True)
    _write_compressed_mef(tmp_path / "archive" / "CFHT" / "1056213p.fits.fz")
    archive = LocalArchive(tmp_path / "archive")
    assert archive.available() == ["cadc:CFHT/1056213p.fits.fz"]
    dest = tmp_path / "scratch"
    dest.mkdir()
    got = archive.fetch("1056213p", dest)
    assert got == dest / "1056213p.fits.fz"
    with fits.open(got) as hdul:
        assert hdul["CCD01"].data[0, 0] == 1.0
    with pytest.raises(NotFound, match="1056299p.fits.fz is not in the local archive"):
        archive.fetch("1056299p", dest)


def test_it_fetches_from_cadc(cadc_server: CadcTestServer, tmp_path: Path) -> None:
    source = tmp_path / "1056213p.fits.fz"
    _write_compressed_mef(source)
    cadc_server.add_archive_file("cadc:CFHT/1056213p.fits.fz", source)
    dest = tmp_path / "scratch"
    dest.mkdir()
    got = CadcArchive().fetch("1056213p", dest)
    assert got.read_bytes() == source.read_bytes()
    assert list(dest.iterdir()) == [got]


def test_it_reports_a_missing_observation(cadc_server: CadcTestServer, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="1056299p.fits.fz was not found in the CADC archive"):
        CadcArchive().fetch("cadc:CFHT/1056299p.fits.fz", tmp_path / "x.fits.fz")
    assert not (tmp_path / "x.fits.fz").exists()


def test_it_reports_the_archive_down(cadc_server: CadcTestServer, tmp_path: Path) -> None:
    cadc_server.unavailable.add("raven")
    dest = tmp_path / "scratch"
    dest.mkdir()
    with pytest.raises(ArchiveUnavailable, match="temporarily unavailable"):
        CadcArchive().fetch("1056213p", dest)
    assert list(dest.iterdir()) == []


def test_it_reports_cadc_unreachable(cadc_server: CadcTestServer, tmp_path: Path) -> None:
    cadc_server.stop()
    with pytest.raises(ArchiveUnavailable, match="cannot be reached"):
        CadcArchive().fetch("1056213p", tmp_path)
