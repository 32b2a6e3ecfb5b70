from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from orchestration.catalogue.extract import (
    CATALOGUE_DTYPE,
    ExtractionParams,
    extract_ccd,
    extract_file,
    extract_hdu,
    list_ccds,
    merge_ccds,
)
from orchestration.catalogue.fitsread import read_ccd
from orchestration.catalogue.quality import assess
from orchestration.catalogue.validate import CatalogueInputError

from .conftest import SMALL_SHAPE


@pytest.fixture(scope="module")
def catalogue(small_image: tuple[Path, Table]):
    path, _ = small_image
    return extract_file(path, ExtractionParams(), jobs=1)


def test_it_lists_the_ccds_without_reading_data(small_image: tuple[Path, Table]) -> None:
    path, _ = small_image
    assert list_ccds(path) == [
        (1, "ccd00", SMALL_SHAPE),
        (2, "ccd01", SMALL_SHAPE),
        (3, "ccd02", SMALL_SHAPE),
    ]


def test_it_finds_bright_stars_where_the_truth_puts_them(catalogue, small_image) -> None:
    _, truth = small_image
    q = assess(catalogue.rows, truth, bins=np.arange(-16.0, -4.0, 0.5), bright=(-13.0, -10.0))
    bright_bins = (q.bins[:-1] >= -13.0) & (q.bins[1:] <= -9.0)
    assert np.nanmin(q.completeness[bright_bins]) >= 0.9
    assert q.position_scatter < 0.1  # px
    assert q.mag_scatter < 0.05  # crowded (dense) test field
    assert 0.0 < q.mag_offset < 0.15  # a Kron aperture misses a few per cent of the flux
    assert -9.5 < q.mag50 < -6.5


def test_it_numbers_sources_from_one_on_each_ccd_like_sextractor(catalogue) -> None:
    rows = catalogue.rows
    assert set(rows["ccd"]) == {0, 1, 2}
    for ccd in (0, 1, 2):
        numbers = rows["NUMBER"][rows["ccd"] == ccd]
        assert numbers[0] == 1 and np.array_equal(numbers, np.arange(1, len(numbers) + 1))
    assert set(rows["EXT_NUMBER"]) == {1, 2, 3}


def test_it_uses_one_based_pixels_and_the_wcs(catalogue) -> None:
    rows = catalogue.rows
    assert rows["X_IMAGE"].min() >= 0.5 and rows["X_IMAGE"].max() <= SMALL_SHAPE[1] + 0.5
    assert np.isfinite(rows["ALPHA_J2000"]).all() and np.isfinite(rows["DELTA_J2000"]).all()
    assert abs(np.median(rows["DELTA_J2000"]) - 2.2) < 1.0


def test_it_flags_saturated_stars(catalogue, small_image) -> None:
    _, truth = small_image
    sat = truth[truth["SATURATED"]]
    assert len(sat) > 0
    rows = catalogue.rows
    for star in sat:
        on = rows[rows["ccd"] == star["ccd"]]
        d = np.hypot(on["X_IMAGE"] - star["X_IMAGE"], on["Y_IMAGE"] - star["Y_IMAGE"])
        assert on["FLAGS"][np.argmin(d)] & 4


def test_it_measures_mag_errors_and_shapes(catalogue) -> None:
    rows = catalogue.rows
    good = rows["MAG_AUTO"] < 90
    assert (rows["MAGERR_AUTO"][good] > 0).all()
    bright = good & (rows["MAG_AUTO"] < -11) & (rows["FLAGS"] == 0)
    assert (rows["A_IMAGE"][bright] >= rows["B_IMAGE"][bright]).all()
    assert 2.5 < np.median(rows["FWHM_IMAGE"][bright]) < 5.0


def test_it_gives_the_same_result_in_parallel(catalogue, small_image) -> None:
    path, _ = small_image
    parallel = extract_file(path, jobs=2)
    assert np.array_equal(parallel.rows, catalogue.rows)


def test_it_merges_per_ccd_results_like_the_whole_file(catalogue, small_image) -> None:
    path, _ = small_image
    parts = [extract_hdu(path, index) for index in (3, 1, 2)]
    assert np.array_equal(merge_ccds(parts), catalogue.rows)


def test_it_reports_progress_per_ccd(small_image) -> None:
    path, _ = small_image
    seen = []
    extract_file(path, jobs=1, progress=lambda done, total, name: seen.append((done, total, name)))
    assert seen == [(1, 3, "ccd00"), (2, 3, "ccd01"), (3, 3, "ccd02")]


def test_it_extracts_a_plain_array_without_header() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(100.0, 5.0, (200, 200)).astype(np.float32)
    yy, xx = np.mgrid[:200, :200]
    data += 5000.0 * np.exp(-((xx - 80.3) ** 2 + (yy - 120.7) ** 2) / (2 * 1.6**2))
    rows = extract_ccd(data)
    assert rows.dtype == CATALOGUE_DTYPE
    best = rows[np.argmin(rows["MAG_AUTO"])]
    assert abs(best["X_IMAGE"] - 81.3) < 0.05 and abs(best["Y_IMAGE"] - 121.7) < 0.05
    assert np.isnan(best["ALPHA_J2000"])


def test_it_handles_nan_pixels_in_float_images() -> None:
    data = np.random.default_rng(1).normal(0.0, 1.0, (100, 100)).astype(np.float32)
    data[10:20, :] = np.nan
    rows = extract_ccd(data)
    assert np.isfinite(rows["X_IMAGE"]).all()


