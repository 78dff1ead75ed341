"""BFCL V4's format-sensitivity probe: its 26 prompt configurations, the system prompt of each
(byte for byte as ``bfcl_eval.model_handler.utils.formulate_system_prompt`` builds it), the
decoder of each return format, and the format axes of native and constrained modes.

Prompt-mode axes are BFCL's own, with BFCL's names and values:

- ``ret_fmt``: how calls are asked for: ``python``, ``json``, ``verbose_xml``, ``concise_xml``;
- ``tool_call_tag``: inside ``<TOOLCALL>...</TOOLCALL>`` or not: ``True``, ``False``;
- ``func_doc_fmt``: how the functions are shown: ``python``, ``xml``, ``json``;
- ``prompt_fmt``: ``plaintext`` or ``markdown`` sections;
- ``style``: ``classic`` or ``experimental`` wording.

BFCL's set (``get_all_format_sensitivity_configs``) is the 24 combinations of the first three
with plaintext/classic, plus markdown and experimental each once with the default otherwise.
Any of the 96 combinations can be named.

Native and constrained modes have no return format; their axes are what reaches the model
besides the question: ``schema`` (``bfcl``: BFCL's tool dict as its handler sends it;
``json_schema``: a rebuilt, strict JSON Schema: ``type, properties, required`` only, an
empty ``required`` dropped, BFCL's pass-through keys gone) and ``doc_hint`` (BFCL's language
note at the end of every description, ``True`` or ``False``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from harness import format_name
from harness import parse_format

from . import NATIVE_AXES
from . import PROMPT_AXES
from ._format_docs import function_docs
from ._prompt import PYTHON_HINT
from ._prompt import openai_tool
from ._prompt import with_language_hint

DEFAULT = "ret_fmt=python&tool_call_tag=False&func_doc_fmt=json&prompt_fmt=plaintext&style=classic"


def bfcl_configurations() -> list[str]:
    """BFCL's 26 configuration names, in BFCL's order."""
    base = [
        f"ret_fmt={r}&tool_call_tag={t}&func_doc_fmt={d}&prompt_fmt=plaintext&style=classic"
        for r in PROMPT_AXES["ret_fmt"]
        for t in PROMPT_AXES["tool_call_tag"]
        for d in PROMPT_AXES["func_doc_fmt"]
    ]
    variants = [
        DEFAULT.replace("plaintext", "markdown"),
        DEFAULT.replace("classic", "experimental"),
    ]
    return base + variants


def native_configurations() -> list[str]:
    """Every combination of the native axes, BFCL's own (``schema=bfcl&doc_hint=True``) first."""
    return [
        format_name({"schema": s, "doc_hint": h}, NATIVE_AXES)
        for s in NATIVE_AXES["schema"]
        for h in NATIVE_AXES["doc_hint"]
    ]


@dataclass(frozen=True)
class PromptFormat:
    """One prompt-mode configuration, read from its name."""

    ret_fmt: str
    tool_call_tag: bool
    func_doc_fmt: str
    prompt_fmt: str
    style: str

    @classmethod
    def parse(cls, name: str) -> PromptFormat:
        values = parse_format(name)
        return cls(
            values["ret_fmt"],
            values["tool_call_tag"] == "True",
            values["func_doc_fmt"],
            values["prompt_fmt"],
            values["style"],
        )

    def decoder(self) -> dict[str, Any]:
        """The decoder spec that reads this configuration's answers."""
        return {"type": "bfcl_format", "ret_fmt": self.ret_fmt, "tool_call_tag": self.tool_call_tag}


# --- BFCL's prompt texts (constants/default_prompts.py) ----------------------------------------

