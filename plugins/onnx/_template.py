"""The model folder's chat template, rendered as transformers renders it (a sandboxed Jinja
environment with ``raise_exception`` and ``tojson``), and the tokens that end a turn."""

from __future__ import annotations

import json
from typing import Any

from harness_plugins.shared.tool_calls import message_dict

from harness import Message

#: Used when the folder has no template: the format of the small chat models this project ships.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ChatTemplate:
    """Renders conversations to token ids; knows which ids stop a generation."""

    def __init__(self, settings: dict[str, Any], tokenizer: Any) -> None:
        text, self.source = _template_text(settings)
        self.tokenizer = tokenizer
        self.renders_tools = "tools" in text
        self.specials = {k: _token_text(settings.get(k)) for k in ("bos_token", "eos_token")}
        self._template = _environment().from_string(text)
        self.stop_ids = _stop_ids(settings, tokenizer, self.specials["eos_token"])

    def render(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> str:
        context: dict[str, Any] = {
            "messages": [message_dict(m) for m in messages],
            "add_generation_prompt": True,
            **{k: v or "" for k, v in self.specials.items()},
        }
        if tools:
            context["tools"] = tools
        return str(self._template.render(**context))

    def encode(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> list[int]:
        """The prompt's token ids; special tokens in the text are read as special tokens."""
        ids: list[int] = self.tokenizer.encode(
            self.render(messages, tools), add_special_tokens=False
        ).ids
        return ids


def _template_text(settings: dict[str, Any]) -> tuple[str, str]:
    template = settings.get("chat_template")
    if isinstance(template, list):  # named templates: take the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    if isinstance(template, str) and template.strip():
        return template, "tokenizer_config.json:chat_template"
    return CHATML, "default: chatml (the folder has no chat_template)"


def _token_text(value: Any) -> str | None:
    """A special token as text (tokenizer configs write it as text or as ``{"content": ...}``)."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _stop_ids(settings: dict[str, Any], tokenizer: Any, eos_text: str | None) -> set[int]:
    """The end-of-turn ids: the config's ``eos_token_id`` (one or a list) and the eos token."""
    declared = settings.get("eos_token_id")
    ids = set(
        declared if isinstance(declared, list) else [declared] if declared is not None else []
    )
    if eos_text is not None and tokenizer.token_to_id(eos_text) is not None:
        ids.add(tokenizer.token_to_id(eos_text))
    return {int(i) for i in ids}


def _environment() -> Any:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, indent=indent)
    env.globals["raise_exception"] = raise_exception
    return env
