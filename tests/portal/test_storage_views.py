"""The storage page with the local backend: browse, upload, download, folders, move, delete, refusals."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User

from portal.models.storage import StorageUsage

UPLOAD = "/storage/upload/"


@pytest.fixture(autouse=True)
def storage_root(settings: Any, tmp_path: Path) -> Path:
    settings.STORAGE_BACKEND = "local"
    settings.STORAGE_ROOT = tmp_path / "storage"
    settings.STORAGE_UPLOAD_MAX_BYTES = 1024 * 1024
    return settings.STORAGE_ROOT


def space(root: Path, user: str = "alice") -> Path:
    path = root / user
    path.mkdir(parents=True, exist_ok=True)
    return path


def upload(client: Any, name: str, data: bytes, folder: str = "", **extra: str) -> Any:
    query = f"?folder={quote(folder)}&name={quote(name)}" + "".join(f"&{k}={v}" for k, v in extra.items())
    return client.post(UPLOAD + query, data=data, content_type="application/octet-stream")


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_it_shows_an_empty_space_with_the_next_step(alice_client: Any) -> None:
    response = alice_client.get("/storage/")
    assert response.status_code == 200
    assert b"This folder is empty" in response.content
    assert b'href="/storage/"' in response.content  # the nav shows Storage
    # The empty state points at these buttons: they must be there when there is nothing yet.
    assert b'data-testid="upload-button"' in response.content
    assert b'data-testid="new-folder"' in response.content


def test_it_uploads_streamed_and_lists_the_file(alice_client: Any, storage_root: Path) -> None:
    response = upload(alice_client, "cat 1.txt", b"hello\n" * 1000)
    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True, "name": "cat 1.txt", "path": "cat 1.txt", "size": 6000}
    assert (storage_root / "alice" / "cat 1.txt").read_bytes() == b"hello\n" * 1000
    page = alice_client.get("/storage/")
    assert b"cat 1.txt" in page.content
    assert b"5.9\xc2\xa0KB" in page.content
    assert StorageUsage.objects.get(user__username="alice").bytes_used == 6000


def test_it_refuses_an_oversized_upload_with_a_clear_message(alice_client: Any, storage_root: Path) -> None:
    response = upload(alice_client, "big.bin", b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert "larger than the 1.0\xa0MB upload limit" in response.json()["error"]
    assert not (storage_root / "alice" / "big.bin").exists()


def test_it_refuses_a_body_longer_than_the_limit_by_its_length(
    alice_client: Any, settings: Any, storage_root: Path
) -> None:
    settings.STORAGE_UPLOAD_MAX_BYTES = 10
    response = upload(alice_client, "a.bin", b"x" * 11)  # the length check catches it first
    assert response.status_code == 413
    assert response.json() == {"ok": False, "error": "The file is larger than the 10\xa0bytes upload limit."}
    assert not (space(storage_root) / "a.bin").exists()


def test_it_asks_before_replacing_a_file(alice_client: Any, storage_root: Path) -> None:
    upload(alice_client, "a.txt", b"one")
    response = upload(alice_client, "a.txt", b"two")
    assert response.status_code == 409
    assert "already exists" in response.json()["error"]
    assert upload(alice_client, "a.txt", b"two", overwrite="on").status_code == 200
    assert (storage_root / "alice" / "a.txt").read_bytes() == b"two"


@pytest.mark.parametrize(
    ("folder", "name", "message"),
    [
        ("", "../escape.txt", "cannot contain '/'"),
        ("..", "escape.txt", "cannot contain '..'"),
        ("/etc", "x.txt", "absolute paths are not allowed"),
        ("", "..", "'.' and '..' are not allowed"),
        ("", "a\nb", "control characters"),
    ],
)
def test_it_refuses_uploads_that_leave_the_space(
    alice_client: Any, storage_root: Path, folder: str, name: str, message: str
) -> None:
    response = upload(alice_client, name, b"x", folder=folder)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert sorted(p.name for p in storage_root.parent.rglob("*escape*")) == []


def test_it_handles_non_ascii_and_space_names(alice_client: Any, storage_root: Path) -> None:
    assert alice_client.post("/storage/mkdir/", {"folder": "", "name": "Résultats 2023"}).status_code == 302
    assert (
        upload(alice_client, "naïve cat ✓.txt", "données\n".encode(), folder="Résultats 2023").status_code
        == 200
    )
    listing = alice_client.get("/storage/browse/" + quote("Résultats 2023"))
    assert "naïve cat ✓.txt" in listing.content.decode()
    response = alice_client.get("/storage/download/" + quote("Résultats 2023/naïve cat ✓.txt"))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == "données\n".encode()
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''na%C3%AFve%20cat%20%E2%9C%93.txt"
    assert response["Content-Type"] == "application/octet-stream"


def test_it_downloads_a_file_with_a_quote_in_its_name_safely(alice_client: Any, storage_root: Path) -> None:
    (space(storage_root) / 'a"b; c.txt').write_bytes(b"data")
    response = alice_client.get("/storage/download/" + quote('a"b; c.txt'))
    assert response["Content-Disposition"] == 'attachment; filename="a\\"b; c.txt"'


def test_it_creates_a_folder_and_refuses_a_duplicate(alice_client: Any, storage_root: Path) -> None:
    response = alice_client.post("/storage/mkdir/", {"folder": "", "name": "results"}, follow=True)
    assert "Folder 'results' created." in messages_of(response)
    assert (storage_root / "alice" / "results").is_dir()
    response = alice_client.post("/storage/mkdir/", {"folder": "", "name": "results"}, follow=True)
    assert "'results' already exists." in messages_of(response)


def test_it_moves_a_file_into_a_folder(alice_client: Any, storage_root: Path) -> None:
    home = space(storage_root)
    (home / "results").mkdir()
    (home / "cat.txt").write_text("1 2\n")
    form = alice_client.get("/storage/move/?path=cat.txt")
    assert b'value="results/cat.txt"' in form.content  # suggested destination
    response = alice_client.post(
        "/storage/move/", {"path": "cat.txt", "dest": "results/cat.txt"}, follow=True
    )
    assert "Moved 'cat.txt' to 'results/cat.txt'." in messages_of(response)
    assert (home / "results" / "cat.txt").read_text() == "1 2\n"
    assert not (home / "cat.txt").exists()


def test_it_explains_a_refused_move(alice_client: Any, storage_root: Path) -> None:
    home = space(storage_root)
    (home / "cat.txt").write_text("x")
    response = alice_client.post("/storage/move/", {"path": "cat.txt", "dest": "../bob/cat.txt"})
    assert b"&#x27;.&#x27; and &#x27;..&#x27; are not allowed" in response.content
    response = alice_client.post("/storage/move/", {"path": "cat.txt", "dest": "nothere/cat.txt"})
    assert b"The folder &#x27;nothere&#x27; does not exist." in response.content
    assert (home / "cat.txt").exists()


def test_it_deletes_a_folder_only_after_confirmation(alice_client: Any, storage_root: Path) -> None:
    home = space(storage_root)
    (home / "results" / "deep").mkdir(parents=True)
    (home / "results" / "deep" / "a.txt").write_text("x")
    confirm = alice_client.get("/storage/delete/?path=results")
    assert b"Deleting it deletes everything inside it" in confirm.content
    response = alice_client.post("/storage/delete/", {"path": "results"})
    assert response.status_code == 400
    assert b"Tick this box to delete the folder with everything in it." in response.content
    assert (home / "results").exists()
    response = alice_client.post("/storage/delete/", {"path": "results", "recursive": "on"}, follow=True)
    assert "Deleted 'results'." in messages_of(response)
    assert not (home / "results").exists()


def test_it_deletes_a_file(alice_client: Any, storage_root: Path) -> None:
    (space(storage_root) / "a.txt").write_text("x")
    response = alice_client.post("/storage/delete/", {"path": "a.txt"})
    assert response.status_code == 302
    assert not (storage_root / "alice" / "a.txt").exists()


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", UPLOAD),
        ("get", "/storage/mkdir/"),
        ("put", "/storage/delete/"),
        ("put", "/storage/move/"),
        ("post", "/storage/"),
        ("post", "/storage/download/a.txt"),
        ("post", "/storage/file/a.txt"),
        ("delete", "/storage/browse/x"),
    ],
)
def test_it_answers_405_to_the_wrong_method(alice_client: Any, method: str, url: str) -> None:
    assert getattr(alice_client, method)(url).status_code == 405


@pytest.mark.parametrize("url", ["/storage/", "/storage/download/a.txt", UPLOAD, "/storage/delete/?path=a"])
def test_it_requires_sign_in(client: Any, db: Any, url: str) -> None:
    response = client.get(url) if "upload" not in url else client.post(url, data=b"x", content_type="x/y")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_refuses_paths_that_escape_with_a_message(alice_client: Any, storage_root: Path) -> None:
    space(storage_root)
    (space(storage_root, "bob") / "secret.txt").write_text("bob's")
    for url in [
        "/storage/browse/../bob",
        "/storage/download/../bob/secret.txt",
        "/storage/file/..%2Fbob/secret.txt",
    ]:
        response = alice_client.get(url, follow=True)
        assert response.status_code == 200
        assert b"bob's" not in response.content
        assert any("'..'" in m for m in messages_of(response)), url


def test_it_refuses_a_symlink_out_of_the_space(alice_client: Any, storage_root: Path) -> None:
    (space(storage_root, "bob") / "secret.txt").write_text("bob's")
    os.symlink(storage_root / "bob", space(storage_root) / "link")
    response = alice_client.get("/storage/download/link/secret.txt", follow=True)
    assert b"bob's" not in response.content
    assert "That path leads outside your storage space." in messages_of(response)


def test_it_keeps_another_users_files_out_of_reach(
    client: Any, alice: User, bob: User, storage_root: Path
) -> None:
    (space(storage_root) / "alice-only.txt").write_text("alice's")
    client.force_login(bob)
    page = client.get("/storage/")
    assert b"alice-only.txt" not in page.content
    response = client.get("/storage/download/alice-only.txt", follow=True)
    assert b"alice's" not in response.content
    assert "'alice-only.txt' does not exist." in messages_of(response)
    client.post("/storage/delete/", {"path": "alice-only.txt"})
    assert (storage_root / "alice" / "alice-only.txt").exists()


def test_it_paginates_and_sorts_a_large_folder(alice_client: Any, storage_root: Path, settings: Any) -> None:
    settings.STORAGE_PAGE_SIZE = 50
    home = space(storage_root)
    for i in range(120):
        (home / f"f{i:04d}.txt").write_bytes(b"x" * i)
    (home / "zdir").mkdir()
    first = alice_client.get("/storage/")
    assert first.content.count(b'data-testid="entry"') == 50
    assert b"121 items" in first.content
    names = [r["node"].name for r in first.context["rows"]]
    assert names[:2] == ["zdir", "f0000.txt"]  # folders first
    by_size = alice_client.get("/storage/?sort=-size&page=1")
    assert [r["node"].name for r in by_size.context["rows"]][:2] == ["zdir", "f0119.txt"]
    last = alice_client.get("/storage/?sort=name&page=3")
    assert [r["node"].name for r in last.context["rows"]][-1] == "f0119.txt"
    assert b"Page 3 of 3" in last.content


def test_it_counts_storage_on_the_dashboard(alice_client: Any) -> None:
    upload(alice_client, "a.bin", b"x" * 2048)
    response = alice_client.get("/")
    assert response.context["summary"].storage_used == 2048
    assert b'data-testid="count-storage">2.0\xc2\xa0KB' in response.content


def test_it_accepts_the_no_javascript_form(alice_client: Any, storage_root: Path) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    sent = SimpleUploadedFile("notes é.txt", b"plain form\n")
    response = alice_client.post(UPLOAD, {"folder": "", "file": sent}, follow=True)
    assert "Uploaded notes é.txt (11\xa0bytes)." in messages_of(response)
    assert (storage_root / "alice" / "notes é.txt").read_bytes() == b"plain form\n"


def test_it_refuses_an_oversized_form_upload_before_reading_it(alice_client: Any, storage_root: Path) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    sent = SimpleUploadedFile("big.bin", b"x" * (1024 * 1024 + 70 * 1024))
    response = alice_client.post(UPLOAD, {"folder": "", "file": sent}, follow=True)
    assert "The file is larger than the 1.0\xa0MB upload limit." in messages_of(response)
    assert not (storage_root / "alice" / "big.bin").exists()


def test_it_downloads_a_name_with_a_control_character(alice_client: Any, storage_root: Path) -> None:
    (space(storage_root) / "bad\tname.txt").write_bytes(b"x")
    response = alice_client.get("/storage/download/" + quote("bad\tname.txt"))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="bad_name.txt"'


def test_a_download_path_that_climbs_out_goes_back_to_the_top_folder_with_the_reason(
    alice_client: Any, storage_root: Path
) -> None:
    response = alice_client.get("/storage/download/..%2f..%2fetc%2fpasswd")
    assert response.status_code == 302 and response["Location"] == "/storage/"
    page = alice_client.get(response["Location"])
    assert any("'..'" in m for m in messages_of(page))


# A name with a line feed cannot be made in the portal (it refuses control characters in new names),
# but a job, a VOSpace client or a shell can make one: the pages show it, escaped, and act on it.
LF_NAME = "two\nlines.txt"
LF_SHOWN = 'two<span class="name-escape" title="U+000A">\\n</span>lines.txt'


def test_it_lists_and_opens_a_name_with_a_line_feed_made_outside_the_portal(
    alice_client: Any, storage_root: Path
) -> None:
    home = space(storage_root)
    (home / LF_NAME).write_text("made by a job\n")
    (home / "odd\nfolder").mkdir()
    (home / "odd\nfolder" / "inside.txt").write_text("x")
    listing = alice_client.get("/storage/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert f'<a href="/storage/file/two%0Alines.txt">{LF_SHOWN}</a>' in html
    assert 'href="/storage/browse/odd%0Afolder"' in html
    page = alice_client.get("/storage/file/two%0Alines.txt")
    assert page.status_code == 200
    assert f'<h1 class="text-break">{LF_SHOWN}</h1>' in page.content.decode()
    assert "<title>two\\nlines.txt · Storage" in page.content.decode()
    assert "made by a job" in page.content.decode()
    download = alice_client.get("/storage/download/two%0Alines.txt")
    assert b"".join(download.streaming_content) == b"made by a job\n"
    assert download["Content-Disposition"] == 'attachment; filename="two_lines.txt"'
    folder = alice_client.get("/storage/browse/odd%0Afolder")
    assert folder.status_code == 200
    assert 'href="/storage/file/odd%0Afolder/inside.txt"' in folder.content.decode()
    assert '<span class="name-escape" title="U+000A">\\n</span>folder</li>' in folder.content.decode()


def test_it_deletes_and_moves_a_name_with_a_line_feed(alice_client: Any, storage_root: Path) -> None:
    home = space(storage_root)
    (home / LF_NAME).write_text("x")
    (home / "odd\nname.txt").write_text("y")
    confirm = alice_client.get("/storage/delete/?path=two%0Alines.txt").content.decode()
    assert 'action="/storage/delete/?path=two%0Alines.txt"' in confirm  # the form keeps the real name
    # A browser sends a form field's line feed as CR LF: the path in the query string is the one used.
    response = alice_client.post(
        "/storage/delete/?path=two%0Alines.txt", {"path": "two\r\nlines.txt"}, follow=True
    )
    assert "Deleted 'two\\nlines.txt'." in messages_of(response)
    assert not (home / LF_NAME).exists()
    response = alice_client.post(
        "/storage/move/?path=odd%0Aname.txt", {"path": "odd\r\nname.txt", "dest": "plain.txt"}, follow=True
    )
    assert "Moved 'odd\\nname.txt' to 'plain.txt'." in messages_of(response)
    assert (home / "plain.txt").read_text() == "y"


def test_a_stored_catalogue_links_to_its_preview(alice_client: Any, storage_root: Path) -> None:
    (space(storage_root) / "cat.csv").write_text("NUMBER,MAG_AUTO\n1,20.1\n")
    html = alice_client.get("/storage/file/cat.csv").content.decode()
    assert 'href="/catalogues/storage/cat.csv"' in html
