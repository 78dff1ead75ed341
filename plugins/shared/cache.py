"""A response cache on disk (SQLite) that any backend may use.

Why: a rerun, a resume after a crash or a second report over the same questions should not
pay for (or wait on) a model call whose answer is already known. The key is the SHA-256 of a
canonical JSON of everything that decides the answer (backend type, endpoint, model, messages,
tools, tool choice, generation parameters, mode) and never a credential; the value is the
:class:`~harness.records.ChatResponse` as a dict.

One file serves every run on the machine: ``$HARNESS_CACHE_DIR/responses.sqlite``, else
``$XDG_CACHE_HOME/harness/responses.sqlite``, else ``~/.cache/harness/responses.sqlite``. It is
opened in WAL mode, so several runs (processes) may read and write it at once, and every
``put`` commits at once, so a killed run keeps what it was answered.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from harness import ChatResponse
from harness import ToolCall

FILENAME = "responses.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def default_cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/harness``, else ``~/.cache/harness``."""
    explicit = os.environ.get("HARNESS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "harness"


def default_cache_path() -> Path:
    return default_cache_dir() / FILENAME


def cache_key(parts: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no whitespace) of ``parts``.

    Callers pass only what decides the answer; a credential must never be part of it (the key
    is stored in clear and shared across runs)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def response_from_dict(data: dict[str, Any]) -> ChatResponse:
    """The inverse of :meth:`ChatResponse.to_dict`."""
    calls = data.get("tool_calls")
    return ChatResponse(
        text=data.get("text"),
        tool_calls=None if calls is None else tuple(ToolCall(**c) for c in calls),
        input_tokens=data.get("input_tokens"),
        output_tokens=data.get("output_tokens"),
        finish_reason=data.get("finish_reason"),
        timing=dict(data.get("timing") or {}),
        extra=dict(data.get("extra") or {}),
    )


class ResponseCache:
    """A key -> ChatResponse store in one SQLite file, safe to share between threads.

    One connection guarded by a lock: look-ups are sub-millisecond, so a lock costs less than
    a connection per worker thread and keeps ``close`` simple.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process
        self._db.execute(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"response cache {self.path} is closed")
        return self._db

    def get(self, key: str) -> ChatResponse | None:
        with self._lock:
            row = (
                self._conn().execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
            )
        return None if row is None else response_from_dict(json.loads(row[0]))

    def put(self, key: str, response: ChatResponse) -> None:
        value = json.dumps(response.to_dict(), ensure_ascii=False)
        with self._lock:
            self._conn().execute(
                "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                (key, value, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def clear(self) -> int:
        """Delete every entry and give the space back; return how many there were."""
        with self._lock:
            db = self._conn()
            count = int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
            db.execute("DELETE FROM responses")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("VACUUM")
        return count

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def size_on_disk(path: Path) -> int:
    """Bytes of the database and its WAL and shared-memory files."""
    files = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    return sum(f.stat().st_size for f in files if f.exists())


def cache_stats(path: str | Path | None = None) -> dict[str, Any]:
    """Location, entry count and size on disk, without creating a cache that is not there."""
    target = Path(path) if path is not None else default_cache_path()
    if not target.exists():
        return {"path": str(target), "exists": False, "entries": 0, "size_bytes": 0}
    cache = ResponseCache(target)
    try:
        entries = len(cache)
    finally:
        cache.close()
    return {
        "path": str(target),
        "exists": True,
        "entries": entries,
        "size_bytes": size_on_disk(target),
    }


def clear_cache(path: str | Path | None = None) -> int:
    """Empty the cache at ``path`` (default location when None); 0 when there is none."""
    target = Path(path) if path is not None else default_cache_path()
    if not target.exists():
        return 0
    cache = ResponseCache(target)
    try:
        return cache.clear()
    finally:
        cache.close()
