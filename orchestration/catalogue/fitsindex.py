"""A fast index of the HDUs of a FITS file: header, where the data starts, how long it is.

astropy re-reads and converts every header before the one asked for, and ``fileinfo`` costs tens of
milliseconds per call on a 37-HDU file; a worker that reads ccd35 would pay that for nothing. This
reads each header once (2880-byte blocks up to END), computes the data size from the header keywords
and seeks past the data, so opening HDU n costs one header parse. Cached per (path, size, mtime).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from astropy.io import fits

from orchestration.catalogue.errors import CatalogueInputError

BLOCK = 2880
MAX_HEADER_BLOCKS = 2000  # ~72000 cards: more means this is no header
MAX_NAXIS = 999  # the FITS standard's limit; a larger NAXIS would make readers loop for nothing


@dataclass(frozen=True)
class HduEntry:
    index: int
    header_offset: int
    data_offset: int
    data_size: int  # bytes, without the padding to 2880
    header: fits.Header

    @property
    def end(self) -> int:
        return self.data_offset + self.data_size + (-self.data_size % BLOCK)


def _data_size(header: fits.Header) -> int:
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    if not 0 < naxis <= MAX_NAXIS:
        raise ValueError(f"NAXIS {naxis} is not between 0 and {MAX_NAXIS}")
    dims = [int(header.get(f"NAXIS{i}", 0)) for i in range(1, naxis + 1)]
    if header.get("GROUPS") is True and dims[0] == 0:
        dims = dims[1:]  # random groups: NAXIS1 = 0 is no axis of the data
    bitpix = abs(int(header.get("BITPIX", 8)))
    gcount, pcount = int(header.get("GCOUNT", 1)), int(header.get("PCOUNT", 0))
    if any(d < 0 for d in dims) or gcount < 0 or pcount < 0:
        raise ValueError("negative NAXISn, PCOUNT or GCOUNT")
    return bitpix // 8 * gcount * (pcount + math.prod(dims))


def _has_end(block: bytes) -> bool:
    return any(block[i : i + 8] == b"END     " for i in range(0, BLOCK, 80))


def _read_header(fh: BinaryIO) -> tuple[bytes, str]:
    """One header's blocks from where ``fh`` stands to the block with END, and what is wrong if
    anything: "cut off" (the file ends first) or "no END" (more than MAX_HEADER_BLOCKS blocks)."""
    blocks: list[bytes] = []
    while True:
        block = fh.read(BLOCK)
        if len(block) < BLOCK:
            return b"".join(blocks), "cut off"
        blocks.append(block)
        if _has_end(block):
            return b"".join(blocks), ""
        if len(blocks) > MAX_HEADER_BLOCKS:
            return b"".join(blocks), "no END"


@functools.lru_cache(maxsize=16)
def _scan(path: str, size: int, mtime_ns: int) -> tuple[HduEntry, ...]:
    name = Path(path).name
    entries: list[HduEntry] = []
    offset = 0
    with open(path, "rb") as fh:
        while offset < size:
            fh.seek(offset)
            raw, problem = _read_header(fh)
            if problem == "cut off":
                raise CatalogueInputError(f"{name}: truncated file (header of HDU {len(entries)} is cut off)")
            if problem:
                raise CatalogueInputError(
                    f"{name}: corrupted FITS file (HDU {len(entries)} header has no END)"
                )
            if entries and not raw.startswith(b"XTENSION="):
                if not raw.strip(b"\x00 "):
                    break  # zero padding at the end of the file
                raise CatalogueInputError(
                    f"{name}: corrupted FITS file (HDU {len(entries)} has a broken header)"
                )
            try:
                header = fits.Header.fromstring(raw.decode("ascii"))
                data_size = _data_size(header)
            except (UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
                raise CatalogueInputError(
                    f"{name}: corrupted FITS file (HDU {len(entries)} header is unreadable: {exc})"
                ) from exc
            data_offset = offset + len(raw)
            entry = HduEntry(len(entries), offset, data_offset, data_size, header)
            if data_offset + data_size > size:
                raise CatalogueInputError(
                    f"{name}: truncated file (HDU {entry.index} needs {data_offset + data_size} bytes,"
                    f" the file has {size})"
                )
            entries.append(entry)
            offset = entry.end
    return tuple(entries)


def scan_hdus(path: str | Path) -> tuple[HduEntry, ...]:
    """All HDUs of a FITS file; raises CatalogueInputError for truncated or broken files."""
    st = os.stat(path)
    return _scan(str(path), st.st_size, st.st_mtime_ns)


def fits_extent(fh: BinaryIO) -> int | None:
    """Where the last whole HDU of a plain FITS file ends: the bytes a reader needs, read header by
    header and seeking past each HDU's data. None when ``fh`` does not start as FITS (gzip, or not FITS
    at all: the caller's reader says what it is). ``fh`` is rewound.

    What follows the last HDU (zero padding, junk, another file appended) is looked at one block only:
    astropy reads it as a header until an END card that never comes, twice over (a 500 MB file of
    junk after a small image cost 1 GB of reads). A header cut off or unreadable ends the extent
    before it; an HDU whose data runs past the end of the file is left to the reader to report."""
    size = fh.seek(0, os.SEEK_END)
    offset = 0
    try:
        while offset < size:
            fh.seek(offset)
            signature = fh.read(9)
            if not signature.startswith(b"XTENSION=" if offset else b"SIMPLE  ="):
                if not offset and not signature.startswith(b"SIMPLE"):
                    return None
                break  # not an HDU: what is left is not read
            fh.seek(offset)
            raw, problem = _read_header(fh)
            if problem:
                break  # a header cut off, or no header at all
            try:
                data_size = _data_size(fits.Header.fromstring(raw.decode("ascii")))
            except (UnicodeDecodeError, ValueError, TypeError, KeyError):
                break
            end = offset + len(raw) + data_size + (-data_size % BLOCK)
            if end > size:
                return size  # truncated data: the reader says so
            offset = end
    finally:
        fh.seek(0)
    return offset


_TABLE_KEYS = ("TTYPE", "TFORM", "TUNIT", "TNULL", "TSCAL", "TZERO", "TDISP", "TDIM", "ZNAME", "ZVAL")


def image_header(header: fits.Header) -> fits.Header:
    """The image header of a tile-compressed HDU (what funpack would write), from its table header."""
    if not header.get("ZIMAGE"):
        return header.copy()
    out = fits.Header()
    out["XTENSION"] = "IMAGE"
    out["BITPIX"] = int(header["ZBITPIX"])
    naxis = int(header.get("ZNAXIS", 0))
    out["NAXIS"] = naxis
    for i in range(1, naxis + 1):
        out[f"NAXIS{i}"] = int(header[f"ZNAXIS{i}"])
    out["PCOUNT"], out["GCOUNT"] = 0, 1
    skip = {
        "XTENSION",
        "BITPIX",
        "NAXIS",
        "PCOUNT",
        "GCOUNT",
        "TFIELDS",
        "THEAP",
        "ZIMAGE",
        "ZCMPTYPE",
        "ZBITPIX",
        "ZNAXIS",
        "ZQUANTIZ",
        "ZDITHER0",
        "ZSIMPLE",
        "ZEXTEND",
        "ZPCOUNT",
        "ZGCOUNT",
        "ZTENSION",
        "ZBLOCKED",
        "ZHECKSUM",
        "ZDATASUM",
        "CHECKSUM",
        "DATASUM",
    }
    for card in header.cards:
        key = card.keyword
        if key in skip or key in ("", "END") and not card.value:
            continue
        if key.startswith(("NAXIS", "ZNAXIS", "ZTILE")) or (
            key.startswith(_TABLE_KEYS) and key[-1:].isdigit()
        ):
            continue
        out.append(card)
    return out
