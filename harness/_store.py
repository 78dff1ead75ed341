"""The append-only sample store: ``samples.jsonl`` in a run directory.

Records are appended as samples finish and fsynced in small batches, so a crash (even
SIGKILL) loses at most the last unsynced batch, which a rerun recomputes. On reopening, a torn
last line is cut off and the keys already present are skipped.

A record's key is (backend, task, sample_id), and (backend, task, sample_id, repeat) for a
record of a run with ``run.repeats`` above 1, one per repeat. A record without ``repeat`` (any
record of a run without repeats) is repeat 0: its key is the one it always had, so run
directories written before repeats existed resume unchanged.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness._errors import HarnessError
from harness._errors import RunDirError
from harness._json import dumps_line
from harness._json import loads

SAMPLES = "samples.jsonl"
LOCK = ".harness.lock"
Key = tuple[str, str, str] | tuple[str, str, str, int]  # backend, task, sample_id[, repeat]


def record_key(record: dict[str, Any]) -> Key:
    key = (record["backend"], record["task"], str(record["sample_id"]))
    return key if "repeat" not in record else (*key, record["repeat"])


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Stream the complete records of a ``samples.jsonl`` (a torn last line is ignored)."""
    for _, _, record in _numbered_records(path):
        yield record


def _numbered_records(path: Path) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """(line number, line, record) for each complete line; a line that is not a record (not
    JSON, or JSON of another shape) stops with a one-line error naming it."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                return
            yield number, line, _parse_record(line, path, number)


def _parse_record(line: bytes, path: Path, number: int) -> dict[str, Any]:
    try:
        record = loads(line)
        problem = "" if _is_record(record) else "is JSON but not a sample record"
    except (ValueError, RecursionError) as exc:
        problem = f"is not valid JSON ({str(exc).split(':')[0]})"
    if problem:
        raise RunDirError(
            f"{path}: line {number} {problem}; the file was edited or is corrupt: delete that "
            "line (its sample is played again) or choose another --out"
        )
    return record  # type: ignore[no-any-return]


def _is_record(value: Any) -> bool:
    """The fields a key is made of are there (and ``repeat``, when present, is a number)."""
    return (
        isinstance(value, dict)
        and all(k in value for k in ("backend", "task", "sample_id"))
        and type(value.get("repeat", 0)) is int
    )


def repair_tail(path: Path) -> None:
    """Cut a torn final line (a write interrupted by a crash) so appends start clean."""
    if not path.exists():
        return
    with path.open("rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.truncate(_end_of_last_line(handle, size))


def _end_of_last_line(handle: Any, size: int) -> int:
    """Offset just past the last newline (0 when there is none), scanning back in chunks."""
    end = size
    while end > 0:
        start = max(0, end - (1 << 16))
        handle.seek(start)
        cut = handle.read(end - start).rfind(b"\n")
        if cut >= 0:
            return int(start + cut + 1)
        end = start
    return 0


def drop_errors(path: Path) -> int:
    """Rewrite ``samples.jsonl`` without the records that ended in an error, so that a resumed
    run plays those samples (or repeats) again; one record per key still holds. Returns how
    many."""
    if not path.exists():
        return 0
    repair_tail(path)
    for _ in _numbered_records(path):  # refuse a corrupt file before rewriting anything
        pass
    counts = {"dropped": 0}

    def kept() -> Iterator[bytes]:
        for _, line, record in _numbered_records(path):
            if record.get("error") is None and not record.get("metric_errors"):
                yield line
            else:
                counts["dropped"] += 1

    write_atomic(path, kept(), durable=True)
    return counts["dropped"]


def write_atomic(path: Path, data: str | Iterable[bytes], durable: bool = False) -> None:
    """Replace a whole file so that a reader sees the old content or the new, never half.
    On failure (a full disk) the temporary file is removed and the error names the file;
    ``durable`` also syncs it to disk first (what cannot be derived again)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    chunks = [data.encode("utf-8", "backslashreplace")] if isinstance(data, str) else data
    try:
        with tmp.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from None


def write_error(path: Path, exc: OSError) -> HarnessError:
    """The one-line error for a file the run cannot write (a full disk, no permission)."""
    return HarnessError(
        f"{path}: cannot write ({exc.strerror or exc}); make room or fix the permissions, then "
        "rerun the same command: finished samples are kept and the run resumes"
    )


def finished_keys(path: Path) -> set[Key]:
    """Keys of the records already stored (the resume set)."""
    return {record_key(r) for r in iter_records(path)}


class RunDirLock:
    """One writer per run directory: an exclusive ``flock`` on ``.harness.lock`` that holds the
    writer's pid. The operating system releases it when the process ends, however it ends, so
    a killed run never leaves a stale lock."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self._fd: int | None = None

    def __enter__(self) -> RunDirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunDirError(
                f"{self.path.parent}: another harness run (pid {holder}) is writing this run "
                "directory; wait for it to finish, or pass --out with another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


class SampleWriter:
    """Appends JSON lines. Every ``flush_every`` records, or 0.2 s after the last hand-over,
    they are handed to the operating system (from then on a killed process loses nothing); at
    most once per ``max_delay_s``, and at the end, they are also fsynced (what a machine crash
    can lose: about a second of records). One fsync per batch cost more than the records."""

    FLUSH_DELAY_S = 0.2

    def __init__(self, path: Path, flush_every: int = 64, max_delay_s: float = 1.0) -> None:
        repair_tail(path)
        self.path = path
        self._handle = path.open("ab", buffering=1 << 18)  # the flush policy decides, not 8 KiB
        self._flush_every = flush_every
        self._max_delay_s = max_delay_s
        self._pending = 0
        self._last_sync = self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self.written = 0
        self.failed = False

    def write(self, record: dict[str, Any]) -> None:
        line = dumps_line(record)
        with self._lock:
            try:
                self._handle.write(line)
            except OSError as exc:
                self.failed = True
                raise write_error(self.path, exc) from None
            self._pending += 1
            self.written += 1
            now = time.monotonic()
            if self._pending >= self._flush_every or now - self._last_flush >= self.FLUSH_DELAY_S:
                self._flush(now)

    def _flush(self, now: float) -> None:
        self._checked(self._handle.flush)
        self._pending = 0
        self._last_flush = now
        if now - self._last_sync >= self._max_delay_s:
            self._sync(now)

    def _sync(self, now: float) -> None:
        self._checked(self._handle.flush)
        self._checked(os.fsync, self._handle.fileno())
        self._pending = 0
        self._last_sync = now

    def _checked(self, operation: Any, *args: Any) -> None:
        """Run a write; a failure (a full disk) becomes one error naming the file, and the
        writer stops (a partial last line is cut off when the run resumes)."""
        try:
            operation(*args)
        except OSError as exc:
            self.failed = True
            raise write_error(self.path, exc) from None

    def close(self) -> None:
        with self._lock:
            if self._handle.closed:
                return
            if self.failed:  # already reported; what is buffered cannot be written either
                self._close_quietly()
                return
            try:
                self._sync(time.monotonic())
            finally:
                self._close_quietly()

    def _close_quietly(self) -> None:
        with contextlib.suppress(OSError):
            self._handle.close()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
