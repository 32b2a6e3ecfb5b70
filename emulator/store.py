"""The emulator's state: JSON documents by kind and id in SQLite, so it survives restarts.

One connection shared by the server threads behind a re-entrant lock; `transaction()` makes
check-then-write sequences (quota checks, unique names) atomic.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (kind, id)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    """Documents (dicts with an "id") grouped by kind ("server", "image", ...)."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves in transaction().
        self._db = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL" if path else "PRAGMA journal_mode=MEMORY")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._depth = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outermost = self._depth == 0
            if outermost:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outermost:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outermost:
                self._db.execute("COMMIT")

    def get(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM objects WHERE kind = ? AND id = ?", (kind, obj_id)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def all(self, kind: str, **equal: Any) -> list[dict[str, Any]]:
        """Every document of a kind in creation order, keeping those whose fields equal `equal`."""
        with self._lock:
            rows = self._db.execute("SELECT data FROM objects WHERE kind = ? ORDER BY seq", (kind,))
            docs = [json.loads(row[0]) for row in rows.fetchall()]
        return [doc for doc in docs if all(doc.get(k) == v for k, v in equal.items())]

    def put(self, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Insert or replace by id (keeping the original creation order)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO objects (kind, id, data) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data",
                (kind, doc["id"], json.dumps(doc)),
            )
        return doc

    def delete(self, kind: str, obj_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute("DELETE FROM objects WHERE kind = ? AND id = ?", (kind, obj_id))
        return cursor.rowcount > 0

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Cloud:
    """What every service handler needs: the store and the timing of simulated work."""

    def __init__(
        self, store: Store, build_seconds: float, snapshot_seconds: float, public_url: str | None = None
    ) -> None:
        self.store = store
        self.build_seconds = build_seconds
        self.snapshot_seconds = snapshot_seconds
        self.public_url = public_url.rstrip("/") if public_url else None
        self.service_urls: dict[str, str] = {}  # "/compute" -> its own listener, when it has one
        self.region = store.get_meta("region") or "RegionOne"
