from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from orchestration.catalogue.extract import extract_file
from orchestration.catalogue.validate import CatalogueInputError, validate_image


def _copy(small_image: tuple[Path, Table], tmp_path: Path) -> Path:
    dest = tmp_path / "image.fits.fz"
    shutil.copy(small_image[0], dest)
    return dest


def _fails_clearly(path: Path, message: str, **limits: int) -> None:
    with pytest.raises(CatalogueInputError, match=message):
        validate_image(path, **limits)
    with pytest.raises(CatalogueInputError, match=message):
        extract_file(path, max_decompressed_bytes=limits.get("max_decompressed_bytes", 2 * 1024**3))


def test_it_accepts_a_good_image(small_image) -> None:
    ccds = validate_image(small_image[0])
    assert [c.name for c in ccds] == ["ccd00", "ccd01", "ccd02"] and all(c.compressed for c in ccds)


def test_it_rejects_a_file_that_is_not_fits(tmp_path: Path) -> None:
    path = tmp_path / "notes.fits"
    path.write_text("this is not an image\n" * 200)
    _fails_clearly(path, "not a FITS file")


def test_it_rejects_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.fits"
    path.write_bytes(b"")
    _fails_clearly(path, "empty")


def test_it_rejects_a_truncated_file(small_image, tmp_path: Path) -> None:
    path = _copy(small_image, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    _fails_clearly(path, "truncated")


def test_it_rejects_a_corrupted_header(small_image, tmp_path: Path) -> None:
    path = _copy(small_image, tmp_path)
    data = bytearray(path.read_bytes())
    with fits.open(path, disable_image_compression=True) as hdul:
        header_start = hdul.fileinfo(2)["hdrLoc"]
    data[header_start : header_start + 2880] = b"\x00\xff" * 1440
    path.write_bytes(bytes(data))
    _fails_clearly(path, "corrupted|truncated|no image")


def test_it_rejects_corrupted_compressed_pixels_when_reading(small_image, tmp_path: Path) -> None:
    path = _copy(small_image, tmp_path)
    data = bytearray(path.read_bytes())
    with fits.open(path, disable_image_compression=True) as hdul:
        info = hdul.fileinfo(2)
        heap = info["datLoc"] + hdul[2].header["NAXIS1"] * hdul[2].header["NAXIS2"]
    junk = np.random.default_rng(0).integers(0, 256, info["datSpan"] // 2, dtype=np.uint8).tobytes()
    data[heap + 100 : heap + 100 + len(junk)] = junk
    path.write_bytes(bytes(data))
    with pytest.raises(CatalogueInputError, match="HDU 2 is corrupted"):
        extract_file(path)


def test_it_rejects_a_file_without_image_data(tmp_path: Path) -> None:
    path = tmp_path / "header_only.fits"
    fits.PrimaryHDU().writeto(path)
    _fails_clearly(path, "no image data")
    table_only = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(Table({"a": [1, 2]}))]).writeto(table_only)
    _fails_clearly(table_only, "no image data")


def test_it_refuses_a_compression_bomb_from_its_headers(tmp_path: Path) -> None:
    path = tmp_path / "bomb.fits.fz"
    hdu = fits.CompImageHDU(np.zeros((64, 64), np.int16), compression_type="RICE_1")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    with fits.open(path, mode="update", disable_image_compression=True) as hdul:
        hdul[1].header["ZNAXIS1"] = 200_000  # claims 200000 x 200000 pixels; the file stays tiny
        hdul[1].header["ZNAXIS2"] = 200_000
    assert path.stat().st_size < 100_000
    _fails_clearly(path, "pixels, more than the limit")


def test_it_applies_a_configurable_decompressed_size_limit(small_image) -> None:
    _fails_clearly(
        small_image[0], "decompressed images would take more than", max_decompressed_bytes=1_000_000
    )


def test_it_rejects_a_data_cube(tmp_path: Path) -> None:
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((3, 10, 10), np.float32)).writeto(path)
    _fails_clearly(path, "cube")
