"""VOSpace and the archive with a proxy certificate over TLS, as the portal uses them for CADC users
who have no service token: the real vos and cadcdata clients present the certificate as a client
certificate, and the local server knows the user only from it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from orchestration.archive import ArchiveAccessDenied, CadcArchive
from orchestration.storage.base import PermissionDenied
from orchestration.storage.vospace import VOSpaceStorage
from tests.cadc_server import CadcTestServer


def proxy_file(server: CadcTestServer, tmp_path: Path, user: str = "alice", **kw: object) -> str:
    path = tmp_path / f"{user}-proxy.pem"
    path.write_bytes(server.make_proxy_pem(user, **kw))  # type: ignore[arg-type]
    path.chmod(0o600)
    return str(path)


def test_vospace_works_with_a_proxy_certificate(cadc_tls_server: CadcTestServer, tmp_path: Path) -> None:
    assert cadc_tls_server.base_url.startswith("https://")
    vault = VOSpaceStorage("vos:alice", certfile=proxy_file(cadc_tls_server, tmp_path, days=5))
    vault.mkdir("results")
    data = bytes(range(256)) * 1000
    vault.upload("results/cat.fits", io.BytesIO(data))
    assert [(n.name, n.size) for n in vault.list("results")] == [("cat.fits", len(data))]
    with vault.open_read("results/cat.fits") as fh:
        assert fh.read() == data
    vault.delete("results", recursive=True)
    assert vault.list() == []
    assert cadc_tls_server.auth_seen
    assert {how for _, how in cadc_tls_server.auth_seen} == {"certificate"}
    assert {user for user, _ in cadc_tls_server.auth_seen} == {"alice"}


@pytest.mark.parametrize(
    ("kw", "why"),
    [({"days": 5, "trusted": False}, "not signed by the server's authority"), ({"days": -1}, "expired")],
)
def test_a_certificate_the_service_refuses_gets_a_clear_message(
    cadc_tls_server: CadcTestServer, tmp_path: Path, kw: dict[str, object], why: str
) -> None:
    vault = VOSpaceStorage("vos:alice", certfile=proxy_file(cadc_tls_server, tmp_path, **kw))
    with pytest.raises(PermissionDenied, match="did not accept your credentials"):
        vault.list()
    assert cadc_tls_server.auth_seen == [], why


def test_one_users_certificate_does_not_open_anothers_space(
    cadc_tls_server: CadcTestServer, tmp_path: Path
) -> None:
    alice = VOSpaceStorage("vos:alice", certfile=proxy_file(cadc_tls_server, tmp_path, "alice", days=5))
    alice.upload("private.txt", io.BytesIO(b"secret"))
    bob_as_alice = VOSpaceStorage("vos:alice", certfile=proxy_file(cadc_tls_server, tmp_path, "bob", days=5))
    with pytest.raises(PermissionDenied):
        bob_as_alice.open_read("private.txt").read()


def test_the_archive_serves_proprietary_data_to_its_owners_certificate(
    cadc_tls_server: CadcTestServer, tmp_path: Path
) -> None:
    source = tmp_path / "1056213p.fits.fz"
    source.write_bytes(b"SIMPLE  =                    T" + bytes(2850))
    cadc_tls_server.add_archive_file("cadc:CFHT/1056213p.fits.fz", source, owner="alice")
    dest = tmp_path / "scratch"
    dest.mkdir()
    with pytest.raises(ArchiveAccessDenied, match="it may be proprietary"):
        CadcArchive().fetch("1056213p", dest)  # anonymous
    got = CadcArchive(certfile=proxy_file(cadc_tls_server, tmp_path, days=5)).fetch("1056213p", dest)
    assert got.read_bytes() == source.read_bytes()
    assert ("alice", "certificate") in cadc_tls_server.auth_seen
    bob = CadcArchive(certfile=proxy_file(cadc_tls_server, tmp_path, "bob", days=5))
    with pytest.raises(ArchiveAccessDenied, match="it may be proprietary"):
        bob.fetch("1056213p", dest)
    untrusted = CadcArchive(certfile=proxy_file(cadc_tls_server, tmp_path, days=5, trusted=False))
    with pytest.raises(ArchiveAccessDenied, match="did not accept your proxy certificate"):
        untrusted.fetch("1056213p", dest)
    assert [p.name for p in dest.iterdir()] == ["1056213p.fits.fz"]  # no partial files left
