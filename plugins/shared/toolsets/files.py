"""Tool set ``files``: a toy file system held in memory, rebuilt for every call.

Nothing here touches the real disk: paths are keys of an inline dictionary, and ``write_file``
changes only the per-call copy (each sandboxed call is a fresh process). Paths are relative,
``/``-separated; absolute paths, ``..``, backslashes and NUL are refused before any lookup, so
path-traversal arguments fail as errors instead of reading anything.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

INITIAL_FILES = {
    "readme.txt": "Welcome to the toy file system.\n",
    "docs/guide.md": "# Guide\nUse read_file to read a file.\n",
    "docs/notes.txt": "meeting at 10:00\nbuy milk\n",
    "data/numbers.csv": "n,square\n1,1\n2,4\n3,9\n",
}
MAX_CONTENT = 4096


#: the allow-list: each function's spec, kept as data beside this module
TOOLS = json.loads(Path(__file__).with_suffix(".json").read_text(encoding="utf-8"))


def _clean(path: str, allow_root: bool = False) -> str:
    """A normalised relative path, or ValueError for anything that could escape the root."""
    if "\x00" in path or "\\" in path:
        raise ValueError("invalid character in path")
    if path.startswith("/") or path.startswith("~"):
        raise ValueError("absolute paths are not allowed")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("path traversal ('..') is not allowed")
    if not parts and not allow_root:
        raise ValueError("empty path")
    return "/".join(parts)


def list_files(directory: str) -> list:
    prefix = _clean(directory, allow_root=True)
    prefix = prefix + "/" if prefix else ""
    return sorted(p for p in INITIAL_FILES if p.startswith(prefix))


def read_file(path: str) -> dict:
    key = _clean(path)
    if key not in INITIAL_FILES:
        raise FileNotFoundError(f"no such file: {key[:80]!r}")
    return {"path": key, "content": INITIAL_FILES[key]}


def write_file(path: str, content: str) -> dict:
    key = _clean(path)
    if len(content) > MAX_CONTENT:
        raise ValueError("content too long")
    files = dict(INITIAL_FILES)
    files[key] = content
    return {"path": key, "bytes_written": len(content.encode("utf-8")), "files": len(files)}


def find_files(pattern: str) -> list:
    name_pattern = pattern[:64]
    return sorted(
        p for p in INITIAL_FILES if fnmatch.fnmatchcase(p.rsplit("/", 1)[-1], name_pattern)
    )
