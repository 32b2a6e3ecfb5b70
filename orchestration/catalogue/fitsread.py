"""Read one image HDU as float32, fast for Rice tile-compressed integer images (fpack's default).

astropy decompresses tile by tile with a lot of Python per tile; MegaCam files have one tile per row
(4612 per CCD), so that overhead is as large as the decompression itself. The fast path reads the HDU's
bytes once and decodes every tile straight into the float32 image in one call to ``_rice.so`` (built
from ``_rice.c`` by the Makefile), faster than CFITSIO's own decoder and with no conversion pass
afterwards. Without that library it calls astropy's own C Rice decoder tile by tile in a tight
loop. Anything unusual (quantised floats, other algorithms, extra columns, tiles not spanning full
rows) goes through astropy.
"""

from __future__ import annotations

import ctypes
import logging
import math
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from astropy.io import fits

try:  # astropy's compiled codec; private, so keep the public path as the fallback
    from astropy.io.fits.hdu.compressed._compression import CfitsioException, decompress_rice_1_c
except ImportError:  # pragma: no cover - depends on the astropy build
    decompress_rice_1_c = None
    CfitsioException = RuntimeError  # type: ignore[misc,assignment]

from orchestration.catalogue.errors import CatalogueInputError
from orchestration.catalogue.fitsindex import MAX_NAXIS, image_header, scan_hdus
from orchestration.catalogue.validate import DEFAULT_MAX_CCD_PIXELS

_WIDEST_PIXEL = 8  # bytes: BITPIX -64
_GZIP_CHUNK = 1024**2

log = logging.getLogger(__name__)
RICE_LIBRARY = Path(__file__).with_name("_rice.so")


def _load_rice() -> Callable[..., int] | None:
    """The compiled decoder, or None (not built: the astropy codec does the work, more slowly)."""
    try:
        lib = ctypes.CDLL(str(RICE_LIBRARY))
    except OSError:
        log.info("%s is not built (make builds it); reading Rice images with astropy's codec", RICE_LIBRARY)
        return None
    fn = lib.rice_tiles_to_float
    i64 = ctypes.c_int64
    fn.restype = i64
    # heap, heap length, descriptors, rows, first, step, tiles, tile pixels, image pixels, bytepix,
    # blocksize, bscale, bzero, output
    fn.argtypes = [ctypes.c_char_p, i64, ctypes.c_void_p, i64, i64, i64, i64, i64, i64]
    fn.argtypes += [ctypes.c_int, ctypes.c_int, ctypes.c_double, ctypes.c_double, ctypes.c_void_p]
    return fn


_rice_to_float = _load_rice()


def _zvals(header: fits.Header) -> dict[str, int]:
    return {
        str(header[f"ZNAME{i}"]).upper(): header.get(f"ZVAL{i}")
        for i in range(1, 20)
        if f"ZNAME{i}" in header
    }


def _corrupted(path: Path, index: int, why: str) -> CatalogueInputError:
    return CatalogueInputError(f"{path.name}: HDU {index} is corrupted and cannot be read ({why})")


def _geometry(path: Path, index: int, header: fits.Header) -> tuple[list[int], list[int]]:
    """(image axes, tile axes clipped to the image) from the header, checked, before anything is read."""
    compressed = bool(header.get("ZIMAGE")) and str(header.get("XTENSION", "")).strip() == "BINTABLE"
    prefix = "Z" if compressed else ""
    try:
        naxis = int(header.get(f"{prefix}NAXIS", 0))
        if not 0 <= naxis <= MAX_NAXIS:
            raise ValueError(f"{prefix}NAXIS {naxis} is not between 0 and {MAX_NAXIS}")
        dims = [int(header.get(f"{prefix}NAXIS{i}", 0)) for i in range(1, naxis + 1)]
        tiles = [int(header.get(f"ZTILE{i}", d if i == 1 else 1)) for i, d in enumerate(dims, 1)]
    except (ValueError, TypeError) as exc:
        raise _corrupted(path, index, str(exc)) from exc
    if any(d < 0 for d in dims) or (compressed and any(t <= 0 for t in tiles)):
        raise _corrupted(path, index, "negative or zero axis or tile sizes")
    return dims, [min(t, d) for t, d in zip(tiles, dims, strict=True)] if compressed else dims


def _check_pixels(path: Path, index: int, dims: list[int], max_pixels: int) -> None:
    if math.prod(dims) > max_pixels:
        raise CatalogueInputError(
            f"{path.name}: HDU {index} has {' x '.join(map(str, dims))} pixels, more than the limit of"
            f" {max_pixels} pixels per image"
        )


def _gunzip_size(raw: bytes, limit: int) -> int:
    """How many bytes the gzip members in ``raw`` decompress to, stopping as soon as it passes limit."""
    total = 0
    while raw[:2] == b"\x1f\x8b":
        stream = zlib.decompressobj(wbits=31)
        while not stream.eof:
            chunk = stream.decompress(raw, _GZIP_CHUNK)
            raw = stream.unconsumed_tail
            total += len(chunk)
            if total > limit:
                return total
            if not chunk and not raw:
                return total  # cut off: the decoder says so itself
        raw = stream.unused_data
    return total


