"""Built-in output decoders: Python call lists, JSON lists, OpenAI tool calls, xLAM, Hermes.

Every decoder parses with ``ast`` or ``json``; nothing the model wrote is ever evaluated.
``python_calls`` follows BFCL's prompt-mode decoder (``default_decode_ast_prompting``) rule
for rule, including its quirks, so that a decoded answer scores as BFCL would score it. The
one place BFCL calls ``eval`` (an arithmetic expression as an argument value, ``a=2*3``) is
replaced by a small evaluator of numeric and string literals under ``+ - * / // % **``.

Hooks only: the decoders live in :mod:`harness_plugins.decoders._decoders`.
"""

from __future__ import annotations

from harness import Register
from harness import hookimpl


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
