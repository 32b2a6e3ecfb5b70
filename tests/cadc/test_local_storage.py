"""LocalStorage: a user's directory, with path safety."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from orchestration.storage.base import AlreadyExists, InvalidPath, NotFound, StorageError
from orchestration.storage.local import LocalStorage


@pytest.fixture
def space(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "users" / "alice")


def test_it_makes_folders_and_lists_folders_first(space: LocalStorage) -> None:
    space.mkdir("results")
    space.mkdir("results/night 1")
    space.upload("results/b.txt", io.BytesIO(b"bb"))
    space.upload("results/A.txt", io.BytesIO(b"a"))
    assert [(n.name, n.path, n.is_dir, n.size) for n in space.list("results")] == [
        ("night 1", "results/night 1", True, 0),
        ("A.txt", "results/A.txt", False, 1),
        ("b.txt", "results/b.txt", False, 2),
    ]
    assert [n.name for n in space.list("results", offset=1, limit=1)] == ["A.txt"]
    assert space.count("results") == 3


def test_it_streams_uploads_and_downloads(space: LocalStorage) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    node = space.upload("data.bin", io.BytesIO(payload))
    assert node.size == len(payload)
    with space.open_read("data.bin") as fh:
        assert fh.read() == payload
    assert space.usage() == len(payload)


def test_it_enforces_the_upload_limit_and_leaves_nothing_behind(space: LocalStorage) -> None:
    with pytest.raises(StorageError, match="1 MB upload limit"):
        space.upload("big.bin", io.BytesIO(b"x" * (1024 * 1024 + 1)), max_bytes=1024 * 1024)
    assert space.list() == []
    assert os.listdir(space.root) == []


def test_it_handles_spaces_and_non_ascii_names(space: LocalStorage) -> None:
    space.mkdir("données du ciel")
    space.upload("données du ciel/étoile M31 ★.txt", io.BytesIO(b"ciel"))
    assert space.list("données du ciel")[0].name == "étoile M31 ★.txt"
    assert space.open_read("données du ciel/étoile M31 ★.txt").read() == b"ciel"


BAD_PATHS = ["..", "../bob", "a/../../bob", "/etc/passwd", "x\0y", "C:/x", "\\\\server\\x"]


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_it_refuses_paths_that_escape(space: LocalStorage, bad: str) -> None:
    with pytest.raises(InvalidPath):
        space.info(bad)
    with pytest.raises(InvalidPath):
        space.upload(bad, io.BytesIO(b"x"))


def test_it_refuses_symlinks_out_of_the_space(space: LocalStorage, tmp_path: Path) -> None:
    secret_dir = tmp_path / "users" / "bob"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("bob's")
    os.symlink(secret_dir, space.root / "bob")
    os.symlink(secret_dir / "secret.txt", space.root / "s.txt")
    for action in (
        lambda: space.list("bob"),
        lambda: space.open_read("bob/secret.txt"),
        lambda: space.open_read("s.txt"),
        lambda: space.upload("bob/new.txt", io.BytesIO(b"x")),
        lambda: space.mkdir("bob/dir"),
        lambda: space.move("s.txt", "bob/moved.txt"),
    ):
        with pytest.raises(InvalidPath, match="outside your storage space"):
            action()
    space.delete("bob")  # removes the link, never what it points to
    assert (secret_dir / "secret.txt").read_text() == "bob's"
    assert space.usage() == len(str(secret_dir / "secret.txt"))  # only the remaining link itself


def test_it_moves_renames_and_refuses_to_clobber(space: LocalStorage) -> None:
    space.mkdir("a")
    space.upload("a/f.txt", io.BytesIO(b"1"))
    space.upload("g.txt", io.BytesIO(b"2"))
    assert space.move("a/f.txt", "h.txt").path == "h.txt"
    with pytest.raises(AlreadyExists):
        space.move("h.txt", "g.txt")
    with pytest.raises(InvalidPath, match="into itself"):
        space.move("a", "a/b")
    with pytest.raises(NotFound):
        space.move("nothing", "x")


def test_it_deletes_recursively_only_when_asked(space: LocalStorage) -> None:
    space.mkdir("a")
    space.mkdir("a/b")
    space.upload("a/b/f.txt", io.BytesIO(b"1"))
    with pytest.raises(StorageError, match="not empty"):
        space.delete("a")
    space.delete("a", recursive=True)
    assert space.list() == []
    with pytest.raises(InvalidPath):
        space.delete("")
    with pytest.raises(NotFound):
        space.delete("a")


def test_it_refuses_overwrite_unless_asked(space: LocalStorage) -> None:
    space.upload("f.txt", io.BytesIO(b"one"))
    with pytest.raises(AlreadyExists):
        space.upload("f.txt", io.BytesIO(b"two"))
    space.upload("f.txt", io.BytesIO(b"three"), overwrite=True)
    assert space.open_read("f.txt").read() == b"three"


def test_it_reports_missing_things_clearly(space: LocalStorage) -> None:
    with pytest.raises(NotFound, match="'nope' does not exist"):
        space.list("nope")
    with pytest.raises(NotFound, match="folder 'nope' does not exist"):
        space.upload("nope/f.txt", io.BytesIO(b"x"))
    space.mkdir("d")
    with pytest.raises(StorageError, match="is a folder"):
        space.open_read("d")


def test_it_explains_a_move_to_where_the_item_already_is(space: LocalStorage) -> None:
    space.mkdir("a")
    space.upload("a/f.txt", io.BytesIO(b"1"))
    with pytest.raises(InvalidPath, match="'a/f.txt' is already there"):
        space.move("a/f.txt", "a/f.txt")
    with pytest.raises(InvalidPath, match="cannot be moved into itself"):
        space.move("a", "a/b")
