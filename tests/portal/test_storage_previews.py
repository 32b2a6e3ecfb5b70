"""Previews on the storage page: FITS header and thumbnail, text and logs, catalogue heads."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image


def write_mef(path: Path, compressed: bool = False) -> np.ndarray:
    rng = np.random.default_rng(1)
    data = rng.normal(1000, 20, (400, 600)).astype(np.float32)
    data[100:110, 200:210] = 60000  # a bright "star" near the bottom left
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = ("CFHT 3.6m", "synthetic test image")
    ext = fits.CompImageHDU(data, name="ccd00") if compressed else fits.ImageHDU(data, name="ccd00")
    ext.header["FILTER"] = "r.MP9601"
    fits.HDUList([primary, ext]).writeto(path)
    return data


@pytest.mark.parametrize("name", ["image.fits", "image.fits.fz"])
def test_it_shows_a_fits_header_and_thumbnail(alice_client: Any, home: Path, name: str) -> None:
    write_mef(home / name, compressed=name.endswith(".fz"))
    page = alice_client.get(f"/storage/file/{name}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "FILTER" in html and "r.MP9601" in html  # the image HDU's header
    assert "600 × 400" in html
    assert f'src="/storage/thumbnail/{name}"' in html
    png = alice_client.get(f"/storage/thumbnail/{name}")
    assert png["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    assert image.size == (300, 200)  # longest side at most 320, every second pixel
    pixels = np.asarray(image)
    # FITS row 0 is the bottom: the star (rows 100-110) appears near the bottom of the PNG
    assert pixels[199 - 52, 102] == 255
    assert 40 < np.median(pixels) < 215  # zscale puts the sky mid-grey


def test_it_explains_a_broken_fits_file(alice_client: Any, home: Path) -> None:
    (home / "broken.fits").write_bytes(b"SIMPLE  = this is not fits" + b" " * 100)
    page = alice_client.get("/storage/file/broken.fits")
    assert b"could not be read as FITS" in page.content
    assert alice_client.get("/storage/thumbnail/broken.fits").status_code == 404


def test_it_skips_previews_of_huge_fits_files(alice_client: Any, home: Path, settings: Any) -> None:
    write_mef(home / "image.fits")
    settings.STORAGE_PREVIEW_MAX_BYTES = 1024
    page = alice_client.get("/storage/file/image.fits")
    assert b"the limit for previews" in page.content
    assert alice_client.get("/storage/thumbnail/image.fits").status_code == 404


def test_it_shows_the_start_of_a_log(alice_client: Any, home: Path) -> None:
    (home / "job.out").write_text("".join(f"line {i} <b>\n" for i in range(20000)))
    page = alice_client.get("/storage/file/job.out")
    html = page.content.decode()
    assert "line 0 &lt;b&gt;" in html  # escaped
    assert "line 19999" not in html
    assert "First 64.0\xa0KB of" in html


def test_it_shows_the_head_of_a_sextractor_catalogue(alice_client: Any, home: Path) -> None:
    lines = [
        "#   1 NUMBER                 Running object number",
        "#   2 MAG_AUTO               Kron mag [mag]",
    ]
    lines += [f"{i:10d} {18 + i / 10:8.4f}" for i in range(1, 51)]
    (home / "1056215p.cat").write_text("\n".join(lines) + "\n")
    page = alice_client.get("/storage/file/1056215p.cat")
    table = page.context["table"]
    assert table.columns == ["NUMBER", "MAG_AUTO"]
    assert table.rows[0] == ["1", "18.1"]
    assert len(table.rows) == 20 and table.partial
    assert b'href="/catalogues/storage/1056215p.cat"' in page.content  # opens in the catalogue preview


def test_it_shows_unknown_text_files_and_not_binaries(alice_client: Any, home: Path) -> None:
    (home / "README").write_text("read me")
    (home / "blob").write_bytes(b"\x00\x01binary")
    assert b"read me" in alice_client.get("/storage/file/README").content
    assert b"no preview for this kind of file" in alice_client.get("/storage/file/blob").content


def test_it_redirects_a_folder_to_its_listing_and_a_file_to_its_page(alice_client: Any, home: Path) -> None:
    (home / "results").mkdir()
    (home / "a.txt").write_text("x")
    assert alice_client.get("/storage/file/results")["Location"] == "/storage/browse/results"
    assert alice_client.get("/storage/browse/a.txt")["Location"] == "/storage/file/a.txt"
