"""The compiled Rice decoder against astropy's on images that exercise every kind of Rice block."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from orchestration.catalogue import fitsread
from orchestration.catalogue.fitsread import read_ccd
from orchestration.catalogue.validate import CatalogueInputError


def _mixed(shape: tuple[int, int], dtype: type, seed: int = 1) -> np.ndarray:
    """Sky noise (Rice codes), flat patches (zero-difference blocks), white noise over the full range
    (blocks stored raw) and long zero runs before big steps (codes longer than the bit buffer)."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    ny, nx = shape
    sky = 1000 + rng.normal(0, 12, shape)
    data = np.clip(sky, info.min, info.max).astype(dtype)
    data[: ny // 4, : nx // 2] = dtype(7)  # flat
    data[ny // 4 : ny // 2] = rng.integers(info.min, info.max, (ny // 2 - ny // 4, nx), endpoint=True)
    steps = data[ny // 2 : ny // 2 + 3]
    steps[:, ::37] = info.max  # isolated jumps: hundreds of leading zeros in a low-fs block
    data[-1, -1] = info.min
    return data


def _write(
    path: Path, data: np.ndarray, tile_rows: int = 1, scale: tuple[float, float] | None = None
) -> Path:
    hdu = fits.CompImageHDU(data, compression_type="RICE_1", tile_shape=(tile_rows, data.shape[1]))
    if scale is not None:
        hdu.scale("int16", bscale=scale[0], bzero=scale[1])
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


def _astropy_pixels(path: Path) -> np.ndarray:
    with fits.open(path) as hdul:
        return np.asarray(hdul[1].data, dtype=np.float32)


def test_the_compiled_decoder_is_built() -> None:
    assert fitsread._rice_to_float is not None, "make builds orchestration/catalogue/_rice.so"


@pytest.mark.parametrize(
    ("dtype", "shape", "tile_rows"),
    [
        (np.uint16, (64, 100), 1),  # BITPIX 16 with BZERO 32768, rows not a multiple of 32 pixels
        (np.int16, (64, 2048), 1),
        (np.int32, (40, 77), 1),  # 32-bit: 5-bit FS, values stored raw are 32 bits
        (np.uint8, (40, 300), 1),
        (np.int16, (23, 64), 5),  # tiles of 5 rows, the last one short
    ],
)
def test_it_decodes_like_astropy(tmp_path: Path, dtype: type, shape: tuple[int, int], tile_rows: int) -> None:
    data = _mixed(shape, dtype)
    path = _write(tmp_path / "img.fits.fz", data, tile_rows)
    ours, header = read_ccd(path, 1)
    assert ours.dtype == np.float32 and ours.shape == shape
    np.testing.assert_array_equal(ours, _astropy_pixels(path))
    np.testing.assert_array_equal(ours, data.astype(np.float32))
    assert header["NAXIS1"] == shape[1] and header["NAXIS2"] == shape[0]


def test_it_applies_bscale_and_bzero(tmp_path: Path) -> None:
    """fpack (CFITSIO) keeps an integer image's BSCALE and BZERO; pixels are raw * BSCALE + BZERO."""
    raw = _mixed((80, 50), np.int16)
    plain = tmp_path / "scaled.fits"
    hdu = fits.ImageHDU(raw)
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.5, 10.0
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(plain, output_verify="silentfix")
    subprocess.run(["fpack", "-r", str(plain)], check=True)  # Rice, one tile per row
    path = tmp_path / "scaled.fits.fz"
    with fits.open(path, disable_image_compression=True) as hdul:
        assert hdul[1].header["ZCMPTYPE"] == "RICE_1" and hdul[1].header["BSCALE"] == 0.5
    ours, _ = read_ccd(path, 1)
    np.testing.assert_array_equal(ours, raw.astype(np.float32) * np.float32(0.5) + np.float32(10.0))
    np.testing.assert_array_equal(ours, _astropy_pixels(path))


def test_thumbnails_take_every_nth_row(tmp_path: Path) -> None:
    data = _mixed((101, 128), np.uint16)
    path = _write(tmp_path / "img.fits.fz", data)
    for step in (2, 7, 200):
        small, _ = read_ccd(path, 1, row_step=step)
        np.testing.assert_array_equal(small, data[::step].astype(np.float32))


def test_it_gives_the_same_pixels_without_the_compiled_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "img.fits.fz", _mixed((50, 300), np.int16))
    compiled, _ = read_ccd(path, 1)
    monkeypatch.setattr(fitsread, "_rice_to_float", None)
    portable, _ = read_ccd(path, 1)
    np.testing.assert_array_equal(compiled, portable)


def _heap_span(path: Path) -> tuple[int, int, int]:
    """(data offset in the file, heap start in the data, rows) of HDU 1."""
    with fits.open(path, disable_image_compression=True) as hdul:
        table = hdul[1]
        start = table._data_offset
        rows = table.header["NAXIS2"]
        theap = table.header.get("THEAP", table.header["NAXIS1"] * rows)
    return start, theap, rows


def test_corrupted_tiles_give_a_clear_error_never_a_crash(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.fits.fz", _mixed((60, 256), np.uint16)).read_bytes()
    start, theap, rows = _heap_span(tmp_path / "good.fits.fz")
    rng = np.random.default_rng(3)
    outcomes = {"error": 0, "pixels": 0}
    for trial in range(300):
        bad = bytearray(good)
        if trial % 3 == 0:  # garbage in the compressed bytes
            for pos in rng.integers(start + theap, len(good) - 2880, 8):
                bad[pos] = int(rng.integers(0, 256))
        elif trial % 3 == 1:  # a descriptor pointing past the heap, or a negative length
            row = int(rng.integers(0, rows))
            field = start + row * 8 + int(rng.integers(0, 2)) * 4
            bad[field : field + 4] = int(rng.choice([2**31 - 1, -5, 10**8])).to_bytes(4, "big", signed=True)
        else:  # a tile cut short: its length shrinks, its codes run out
            row = int(rng.integers(0, rows))
            field = start + row * 8
            length = int.from_bytes(bad[field : field + 4], "big")
            bad[field : field + 4] = int(rng.integers(0, max(length // 2, 1))).to_bytes(4, "big")
        path = tmp_path / f"bad{trial}.fits.fz"
        path.write_bytes(bytes(bad))
        try:
            pixels, _ = read_ccd(path, 1)
        except CatalogueInputError as exc:
            assert "HDU 1 is corrupted and cannot be read" in str(exc)
            outcomes["error"] += 1
        else:
            assert pixels.shape == (60, 256)
            outcomes["pixels"] += 1
        path.unlink()
    assert outcomes["error"] >= 200  # pointers and truncation are always caught


def _set_cards(path: Path, **values: int) -> None:
    """Overwrite integer header cards of HDU 1 in place (keeps the file's layout)."""
    raw = bytearray(path.read_bytes())
    for key, value in values.items():
        at = raw.index(f"{key:<8}= ".encode(), 2880)
        raw[at : at + 80] = f"{key:<8}= {value:>20}".ljust(80).encode()
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "cards",
    [
        {"ZVAL1": 0},  # BLOCKSIZE (ZNAME1)
        {"ZVAL1": -32},
        {"ZVAL1": 2**20},
        {"ZTILE2": 0},  # no pixels per tile
        {"ZNAXIS1": 10**11, "ZTILE1": 10**11},  # a tiny file claiming a 1.6 TB image
        {"ZNAXIS2": 4000},  # more rows than tiles
    ],
)
def test_a_hostile_header_is_refused(tmp_path: Path, cards: dict[str, int]) -> None:
    path = _write(tmp_path / "img.fits.fz", _mixed((20, 64), np.uint16))
    _set_cards(path, **cards)
    problem = "HDU 1 has .* pixels, more than the limit" if cards.get("ZNAXIS1") else "HDU 1 is corrupted"
    with pytest.raises(CatalogueInputError, match=problem):
        read_ccd(path, 1)
