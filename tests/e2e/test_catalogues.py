"""A catalogue end to end in Chromium: run on a demo image, watch the CCDs, preview, click, download."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits
from django.conf import settings
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from orchestration.catalogue.synth import SynthConfig, make_megacam_image
from tests.conftest import make_user
from tests.e2e.conftest import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# A small demo-like image (4 CCDs side by side on the focal plane), unique per run: the worker and
# the live server share the test settings' local archive.
OBS = f"e2e{os.getpid()}p"
DENSE = SynthConfig(stars_per_ccd=2500, galaxies_per_ccd=6000, cosmics_per_ccd=300)


@pytest.fixture
def demo_image() -> Iterator[Path]:
    folder = Path(settings.ARCHIVE_DIR) / "CFHT"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{OBS}.fits.fz"
    make_megacam_image(path, seed=11, n_ccds=4, shape=(900, 512), obs_id=OBS, config=DENSE)
    yield path
    path.unlink(missing_ok=True)


def test_it_runs_previews_and_downloads_a_catalogue(
    page: Any, celery_worker_process: Any, demo_image: Path
) -> None:
    make_user("carol", ["carol-survey"])
    sign_in(page, "carol")
    page.get_by_role("link", name="Catalogues").first.click()
    expect(page.get_by_role("heading", name="Catalogues", exact=True)).to_be_visible()
    page.get_by_test_id("new-catalogue").click()
    page.fill("#id_observation", OBS)
    page.fill("#id_MAG_ZEROPOINT", "30")
    screenshot(page, "catalogue-01-new")
    page.get_by_test_id("run-catalogue").click()

    # Progress per CCD: tiles move from waiting to done while the workers extract them.
    expect(page.get_by_test_id("ccd-grid")).to_be_visible(timeout=30000)
    seen: set[str] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and page.get_by_test_id("mosaic").count() == 0:
        try:
            tiles = page.locator("[data-testid=ccd-tile]").evaluate_all("ts => ts.map(t => t.dataset.state)")
        except PlaywrightError:  # the page reloads itself into the preview when the catalogue is done
            continue
        seen.update(tiles)
        if tiles and "catalogue-02-progress" not in seen and "done" in tiles:
            screenshot(page, "catalogue-02-progress")
            seen.add("catalogue-02-progress")
        time.sleep(0.2)
    assert seen & {"pending", "running", "done"}, seen  # the per-CCD progress was shown
    expect(page.get_by_test_id("mosaic")).to_be_visible()
    expect(page.get_by_test_id("mosaic-ccd")).to_have_count(4)
    expect(page.locator("#viewer ellipse").first).to_be_attached()
    n_sources = int(page.get_by_test_id("n-sources").inner_text())
    assert n_sources > 100
    screenshot(page, "catalogue-03-preview")

    # Click a source: its row is found (on whatever page) and highlighted.
    ellipse = page.locator("#viewer ellipse").nth(7)
    number = ellipse.get_attribute("data-number")
    ellipse.click(force=True)
    row = page.locator(f"tr.src-row.focused[data-number='{number}']")
    expect(row).to_be_visible()
    expect(page.get_by_test_id("selected-source")).to_contain_text(f"Source {number}")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "catalogue-04-source-clicked")

    # And the other way: a row highlights its source on the image.
    other = page.locator("tr.src-row").nth(2)
    other_number = other.get_attribute("data-number")
    other.click()
    expect(page.locator(f"#viewer ellipse.sel[data-number='{other_number}']")).to_be_attached()

    # Another CCD from the mosaic, a stretch, then filters and sorting on the table.
    page.get_by_test_id("mosaic-ccd").nth(2).click()
    expect(page.get_by_test_id("viewer-ccd")).to_have_text("ccd02")
    page.select_option("[data-control=stretch]", "asinh")
    page.fill("#f-mag-max", "22")
    page.press("#f-mag-max", "Enter")
    expect(page.get_by_test_id("table-count")).not_to_contain_text(f"{n_sources} of {n_sources}")
    page.get_by_test_id("sort-MAG_AUTO").click()
    expect(page.get_by_test_id("sort-MAG_AUTO")).to_contain_text("▴")
    page.evaluate("window.scrollTo(0, 0)")  # the sticky navigation bar stays at the top of the shot
    screenshot(page, "catalogue-05-filtered")

    with page.expect_download() as info:
        page.get_by_test_id("download-fits").click()
    download = info.value
    assert download.suggested_filename == f"{OBS}.cat.fits"
    with fits.open(download.path()) as hdul:
        table = hdul["CATALOGUE"].data
        assert len(table) == n_sources
        assert {"NUMBER", "X_IMAGE", "Y_IMAGE", "MAG_AUTO", "FLAGS"} <= set(table.columns.names)

    page.get_by_role("link", name="All catalogues").click()
    expect(page.get_by_test_id("catalogue-row").first).to_have_attribute("data-state", "done")
    screenshot(page, "catalogue-06-list")

    # Run again opens the form filled in; delete asks first and can keep the stored files.
    page.get_by_test_id("catalogue-row").first.get_by_role("link", name="Again…").click()
    expect(page.locator("#id_observation")).to_have_value(OBS)
    page.go_back()
    page.get_by_test_id("catalogue-row").first.get_by_role("link", name="Delete…").click()
    expect(page.get_by_test_id("delete-files")).not_to_be_checked()
    screenshot(page, "catalogue-07-delete")
    page.get_by_test_id("confirm-delete").click()
    expect(page.locator(".alert-success")).to_contain_text("Its files in your storage are kept")
    expect(page.get_by_test_id("catalogue-row")).to_have_count(0)
