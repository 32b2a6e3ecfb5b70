"""Catalogue previews: CCD image with its source overlay, focal-plane mosaic, the pages that serve them.

Run: .venv/bin/python bench/catalogue_web.py [--ccds 36] [--quick]
Targets (issue 6): a CCD preview with its overlay < 0.5 s; the mosaic < 3 s (full 36-CCD MegaCam image).

Made in this run: a SYNTHETIC full-size MegaCam-like image (36 CCDs of 2048 x 4612, Rice compressed;
--quick: a quarter of each side). One CCD is extracted (not timed) so its overlay has real sources.
Timed, each against a reference measured in the same process:
- task side, per CCD: what ``extract_catalogue_ccd`` adds to the extraction to cache a preview
  (read, downsample, PNG, sources JSON) vs the engine's one-shot ``render_ccd_file`` with ellipses
  drawn into the PNG;
- task side, mosaic: ``render_mosaic`` (decodes every n-th row only) vs reading every CCD in full with
  astropy and block-averaging it (the straightforward way);
- served through a real HTTP server on loopback: the CCD PNG + sources JSON (what the page fetches),
  a re-stretched PNG, the mosaic PNG, a sorted table page, the whole preview page; reference: the
  dashboard page (a plain database-backed page).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import measure, serve, session_for, setup_django  # noqa: E402


def timed(func: Any, repeat: int = 3) -> tuple[float, Any]:
    """Best of ``repeat`` wall times in ms, and the last result."""
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, (time.perf_counter() - start) * 1000)
    return best, result


def line(name: str, ms: float, ref_ms: float, target_ms: float | None) -> None:
    verdict = f"  target < {target_ms:.0f} ms: {'OK' if ms < target_ms else 'MISSED'}" if target_ms else ""
    print(f"{name:<44} {ms:8.1f} ms   reference {ref_ms:8.1f} ms   x{ms / ref_ms:5.2f}{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ccds", type=int, default=36)
    parser.add_argument("--quick", action="store_true", help="a quarter of MegaCam's size on each side")
    args = parser.parse_args()
    setup_django()

    import numpy as np
    from astropy.io import fits
    from django.conf import settings
    from django.contrib.auth.models import User

    from orchestration.catalogue.extract import ExtractionParams
    from orchestration.catalogue.render import (
        ccd_png,
        downsample,
        mosaic_layout,
        render_ccd_file,
        render_mosaic,
    )
    from orchestration.catalogue.synth import FULL_SHAPE, make_megacam_image
    from orchestration.catalogue.validate import validate_image
    from orchestration.tasks import catalogues as tasks
    from portal.models import Catalogue, CatalogueCcd
    from portal.models.catalogues import input_path, preview_path, rows_path

    shape = (FULL_SHAPE[0] // 4, FULL_SHAPE[1] // 4) if args.quick else FULL_SHAPE
    tmp = Path(tempfile.mkdtemp(prefix="bench-cat-"))
    settings.CATALOGUE_WORK_DIR = tmp / "work"
    image = tmp / "1056215p.fits.fz"
    start = time.perf_counter()
    make_megacam_image(image, seed=1, n_ccds=args.ccds, shape=shape, obs_id="1056215p")
    print(
        f"SYNTHETIC image: {args.ccds} CCDs of {shape[1]} x {shape[0]} px, {image.stat().st_size / 1e6:.0f} MB,"
        f" made in {time.perf_counter() - start:.1f} s"
    )

    user = User.objects.create_user("bench")
    params = ExtractionParams(MAG_ZEROPOINT=30.0)
    cat = Catalogue.objects.create(
        owner=user,
        name="1056215p",
        source="archive",
        source_ref="1056215p",
        params=params.to_dict(),
        output_dir="catalogues",
        stem="1056215p",
    )
    cat.work_dir.mkdir(parents=True)
    input_path(cat).symlink_to(image)
    ccds = validate_image(image)
    tasks._record_ccds(cat, ccds)
    row = cat.ccd_rows.get(hdu_index=ccds[0].index)
    start = time.perf_counter()
    n = tasks._extract_one(cat, row)  # extraction + preview cache, as the task does
    print(f"one CCD extracted with its preview cache in {time.perf_counter() - start:.2f} s: {n} sources")
    rows = np.load(rows_path(cat, row.hdu_index))
    print()

    # -- task side --------------------------------------------------------------------------------
    def cache_preview() -> None:
        from orchestration.catalogue.fitsread import read_ccd

        data, _ = read_ccd(image, row.hdu_index)
        small = downsample(data, max(1, math.ceil(max(data.shape) / tasks.PREVIEW_MAX_SIZE)))
        ccd_png(small)
        json.dumps(tasks.sources_json(rows, (row.ny, row.nx)))

    ours, _ = timed(cache_preview)
    ref, _ = timed(lambda: render_ccd_file(image, row.hdu_index, rows, max_size=1024))
    line("CCD preview + overlay, from the file", ours, ref, 500)

    counts = {c.name: 100 for c in ccds}
    ours, png = timed(lambda: render_mosaic(image, counts, max_size=1200), repeat=2)

    def naive_mosaic() -> None:
        with fits.open(image) as hdul:
            for h in hdul[1:]:
                downsample(np.asarray(h.data, dtype=np.float32), 16)

    ref, _ = timed(naive_mosaic, repeat=1)
    line("mosaic, from the file", ours, ref, 3000)

    # -- served ------------------------------------------------------------------------------------
    (cat.work_dir / "mosaic.png").write_bytes(png)
    (cat.work_dir / "mosaic.json").write_text(json.dumps(mosaic_layout(image, ccds)))
    np.save(rows_path(cat), rows)
    CatalogueCcd.objects.filter(pk=row.pk).update(state="done", n_sources=n)
    Catalogue.objects.filter(pk=cat.pk).update(state="done", n_sources=n)
    base, stop = serve()
    session = session_for(user)
    reference = measure(session, f"{base}/", n=30)
    print()
    print(f"{'served (p95 over 30 requests)':<44} {'':>8}      dashboard page {reference['p95']:6.1f} ms")
    urls = {
        "CCD PNG + sources JSON (the viewer)": [
            f"{base}/catalogues/{cat.pk}/ccd/{row.hdu_index}.png",
            f"{base}/catalogues/{cat.pk}/ccd/{row.hdu_index}/sources.json",
        ],
        "CCD PNG re-stretched (asinh, 0.4)": [
            f"{base}/catalogues/{cat.pk}/ccd/{row.hdu_index}.png?stretch=asinh&contrast=0.4"
        ],
        "mosaic PNG": [f"{base}/catalogues/{cat.pk}/mosaic.png"],
        "table page sorted by MAG_AUTO": [f"{base}/catalogues/{cat.pk}/rows/?sort=-MAG_AUTO&page=2"],
        "preview page": [f"{base}/catalogues/{cat.pk}/"],
    }
    targets = {
        "CCD PNG + sources JSON (the viewer)": 500,
        "CCD PNG re-stretched (asinh, 0.4)": 500,
        "mosaic PNG": 3000,
    }
    for name, group in urls.items():
        p95 = sum(measure(session, url, n=30)["p95"] for url in group)
        line(name, p95, reference["p95"], targets.get(name))
    stop()
    print(
        f"\nwork files: {sum(f.stat().st_size for f in cat.work_dir.iterdir() if f.is_file()) / 1e6:.1f} MB"
        f" per CCD cached: {statistics.mean([preview_path(cat, row.hdu_index, k).stat().st_size for k in ('png', 'small.npy', 'json')]) / 1e3:.0f} kB mean"
    )


if __name__ == "__main__":
    main()