def test_it_reads_compressed_and_plain_images_the_same(small_image, tmp_path) -> None:
    from astropy.io import fits

    path, _ = small_image
    plain = tmp_path / "plain.fits"
    with fits.open(path) as hdul:
        fits.HDUList(
            [fits.PrimaryHDU(header=hdul[0].header)] + [fits.ImageHDU(h.data, h.header) for h in hdul[1:]]
        ).writeto(plain)
    a, _ = read_ccd(path, 2)
    b, _ = read_ccd(plain, 2)
    assert a.dtype == np.float32 and np.array_equal(a, b)


def test_it_rejects_bad_parameters() -> None:
    with pytest.raises(CatalogueInputError, match="DETECT_THRESH"):
        ExtractionParams(DETECT_THRESH=-1)
    with pytest.raises(CatalogueInputError, match="Unknown parameter"):
        ExtractionParams.from_dict({"DETECT_TRESH": 2})
    with pytest.raises(CatalogueInputError) as every:  # all problems at once, for the form
        ExtractionParams(DETECT_THRESH=0, BACK_SIZE=4, GAIN=-1)
    assert len(every.value.problems) == 3 and str(every.value).startswith("Invalid parameters: DETECT_THRESH")


def test_it_builds_the_catalogue_from_per_ccd_task_results(catalogue, small_image) -> None:
    from orchestration.catalogue.extract import build_catalogue
    from orchestration.catalogue.validate import validate_image

    path, _ = small_image
    ccds = validate_image(path)
    parts = {c.index: extract_hdu(path, c.index) for c in reversed(ccds)}  # tasks finish in any order
    built = build_catalogue(path, ExtractionParams(), ccds, parts)
    assert np.array_equal(built.rows, catalogue.rows)
    assert built.ccds == catalogue.ccds and built.provenance["input"] == "1056215p.fits.fz"
    with pytest.raises(ValueError, match="ccd01"):
        build_catalogue(path, ExtractionParams(), ccds, {1: parts[1], 3: parts[3]})


def test_the_workers_text_rows_are_the_merged_rows_formatted(catalogue, small_image) -> None:
    # Each worker formats its own CCD's rows for the two text formats; joined, they must be exactly
    # what formatting the merged catalogue gives, also when HDU order and CCD numbers disagree.
    from orchestration.catalogue import textcols
    from orchestration.catalogue.extract import build_catalogue
    from orchestration.catalogue.validate import validate_image

    path, _ = small_image
    parallel = extract_file(path, jobs=2)
    assert set(parallel.text) == {"ascii_head", "csv"}
    assert parallel.text["csv"] == textcols.csv_rows(parallel.rows)
    assert parallel.text["ascii_head"] == textcols.ascii_rows(parallel.rows)
    ccds = validate_image(path)
    parts = {c.index: extract_hdu(path, c.index) for c in ccds}
    for c in ccds:  # the last HDU carries the lowest CCD number: it comes first in the catalogue
        parts[c.index]["ccd"] = 10 * (len(ccds) - c.index)
    texts = {i: textcols.text_formats(rows) for i, rows in parts.items()}
    built = build_catalogue(path, ExtractionParams(), ccds, parts, texts=texts)
    assert list(np.unique(built.rows["ccd"], return_index=True)[1]) == sorted(
        np.unique(built.rows["ccd"], return_index=True)[1]
    )
    assert built.rows["ccd"][0] == 0 and built.text["csv"] == textcols.csv_rows(built.rows)
    # a value wider than its column widens that CCD's whole column: its ASCII text would not line up
    # with the other CCDs', so the merged rows are formatted instead (CSV has no padding)
    wide = {i: rows.copy() for i, rows in parts.items()}
    wide[2]["KRON_RADIUS"][0] = 123.4  # "%5.2f" -> 6 characters
    wide_texts = {i: textcols.text_formats(rows) for i, rows in wide.items()}
    assert not textcols.joinable("ascii_head", wide[2], wide_texts[2]["ascii_head"])
    rebuilt = build_catalogue(path, ExtractionParams(), ccds, wide, texts=wide_texts)
    assert set(rebuilt.text) == {"csv"} and rebuilt.text["csv"] == textcols.csv_rows(rebuilt.rows)
    # a CCD without its text (or with text for other rows): that format is formatted from the rows
    texts[2] = {"csv": texts[2]["csv"]}
    texts[1]["csv"] = texts[1]["csv"] + b"1,2,3\n"
    assert build_catalogue(path, ExtractionParams(), ccds, parts, texts=texts).text == {}


def test_it_extracts_an_object_larger_than_sextractors_pixel_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """SExtractor's MEMORY_PIXSTACK first (each worker's memory stays small); a CCD whose object
    fills it, e.g. a long bleed trail, is detected again with a larger stack instead of failing."""
    from orchestration.catalogue import extract

    monkeypatch.setattr(extract, "PIXSTACKS", (2_000, 4_000_000))
    rng = np.random.default_rng(0)
    data = rng.normal(1000.0, 10.0, (400, 300)).astype(np.float32)
    data[50:350, 140:160] += 5000.0  # 6000 pixels above the threshold in one object
    rows = extract.extract_ccd(data, params=ExtractionParams(FILTER=False))
    assert len(rows) >= 1 and rows["ISOAREA_IMAGE"].max() >= 5000
