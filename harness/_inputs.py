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


def parse_json(data: str | bytes, where: str) -> Any:
    """Parse one JSON document; ``where`` (``"data.jsonl: line 3"``) starts every error."""
    try:
        return loads(data)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{where}: not UTF-8 (byte {exc.start + 1} is {data[exc.start : exc.start + 1]!r}); "
            "re-save the file as UTF-8"
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply to read; flatten the value") from None
    except ValueError:  # an integer with more digits than int() accepts
        raise InputError(f"{where}: {TOO_LONG}") from None


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
                yield number, parse_json(line, f"{path}: line {number}")
