"""Checks on an input image before any work: FITS at all, complete, has image data, not a compression bomb.

Only headers are read; sizes come from the header keywords, never from decompressing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits

from orchestration.catalogue.errors import CatalogueInputError
from orchestration.catalogue.fitsindex import MAX_NAXIS, scan_hdus

__all__ = ["CatalogueInputError", "CcdInfo", "validate_image"]

DEFAULT_MAX_DECOMPRESSED_BYTES = 2 * 1024**3  # a full MegaCam exposure is 0.68 GB as 16-bit pixels
DEFAULT_MAX_CCD_PIXELS = 40_000_000  # a MegaCam CCD (2112 x 4644) four times; ~400 MB of float32 work
SUPPORTED_COMPRESSION = {"RICE_1", "RICE_ONE", "GZIP_1", "GZIP_2", "PLIO_1", "HCOMPRESS_1", "NOCOMPRESS"}


@dataclass(frozen=True)
class CcdInfo:
    """One image HDU of an input file."""

    index: int  # HDU index in the file
    name: str  # EXTNAME, or ccdNN / PRIMARY
    shape: tuple[int, int]  # (ny, nx)
    bitpix: int
    compressed: bool


def _image_geometry(header: fits.Header, compressed: bool) -> tuple[int, list[int]]:
    prefix = "Z" if compressed else ""
    bitpix = int(header.get(f"{prefix}BITPIX", 0))
    naxis = int(header.get(f"{prefix}NAXIS", 0))
    if not 0 <= naxis <= MAX_NAXIS:
        raise ValueError(f"{prefix}NAXIS {naxis} is not between 0 and {MAX_NAXIS}")
    dims = [int(header.get(f"{prefix}NAXIS{i}", 0)) for i in range(1, naxis + 1)]
    return bitpix, dims


def _check_magic(path: Path) -> None:
    if not path.is_file():
        raise CatalogueInputError(f"{path.name}: file not found")
    with path.open("rb") as fh:
        head = fh.read(2880)
    if len(head) == 0:
        raise CatalogueInputError(f"{path.name}: the file is empty")
    if head.startswith(b"\x1f\x8b"):
        raise CatalogueInputError(
            f"{path.name}: a gzip-compressed file, which is not read (its size once decompressed is"
            " unknown until the end); give the .fits file, or compress its images with fpack"
        )
    if not head.startswith(b"SIMPLE  ="):
        raise CatalogueInputError(f"{path.name}: not a FITS file (it does not start with a FITS header)")
    if len(head) < 2880:
        raise CatalogueInputError(f"{path.name}: truncated FITS file (shorter than one header block)")


def validate_image(
    path: str | Path,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    max_ccd_pixels: int = DEFAULT_MAX_CCD_PIXELS,
) -> list[CcdInfo]:
    """Return the image HDUs of a FITS/MEF file, or raise CatalogueInputError saying what is wrong."""
    path = Path(path)
    _check_magic(path)
    ccds: list[CcdInfo] = []
    total = 0
    for entry in scan_hdus(path):  # raises for truncated files and broken headers
        i, header = entry.index, entry.header
        xtension = str(header.get("XTENSION", "")).strip().upper()
        compressed = xtension == "BINTABLE" and bool(header.get("ZIMAGE", False))
        if not (compressed or i == 0 or xtension == "IMAGE"):
            continue
        if compressed:
            ctype = str(header.get("ZCMPTYPE", "")).strip()
            if ctype not in SUPPORTED_COMPRESSION:
                raise CatalogueInputError(f"{path.name}: HDU {i} uses unknown compression {ctype!r}")
        try:
            bitpix, dims = _image_geometry(header, compressed)
        except (ValueError, TypeError) as exc:
            raise CatalogueInputError(f"{path.name}: corrupted FITS file (HDU {i}: {exc})") from exc
        if len(dims) < 2 or min(dims) <= 0:
            continue
        if len(dims) > 2 and math.prod(dims[2:]) != 1:
            raise CatalogueInputError(f"{path.name}: HDU {i} is a {len(dims)}-d cube, not an image")
        if bitpix not in (8, 16, 32, 64, -32, -64):
            raise CatalogueInputError(f"{path.name}: HDU {i} has an invalid BITPIX {bitpix}")
        pixels = dims[0] * dims[1]
        if pixels > max_ccd_pixels:
            raise CatalogueInputError(
                f"{path.name}: HDU {i} has {dims[0]} x {dims[1]} pixels, more than the limit of"
                f" {max_ccd_pixels} pixels per image"
            )
        total += pixels * abs(bitpix) // 8
        if total > max_decompressed_bytes:
            raise CatalogueInputError(
                f"{path.name}: the decompressed images would take more than"
                f" {max_decompressed_bytes / 1e6:.0f} MB; refusing to process it"
            )
        name = str(header.get("EXTNAME", "PRIMARY" if i == 0 else f"HDU{i}")).strip()
        ccds.append(CcdInfo(i, name, (dims[1], dims[0]), bitpix, compressed))
    if not ccds:
        raise CatalogueInputError(f"{path.name}: the file has no image data")
    return ccds
