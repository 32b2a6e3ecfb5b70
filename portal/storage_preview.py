"""What the storage page can preview: FITS headers and thumbnails, catalogue heads, text and logs.

astropy and numpy are imported by the functions that use them (a folder listing needs neither); the
settings keep astropy off the network from its first import.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import os
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

log = logging.getLogger(__name__)

TEXT_PREVIEW_BYTES = 64 * 1024
TABLE_PREVIEW_ROWS = 20
MAX_HEADER_CARDS = 500
MAX_THUMBNAIL_READ_BYTES = 48 * 1024**2  # decompressed, for one thumbnail
_FITS = (".fits", ".fit", ".fts", ".fits.fz", ".fz", ".fits.gz", ".fit.gz")
_CATALOGUES = (".cat", ".ecsv", ".csv", ".tsv")
_TEXT = (
    ".txt",
    ".log",
    ".out",
    ".err",
    ".json",
    ".yaml",
    ".yml",
    ".md",
    ".py",
    ".sh",
    ".bash",
    ".sub",
    ".xml",
    ".vot",
    ".param",
    ".conv",
    ".sex",
    ".reg",
    ".dat",
    ".conf",
    ".cfg",
    ".ini",
    ".list",
    ".lst",
)


@dataclass
class FitsPreview:
    hdus: list[tuple[int, str, str, str]]  # index, EXTNAME, type, dimensions
    cards: list[tuple[str, str, str]]  # keyword, value, comment of the header shown
    shown_hdu: int
    image_hdu: int | None
    error: str = ""
    ignored_bytes: int = 0  # after the last HDU: not FITS, not read


@dataclass
class TablePreview:
    columns: list[str]
    rows: list[list[str]]
    partial: bool


@dataclass
class TextPreview:
    text: str
    truncated: bool
    limit: int = TEXT_PREVIEW_BYTES


def preview_kind(name: str) -> str:
    lower = name.lower()
    if lower.endswith(_FITS):
        return "fits"
    if lower.endswith(_CATALOGUES):
        return "catalogue"
    if lower.endswith(_TEXT):
        return "text"
    return "other"


def _first_image(hdul: Any) -> int | None:
    for index, hdu in enumerate(hdul):
        if hdu.is_image and len(getattr(hdu, "shape", ()) or ()) >= 2:
            return index
    return None


class _Window(io.RawIOBase):
    """The first ``length`` bytes of a file object, as a file: a reader given it cannot read on."""

    def __init__(self, fh: BinaryIO, length: int) -> None:
        super().__init__()
        self._fh, self._length, self._pos = fh, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, self._length - self._pos)
        size = left if size is None or size < 0 else min(size, left)
        if not size:
            return b""
        self._fh.seek(self._pos)
        data = self._fh.read(size)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer).cast("B")))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


def _fits_only(fh: BinaryIO) -> tuple[BinaryIO, int]:
    """``fh`` cut at the end of its last HDU, and how many bytes that leaves out (plain FITS files;
    others as they are). astropy reads what follows the last HDU as a header, to the end of the file
    and twice over: a preview reads the headers and the data of the HDU it shows, nothing else."""
    from orchestration.catalogue.fitsindex import fits_extent

    extent = fits_extent(fh)
    size = fh.seek(0, os.SEEK_END)
    fh.seek(0)
    if extent is None or extent >= size:
        return fh, 0
    return cast(BinaryIO, _Window(fh, extent)), size - extent


def _inflates_past(fh: BinaryIO) -> bool:
    """Whether ``fh`` is gzip data inflating to more than a plain file may be for a preview
    (STORAGE_PREVIEW_MAX_BYTES), counted 1 MB at a time, nothing kept; ``fh`` is rewound.

    astropy reads a header until its END card: the zeros after a small image in a .fits.gz (256 kB on
    disk, 256 MB inflated) became one 256 MB header, twice over, in the web process."""
    from django.conf import settings

    head = fh.read(2)
    fh.seek(0)
    if head != b"\x1f\x8b":
        return False  # a plain file's size was checked against the same limit
    limit, total = settings.STORAGE_PREVIEW_MAX_BYTES, 0
    try:
        with gzip.GzipFile(fileobj=fh) as inflated:
            while chunk := inflated.read(1024**2):
                total += len(chunk)
                if total > limit:
                    return True
    except (OSError, EOFError, zlib.error):
        pass  # not readable: astropy says so
    finally:
        fh.seek(0)
    return False


def read_fits(fh: BinaryIO) -> FitsPreview:
    """The HDU list and the header of the first image HDU (or the primary header)."""
    from astropy.io import fits
    from django.conf import settings
    from django.template.defaultfilters import filesizeformat

    if _inflates_past(fh):
        limit = filesizeformat(settings.STORAGE_PREVIEW_MAX_BYTES)
        return FitsPreview(
            [], [], 0, None, f"This file is larger than {limit} once decompressed; it is not previewed."
        )
    try:
        fh, ignored = _fits_only(fh)
        with fits.open(fh, memmap=False, lazy_load_hdus=False) as hdul:
            hdus = [
                (
                    i,
                    str(h.header.get("EXTNAME", "PRIMARY" if i == 0 else "")),
                    type(h).__name__,
                    " × ".join(str(n) for n in reversed(getattr(h, "shape", ()) or ())),
                )
                for i, h in enumerate(hdul)
            ]
            image = _first_image(hdul)
            shown = image if image is not None else 0
            cards = [
                (c.keyword, str(c.value), c.comment) for c in hdul[shown].header.cards[:MAX_HEADER_CARDS]
            ]
    except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError) as exc:
        return FitsPreview([], [], 0, None, f"This file could not be read as FITS ({exc}).")
    return FitsPreview(hdus, cards, shown, image, ignored_bytes=ignored)


def _bytes_to_read(hdu: Any, shape: tuple[int, ...], step: int, tile: tuple[int, ...] | None) -> int:
    """What reading every step-th whole row of the first plane costs once decompressed.

    A tile-compressed image is decompressed a whole tile at a time: one tile of zeros the size of
    the image is a few hundred KB on disk and gigabytes in memory.
    """
    height, width = shape[-2], shape[-1]
    pixel = abs(int(hdu.header.get("BITPIX", 8))) // 8 or 1
    rows = -(-height // step)
    if tile:
        tile_rows = max(1, int(tile[-2]))
        rows = min(rows, -(-height // tile_rows)) * tile_rows * math.prod(int(t) for t in tile[:-2])
    return rows * width * pixel


def _gzip_tiles_are_bombs(fh: BinaryIO) -> bool:
    """Whether a gzip tile of the first image HDU inflates past its size (astropy's inflate has no
    bound); the header-declared sizes are _bytes_to_read's."""
    from astropy.io import fits

    from orchestration.catalogue.errors import CatalogueInputError
    from orchestration.catalogue.fitsread import check_gzip_table

    hdul = fits.open(fh, lazy_load_hdus=True, disable_image_compression=True)
    try:
        for index, hdu in enumerate(hdul):
            if hdu.header.get("ZIMAGE"):
                check_gzip_table(hdu, index, "thumbnail", 2**62)
                return False
            if hdu.is_image and len(getattr(hdu, "shape", ()) or ()) >= 2:
                return False
    except CatalogueInputError:
        return True
    finally:
        hdul.close(closed=False)  # the caller's file: read again for the thumbnail
        fh.seek(0)
    return False


