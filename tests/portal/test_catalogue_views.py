"""Catalogue pages: run on a small synthetic image in-process, preview, download, bad input, ownership."""

from __future__ import annotations

import gzip
import io
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from orchestration import operations
from orchestration.catalogue.synth import SynthConfig, make_megacam_image
from orchestration.tasks import catalogues as catalogue_tasks
from portal.models import Catalogue, CatalogueCcd, Operation
from tests.conftest import archive_catalogue, make_user

SHAPE = (300, 256)
DENSE = SynthConfig(stars_per_ccd=4000, galaxies_per_ccd=8000, cosmics_per_ccd=300)


@pytest.fixture(scope="session")
def small_fz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "1056215p.fits.fz"
    make_megacam_image(path, seed=3, n_ccds=2, shape=SHAPE, obs_id="1056215p", config=DENSE)
    return path


@pytest.fixture
def catalogue_env(settings: Any, tmp_path: Path, small_fz: Path, monkeypatch: Any) -> Path:
    """Local archive holding the small image, own work and storage folders, operations run in-process."""
    settings.ARCHIVE_BACKEND = "local"
    settings.ARCHIVE_DIR = tmp_path / "archive"
    settings.CATALOGUE_WORK_DIR = tmp_path / "work"
    settings.STORAGE_BACKEND = "local"
    settings.STORAGE_ROOT = tmp_path / "storage"
    (tmp_path / "archive" / "CFHT").mkdir(parents=True)
    (tmp_path / "archive" / "CFHT" / small_fz.name).write_bytes(small_fz.read_bytes())
    monkeypatch.setattr(
        operations.run_operation, "apply_async", lambda *a, **k: SimpleNamespace(id="in-process")
    )
    monkeypatch.setattr(catalogue_tasks, "dispatch_ccd", lambda pk: catalogue_tasks.extract_catalogue_ccd(pk))
    return tmp_path


