from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orchestration.catalogue import render
from orchestration.catalogue.extract import extract_file, extract_hdu
from orchestration.catalogue.fitsread import read_ccd
from orchestration.catalogue.render import (
    downsample,
    magnitude_errors,
    magnitude_histogram,
    mosaic_layout,
    render_ccd,
    render_ccd_file,
    render_mosaic,
)
from orchestration.catalogue.validate import CatalogueInputError

from .conftest import SMALL_SHAPE


def test_it_draws_the_ccd_with_source_ellipses_where_the_sources_are(small_image) -> None:
    path, _ = small_image
    rows = extract_hdu(path, 1)
    plain = render_ccd_file(path, 1, rows, max_size=256, draw=False)
    drawn = render_ccd_file(path, 1, rows, max_size=256)
    img = np.asarray(Image.open(io.BytesIO(drawn.png)).convert("RGB")).astype(int)
    ref = np.asarray(Image.open(io.BytesIO(plain.png)).convert("RGB")).astype(int)
    assert (drawn.width, drawn.height) == (img.shape[1], img.shape[0])
    assert drawn.height <= 256 and drawn.scale == pytest.approx(1 / 3)
    assert len(drawn.sources) == len(rows)
    green = (img[..., 1] - img[..., 0] > 100) & (ref[..., 1] == ref[..., 0])
    assert green.sum() > len(rows)  # ellipse outlines were drawn
    # the brightest source sits where its ellipse is: image y is flipped, origin top left
    best = rows[np.argmin(rows["MAG_AUTO"])]
    src = next(s for s in drawn.sources if s["number"] == best["NUMBER"])
    assert src["x"] == pytest.approx((best["X_IMAGE"] - 0.5) / 3, abs=0.01)
    assert src["y"] == pytest.approx(drawn.height - (best["Y_IMAGE"] - 0.5) / 3, abs=0.01)
    px, py = int(src["x"]), int(src["y"])
    assert ref[py, px, 0] >= np.percentile(ref[..., 0], 99)  # a bright pixel under the brightest source


def test_it_accepts_stretch_and_contrast_and_refuses_unknown_ones() -> None:
    data = np.random.default_rng(0).normal(100, 5, (64, 64)).astype(np.float32)
    pngs = {s: render_ccd(data, stretch=s, contrast=0.5).png for s in ("linear", "sqrt", "log", "asinh")}
    assert len(set(pngs.values())) == 4
    with pytest.raises(CatalogueInputError, match="stretch"):
        render_ccd(data, stretch="rainbow")
    with pytest.raises(CatalogueInputError, match="contrast"):
        render_ccd(data, contrast=0)


def test_it_renders_a_focal_plane_mosaic_with_counts(small_image, tmp_path: Path) -> None:
    path, _ = small_image
    cat = extract_file(path)
    counts = {name: n for _, name, _, n in cat.ccds}
    png = render_mosaic(path, counts, max_size=400)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    # three CCDs side by side (DETSEC of the synthetic headers), with the gaps between them
    assert img.width > 2.5 * img.height * SMALL_SHAPE[1] / SMALL_SHAPE[0]
    labels = np.asarray(img.convert("RGB")).astype(int)
    assert ((labels[..., 0] > 200) & (labels[..., 2] < 60)).any()  # yellow labels are there


def test_the_mosaic_from_cached_previews_matches_the_decoded_one_without_decoding_again(
    small_image, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The catalogue's CCD tasks cache a downsampled copy of each CCD: the mosaic is drawn from those
    # instead of decoding the whole exposure a second time.
    path, _ = small_image
    cached = {i: downsample(read_ccd(path, i)[0], 3) for i in (1, 2, 3)}
    decoded = np.asarray(Image.open(io.BytesIO(render_mosaic(path, max_size=300))).convert("L"), float)
    reads: list[int] = []
    real_read = render.read_ccd
    monkeypatch.setattr(render, "read_ccd", lambda p, i, **kw: reads.append(i) or real_read(p, i, **kw))
    png = render_mosaic(path, max_size=300, preview=lambda c: cached.get(c.index) if c.index != 3 else None)
    assert reads == [3]  # only the CCD without a cached copy is decoded
    from_cache = np.asarray(Image.open(io.BytesIO(png)).convert("L"), float)
    assert from_cache.shape == decoded.shape
    # the same picture: a block mean instead of every n-th row, so pixel noise differs a little
    assert np.median(np.abs(from_cache - decoded)) <= 12
    assert np.corrcoef(from_cache.ravel(), decoded.ravel())[0, 1] > 0.9
    # a preview coarser than its mosaic tile would blur it: that CCD is decoded instead
    reads.clear()
    coarse = {1: downsample(read_ccd(path, 1)[0], 64)}
    render_mosaic(path, max_size=300, preview=lambda c: coarse.get(c.index, cached.get(c.index)))
    assert reads == [1]
    boxes = mosaic_layout(path, [c for c in render.validate_image(path)])
    assert [b["hdu"] for b in boxes] == [1, 2, 3] and all(0 <= b["left"] < 100 for b in boxes)


def test_downsampling_by_one_gives_a_copy_that_later_work_on_the_image_leaves_alone() -> None:
    # the CCD task keeps the preview of a small CCD, then extraction subtracts its background in place
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    small = downsample(data, 1)
    data -= 100
    assert small.dtype == np.float32 and small[0, 1] == 1.0 and not np.shares_memory(small, data)


def test_the_previews_keep_to_the_limits_they_are_given(small_image) -> None:
    """The portal passes its CATALOGUE_MAX_* settings: a preview refuses what the extraction would."""
    path, _ = small_image
    pixels = SMALL_SHAPE[0] * SMALL_SHAPE[1]
    assert render_mosaic(path, max_size=200, max_ccd_pixels=pixels)  # exactly at the limit: drawn
    with pytest.raises(CatalogueInputError, match="pixels"):
        render_mosaic(path, max_size=200, max_ccd_pixels=pixels - 1)
    with pytest.raises(CatalogueInputError):
        render_mosaic(path, max_size=200, max_decompressed_bytes=pixels)
    with pytest.raises(CatalogueInputError, match="pixels"):
        render_ccd_file(path, 1, max_size=200, max_pixels=pixels - 1)


def test_it_gives_histogram_and_error_plot_data(small_image) -> None:
    path, _ = small_image
    rows = extract_file(path).rows
    hist = magnitude_histogram(rows, bin_width=0.5)
    assert sum(hist["counts"]) == int((rows["MAG_AUTO"] < 90).sum())
    assert len(hist["edges"]) == len(hist["counts"]) + 1
    errs = magnitude_errors(rows, max_points=50)
    assert len(errs["mag"]) == 50 == len(errs["magerr"])
    assert magnitude_histogram(rows[:0]) == {"edges": [], "counts": []}