def check_gzip_tiles(source: str | Path | BinaryIO, index: int, name: str, max_pixels: int) -> None:
    """Refuse gzip-compressed tiles that decompress to more than their tile holds.

    astropy inflates a GZIP_1/GZIP_2 tile (and a float tile stored in GZIP_COMPRESSED_DATA) with
    ``gzip.decompress``, which has no bound: a tile of 1 MB of zeros is 1 GB in memory. This inflates
    each tile in 1 MB steps, keeping nothing, and stops past the tile's own size.
    """
    with fits.open(source, memmap=True, disable_image_compression=True, lazy_load_hdus=True) as hdul:
        check_gzip_table(hdul[index], index, name, max_pixels)


def check_gzip_table(table: fits.BinTableHDU, index: int, name: str, max_pixels: int) -> None:
    """check_gzip_tiles on HDU ``index``, opened as a table (``disable_image_compression``)."""
    path = Path(name)
    header = table.header
    if not (str(header.get("XTENSION", "")).strip() == "BINTABLE" and header.get("ZIMAGE")):
        return
    dims, tiles = _geometry(path, index, header)
    _check_pixels(path, index, dims, max_pixels)
    fields = min(max(int(header.get("TFIELDS", 0)), 0), 999)
    names = [str(header.get(f"TTYPE{i}", "")).strip().upper() for i in range(1, fields + 1)]
    columns = ["GZIP_COMPRESSED_DATA"] if "GZIP_COMPRESSED_DATA" in names else []
    if str(header.get("ZCMPTYPE", "")).strip().upper().startswith("GZIP"):
        columns.append("COMPRESSED_DATA")
    if not columns or not dims:
        return
    limit = math.prod(tiles) * _WIDEST_PIXEL
    needed = math.prod(-(-d // t) for d, t in zip(dims, tiles, strict=True))
    for column in columns:
        if column not in names:
            raise _corrupted(path, index, f"no {column} column")
        cells = table.data.field(column)
        for row in range(min(len(cells), needed)):
            if _gunzip_size(np.asarray(cells[row]).tobytes(), limit) > limit:
                raise _corrupted(
                    path, index, f"tile {row + 1} inflates past the {limit} bytes its pixels take"
                )


def _fast_rice(path: Path, index: int, row_step: int = 1) -> tuple[np.ndarray, fits.Header] | None:
    """Decode a RICE_1 integer image with full-row tiles; None when the HDU does not qualify.

    With ``row_step`` > 1 and one-row tiles, only every row_step-th row is decoded (for thumbnails).
    """
    if _rice_to_float is None and decompress_rice_1_c is None:
        return None
    entries = scan_hdus(path)
    if index >= len(entries):
        raise CatalogueInputError(f"{path.name}: there is no HDU {index}")
    entry = entries[index]
    raw_header = entry.header
    if not (str(raw_header.get("XTENSION", "")).strip() == "BINTABLE" and raw_header.get("ZIMAGE")):
        return None
    h = raw_header
    zbitpix = int(h.get("ZBITPIX", 0))
    ok = (
        str(h.get("ZCMPTYPE", "")).strip() in ("RICE_1", "RICE_ONE")
        and zbitpix in (8, 16, 32)
        and int(h.get("ZNAXIS", 0)) == 2
        and int(h.get("TFIELDS", 0)) == 1
        and str(h.get("TTYPE1", "")).strip() == "COMPRESSED_DATA"
        and int(h.get("ZTILE1", 0)) == int(h.get("ZNAXIS1", -1))
        and "ZBLANK" not in h
        and (row_step == 1 or int(h.get("ZTILE2", 1)) == 1)
    )
    if not ok:
        return None
    nx, ny = int(h["ZNAXIS1"]), int(h["ZNAXIS2"])
    zv = _zvals(h)
    blocksize, bytepix = int(zv.get("BLOCKSIZE", 32)), int(zv.get("BYTEPIX", zbitpix // 8))
    if bytepix != zbitpix // 8:
        return None
    rowlen, nrows = int(h["NAXIS1"]), int(h["NAXIS2"])
    wide = "Q" in str(h["TFORM1"]).upper()
    with open(path, "rb") as fh:
        fh.seek(entry.data_offset)
        buf = fh.read(entry.data_size)
    if len(buf) < entry.data_size:
        raise CatalogueInputError(f"{path.name}: HDU {index} is truncated")
    raw_desc = np.frombuffer(buf, dtype=">i8" if wide else ">i4", count=nrows * 2)
    theap = int(h.get("THEAP", rowlen * nrows))
    tile_pix = int(h["ZTILE1"]) * int(h.get("ZTILE2", 1))
    total = nx * ny
    if tile_pix <= 0 or nrows != -(-total // tile_pix):
        raise CatalogueInputError(
            f"{path.name}: HDU {index} is corrupted and cannot be read ({nrows} tiles for {total} pixels)"
        )
    if not 1 <= blocksize <= 1024:  # CFITSIO writes 32 (16 for bytes)
        raise CatalogueInputError(
            f"{path.name}: HDU {index} is corrupted and cannot be read (Rice block size {blocksize})"
        )
    if total > (8 * len(buf) // 3 + nrows) * blocksize:  # every block costs at least 3 bits
        raise CatalogueInputError(
            f"{path.name}: HDU {index} is corrupted and cannot be read ({total} pixels from {len(buf)} bytes)"
        )
    bscale, bzero = float(h.get("BSCALE", 1.0)), float(h.get("BZERO", 0.0))
    if _rice_to_float is not None:
        desc = raw_desc.astype(np.int64)
        desc[1::2] += theap  # offsets from the start of buf
        ntiles = len(range(0, nrows, row_step))
        data = np.empty((ny if row_step == 1 else ntiles, nx), np.float32)
        failed = _rice_to_float(
            buf, len(buf), desc.ctypes.data, nrows, 0, row_step, ntiles, tile_pix, total,
            bytepix, blocksize, bscale, bzero, data.ctypes.data,
        )  # fmt: skip
        if failed:
            why = f"tile {failed} does not decode" if failed > 0 else "invalid compression parameters"
            raise CatalogueInputError(f"{path.name}: HDU {index} is corrupted and cannot be read ({why})")
        return data, image_header(raw_header)
    tiles = raw_desc.reshape(nrows, 2).tolist()
    heap = buf[theap:]
    parts = []
    for k in range(0, len(tiles), row_step):
        n, off = tiles[k]
        npix = min(tile_pix, total - k * tile_pix)
        if off + n > len(heap):
            raise CatalogueInputError(
                f"{path.name}: HDU {index} is corrupted and cannot be read (tiles do not decode)"
            )
        parts.append(decompress_rice_1_c(heap[off : off + n], blocksize, bytepix, npix))
    pixels = b"".join(parts)
    ny = len(range(0, ny, row_step))
    if len(pixels) != (total if row_step == 1 else ny * nx) * bytepix:
        raise CatalogueInputError(
            f"{path.name}: HDU {index} is corrupted and cannot be read (tiles do not decode)"
        )
    ints = np.frombuffer(pixels, dtype={1: np.uint8, 2: np.int16, 4: np.int32}[bytepix]).reshape(ny, nx)
    data = np.empty((ny, nx), np.float32)
    if bscale != 1.0:
        np.multiply(ints, np.float32(bscale), out=data, dtype=np.float32)
        data += np.float32(bzero)
    else:
        np.add(ints, np.float32(bzero), out=data, dtype=np.float32)
    return data, image_header(raw_header)


def _astropy_read(path: Path, index: int, row_step: int = 1) -> tuple[np.ndarray, fits.Header]:
    with fits.open(path, memmap=True, do_not_scale_image_data=True, lazy_load_hdus=True) as hdul:
        hdu = hdul[index]
        header = hdu.header.copy()
        if int(header.get("NAXIS", 0)) < 2:
            raise CatalogueInputError(f"{path.name}: HDU {index} has no image data")
        raw = hdu.data if row_step == 1 else hdu.section[::row_step, :]
        if raw is None or raw.ndim < 2:
            raise CatalogueInputError(f"{path.name}: HDU {index} has no image data")
        data = np.array(raw.reshape(raw.shape[-2:]), dtype=np.float32)  # native byte order, contiguous
        del raw
    bscale, bzero = float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0))
    if bscale != 1.0:
        data *= np.float32(bscale)
    if bzero != 0.0:
        data += np.float32(bzero)
    return data, header


def read_ccd(
    path: str | Path, index: int, row_step: int = 1, max_pixels: int = DEFAULT_MAX_CCD_PIXELS
) -> tuple[np.ndarray, fits.Header]:
    """One image HDU as float32 (BZERO/BSCALE applied) and its image header; only that HDU is read.

    ``row_step`` > 1 returns every row_step-th row only (cheap thumbnails of compressed images).
    An image (or a compressed tile) larger than ``max_pixels`` is refused before anything is allocated.
    """
    path = Path(path)
    try:
        entries = scan_hdus(path)
        if not 0 <= index < len(entries):
            raise CatalogueInputError(f"{path.name}: there is no HDU {index}")
        dims, _ = _geometry(path, index, entries[index].header)
        _check_pixels(path, index, dims, max_pixels)
        check_gzip_tiles(path, index, path.name, max_pixels)
        fast = _fast_rice(path, index, row_step)
        return fast if fast is not None else _astropy_read(path, index, row_step)
    except CatalogueInputError:
        raise
    except (
        OSError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        RuntimeError,
        EOFError,
        MemoryError,
        OverflowError,
        ctypes.ArgumentError,
        zlib.error,
        CfitsioException,
    ) as exc:
        raise CatalogueInputError(
            f"{path.name}: HDU {index} is corrupted and cannot be read ({exc})"
        ) from exc
