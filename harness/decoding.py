"""Output decoders: how raw model output becomes a list of calls.

Model output is untrusted data: decoders parse it (``ast``, ``json``, regular expressions) and
never evaluate it. A failure is a :class:`DecodeError` with a ``kind`` that error analyses can
count, never a crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.interfaces import BuildContext
from harness.records import ChatResponse, Outcome, ToolCall

DECODE_ERROR_KINDS = ("empty", "syntax", "shape", "native")


class DecodeError(Exception):
    """The output could not be read as calls.

    ``kind``: ``empty`` (nothing to decode), ``syntax`` (not parseable in the expected format),
    ``shape`` (parsed, but not a list of calls), ``native`` (the backend's tool calls were
    malformed).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.kind}: {self.args[0]}"


class Decoder:
    """Turns a response's raw text and native tool calls into calls."""

    def __init__(self, params: dict[str, Any], context: BuildContext) -> None:
        self.params = params
        self.context = context

    def decode(self, text: str | None, tool_calls: tuple[ToolCall, ...] | None) -> list[ToolCall]:
        raise NotImplementedError(f"{type(self).__name__} does not implement decode()")


def decode_outcome(decoder: Decoder, response: ChatResponse, fields: dict[str, Any]) -> Outcome:
    """A single-turn outcome: the decoded calls, or ``calls=None`` and ``fields["decode_error"]``
    (the typed reason) when the output could not be decoded. The raw text is always kept."""
    fields = dict(fields)
    calls: tuple[ToolCall, ...] | None
    try:
        calls = tuple(decoder.decode(response.text, response.tool_calls))
    except DecodeError as exc:
        calls, fields["decode_error"] = None, str(exc)
    return Outcome(output=response.text, calls=calls, responses=(response,), fields=fields)


def load_decoder(name: str, params: dict[str, Any] | None = None) -> Decoder:
    """Build a registered decoder by name (tasks call this while setting themselves up)."""
    from harness.plugins import get_host

    component = get_host().component("decoder", name)
    return component.load()(dict(params or {}), BuildContext(id=name, base_dir=Path.cwd()))
