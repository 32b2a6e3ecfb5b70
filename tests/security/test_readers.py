"""Readers read bytes: a user's file is never taken for a path or a URL by astropy or numpy.

Each hostile file is previewed the way a user would (the storage page, the catalogue preview); a
server file's content never shows, and a loopback HTTP server started here gets no request.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

SECRET = "portal-host-secret-7f3a9c"


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = f"# 1 NUMBER\n# 2 MAG_AUTO\n1 {SECRET}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server recording every request it gets; proven to answer before the test."""
    hits: list[str] = []
    handler = type("Recorder", (_Recorder,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/probe"
    with urllib.request.urlopen(url + "-self-test", timeout=5) as answer:  # it does record requests
        assert SECRET.encode() in answer.read()
    assert hits == ["/probe-self-test"]
    hits.clear()
    yield url, hits
    server.shutdown()
    server.server_close()


@pytest.fixture
def home(settings: Any, tmp_path: Path) -> Path:
    settings.STORAGE_BACKEND = "local"
    settings.STORAGE_ROOT = tmp_path / "storage"
    settings.CATALOGUE_WORK_DIR = tmp_path / "catalogues"
    path = settings.STORAGE_ROOT / "alice"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def server_file(tmp_path: Path) -> Path:
    secret = tmp_path / "server-only.txt"
    secret.write_text(f"{SECRET}\n")
    return secret


def test_it_does_not_show_a_server_file_named_in_a_cat(
    alice_client: Any, home: Path, server_file: Path
) -> None:
    for target in (str(server_file), "/etc/hostname"):
        (home / "names-a-file.cat").write_text(target)
        page = alice_client.get("/storage/file/names-a-file.cat")
        assert page.status_code == 200
        assert SECRET not in page.content.decode()
        if target == "/etc/hostname":
            hostname = Path("/etc/hostname").read_text().strip()
            shown = page.content.decode().replace(target, "")  # the file's own text may show
            assert not hostname or f">{hostname}<" not in shown
        stored = alice_client.get("/catalogues/storage/names-a-file.cat")
        assert stored.status_code == 400
        assert SECRET not in stored.content.decode()


def test_a_url_in_a_cat_makes_no_request(
    alice_client: Any, home: Path, listener: tuple[str, list[str]]
) -> None:
    url, hits = listener
    for name in ("url.cat", "url.csv", "url.ecsv", "url.tsv"):
        (home / name).write_text(url)
        page = alice_client.get(f"/storage/file/{name}")
        assert page.status_code == 200
        assert SECRET not in page.content.decode()
        assert alice_client.get(f"/catalogues/storage/{name}").status_code == 400
    assert hits == []


def test_a_url_in_a_fits_file_makes_no_request(
    alice_client: Any, home: Path, listener: tuple[str, list[str]]
) -> None:
    url, hits = listener
    (home / "url.fits").write_text(url)
    page = alice_client.get("/storage/file/url.fits")
    assert page.status_code == 200
    assert b"could not be read as FITS" in page.content
    assert alice_client.get("/storage/thumbnail/url.fits").status_code == 404
    assert hits == []


def _votable_with_stream(href: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">\n'
        " <RESOURCE><TABLE>\n"
        '  <FIELD name="NUMBER" datatype="char" arraysize="*"/>\n'
        f'  <DATA><BINARY><STREAM href="{href}"/></BINARY></DATA>\n'
        " </TABLE></RESOURCE>\n"
        "</VOTABLE>\n"
    )


def test_a_votable_stream_is_refused_without_a_request(
    alice_client: Any, home: Path, listener: tuple[str, list[str]], server_file: Path
) -> None:
    url, hits = listener
    for name, href in (("http.vot", url), ("file.vot", server_file.as_uri())):
        (home / name).write_text(_votable_with_stream(href))
        page = alice_client.get(f"/catalogues/storage/{name}")
        assert page.status_code == 400
        assert b"only VOTables with inline TABLEDATA, BINARY or BINARY2 data are read" in page.content
        assert SECRET not in page.content.decode()
    assert hits == []


def test_a_votable_doctype_is_refused(alice_client: Any, home: Path, listener: tuple[str, list[str]]) -> None:
    url, hits = listener
    hidden = f'<!DOCTYPE VOTABLE [<!ENTITY s "<STREAM href=&#34;{url}&#34;/>">]>\n'
    text = _votable_with_stream(url).replace(f'<STREAM href="{url}"/>', "&s;")
    (home / "entity.vot").write_text(text.replace("<VOTABLE ", hidden + "<VOTABLE ", 1))
    page = alice_client.get("/catalogues/storage/entity.vot")
    assert page.status_code == 400
    assert b"the VOTable has a DOCTYPE" in page.content
    assert hits == []


def test_a_zero_byte_cat_says_it_is_empty(alice_client: Any, home: Path) -> None:
    (home / "empty.cat").write_bytes(b"")
    page = alice_client.get("/storage/file/empty.cat")
    assert page.status_code == 200
    assert b"This file is empty." in page.content
    stored = alice_client.get("/catalogues/storage/empty.cat")
    assert stored.status_code == 400
    assert b"the catalogue file is empty" in stored.content


def test_astropy_may_not_reach_the_network(listener: tuple[str, list[str]]) -> None:
    from astropy.utils.data import conf, get_readable_fileobj

    url, hits = listener
    assert conf.allow_internet is False
    with pytest.raises(OSError), get_readable_fileobj(url) as fh:
        fh.read()
    assert hits == []


def test_a_real_catalogue_still_reads(alice_client: Any, home: Path) -> None:
    lines = ["#   1 NUMBER   Running object number", "#   2 X_IMAGE", "#   3 Y_IMAGE", "#   4 MAG_AUTO"]
    lines += [f"{i} {i * 2.0} {i * 3.0} {18 + i / 10:.4f}" for i in range(1, 4)]
    (home / "good.cat").write_text("\n".join(lines) + "\n")
    assert alice_client.get("/storage/file/good.cat").context["table"].rows[0] == ["1", "2.0", "3.0", "18.1"]
    assert alice_client.get("/catalogues/storage/good.cat").status_code == 200


def test_astropy_is_offline_in_a_fresh_portal_process() -> None:
    # The settings set it when astropy's modules are first imported, whoever imports them (settings no
    # longer import astropy: it cost every process 0.4 s of start-up).
    code = (
        "import django; django.setup()\n"
        "import sys; assert 'astropy' not in sys.modules, 'settings imported astropy'\n"
        "from astropy.io import fits\n"
        "from astropy.utils import iers\n"
        "from astropy.utils.data import conf\n"
        "print(conf.allow_internet, iers.conf.auto_download)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
