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


class _Counting:
    """The file object the previews get, counting what is read from it and how far."""

    def __init__(self, fh: Any, reads: list[tuple[int, int]]) -> None:
        self._fh, self._reads = fh, reads

    def read(self, size: int = -1) -> bytes:
        start = self._fh.tell()
        data = self._fh.read(size)
        self._reads.append((start, len(data)))
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer).cast("B")))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> _Counting:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    from orchestration.storage.local import LocalStorage

    found: list[tuple[int, int]] = []
    plain = LocalStorage.open_read
    monkeypatch.setattr(LocalStorage, "open_read", lambda self, path: _Counting(plain(self, path), found))
    return found


@pytest.mark.parametrize("junk", ["text", "zeros"])
def test_it_previews_a_fits_file_with_junk_after_it_without_reading_the_junk(
    alice_client: Any, home: Path, reads: list[tuple[int, int]], junk: str
) -> None:
    """astropy read what follows the last HDU as a header, to the end of the file and twice over
    (8 MB of junk: 16 MB read for the header page, as much again for the thumbnail)."""
    write_mef(home / "clean.fits")
    fits_bytes = (home / "clean.fits").read_bytes()
    image_data = 400 * 600 * 4  # ccd00, the HDU shown
    tail = b"not fits " * (8 * 1024**2 // 9) if junk == "text" else bytes(8 * 1024**2)
    (home / "image.fits").write_bytes(fits_bytes + tail)
    page = alice_client.get("/storage/file/image.fits")
    assert page.status_code == 200
    html = page.content.decode()
    assert "FILTER" in html and "r.MP9601" in html and "600 × 400" in html
    assert "8.0\xa0MB after the last HDU are not FITS" in html
    assert sum(n for _, n in reads) < 10 * 2880  # the headers only
    assert max(start + n for start, n in reads) <= len(fits_bytes) + 2880  # one block of junk looked at
    reads.clear()
    png = alice_client.get("/storage/thumbnail/image.fits")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (300, 200)
    assert sum(n for _, n in reads) < image_data + 20 * 2880  # the headers and ccd00's rows
    assert max(start + n for start, n in reads) <= len(fits_bytes) + 2880


def test_a_clean_fits_file_says_nothing_is_left_out(alice_client: Any, home: Path) -> None:
    write_mef(home / "image.fits")
    page = alice_client.get("/storage/file/image.fits")
    assert page.status_code == 200 and b"FILTER" in page.content
    assert b'data-testid="fits-ignored"' not in page.content


@pytest.mark.parametrize(
    "body",
    [
        b"SIMPLE  = " + b"x" * 5000,  # a first header without END
        b"SIMPLE  =                    T" + b" " * 2850 + b"\xff" * 2880,  # not ASCII, no END
        b"\x00" * 6000,
    ],
)
def test_junk_that_only_looks_like_fits_is_explained_not_a_500(
    alice_client: Any, home: Path, body: bytes
) -> None:
    (home / "junk.fits").write_bytes(body)
    page = alice_client.get("/storage/file/junk.fits")
    assert page.status_code == 200
    assert b"could not be read as FITS" in page.content
    assert alice_client.get("/storage/thumbnail/junk.fits").status_code == 404