OUTPUT_FORMATS = {
    "python": "[func_name1(params_name1=params_value1, params_name2=params_value2...), "
    "func_name2(params)]",
    "json": '```json\n[{"function":"func_name1","parameters":{"param1":"value1","param2":'
    '"value2"...}},{"function":"func_name2","parameters":{"param":"value"}}]\n```',
    "verbose_xml": '<functions><function name="func_name1"><params><param name="param1" '
    'value="value1" type="type1"/><param name="param2" value="value2" type="type2"/>...'
    '</params></function><function name="func_name2"><params><param name="param3" '
    'value="value3" type="type3"/></params></function></functions>',
    "concise_xml": '<functions><function name="func_name1"><param name="param1" '
    'type="type1">value1</param><param name="param2" type="type2">value2</param>...'
    '</function><function name="func_name2"><param name="param3" type="type3">value</param>'
    "</function></functions>",
}
_XML_TYPES = (
    "The type fields of the parameters in your function calls must be one of: string, integer, "
    "float, boolean, array, dict, or tuple."
)
PARAM_TYPES = {"python": "", "json": "", "verbose_xml": _XML_TYPES, "concise_xml": _XML_TYPES}
STYLES = {
    "classic": {
        "persona": "You are an expert in composing functions.",
        "task": "You are given a question and a set of possible functions. Based on the "
        "question, you will need to make one or more function/tool calls to achieve the "
        "purpose. If none of the functions can be used, point it out. If the given question "
        "lacks the parameters required by the function, also point it out.",
        "tool_call_no_tag": "You should only return the function calls in your response.\n\n"
        "If you decide to invoke any of the function(s), you MUST put it in the format of "
        "{output_format}. {param_types} You SHOULD NOT include any other text in the response.",
        "tool_call_with_tag": "You should only return the function calls in the <TOOLCALL> "
        "section. If you decide to invoke any of the function(s), you MUST put it in the "
        "format of <TOOLCALL>{output_format}</TOOLCALL>. {param_types} You SHOULD NOT include "
        "any other text in the response.",
        "multiturn_behavior": "At each turn, you should try your best to complete the tasks "
        "requested by the user within the current turn. Continue to output functions to call "
        "until you have fulfilled the user's request to the best of your ability. Once you "
        "have no more functions to call, the system will consider the current turn complete "
        "and proceed to the next turn or task.",
        "available_tools": "Here is a list of functions in {format} format that you can "
        "invoke.\n{functions}\n",
    },
    "experimental": {
        "persona": "You are an expert in generating structured function calls.",
        "task": "You are given a user query and a set of available functions. Your task is to "
        "produce one or more function/tool calls to fulfill the user's request. If no "
        "suitable function exists, or required parameters are missing, clearly indicate this.",
        "tool_call_no_tag": "Respond with only the function calls.\n\nYou MUST format it "
        "exactly as {output_format}. {param_types} Do NOT include any other text.",
        "tool_call_with_tag": "Return only the function calls enclosed in <TOOLCALL> tags.\n\n"
        "You MUST format it exactly as <TOOLCALL>{output_format}</TOOLCALL>. {param_types} Do "
        "NOT include any other text.",
        "multiturn_behavior": "At every turn, aim to complete the user's tasks within that "
        "turn. Continue emitting function calls until the request is satisfied to the best of "
        "your ability. Once no more calls are needed, the system will proceed to the next turn.",
        "available_tools": "Below is a list of callable functions in the {format} style:\n"
        "{functions}\n",
    },
}
TEMPLATES = {
    "plaintext": "{persona}{task}\n\n{tool_call_format}\n\n{multiturn_behavior}\n\n"
    "{available_tools}",
    "markdown": "{persona}\n\n## Task\n{task}\n\n## Tool Call Format\n{tool_call_format}\n\n"
    "## Multi-turn Behavior\n{multiturn_behavior}\n\n## Available Tools\n{available_tools}",
}


def system_prompt(config: PromptFormat, functions: list[dict[str, Any]]) -> str:
    """BFCL's system prompt of ``config`` for the given (already hinted) function docs."""
    style = STYLES[config.style]
    call_format = style["tool_call_with_tag" if config.tool_call_tag else "tool_call_no_tag"]
    return TEMPLATES[config.prompt_fmt].format(
        persona=style["persona"],
        task=style["task"],
        tool_call_format=call_format.format(
            output_format=OUTPUT_FORMATS[config.ret_fmt],
            param_types=PARAM_TYPES[config.ret_fmt],
        ),
        multiturn_behavior=style["multiturn_behavior"],
        available_tools=style["available_tools"].format(
            format=config.func_doc_fmt,
            functions=function_docs(functions, config.func_doc_fmt),
        ),
    )


def prompt_for(name: str, functions: list[dict[str, Any]]) -> str:
    """The system prompt of configuration ``name`` for BFCL's raw function docs."""
    return system_prompt(PromptFormat.parse(name), with_language_hint(functions))


# --- native axes --------------------------------------------------------------------------------


def native_tools(name: str, functions: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The tools of native configuration ``name``: BFCL's dict, or a strict JSON Schema."""
    values = parse_format(name)
    tools = [openai_tool(f, sanitize_names=True) for f in functions]
    if values.get("doc_hint") == "False":
        tools = [_without_hint(t) for t in tools]
    if values.get("schema") == "json_schema":
        tools = [_strict(t) for t in tools]
    return tuple(tools)


def _without_hint(tool: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(tool)
    text = out["function"].get("description", "")
    out["function"]["description"] = text.removesuffix(PYTHON_HINT)
    return out


def _strict(tool: dict[str, Any]) -> dict[str, Any]:
    """``type, properties, required`` in that order, an empty ``required`` dropped, and every
    other key of ``parameters`` and of each property (``optional``, ``default``...) gone."""
    function = tool["function"]
    params = function.get("parameters") or {}
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    for key, prop in (params.get("properties") or {}).items():
        schema["properties"][key] = {k: v for k, v in prop.items() if k not in ("optional",)}
        schema["properties"][key].pop("default", None)
    if params.get("required"):
        schema["required"] = list(params["required"])
    body = {"name": function["name"], "description": function.get("description", "")}
    return {"type": "function", "function": body | {"parameters": schema}}
