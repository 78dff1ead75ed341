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
from typing import Any

import orjson

#: Every byte to a space but ASCII digits to "0": a run of 19 digits is then a plain substring
#: search, an order of magnitude faster than a regular expression over long data lines.
_DIGITS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_RUN = b"0" * 19
_WRITE = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def loads(data: bytes | str) -> Any:
    """Parse one JSON document; errors are :class:`json.JSONDecodeError` or ``ValueError``
    (a number of 4,300+ digits), as from ``json.loads``."""
    if not _has_long_number(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def _has_long_number(data: bytes | str) -> bool:
    """Whether ``data`` holds 19 ASCII digits in a row (an integer orjson might not keep)."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    return _LONG_RUN in raw.translate(_DIGITS)


def dumps_line(value: Any) -> bytes:
    """One JSON line (UTF-8, newline-terminated). Text UTF-8 cannot hold (a lone surrogate a
    model emitted) and integers beyond 64 bits go through ``json``, with escapes."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # non-text keys (half the speed when allowed from the start), or worse
        pass
    try:
        return orjson.dumps(value, default=str, option=_WRITE)
    except TypeError:
        try:
            return (json.dumps(value, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        except UnicodeEncodeError:
            return (json.dumps(value, ensure_ascii=True, default=str) + "\n").encode("ascii")
