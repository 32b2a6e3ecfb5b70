"""Compressed-FITS bombs against the catalogue reader: each is refused with a clear message, in bounded memory.

A tile-compressed image is a binary table of compressed tiles; its header declares the image and tile
sizes. The hostile files here lie: a header declaring a huge image (or an absurd number of axes), or a
gzip tile that inflates to far more than the pixels it claims to hold (a megabyte of gzipped zeros is a
gigabyte once inflated, and astropy's gzip reader has no bound).
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tracemalloc
import zlib
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from django.core.management import CommandError, call_command

from orchestration.catalogue.errors import CatalogueInputError
from orchestration.catalogue.fitsread import read_ccd
from portal.models import Catalogue, Operation
from tests.portal.test_catalogue_views import catalogue_env, drive, form_defaults, small_fz

__all__ = ["catalogue_env", "small_fz"]  # fixtures used here

ROOT = Path(__file__).resolve().parents[2]
INFLATED = 512 * 1024**2  # what the bomb's one tile inflates to
GROWTH_LIMIT = 96 * 1024**2  # what reading it may add to a process's peak memory


@pytest.fixture(scope="module")
def zeros_gz() -> bytes:
    """INFLATED bytes of zeros, gzipped (about 500 kB), made in 1 MB steps."""
    stream = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024**2)
    return b"".join([stream.compress(zeros) for _ in range(INFLATED // len(zeros))] + [stream.flush()])


def gzip_tile_bomb(path: Path, payload: bytes, compression: str = "GZIP_1") -> Path:
    """A 64 x 64 16-bit image in one tile (8 kB of pixels) whose tile is ``payload``."""
    hdu = fits.CompImageHDU(np.zeros((64, 64), np.int16), compression_type=compression, tile_shape=(64, 64))
    out = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(out)
    out.seek(0)
    with fits.open(out, disable_image_compression=True) as hdul:
        header = hdul[1].header.copy()
    tile = np.frombuffer(payload, np.uint8)
    column = fits.Column(
        name="COMPRESSED_DATA", format=f"1PB({tile.size})", array=np.array([tile], dtype=object)
    )
    table = fits.BinTableHDU.from_columns([column], header=header)
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return path


def header_bomb(path: Path, **cards: Any) -> Path:
    """A small Rice-compressed image whose table header then says what ``cards`` say."""
    hdu = fits.CompImageHDU(np.zeros((64, 64), np.int16), compression_type="RICE_1")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    with fits.open(path, mode="update", disable_image_compression=True) as hdul:
        for key, value in cards.items():
            hdul[1].header[key] = value
    return path


def read_in_child(path: Path) -> tuple[str, int]:
    """read_ccd(path, 1) in a fresh interpreter: what it said, and how much its peak RSS grew (bytes)."""
    code = (
        "import json, resource, sys\n"
        "from orchestration.catalogue.fitsread import read_ccd\n"
        "from orchestration.catalogue.errors import CatalogueInputError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    read_ccd(sys.argv[1], 1)\n"
        "    said = 'read'\n"
        "except CatalogueInputError as exc:\n"
        "    said = str(exc)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps([said, (after - before) * 1024]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    said, growth = json.loads(done.stdout.strip().splitlines()[-1])
    return said, growth


@pytest.mark.parametrize("compression", ["GZIP_1", "GZIP_2"])
def test_a_gzip_tile_inflating_past_its_pixels_is_refused_in_bounded_memory(
    tmp_path: Path, zeros_gz: bytes, compression: str
) -> None:
    path = gzip_tile_bomb(tmp_path / "bomb.fits.fz", zeros_gz, compression)
    assert path.stat().st_size < 1024**2
    said, growth = read_in_child(path)
    assert growth < GROWTH_LIMIT, f"peak memory grew by {growth / 1e6:.0f} MB ({said})"
    assert "bomb.fits.fz: HDU 1 is corrupted" in said and "inflates past the 32768 bytes" in said, said


def test_an_honest_gzip_image_still_reads(tmp_path: Path) -> None:
    pixels = np.arange(200 * 300, dtype=np.int16).reshape(200, 300)
    for compression in ("GZIP_1", "GZIP_2"):
        path = tmp_path / f"{compression}.fits.fz"
        hdu = fits.CompImageHDU(pixels, compression_type=compression, tile_shape=(50, 300))
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
        data, _ = read_ccd(path, 1)
        assert np.array_equal(data, pixels.astype(np.float32))


def test_the_extract_catalogue_command_refuses_the_bomb(tmp_path: Path, zeros_gz: bytes) -> None:
    path = gzip_tile_bomb(tmp_path / "bomb.fits.fz", zeros_gz)
    with pytest.raises(CommandError, match="inflates past"):
        call_command("extract_catalogue", str(path), output=str(tmp_path / "out"), stdout=StringIO())


def _upload(client: Any, name: str, content: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {"source": "upload", **form_defaults(), "upload": SimpleUploadedFile(name, content)}
    return client.post("/catalogues/new/", data)


def test_an_uploaded_gzip_tile_bomb_fails_its_catalogue_clearly(
    alice_client: Any, catalogue_env: Path, zeros_gz: bytes, django_capture_on_commit_callbacks: Any
) -> None:
    """Its headers are honest, so the upload is accepted; the worker reading the CCD refuses it."""
    bomb = gzip_tile_bomb(catalogue_env / "bomb.fits.fz", zeros_gz).read_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(alice_client, "bomb.fits.fz", bomb)
    assert response.status_code == 302
    cat = Catalogue.objects.get()
    op = drive(cat.operation_id, django_capture_on_commit_callbacks)
    assert op.state == Operation.FAILED
    assert "inflates past" in op.error, op.error
    page = alice_client.get(f"/catalogues/{cat.pk}/")
    assert page.status_code == 200 and b"inflates past" in page.content


HEADER_BOMBS = {
    "huge": ({"ZNAXIS1": 200_000, "ZNAXIS2": 200_000, "ZTILE1": 200_000}, "more than the limit"),
    "overflowing": ({"ZNAXIS1": 2**62, "ZNAXIS2": 2**62}, "more than the limit"),
    "int64 wrap": ({"ZNAXIS1": 2**32, "ZNAXIS2": 2**32, "ZTILE1": 2**32}, "more than the limit"),
    "a billion axes": ({"ZNAXIS": 10**9}, "ZNAXIS 1000000000 is not between 0 and 999"),
    "negative axes": ({"ZNAXIS1": -64, "ZNAXIS2": -64, "ZTILE1": -64}, "no image data"),
    "zero tiles": ({"ZTILE1": 0}, "is corrupted"),
}


@pytest.mark.parametrize("case", HEADER_BOMBS)
def test_a_lying_header_is_refused_at_upload_with_a_clear_message(
    alice_client: Any, catalogue_env: Path, case: str
) -> None:
    cards, message = HEADER_BOMBS[case]
    content = header_bomb(catalogue_env / "liar.fits.fz", **cards).read_bytes()
    response = _upload(alice_client, "liar.fits.fz", content)
    if case == "zero tiles":  # its size is honest; the reader refuses it
        assert response.status_code == 302
        return
    assert response.status_code == 400, response.content.decode()[:2000]
    assert message.encode() in response.content, response.content.decode()[:3000]
    assert not Catalogue.objects.exists()


@pytest.mark.parametrize("case", HEADER_BOMBS)
def test_the_reader_refuses_a_lying_header_without_the_upload_checks(tmp_path: Path, case: str) -> None:
    """read_ccd is also called on its own (workers, thumbnails): it checks sizes before allocating."""
    cards, message = HEADER_BOMBS[case]
    path = header_bomb(tmp_path / "liar.fits.fz", **cards)
    if case == "negative axes":
        message = "negative or zero axis"
    with pytest.raises(CatalogueInputError, match=message if case != "zero tiles" else "is corrupted"):
        read_ccd(path, 1)


def test_a_billion_primary_axes_are_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "axes.fits"
    fits.PrimaryHDU(np.zeros((4, 4), np.int16)).writeto(path)
    data = bytearray(path.read_bytes())
    at = data.index(b"NAXIS   =")
    data[at : at + 80] = f"NAXIS   = {10**9:>20}".ljust(80).encode()
    path.write_bytes(bytes(data))
    with pytest.raises(CatalogueInputError, match="NAXIS 1000000000 is not between 0 and 999"):
        read_ccd(path, 0)


def test_a_gzipped_fits_file_is_refused_clearly_everywhere(
    alice_client: Any, catalogue_env: Path, tmp_path: Path
) -> None:
    """A .fits.gz says nothing of its inflated size until the end: the page and the command say so."""
    raw = io.BytesIO()
    fits.PrimaryHDU(np.zeros((64, 64), np.int16)).writeto(raw)
    content = gzip.compress(raw.getvalue() + bytes(64 * 1024**2))  # a FITS file and 64 MB of zeros
    response = _upload(alice_client, "image.fits.gz", content)
    assert response.status_code == 400
    assert b"image.fits.gz: a gzip-compressed file, which is not read" in response.content
    path = tmp_path / "image.fits.gz"
    path.write_bytes(content)
    with pytest.raises(CommandError, match="gzip-compressed file"):
        call_command("extract_catalogue", str(path), output=str(tmp_path / "out"), stdout=StringIO())


def test_a_gzip_tile_bomb_gets_no_thumbnail_and_no_memory(
    alice_client: Any, home: Path, zeros_gz: bytes
) -> None:
    gzip_tile_bomb(home / "bomb.fz", zeros_gz[: len(zeros_gz) // 8])  # 64 MB inflated: enough to see
    honest = fits.CompImageHDU(np.zeros((64, 64), np.int16), compression_type="GZIP_1", tile_shape=(64, 64))
    fits.HDUList([fits.PrimaryHDU(), honest]).writeto(home / "small.fz")
    assert alice_client.get("/storage/thumbnail/small.fz").status_code == 200  # imports done before tracing
    tracemalloc.start()
    try:
        answer = alice_client.get("/storage/thumbnail/bomb.fz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer.status_code == 404
    assert peak < 16 * 1024**2
    assert alice_client.get("/storage/file/bomb.fz").status_code == 200


def test_a_gzipped_fits_bomb_in_storage_is_previewed_in_bounded_memory(
    alice_client: Any, home: Path, settings: Any
) -> None:
    """A .fits.gz holding a small image and 128 MB of zeros after it (128 kB on disk): astropy read the
    zeros as one header, twice over (256 MB). It is refused as a plain file of its inflated size is."""
    settings.STORAGE_PREVIEW_MAX_BYTES = 32 * 1024**2
    raw = io.BytesIO()
    fits.PrimaryHDU(np.zeros((64, 64), np.int16)).writeto(raw)
    stream = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024**2)
    body = [stream.compress(raw.getvalue())] + [stream.compress(zeros) for _ in range(128)] + [stream.flush()]
    (home / "bomb.fits.gz").write_bytes(b"".join(body))
    (home / "small.fits.gz").write_bytes(gzip.compress(raw.getvalue()))
    assert alice_client.get("/storage/thumbnail/small.fits.gz").status_code == 200  # imports first
    tracemalloc.start()
    try:
        pages = [alice_client.get(f"/storage/{kind}/bomb.fits.gz") for kind in ("file", "thumbnail")]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [p.status_code for p in pages] == [200, 404]
    assert b"once decompressed; it is not previewed" in pages[0].content
    assert peak < 32 * 1024**2
