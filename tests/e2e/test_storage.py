"""Storage in a real browser: drag-and-drop upload, FITS thumbnail, folder, move, download, delete."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from playwright.sync_api import expect

from tests.conftest import make_user
from tests.e2e.conftest import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DROP = """([name, b64, type]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, {type}));
  const zone = document.getElementById("storage-drop");
  for (const kind of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(kind, {dataTransfer: data, bubbles: true, cancelable: true}));
  }
}"""


def star_field() -> bytes:
    """A small synthetic sky (clearly synthetic: Gaussian stars on Gaussian noise)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:600, 0:800]
    image = rng.normal(1000.0, 15.0, (600, 800))
    for _ in range(120):
        cx, cy, flux = rng.uniform(0, 800), rng.uniform(0, 600), rng.lognormal(7, 1.2)
        image += flux * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 2.2**2))
    hdu = fits.PrimaryHDU(image.astype(np.float32))
    hdu.header["OBJECT"] = ("synthetic field", "made by the test")
    hdu.header["FILTER"] = "r.MP9601"
    out = io.BytesIO()
    hdu.writeto(out)
    return out.getvalue()


def test_it_uploads_previews_moves_downloads_and_deletes(page: Any, settings: Any, tmp_path: Path) -> None:
    settings.STORAGE_BACKEND = "local"
    settings.STORAGE_ROOT = tmp_path / "storage"
    make_user("alice", ["alice-lensing"])
    sign_in(page, "alice")
    page.get_by_role("link", name="Storage", exact=True).click()
    expect(page.get_by_test_id("empty-folder")).to_be_visible()

    data = star_field()
    page.evaluate(DROP, ["sky field 1056215p.fits", base64.b64encode(data).decode(), "application/fits"])
    expect(page.locator('[data-testid=entry][data-name="sky field 1056215p.fits"]')).to_be_visible()
    page.set_input_files(
        "#upload-input",
        files=[{"name": "job.log", "mimeType": "text/plain", "buffer": b"000 (042.000.000) Job submitted\n"}],
    )
    expect(page.locator('[data-testid=entry][data-name="job.log"]')).to_be_visible()
    assert (settings.STORAGE_ROOT / "alice" / "sky field 1056215p.fits").read_bytes() == data

    page.get_by_test_id("new-folder").click()
    page.get_by_test_id("folder-name").fill("Résultats 2023")
    page.get_by_test_id("create-folder").click()
    expect(page.get_by_text("Folder 'Résultats 2023' created.")).to_be_visible()
    screenshot(page, "storage-01-listing")

    page.get_by_role("link", name="sky field 1056215p.fits").click()
    thumb = page.get_by_test_id("fits-thumbnail")
    expect(thumb).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    assert 200 < thumb.evaluate("img => img.naturalWidth") <= 320
    expect(page.get_by_test_id("fits-header")).to_contain_text("synthetic field")
    screenshot(page, "storage-02-fits-preview")

    page.get_by_role("link", name="Move or rename").click()
    page.get_by_test_id("move-dest").fill("Résultats 2023/sky field 1056215p.fits")
    screenshot(page, "storage-03-move")
    page.get_by_test_id("confirm-move").click()
    expect(
        page.get_by_text("Moved 'sky field 1056215p.fits' to 'Résultats 2023/sky field 1056215p.fits'.")
    ).to_be_visible()
    expect(page.get_by_test_id("breadcrumbs")).to_contain_text("Résultats 2023")

    with page.expect_download() as info:
        page.locator('[data-testid=entry][data-name="sky field 1056215p.fits"]').get_by_role(
            "link", name="Download"
        ).click()
    download = info.value
    assert download.suggested_filename == "sky field 1056215p.fits"
    assert Path(download.path()).read_bytes() == data

    page.locator('[data-testid=entry][data-name="sky field 1056215p.fits"]').get_by_test_id("delete").click()
    page.get_by_test_id("confirm-delete").click()
    expect(page.get_by_text("Deleted 'Résultats 2023/sky field 1056215p.fits'.")).to_be_visible()
    expect(page.get_by_test_id("empty-folder")).to_be_visible()
    assert not (settings.STORAGE_ROOT / "alice" / "Résultats 2023" / "sky field 1056215p.fits").exists()


def test_it_refuses_an_oversized_drop_in_the_browser(page: Any, settings: Any, tmp_path: Path) -> None:
    settings.STORAGE_ROOT = tmp_path / "storage"
    settings.STORAGE_UPLOAD_MAX_BYTES = 1000
    make_user("alice", ["alice-lensing"])
    sign_in(page, "alice")
    page.goto("/storage/")
    page.evaluate(DROP, ["big.bin", base64.b64encode(b"x" * 1001).decode(), "application/octet-stream"])
    expect(page.get_by_test_id("upload-item")).to_contain_text("Larger than the 1000\xa0bytes upload limit.")
    screenshot(page, "storage-04-too-big")
