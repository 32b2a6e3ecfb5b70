"""VOSpaceStorage with the real vos client against the local vault."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from orchestration.storage.base import (
    AlreadyExists,
    InvalidPath,
    NotFound,
    PermissionDenied,
    StorageError,
    StorageUnavailable,
)
from orchestration.storage.vospace import VOSpaceStorage
from tests.cadc_server import CadcTestServer


@pytest.fixture
def vault(cadc_server: CadcTestServer) -> VOSpaceStorage:
    return VOSpaceStorage("vos:alice", token=cadc_server.issue_token("alice"))


def test_it_lists_an_empty_space(vault: VOSpaceStorage) -> None:
    assert vault.list() == []
    assert vault.info("").is_dir


def test_it_makes_nested_folders_and_lists_them(vault: VOSpaceStorage) -> None:
    vault.mkdir("results")
    vault.mkdir("results/2023-08-21")
    vault.upload("results/2023-08-21/cat.txt", io.BytesIO(b"1 2 3\n"))
    vault.upload("results/a.txt", io.BytesIO(b"x"))
    listing = vault.list("results")
    assert [(n.name, n.path, n.is_dir) for n in listing] == [
        ("2023-08-21", "results/2023-08-21", True),
        ("a.txt", "results/a.txt", False),
    ]
    assert vault.info("results/2023-08-21/cat.txt").size == 6
    assert vault.count("results") == 2
    assert vault.list("results", offset=1, limit=1)[0].name == "a.txt"


def test_it_refuses_a_folder_that_exists(vault: VOSpaceStorage) -> None:
    vault.mkdir("results")
    with pytest.raises(AlreadyExists, match="already exists"):
        vault.mkdir("results")


def test_it_refuses_a_folder_in_a_missing_parent(vault: VOSpaceStorage) -> None:
    with pytest.raises(NotFound):
        vault.mkdir("nothere/child")


def test_it_uploads_and_downloads_100_mb_with_the_same_md5(vault: VOSpaceStorage, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    sent = hashlib.md5(usedforsecurity=False)
    block = os.urandom(1024 * 1024)
    with open(src, "wb") as out:
        for i in range(100):
            chunk = i.to_bytes(4, "big") + block[4:]
            sent.update(chunk)
            out.write(chunk)
    vault.mkdir("big")
    with open(src, "rb") as fh:
        node = vault.upload("big/big.bin", fh)
    assert node.size == 100 * 1024 * 1024
    received = hashlib.md5(usedforsecurity=False)
    with vault.open_read("big/big.bin") as stream:
        while chunk := stream.read(1024 * 1024):
            received.update(chunk)
    assert received.hexdigest() == sent.hexdigest()
    assert vault.usage() == 100 * 1024 * 1024


def test_it_handles_non_ascii_names(vault: VOSpaceStorage) -> None:
    vault.mkdir("données")
    vault.upload("données/étoile_M31.txt", io.BytesIO(b"ciel"))
    assert [n.name for n in vault.list("données")] == ["étoile_M31.txt"]
    assert vault.open_read("données/étoile_M31.txt").read() == b"ciel"


def test_it_explains_that_vospace_names_cannot_have_spaces(vault: VOSpaceStorage) -> None:
    with pytest.raises(InvalidPath, match="no spaces"):
        vault.mkdir("my results")


def test_it_refuses_paths_out_of_the_space(vault: VOSpaceStorage) -> None:
    for bad in ("../bob", "/bob", "a/../../bob", "x\0y"):
        with pytest.raises(InvalidPath):
            vault.list(bad)


def test_it_moves_and_deletes(vault: VOSpaceStorage) -> None:
    vault.mkdir("a")
    vault.mkdir("a/b")
    vault.upload("a/b/f.txt", io.BytesIO(b"data"))
    moved = vault.move("a/b/f.txt", "a/g.txt")
    assert moved.path == "a/g.txt" and moved.size == 4
    with pytest.raises(NotFound):
        vault.info("a/b/f.txt")
    with pytest.raises(StorageError, match="not empty"):
        vault.delete("a")
    vault.delete("a", recursive=True)
    assert vault.list() == []
    with pytest.raises(NotFound):
        vault.delete("a")


def test_it_refuses_to_overwrite_unless_asked(vault: VOSpaceStorage) -> None:
    vault.upload("f.txt", io.BytesIO(b"one"))
    with pytest.raises(AlreadyExists):
        vault.upload("f.txt", io.BytesIO(b"two"))
    vault.upload("f.txt", io.BytesIO(b"three"), overwrite=True)
    assert vault.open_read("f.txt").read() == b"three"


def test_it_says_when_credentials_are_rejected(cadc_server: CadcTestServer, vault: VOSpaceStorage) -> None:
    vault.mkdir("results")
    cadc_server.reject_credentials = True
    for action in (lambda: vault.list(), lambda: vault.upload("x.txt", io.BytesIO(b"x"))):
        with pytest.raises(PermissionDenied, match="did not accept your credentials"):
            action()


def test_it_says_when_vospace_is_unavailable(cadc_server: CadcTestServer, vault: VOSpaceStorage) -> None:
    vault.mkdir("results")
    cadc_server.unavailable.add("vault")
    for action in (
        lambda: vault.list("results"),
        lambda: vault.mkdir("other"),
        lambda: vault.upload("results/x.txt", io.BytesIO(b"x")),
    ):
        with pytest.raises(StorageUnavailable, match="temporarily unavailable"):
            action()


def test_it_says_when_vospace_cannot_be_reached(cadc_server: CadcTestServer) -> None:
    storage = VOSpaceStorage("vos:alice", token=cadc_server.issue_token("alice"))
    storage.list()
    cadc_server.stop()
    with pytest.raises(StorageUnavailable, match="cannot be reached"):
        storage.list()


def test_it_keeps_users_apart(cadc_server: CadcTestServer) -> None:
    bobs_view = VOSpaceStorage("vos:alice", token=cadc_server.issue_token("bob"))
    with pytest.raises(PermissionDenied, match="not allowed"):
        bobs_view.list()