def drive(op_id: int, capture: Any, timeout: float = 60) -> Operation:
    """Run an operation as a worker would (its waits too, and what it sends on commit) until it ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with capture(execute=True):
            operations.run_operation.apply(args=[op_id])
        op = Operation.objects.get(pk=op_id)
        if op.state in (Operation.SUCCEEDED, Operation.FAILED):
            return op
    raise AssertionError(f"operation {op_id} did not finish")


def run_archive(client: Any, capture: Any, observation: str = "1056215p", **params: Any) -> Catalogue:
    data = {"source": "archive", "observation": observation, **form_defaults(), **params}
    with capture(execute=True):
        response = client.post("/catalogues/new/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    cat = Catalogue.objects.latest("pk")
    drive(cat.operation_id, capture)
    cat.refresh_from_db()
    return cat


def form_defaults() -> dict[str, Any]:
    return {
        "DETECT_THRESH": 1.5,
        "DETECT_MINAREA": 5,
        "DEBLEND_NTHRESH": 32,
        "DEBLEND_MINCONT": 0.005,
        "MAG_ZEROPOINT": 30,
        "BACK_SIZE": 64,
        "BACK_FILTERSIZE": 3,
        "PHOT_AUTOPARAMS": "2.5, 3.5",
        "SATUR_LEVEL": 50000,
        "GAIN": 0,
        "CLEAN": "on",
        "FILTER": "on",
    }


def test_it_makes_a_catalogue_from_the_archive_and_stores_every_format(
    alice_client: Any, alice: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any
) -> None:
    cat = run_archive(alice_client, django_capture_on_commit_callbacks)
    assert cat.state == Catalogue.DONE, cat.error
    assert cat.n_ccds == 2 and cat.n_sources and cat.n_sources > 20
    assert sorted(cat.ccd_rows.values_list("state", flat=True)) == ["done", "done"]
    stored = catalogue_env / "storage" / "alice" / "catalogues"
    names = sorted(p.name for p in stored.iterdir())
    assert names == [
        "1056215p.cat",
        "1056215p.cat.csv",
        "1056215p.cat.fits",
        "1056215p.cat.vot",
        "1056215p.provenance.json",
    ]
    table = Table.read(stored / "1056215p.cat.fits")
    assert len(table) == cat.n_sources
    assert json.loads((stored / "1056215p.provenance.json").read_text())["parameters"]["MAG_ZEROPOINT"] == 30
    from portal.models import StorageUsage

    assert StorageUsage.objects.get(user=alice).bytes_used >= sum(p.stat().st_size for p in stored.iterdir())
    page = alice_client.get(f"/catalogues/{cat.pk}/")
    assert page.status_code == 200
    assert b"Download FITS table" in page.content and b"mosaic-ccd" in page.content


def test_it_never_duplicates_when_the_operation_runs_again(
    alice_client: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any
) -> None:
    cat = run_archive(alice_client, django_capture_on_commit_callbacks)
    Operation.objects.filter(pk=cat.operation_id).update(state=Operation.QUEUED)
    Catalogue.objects.filter(pk=cat.pk).update(state=Catalogue.MERGING)  # as if killed while writing
    drive(cat.operation_id, django_capture_on_commit_callbacks)
    cat.refresh_from_db()
    assert cat.state == Catalogue.DONE
    assert CatalogueCcd.objects.filter(catalogue=cat).count() == 2
    assert len(list((catalogue_env / "storage" / "alice" / "catalogues").iterdir())) == 5


def test_it_serves_previews_sources_rows_and_downloads(
    alice_client: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any
) -> None:
    cat = run_archive(alice_client, django_capture_on_commit_callbacks)
    hdu = cat.ccd_rows.first().hdu_index
    mosaic = alice_client.get(f"/catalogues/{cat.pk}/mosaic.png")
    assert mosaic.status_code == 200 and b"".join(mosaic.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"
    png = alice_client.get(f"/catalogues/{cat.pk}/ccd/{hdu}.png?stretch=asinh&contrast=0.5")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    bad = alice_client.get(f"/catalogues/{cat.pk}/ccd/{hdu}.png?stretch=cubic")
    assert bad.status_code == 400 and b"Unknown stretch" in bad.content
    doc = alice_client.get(f"/catalogues/{cat.pk}/ccd/{hdu}/sources.json").json()
    assert doc["width"] == SHAPE[1] and doc["height"] == SHAPE[0] and doc["sources"]
    number = doc["sources"][10]["n"]
    rows = alice_client.get(
        f"/catalogues/{cat.pk}/rows/", {"ccd": doc["ccd"], "focus": number, "sort": "-MAG_AUTO"}
    )
    assert f'id="src-{doc["ccd"]}-{number}"'.encode() in rows.content
    assert b"src-row focused" in rows.content
    download = alice_client.get(f"/catalogues/{cat.pk}/download/fits/")
    assert download.status_code == 200
    with fits.open(io.BytesIO(b"".join(download.streaming_content))) as hdul:
        table = hdul[1].data
        assert len(table) == cat.n_sources
        mags, flags = np.array(table["MAG_AUTO"]), np.array(table["FLAGS"])
    low, high = (round(float(m), 2) for m in np.percentile(mags, [25, 75]))
    kept = int(((mags >= low) & (mags <= high) & (flags == 0)).sum())
    assert 0 < kept < cat.n_sources  # the filter has something to keep and something to drop
    middle = alice_client.get(f"/catalogues/{cat.pk}/rows/", {"mag_min": low, "mag_max": high, "flags": "0"})
    assert f'data-testid="table-count">{kept} of {cat.n_sources} sources<' in middle.content.decode()
    assert alice_client.get(f"/catalogues/{cat.pk}/download/passwd/").status_code == 404


def test_it_hides_other_users_catalogues(
    alice_client: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any, client: Any
) -> None:
    cat = run_archive(alice_client, django_capture_on_commit_callbacks)
    bob = make_user("bob", ["bob-project"])
    client.force_login(bob)
    for url in ("/", "/mosaic.png", "/rows/", "/ccd/1.png", "/ccd/1/sources.json", "/download/fits/"):
        assert client.get(f"/catalogues/{cat.pk}{url}").status_code == 404, url
    assert b"catalogue-row" not in client.get("/catalogues/").content


def test_it_refuses_wrong_methods(alice_client: Any, catalogue_env: Path) -> None:
    assert alice_client.post("/catalogues/").status_code == 405
    assert alice_client.put("/catalogues/new/").status_code == 405
    assert alice_client.post("/catalogues/1/download/fits/").status_code == 405


def _upload(client: Any, name: str, content: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {"source": "upload", **form_defaults(), "upload": SimpleUploadedFile(name, content)}
    return client.post("/catalogues/new/", data)


def test_it_explains_bad_uploads_without_starting_anything(
    alice_client: Any, catalogue_env: Path, small_fz: Path, settings: Any
) -> None:
    whole = small_fz.read_bytes()
    cases = {
        "notes.fits": (b"hello, this is not an image\n" * 200, b"not a FITS file"),
        "cut.fits.fz": (whole[: len(whole) // 2], b"truncated"),
        "empty.fits": (b"", b"empty"),
    }
    for name, (content, expected) in cases.items():
        response = _upload(alice_client, name, content)
        assert response.status_code == 400, name
        assert expected in response.content, (name, response.content.decode()[:3000])
    settings.CATALOGUE_MAX_DECOMPRESSED_BYTES = 100_000  # the small image decompresses to ~300 kB: a "bomb"
    response = _upload(alice_client, "bomb.fits.fz", whole)
    assert response.status_code == 400 and b"refusing to process it" in response.content
    settings.CATALOGUE_UPLOAD_MAX_BYTES = 2048
    response = _upload(alice_client, "big.fits.fz", whole)
    assert response.status_code == 413 and b"upload limit" in response.content
    assert not Catalogue.objects.exists() and not Operation.objects.exists()


def test_it_runs_an_uploaded_image(
    alice_client: Any, catalogue_env: Path, small_fz: Path, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(alice_client, "my image.fits.fz", small_fz.read_bytes())
    assert response.status_code == 302
    cat = Catalogue.objects.get()
    assert drive(cat.operation_id, django_capture_on_commit_callbacks).state == Operation.SUCCEEDED
    cat.refresh_from_db()
    assert cat.outputs["ascii_head"] == "catalogues/my image.cat"


def test_it_explains_bad_parameters_and_observation_ids(alice_client: Any, catalogue_env: Path) -> None:
    data = {"source": "archive", "observation": "../etc/passwd", **form_defaults(), "DETECT_THRESH": -1}
    response = alice_client.post("/catalogues/new/", data)
    assert response.status_code == 400
    assert b"is not an observation ID" in response.content
    many = alice_client.post("/catalogues/many/", {"observations": "1056215p ; rm", **form_defaults()})
    assert many.status_code == 400 and b"Not observation IDs" in many.content


def test_it_fails_clearly_for_a_missing_observation(
    alice_client: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any
) -> None:
    cat = run_archive(alice_client, django_capture_on_commit_callbacks, observation="1999999p")
    assert cat.state == Catalogue.FAILED
    assert "not in the local archive" in cat.error
    assert b"not in the local archive" in alice_client.get(f"/catalogues/{cat.pk}/").content


def test_it_starts_one_run_per_observation(
    alice_client: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any
) -> None:
    response = alice_client.post(
        "/catalogues/many/", {"observations": "1056215p\n1056216p\n1056215p", **form_defaults()}
    )
    assert response.status_code == 302
    assert sorted(Catalogue.objects.values_list("name", flat=True)) == ["1056215p", "1056216p"]
    assert Operation.objects.filter(kind="catalogue_run").count() == 2


def test_it_opens_a_catalogue_file_from_storage(alice_client: Any, catalogue_env: Path) -> None:
    folder = catalogue_env / "storage" / "alice" / "jobs"
    folder.mkdir(parents=True)
    header = "#   1 NUMBER    Running object number\n#   2 X_IMAGE   Object position along x   [pixel]\n"
    header += "#   3 Y_IMAGE   Object position along y   [pixel]\n#   4 MAG_AUTO  Kron-like mag   [mag]\n"
    header += "#   5 MAGERR_AUTO  RMS error  [mag]\n#   6 FLAGS  Extraction flags\n"
    rows = "".join(
        f"{i:10d} {10.0 + i:10.3f} {20.0 + i:10.3f} {18 + i / 10:8.4f} {0.01 * i:8.4f} 0\n"
        for i in range(1, 80)
    )
    (folder / "1056215p.cat").write_text(header + rows)
    (folder / "broken.cat").write_text("#   1 NUMBER  Running object number\n1\n2\n")
    page = alice_client.get("/catalogues/storage/jobs/1056215p.cat")
    assert page.status_code == 200
    assert b"79 of 79 sources" in page.content and b"<svg" in page.content
    missing = alice_client.get("/catalogues/storage/jobs/broken.cat")
    assert missing.status_code == 400 and b"lacks the column(s) X_IMAGE, Y_IMAGE, MAG_AUTO" in missing.content
    page2 = alice_client.get("/catalogues/storage/jobs/1056215p.cat", {"page": 2}, HTTP_HX_REQUEST="true")
    assert b"Page 2 of 2" in page2.content
    assert alice_client.get("/catalogues/storage/../bob/x.cat").status_code in (400, 404)


def test_it_links_from_the_storage_page_and_the_dashboard(alice_client: Any, catalogue_env: Path) -> None:
    folder = catalogue_env / "storage" / "alice"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "x.cat").write_text("#   1 NUMBER\n")
    assert b"/catalogues/storage/x.cat" in alice_client.get("/storage/file/x.cat").content
    dashboard = alice_client.get("/")
    assert b"Look at your catalogues" in dashboard.content and b"Catalogues" in dashboard.content


def test_run_again_fills_the_form_with_the_image_and_parameters(
    alice_client: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any
) -> None:
    cat = run_archive(alice_client, django_capture_on_commit_callbacks, DETECT_THRESH=2.5, MAG_ZEROPOINT=26.1)
    assert (
        f'href="/catalogues/new/?again={cat.pk}"'.encode()
        in alice_client.get(f"/catalogues/{cat.pk}/").content
    )
    form = alice_client.get(f"/catalogues/new/?again={cat.pk}").context["form"]
    assert form["source"].value() == "archive" and form["observation"].value() == "1056215p"
    assert form["DETECT_THRESH"].value() == 2.5 and form["MAG_ZEROPOINT"].value() == 26.1
    assert form["PHOT_AUTOPARAMS"].value() == "2.5, 3.5"
    # Submitting it unchanged makes a second catalogue, the first one stays.
    data = {k: v for k, v in form.initial.items() if v is not None}
    data["CLEAN"] = data["FILTER"] = "on"
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_client.post("/catalogues/new/", data).status_code == 302
    again = Catalogue.objects.latest("pk")
    assert again.pk != cat.pk and again.params == cat.params and again.source_ref == cat.source_ref


def test_run_again_of_an_upload_asks_for_the_file_and_of_anothers_is_404(
    alice_client: Any, alice: Any, catalogue_env: Path, client: Any
) -> None:
    up = Catalogue.objects.create(
        owner=alice, name="mine.fits", source=Catalogue.UPLOAD, source_ref="mine.fits", params={}, stem="mine"
    )
    page = alice_client.get(f"/catalogues/new/?again={up.pk}")
    assert page.context["form"]["source"].value() == "upload"
    assert b"choose the file again" in page.content
    for hostile in ("abc", "-1", "99999999999999999999999", "1%00"):  # a blank form or 404, never a 500
        assert alice_client.get(f"/catalogues/new/?again={hostile}").status_code in (200, 404), hostile
    assert alice_client.get("/catalogues/99999999999999999999999/delete/").status_code == 404
    client.force_login(make_user("bob", ["bob-project"]))
    assert client.get(f"/catalogues/new/?again={up.pk}").status_code == 404
    assert client.get(f"/catalogues/{up.pk}/delete/").status_code == 404
    assert client.post(f"/catalogues/{up.pk}/delete/").status_code == 404
    assert Catalogue.objects.filter(pk=up.pk).exists()


def test_the_list_pages_through_many_catalogues(alice_client: Any, alice: Any, catalogue_env: Path) -> None:
    for i in range(21):
        Catalogue.objects.create(
            owner=alice, name=f"img{i}", source=Catalogue.ARCHIVE, source_ref=f"img{i}", stem=f"img{i}"
        )
    first = alice_client.get("/catalogues/").content.decode()
    assert first.count('data-testid="catalogue-row"') == 20 and 'href="?page=2">Next' in first
    second = alice_client.get("/catalogues/?page=2").content.decode()
    assert second.count('data-testid="catalogue-row"') == 1 and 'href="?page=1">Previous' in second


def test_delete_keeps_stored_files_unless_asked(
    alice_client: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any
) -> None:
    stored = catalogue_env / "storage" / "alice" / "catalogues"
    first = run_archive(alice_client, django_capture_on_commit_callbacks)
    assert first.work_dir.is_dir()
    confirm = alice_client.get(f"/catalogues/{first.pk}/delete/")
    assert b"catalogues/1056215p.cat.fits" in confirm.content and b"delete-files" in confirm.content
    done = alice_client.post(f"/catalogues/{first.pk}/delete/", follow=True)
    assert b"deleted. Its files in your storage are kept." in done.content
    assert not Catalogue.objects.filter(pk=first.pk).exists()
    assert not CatalogueCcd.objects.filter(catalogue_id=first.pk).exists()
    assert not first.work_dir.exists()
    assert len(list(stored.iterdir())) == 5

    second = run_archive(alice_client, django_capture_on_commit_callbacks)
    assert second.outputs["ascii_head"] == "catalogues/1056215p-2.cat"  # the kept files are not replaced
    alice_client.post(f"/catalogues/{second.pk}/delete/", {"files": "on"})
    assert not Catalogue.objects.filter(pk=second.pk).exists()
    assert sorted(p.name for p in stored.iterdir()) == [
        "1056215p.cat",
        "1056215p.cat.csv",
        "1056215p.cat.fits",
        "1056215p.cat.vot",
        "1056215p.provenance.json",
    ]


def test_running_again_never_overwrites_another_catalogues_files(
    alice_client: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any
) -> None:
    stored = catalogue_env / "storage" / "alice" / "catalogues"
    first = run_archive(alice_client, django_capture_on_commit_callbacks)
    second = run_archive(alice_client, django_capture_on_commit_callbacks, DETECT_THRESH=5)
    assert first.n_sources != second.n_sources
    assert first.outputs["fits"] == "catalogues/1056215p.cat.fits"
    assert second.outputs["fits"] == "catalogues/1056215p-2.cat.fits"
    assert second.stem == "1056215p-2"
    assert len(Table.read(stored / "1056215p.cat.fits")) == first.n_sources
    assert len(Table.read(stored / "1056215p-2.cat.fits")) == second.n_sources
    download = alice_client.get(f"/catalogues/{second.pk}/download/fits/")
    assert download.status_code == 200 and "1056215p-2.cat.fits" in download["Content-Disposition"]
    # Deleting one with its files leaves the other's alone.
    alice_client.post(f"/catalogues/{first.pk}/delete/", {"files": "on"})
    assert sorted(p.name for p in stored.iterdir()) == [
        "1056215p-2.cat",
        "1056215p-2.cat.csv",
        "1056215p-2.cat.fits",
        "1056215p-2.cat.vot",
        "1056215p-2.provenance.json",
    ]
    page = alice_client.get(f"/catalogues/{second.pk}/")
    assert b"catalogues/1056215p-2.cat" in page.content


def test_a_running_catalogue_cannot_be_deleted(alice_client: Any, alice: Any, catalogue_env: Path) -> None:
    cat = archive_catalogue(alice, state=Catalogue.EXTRACTING)
    response = alice_client.post(f"/catalogues/{cat.pk}/delete/", follow=True)
    assert b"still running" in response.content
    assert Catalogue.objects.filter(pk=cat.pk).exists()
    assert b"delete-catalogue" not in alice_client.get(f"/catalogues/{cat.pk}/").content


def _unused() -> None:  # keep imports used by helpers above
    _ = (gzip, np)


def test_a_storage_file_that_is_not_fits_is_named_as_the_user_knows_it(
    alice_client: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any
) -> None:
    folder = catalogue_env / "storage" / "alice" / "images"
    folder.mkdir(parents=True)
    (folder / "notes.fits").write_bytes(b"hello, this is not an image\n" * 200)
    data = {"source": "storage", "storage_path": "images/notes.fits", **form_defaults()}
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_client.post("/catalogues/new/", data).status_code == 302
    cat = Catalogue.objects.get()
    drive(cat.operation_id, django_capture_on_commit_callbacks)
    cat.refresh_from_db()
    assert cat.state == Catalogue.FAILED
    assert cat.error.startswith("notes.fits: not a FITS file"), cat.error
    assert "input.fits" not in cat.error


def test_a_storage_path_that_is_missing_or_a_folder_is_refused_at_once(
    alice_client: Any, catalogue_env: Path
) -> None:
    (catalogue_env / "storage" / "alice" / "images").mkdir(parents=True)
    for path, message in (
        ("images/nothere.fits", "There is no &#x27;images/nothere.fits&#x27; in your storage."),
        ("images", "&#x27;images&#x27; is a folder: give the path of an image file."),
    ):
        data = {"source": "storage", "storage_path": path, **form_defaults()}
        response = alice_client.post("/catalogues/new/", data)
        assert response.status_code == 400
        assert message in response.content.decode()
    assert not Catalogue.objects.exists()


def test_a_failed_catalogue_never_deletes_files_at_its_reserved_names(
    alice_client: Any, alice: Any, catalogue_env: Path
) -> None:
    """Names are reserved before anything is written: a failed run's names may hold someone else's file."""
    stored = catalogue_env / "storage" / "alice" / "catalogues"
    stored.mkdir(parents=True)
    (stored / "1056215p.cat").write_text("written by a batch job\n")
    cat = archive_catalogue(alice, state=Catalogue.FAILED, outputs={"ascii_head": "catalogues/1056215p.cat"})
    assert b"delete-files" not in alice_client.get(f"/catalogues/{cat.pk}/delete/").content
    alice_client.post(f"/catalogues/{cat.pk}/delete/", {"files": "on"})
    assert not Catalogue.objects.filter(pk=cat.pk).exists()
    assert (stored / "1056215p.cat").read_text() == "written by a batch job\n"


def test_a_long_image_name_still_gets_a_free_output_name(alice: Any, catalogue_env: Path) -> None:
    from orchestration.storage.local import LocalStorage

    base = "x" * 200
    storage = LocalStorage(catalogue_env / "storage" / "alice")
    storage.mkdir("catalogues")
    (catalogue_env / "storage" / "alice" / "catalogues" / f"{base}.cat").write_text("taken\n")
    cat = Catalogue.objects.create(
        owner=alice,
        name=base,
        source=Catalogue.UPLOAD,
        source_ref=base,
        params={},
        output_dir="catalogues",
        stem=base,
    )
    outputs = catalogue_tasks._reserve_outputs(cat, storage)
    assert outputs["ascii_head"] == f"catalogues/{'x' * 198}-2.cat"


def test_every_format_downloads_at_once_and_tabledata_is_made_on_first_request(
    alice_client: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any
) -> None:
    from orchestration.catalogue.formats import read_catalogue

    cat = run_archive(alice_client, django_capture_on_commit_callbacks)
    for fmt in ("ascii_head", "fits", "csv", "votable", "provenance"):
        response = alice_client.get(f"/catalogues/{cat.pk}/download/{fmt}/")
        assert response.status_code == 200, fmt
        assert b"".join(response.streaming_content), fmt
    page = alice_client.get(f"/catalogues/{cat.pk}/")
    assert b"?serialization=tabledata" in page.content
    url = f"/catalogues/{cat.pk}/download/votable/?serialization=tabledata"
    cached = cat.work_dir / "out" / f"{cat.stem}.tabledata.cat.vot"
    assert not cached.exists()
    first = b"".join(alice_client.get(url).streaming_content)
    assert b"<TABLEDATA>" in first and cached.is_file()
    assert b"".join(alice_client.get(url).streaming_content) == first  # served from the cache
    back = read_catalogue(cached)
    assert len(back) == cat.n_sources and back.provenance["parameters"]["MAG_ZEROPOINT"] == 30
    bad = alice_client.get(f"/catalogues/{cat.pk}/download/votable/?serialization=../../etc")
    assert bad.status_code == 400 and b"binary2 or tabledata" in bad.content
    assert alice_client.get(f"/catalogues/{cat.pk}/download/csv/?serialization=tabledata").status_code == 400


def test_the_form_and_the_catalogue_say_where_the_defaults_come_from(
    alice_client: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any
) -> None:
    from orchestration.catalogue.sexdefaults import tutorial_defaults

    page = alice_client.get("/catalogues/new/").content.decode()
    assert tutorial_defaults().source in page
    assert 'name="DETECT_MINAREA" value="3"' in page  # Debian's default.sex, as the tutorial's job
    cat = run_archive(alice_client, django_capture_on_commit_callbacks)
    assert cat.provenance["defaults"]["from"] == tutorial_defaults().source
    assert cat.provenance["defaults"]["changed"] == {"DETECT_MINAREA": 5, "MAG_ZEROPOINT": 30.0}
    detail = alice_client.get(f"/catalogues/{cat.pk}/").content.decode()
    assert "provenance-defaults" in detail and "DETECT_MINAREA 5" in detail


def test_a_tabledata_that_cannot_be_written_is_a_message_not_an_error(
    alice_client: Any, catalogue_env: Path, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    from portal.views import catalogues as views

    cat = run_archive(alice_client, django_capture_on_commit_callbacks)

    def full_disk(*args: Any, **kwargs: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(views, "write_votable", full_disk)
    response = alice_client.get(f"/catalogues/{cat.pk}/download/votable/?serialization=tabledata")
    assert response.status_code == 503 and b"try again later" in response.content
