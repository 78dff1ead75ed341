"""Reading the JSON a user hands over (task data, recorded outputs): every way a file can be
unreadable becomes one :class:`InputError` naming the file, the line and the fix.

Why a core helper: each plugin that reads JSON Lines otherwise meets, one at a time, the
inputs that turn into tracebacks: bytes that are not UTF-8, nesting deeper than Python's
recursion limit, integers longer than ``int`` will parse (4,300 digits), a line that is JSON
but not an object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness._errors import InputError
from harness._json import loads

TOO_LONG = "a number of more than 4,300 digits (Python's limit); write it as a string"


def parse_json(data: str | bytes, where: str | Path, line: int | None = None) -> Any:
    """Parse one JSON document. ``where`` (a file, or any text such as ``"data.jsonl: line 3"``)
    and ``line`` start every error; the message is only built when there is one."""
    try:
        return loads(data)
    except (ValueError, RecursionError) as exc:
        place = f"{where}: line {line}" if line is not None else str(where)
        raise _parse_error(exc, data, place) from None


def _parse_error(exc: Exception, data: str | bytes, where: str) -> InputError:
    if isinstance(exc, UnicodeDecodeError):
        return InputError(
            f"{where}: not UTF-8 (byte {exc.start + 1} is {data[exc.start : exc.start + 1]!r}); "
            "re-save the file as UTF-8"
        )
    if isinstance(exc, json.JSONDecodeError):
        return InputError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno})")
    if isinstance(exc, RecursionError):
        return InputError(f"{where}: JSON nested too deeply to read; flatten the value")
    return InputError(f"{where}: {TOO_LONG}")  # an integer with more digits than int() accepts


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line of a JSON Lines file, read as bytes
    so that a bad byte is reported with its line. A missing file is an error too."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror}); check the path") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, parse_json(line, path, number)
