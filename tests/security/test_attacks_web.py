"""Attacks on the web pages and readers from the outside (issue 12, items 5 and 7): each must do no harm."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits


def compressed(shape: tuple[int, int], tile: tuple[int, int]) -> bytes:
    hdu = fits.CompImageHDU(np.zeros(shape, dtype=np.int32), compression_type="GZIP_1", tile_shape=tile)
    out = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(out)
    return out.getvalue()


def test_a_tile_compressed_bomb_is_not_decompressed_for_its_thumbnail(alice_client: Any, home: Path) -> None:
    """One 4000 x 4000 tile of zeros is ~64 KB on disk and 64 MB once decompressed: the thumbnail
    decompressed the whole tile to read one row (a few such requests exhaust a web worker's memory)."""
    (home / "bomb.fz").write_bytes(compressed((4000, 4000), (4000, 4000)))
    assert (home / "bomb.fz").stat().st_size < 1024**2
    (home / "small.fz").write_bytes(compressed((64, 64), (1, 64)))
    assert alice_client.get("/storage/thumbnail/small.fz").status_code == 200  # imports done before tracing
    tracemalloc.start()
    try:
        answer = alice_client.get("/storage/thumbnail/bomb.fz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer.status_code == 404
    assert peak < 32 * 1024**2
    page = alice_client.get("/storage/file/bomb.fz")
    assert page.status_code == 200


def test_an_ordinary_compressed_image_still_gets_its_thumbnail(alice_client: Any, home: Path) -> None:
    (home / "rows.fz").write_bytes(compressed((2000, 2000), (1, 2000)))  # fpack's default: row tiles
    (home / "blocks.fz").write_bytes(compressed((2000, 2000), (500, 500)))
    for name in ("rows.fz", "blocks.fz"):
        answer = alice_client.get(f"/storage/thumbnail/{name}")
        assert answer.status_code == 200
        assert answer["Content-Type"] == "image/png"


HOSTILE = [
    "\x00",
    "a\rb",
    "x.out\ninclude command : /usr/bin/touch /tmp/attack-proof",
    "a \\\u00a0",
    "$ENV(HOME)",
    "$(DOLLAR)(DOLLAR)",
    "\ufeff\u202e",
    "\uff04(Process)",
    "'\"><img src=x>",
    "../../etc/passwd",
    "x" * 20000,
    "9" * 40,
]
FORM_FIELDS = ["name", "script_name", "items", "output", "error", "log", "output_files", "request_memory_mb"]


def test_hostile_values_in_every_batch_form_field_get_a_page_never_a_500(alice_client: Any) -> None:
    from portal.forms.batch import SEED_SCRIPT

    base = {
        "name": "do_catalogue",
        "script_name": "do_catalogue.bash",
        "script": SEED_SCRIPT,
        "items": "a\nb\n",
        "request_cpus": 1,
        "request_memory_mb": 2048,
        "request_disk_mb": 4096,
        "executor": "local",
    }
    for field in FORM_FIELDS:
        for value in HOSTILE:
            for url in ("/batch/preview/", "/batch/new/"):
                answer = alice_client.post(url, {**base, field: value})
                assert answer.status_code in (200, 302, 400), (url, field, value[:20])
                assert b"<img src=x>" not in answer.content
    assert not Path("/tmp/attack-proof").exists()
