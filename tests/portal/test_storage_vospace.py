"""The storage page on VOSpace: the real vos client against the local CADC server."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User

from portal import certificates
from tests.cadc_server import CadcTestServer, cadc_server, cadc_tls_server  # noqa: F401 (fixtures)


@pytest.fixture
def vault(cadc_server: CadcTestServer, settings: Any) -> CadcTestServer:  # noqa: F811
    settings.STORAGE_BACKEND = "vospace"
    settings.CADC_REGISTRY_URL = cadc_server.registry_url
    settings.VOSPACE_TOKEN = cadc_server.issue_token("alice")
    settings.STORAGE_UPLOAD_MAX_BYTES = 10 * 1024 * 1024
    return cadc_server


def upload(client: Any, name: str, data: bytes, folder: str = "") -> Any:
    url = f"/storage/upload/?folder={quote(folder)}&name={quote(name)}"
    return client.post(url, data=data, content_type="application/octet-stream")


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_it_browses_uploads_moves_downloads_and_deletes(alice_client: Any, vault: CadcTestServer) -> None:
    assert b"This folder is empty" in alice_client.get("/storage/").content
    alice_client.post("/storage/mkdir/", {"folder": "", "name": "results"})
    assert vault.nodes["/alice/results"].is_dir
    data = bytes(range(256)) * 4096
    assert upload(alice_client, "cat.fits", data).json()["size"] == len(data)
    listing = alice_client.get("/storage/")
    assert [r["node"].name for r in listing.context["rows"]] == ["results", "cat.fits"]
    response = alice_client.post(
        "/storage/move/", {"path": "cat.fits", "dest": "results/cat.fits"}, follow=True
    )
    assert "Moved 'cat.fits' to 'results/cat.fits'." in messages_of(response)
    download = alice_client.get("/storage/download/results/cat.fits")
    assert b"".join(download.streaming_content) == data
    response = alice_client.post("/storage/delete/", {"path": "results", "recursive": "on"}, follow=True)
    assert "Deleted 'results'." in messages_of(response)
    assert "/alice/results" not in vault.nodes


def test_it_explains_names_vospace_does_not_accept(alice_client: Any, vault: CadcTestServer) -> None:
    response = upload(alice_client, "my cat.txt", b"x")
    assert response.status_code == 400
    assert "is not a valid VOSpace name" in response.json()["error"]


def test_it_explains_a_vault_that_is_down(alice_client: Any, vault: CadcTestServer) -> None:
    vault.unavailable.add("vault")
    response = alice_client.get("/storage/")
    assert response.status_code == 503
    assert b"VOSpace is temporarily unavailable" in response.content
    vault.unavailable.clear()
    response = alice_client.get("/storage/browse/results", follow=True)  # a sub-folder goes back to the top
    assert "'results' does not exist." in messages_of(response)


def test_it_explains_rejected_credentials(alice_client: Any, vault: CadcTestServer) -> None:
    vault.reject_credentials = True
    response = alice_client.get("/storage/")
    assert response.status_code == 400
    assert b"VOSpace did not accept your credentials" in response.content


def test_it_asks_for_a_certificate_when_there_is_none(
    alice_client: Any, vault: CadcTestServer, settings: Any
) -> None:
    settings.VOSPACE_TOKEN = ""
    response = alice_client.get("/storage/")
    assert b"needs a CADC proxy certificate" in response.content


@pytest.fixture
def tls_vault(cadc_tls_server: CadcTestServer, settings: Any, tmp_path: Any) -> CadcTestServer:  # noqa: F811
    """VOSpace over HTTPS, reached with each user's own proxy certificate (no service token)."""
    settings.STORAGE_BACKEND = "vospace"
    settings.CADC_REGISTRY_URL = cadc_tls_server.registry_url
    settings.VOSPACE_TOKEN = ""
    settings.PROXY_CERT_DIR = str(tmp_path / "proxies")
    settings.STORAGE_UPLOAD_MAX_BYTES = 10 * 1024 * 1024
    return cadc_tls_server


def test_it_uses_the_users_proxy_certificate(
    alice_client: Any, alice: User, tls_vault: CadcTestServer
) -> None:
    from orchestration.backends import storage_for
    from orchestration.identity.cadc import read_proxy_certificate
    from orchestration.storage.vospace import VOSpaceStorage

    certificates.store(alice, read_proxy_certificate(tls_vault.make_proxy_pem("alice", 5)))
    storage = storage_for(alice)
    assert isinstance(storage, VOSpaceStorage)
    assert storage.base_uri == "vos:alice"
    data = bytes(range(256)) * 1024
    assert upload(alice_client, "cat.fits", data).json()["size"] == len(data)
    listing = alice_client.get("/storage/")
    assert [r["node"].name for r in listing.context["rows"]] == ["cat.fits"]
    assert b"".join(alice_client.get("/storage/download/cat.fits").streaming_content) == data
    # The server knew alice only from the certificate her browser never saw.
    assert {how for _, how in tls_vault.auth_seen} == {"certificate"}
    assert {user for user, _ in tls_vault.auth_seen} == {"alice"}


def test_it_explains_a_certificate_vospace_refuses(
    alice_client: Any, alice: User, tls_vault: CadcTestServer
) -> None:
    from orchestration.identity.cadc import read_proxy_certificate

    pem = tls_vault.make_proxy_pem("alice", 5, trusted=False)  # not issued by the service's authority
    certificates.store(alice, read_proxy_certificate(pem))
    response = alice_client.get("/storage/")
    assert response.status_code == 400
    assert b"VOSpace did not accept your credentials" in response.content
