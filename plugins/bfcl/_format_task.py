"""Task ``bfcl_format``: BFCL V4's format-sensitivity probe.

The entries of BFCL's ``format_sensitivity`` id map (200 single-turn ids over the eight AST
categories, in the data files' order as BFCL loads them), each played under every configuration
the manifest names (``formats``). A sample's id is ``<configuration>:<entry id>`` (BFCL's
``format_sensitivity_<i>:<configuration>:<entry id>`` without the running index), its
``subtask`` is the configuration, so results have a row per configuration; each record also
carries ``format``, ``format_item`` (the entry id) and ``category``.

Prompt mode: BFCL's system prompt of the configuration and the ``bfcl_format`` decoder of its
return format. Native and constrained modes: the tools of the configuration's schema style.
The checker is BFCL's, with the entry's own category (as BFCL's runner does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from harness import BuildContext
from harness import ChatResponse
from harness import InputError
from harness import Message
from harness import Outcome
from harness import Sample
from harness import select_formats

from . import NATIVE_AXES
from . import PROMPT_AXES
from . import BFCLFormatTaskParams
from . import _data as data
from ._formats import PromptFormat
from ._formats import bfcl_configurations
from ._formats import native_configurations
from ._formats import native_tools
from ._formats import prompt_for
from ._prompt import prompt_messages
from ._task import BFCLTask

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class BFCLFormatTask(BFCLTask):
    """BFCL's format-sensitivity entries under the configurations asked for."""

    params: BFCLFormatTaskParams

    def __init__(self, params: BFCLFormatTaskParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self.formats = _selected(params, context.id)
        self._decoders = {f: self._decoder_for(f) for f in self.formats}

    def format_axes(self) -> dict[str, tuple[str, ...]]:
        return dict(PROMPT_AXES if self.mode == "prompt" else NATIVE_AXES)

    def _decoder_for(self, name: str) -> Any:
        if self.params.decoder or self.mode != "prompt":
            return self.decoder  # the one named, or openai_tool_calls
        return self.context.build("decoder", PromptFormat.parse(name).decoder())

    # --- samples ------------------------------------------------------------------------------

    def samples(self) -> Iterator[Sample]:
        for category in self.categories:
            for entry, truth in self._entries(category):
                for name in self.formats:
                    yield self._format_sample(category, entry, truth, name)

    def _entries(self, category: str) -> Iterator[tuple[dict[str, Any], Any]]:
        """The category's entries named by the id map, in file order (as BFCL loads them)."""
        wanted = set(data.format_ids().get(category, ()))
        kept = 0
        for entry, truth in data.entries(category):
            if self.params.limit is not None and kept >= self.params.limit:
                return
            if entry["id"] in wanted:
                kept += 1
                yield entry, truth

    def _format_sample(self, category: str, entry: dict, truth: Any, name: str) -> Sample:
        functions = entry.get("function", [])
        tools = (native_tools(name, functions) or None) if self.mode != "prompt" else None
        return Sample(
            id=f"{name}:{entry['id']}",
            messages=tuple(
                Message(role=m["role"], content=m["content"]) for m in entry["question"][0]
            ),
            tools=tools,
            target=truth,
            metadata={
                "category": category,
                "functions": functions,
                "format": name,
                "item": entry["id"],
            },
        )

    def _prompted(self, sample: Sample) -> tuple[Message, ...]:
        """The question with the configuration's system prompt in front (prompt mode)."""
        if self.mode != "prompt":
            return sample.messages
        question = [m.to_dict() for m in sample.messages]
        prompt = prompt_for(sample.metadata["format"], sample.metadata["functions"])
        turns = prompt_messages(question, sample.metadata["functions"], prompt)
        return tuple(Message(role=m["role"], content=m["content"]) for m in turns)

    # --- answers ------------------------------------------------------------------------------

    def decode(self, sample: Sample, response: ChatResponse) -> Outcome:
        meta = sample.metadata
        fields = {
            "mode": self.mode,
            "subtask": meta["format"],
            "format": meta["format"],
            "format_item": meta["item"],
            "category": meta["category"],
        }
        return self._decoders[meta["format"]].outcome(response, fields)

    def data_files(self) -> list[Path]:
        return [data.format_ids_file(), *super().data_files()]

    def size(self) -> int:
        ids = data.format_ids()
        limit = self.params.limit
        counts = [len(ids.get(c, ())) for c in self.categories]
        return len(self.formats) * sum(n if limit is None else min(n, limit) for n in counts)

    def info(self) -> dict[str, Any]:
        return super().info() | {
            "source": f"bfcl-eval {data.bfcl_version()} (BFCL v4 format_sensitivity id map)",
            "format_axes": {k: list(v) for k, v in self.format_axes().items()},
            "formats": self.formats,
            "groups": [],
        }


def _selected(params: BFCLFormatTaskParams, task_id: str) -> list[str]:
    """The configurations asked for, checked against the mode's axes (one line, exit 2)."""
    prompt = params.mode == "prompt"
    axes = PROMPT_AXES if prompt else NATIVE_AXES
    own = bfcl_configurations() if prompt else native_configurations()
    try:
        return select_formats(params.formats, axes, own)
    except InputError as exc:
        raise InputError(f"task {task_id!r} ({params.mode} mode): {exc}") from None
