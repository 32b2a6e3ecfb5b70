"""Where a plain FITS file's HDUs end: what a preview hands to astropy."""

from __future__ import annotations

import gzip
import io

import numpy as np
from astropy.io import fits

from orchestration.catalogue.fitsindex import fits_extent


def _mef() -> bytes:
    out = io.BytesIO()
    image = fits.ImageHDU(np.zeros((30, 40), np.int16), name="ccd00")
    table = fits.BinTableHDU.from_columns([fits.Column("A", "E", array=np.arange(5.0))])
    fits.HDUList([fits.PrimaryHDU(), image, table]).writeto(out)
    return out.getvalue()


def test_it_ends_a_clean_file_at_its_size_and_rewinds() -> None:
    body = _mef()
    fh = io.BytesIO(body)
    fh.seek(100)
    assert fits_extent(fh) == len(body)
    assert fh.tell() == 0


def test_it_stops_before_what_follows_the_last_hdu() -> None:
    body = _mef()
    for tail in (b"\x00" * 10000, b"junk " * 3000, b"XTENSION= 'IMAGE'" + b"x" * 100):
        assert fits_extent(io.BytesIO(body + tail)) == len(body)


def test_it_leaves_truncated_data_to_the_reader_and_stops_before_a_cut_header() -> None:
    out = io.BytesIO()
    fits.PrimaryHDU(np.zeros((100, 100), np.int16)).writeto(out)
    assert fits_extent(io.BytesIO(out.getvalue()[:-5000])) == len(out.getvalue()) - 5000
    body = _mef()  # the table's header starts 2 blocks before the end
    assert fits_extent(io.BytesIO(body[: -2880 - 100])) == len(body) - 2 * 2880


def test_it_says_none_for_what_does_not_start_as_fits() -> None:
    assert fits_extent(io.BytesIO(gzip.compress(_mef()))) is None
    assert fits_extent(io.BytesIO(b"hello world")) is None


def test_a_first_header_without_end_gives_nothing_to_read() -> None:
    assert fits_extent(io.BytesIO(b"SIMPLE  = " + b"x" * 9000)) == 0
    assert fits_extent(io.BytesIO(b"SIMPLE  = T" + b" " * 100)) == 0


def test_it_sizes_random_groups_without_their_zero_first_axis() -> None:
    header = fits.Header()
    for key, value in [("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 3), ("NAXIS1", 0), ("NAXIS2", 20)]:
        header[key] = value
    header["NAXIS3"], header["GROUPS"], header["PCOUNT"], header["GCOUNT"] = 20, True, 2, 3
    data = bytes(4 * 3 * (2 + 20 * 20))  # |BITPIX|/8 x GCOUNT x (PCOUNT + NAXIS2 x NAXIS3): 2 blocks
    groups = header.tostring().encode() + data + bytes(-len(data) % 2880)
    image = fits.ImageHDU(np.ones((2, 2), np.int16))
    pixels = image.data.astype(">i2").tobytes()
    body = groups + image.header.tostring().encode() + pixels + bytes(2880 - len(pixels))
    assert fits.open(io.BytesIO(body))[1].data.sum() == 4  # astropy finds the image after the groups
    assert fits_extent(io.BytesIO(body + b"junk" * 1000)) == len(body)
