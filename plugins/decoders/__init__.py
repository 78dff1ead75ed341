"""Built-in output decoders: Python call lists, JSON lists, OpenAI tool calls, xLAM, Hermes,
and BFCL's four return formats (``bfcl_format``).

Every decoder parses with ``ast`` or ``json``; nothing the model wrote is ever evaluated.
``python_calls`` follows BFCL's prompt-mode decoder (``default_decode_ast_prompting``) rule
for rule, including its quirks, so that a decoded answer scores as BFCL would score it. The
one place BFCL calls ``eval`` (an arithmetic expression as an argument value, ``a=2*3``) is
replaced by a small evaluator of numeric and string literals under ``+ - * / // % **``.

Hooks only: the decoders live in :mod:`harness_plugins.decoders._decoders`.
"""

from __future__ import annotations

from typing import Literal

from harness import Params
from harness import Register
from harness import hookimpl
from harness import param


@hookimpl
def register_decoders(register: Register) -> None:
    module = "harness_plugins.decoders._decoders"
    register(
        "python_calls",
        f"{module}:PythonCalls",
        description="BFCL prompt format: [f(a=1), g(b='x')], parsed with ast.",
    )
    register(
        "json_calls",
        f"{module}:JsonCalls",
        description='A JSON list of {"name", "arguments"} objects.',
    )
    register(
        "openai_tool_calls",
        f"{module}:OpenAIToolCalls",
        description="The backend's native (OpenAI-shaped) tool calls.",
    )
    register(
        "xlam", f"{module}:XLAMCalls", description='xLAM: {"thought": ..., "tool_calls": [...]}.'
    )
    register(
        "hermes",
        f"{module}:HermesCalls",
        description="Hermes / SmolLM2: <tool_call>{...}</tool_call> tags.",
    )
    register(
        "bfcl_format",
        "harness_plugins.decoders._bfcl_formats:BFCLFormatCalls",
        params=BFCLFormatParams,
        description="BFCL's return formats (python, json, verbose_xml, concise_xml), "
        "with or without <TOOLCALL> tags, read as BFCL reads them.",
    )


#: BFCL's four return formats (``ret_fmt`` in its format-sensitivity configurations).
ReturnFormat = Literal["python", "json", "verbose_xml", "concise_xml"]


class BFCLFormatParams(Params):
    """Which of BFCL's return formats the answer is in, and whether inside <TOOLCALL> tags."""

    ret_fmt: ReturnFormat = param("python", description="BFCL's return format of the answer.")
    tool_call_tag: bool = param(
        False, description="The calls are inside <TOOLCALL>...</TOOLCALL> tags."
    )
