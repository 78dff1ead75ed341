"""Fast JSON for the hot paths (each record written and read, each data line): orjson, with
the standard library deciding whatever orjson would change or refuse.

orjson is about ten times faster than ``json`` at writing a record and four times at reading
one, which is most of the core's per-sample cost. It differs in three ways that matter here,
each handled by falling back to ``json``: it reads integers beyond 64 bits as floats (so a
line holding a run of 19+ digits is read by ``json``), it refuses text with lone surrogates,
and it refuses ``NaN`` and nesting deeper than 1,024 (``json`` then reads the line, or raises
its own error). It writes ``NaN`` as ``null``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_DIGITS_BYTES = re.compile(rb"\d{19}")
_LONG_DIGITS_TEXT = re.compile(r"\d{19}")
_WRITE = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def loads(data: bytes | str) -> Any:
    """Parse one JSON document; errors are :class:`json.JSONDecodeError` or ``ValueError``
    (a number of 4,300+ digits), as from ``json.loads``."""
    pattern = _LONG_DIGITS_BYTES if isinstance(data, bytes) else _LONG_DIGITS_TEXT
    if pattern.search(data) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def dumps_line(value: Any) -> bytes:
    """One JSON line (UTF-8, newline-terminated). Text UTF-8 cannot hold (a lone surrogate a
    model emitted) and integers beyond 64 bits go through ``json``, with escapes."""
    try:
        return orjson.dumps(value, default=str, option=_WRITE)
    except TypeError:
        try:
            return (json.dumps(value, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        except UnicodeEncodeError:
            return (json.dumps(value, ensure_ascii=True, default=str) + "\n").encode("ascii")