def thumbnail_png(fh: BinaryIO, size: int = 320) -> bytes | None:
    """A zscaled greyscale PNG of the first image HDU, reading only every n-th pixel."""
    import numpy as np
    from astropy.io import fits
    from astropy.visualization import ZScaleInterval
    from PIL import Image

    try:
        if _inflates_past(fh):
            return None
        fh, _ = _fits_only(fh)
        if _gzip_tiles_are_bombs(fh):
            return None
        with fits.open(fh, memmap=False, lazy_load_hdus=True) as hdul:
            index = _first_image(hdul)
            if index is None:
                return None
            hdu = hdul[index]
            shape = hdu.shape
            step = max(1, -(-max(shape[-2:]) // size))
            tile = tuple(hdu.tile_shape) if isinstance(hdu, fits.CompImageHDU) else None
            if _bytes_to_read(hdu, shape, step, tile) > MAX_THUMBNAIL_READ_BYTES:
                return None  # a tile-compressed "bomb", or rows too wide to show
            lead = (0,) * (len(shape) - 2)  # first plane of a cube
            # Every step-th row, whole rows: astropy reads a column stride pixel by pixel (100x slower).
            rows = hdu.section[lead + (slice(None, None, step), slice(None))]
            data = np.asarray(rows, dtype=np.float32)[:, ::step]
    except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError):
        return None  # the page already says the file cannot be read
    finite = data[np.isfinite(data)]
    lo, hi = ZScaleInterval().get_limits(finite) if finite.size else (0.0, 1.0)
    scaled = np.clip((np.nan_to_num(data, nan=lo) - lo) / max(hi - lo, 1e-12), 0, 1)
    image = Image.fromarray((scaled[::-1] * 255 + 0.5).astype(np.uint8), mode="L")  # FITS rows go up
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def read_text(fh: BinaryIO, size: int) -> TextPreview:
    head = fh.read(TEXT_PREVIEW_BYTES)
    return TextPreview(head.decode("utf-8", errors="replace"), size > len(head))


def looks_like_text(fh: BinaryIO) -> bool:
    head = fh.read(8192)
    fh.seek(0)
    return b"\0" not in head


def read_table_head(fh: BinaryIO, name: str) -> TablePreview | None:
    """The first rows of a text catalogue (SExtractor ASCII_HEAD, CSV, ECSV, whitespace columns)."""
    from astropy.io import ascii as astro_ascii

    head = fh.read(TEXT_PREVIEW_BYTES)
    partial = len(head) == TEXT_PREVIEW_BYTES
    text = head.decode("utf-8", errors="replace")
    if partial:
        text = text[: text.rfind("\n") + 1]  # whole lines only
    if text.lstrip().startswith("# %ECSV"):
        fmt: str | None = "ecsv"
    elif text.lstrip().startswith("#") and " 1 " in text.splitlines()[0]:
        fmt = "sextractor"
    elif name.lower().endswith(".csv"):
        fmt = "csv"
    else:
        fmt = None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        return None  # empty: the page says so
    try:
        # A list of lines, never a str: astropy takes a str without a newline for a file name or URL.
        table = astro_ascii.read(lines, format=fmt, guess=fmt is None)
    except (ValueError, TypeError, IndexError, KeyError):
        return None  # not a table after all: the page shows it as text
    if not len(table):
        return None  # a header alone is no table: show the text
    rows = [[str(v) for v in row] for row in table[:TABLE_PREVIEW_ROWS]]
    return TablePreview(list(table.colnames), rows, partial or len(table) > TABLE_PREVIEW_ROWS)
