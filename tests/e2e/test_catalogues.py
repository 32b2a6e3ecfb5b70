"""A catalogue end to end in Chromium: run on a demo image, watch the CCDs, preview, click, download."""

from __future__ import annotations

import os
import shutil
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
from tests.conftest import archive_catalogue, make_user
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
    # The database is new for each test; the storage folder under var/test is not (earlier runs).
    shutil.rmtree(Path(settings.STORAGE_ROOT) / "carol", ignore_errors=True)
    sign_in(page, "carol")
    page.get_by_role("link", name="Catalogues").first.click()
    expect(page.get_by_role("heading", name="Catalogues", exact=True)).to_be_visible()
    page.get_by_test_id("new-catalogue").click()
    page.fill("#id_observation", OBS)
    page.fill("#id_MAG_ZEROPOINT", "30")
    screenshot(page, "catalogue-01-new")
    page.get_by_test_id("run-catalogue").click()

    # Progress per CCD while the workers extract (this small image can finish before the page
    # shows it: test_it_shows_each_ccds_progress_as_it_changes watches that part step by step).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and page.get_by_test_id("mosaic").count() == 0:
        try:
            tiles = page.locator("[data-testid=ccd-tile]").evaluate_all("ts => ts.map(t => t.dataset.state)")
        except PlaywrightError:  # the page reloads itself into the preview when the catalogue is done
            continue
        if tiles and "done" in tiles:
            screenshot(page, "catalogue-02-progress")
        time.sleep(0.2)
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


def test_it_shows_each_ccds_progress_as_it_changes(page: Any) -> None:
    """The progress page polls: tiles follow each CCD's state as the workers record it (staged here
    row by row, so every step is seen however fast real workers are)."""
    from portal.models import Catalogue, CatalogueCcd, Operation

    dora = make_user("dora", ["dora-survey"])
    op = Operation.objects.create(owner=dora, kind="catalogue_run", title="Catalogue 1056215p")
    Operation.objects.filter(pk=op.pk).update(state=Operation.RUNNING, message="Extracting")
    cat = archive_catalogue(dora, state=Catalogue.EXTRACTING, n_ccds=3, operation=op)
    rows = [
        CatalogueCcd.objects.create(
            catalogue=cat, hdu_index=i + 1, ccd=i, name=f"ccd{i:02d}", ny=4612, nx=2048
        )
        for i in range(3)
    ]
    sign_in(page, "dora")
    page.goto(f"/catalogues/{cat.pk}/")
    tiles = page.locator("[data-testid=ccd-tile]")
    expect(tiles).to_have_count(3)

    def states() -> list[str]:
        return tiles.evaluate_all("ts => ts.map(t => t.dataset.state)")

    assert states() == ["pending", "pending", "pending"]
    CatalogueCcd.objects.filter(pk=rows[0].pk).update(state=CatalogueCcd.RUNNING)
    CatalogueCcd.objects.filter(pk=rows[1].pk).update(state=CatalogueCcd.DONE, n_sources=314, seconds=0.2)
    expect(page.locator("[data-testid=ccd-tile][data-state=done]")).to_have_count(1, timeout=10000)
    assert states() == ["running", "done", "pending"]
    expect(page.get_by_test_id("ccds-done")).to_have_text("1 of 3 CCDs")
    expect(page.locator("[data-testid=ccd-tile][data-state=done]")).to_contain_text("314")
    screenshot(page, "catalogue-02-progress-steps")
