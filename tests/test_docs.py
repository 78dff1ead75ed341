"""Docs as code: every hook documented with a working example; the manifest reference current."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from harness import _hookspecs as hookspecs
from harness._docgen import builtin_reference
from harness._plugins import PluginHost

DOCS = Path(__file__).resolve().parents[1] / "docs"
HOOKS = sorted(
    name
    for name, fn in vars(hookspecs).items()
    if callable(fn) and hasattr(fn, f"{hookspecs.PROJECT}_spec")
)


def hook_sections() -> dict[str, str]:
    text = (DOCS / "plugin-hooks.md").read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def test_hooks_exist() -> None:
    assert {
        "register_backends",
        "register_tasks",
        "register_metrics",
        "on_run_start",
        "on_sample_finished",
        "on_run_end",
    } <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_an_example(hook: str) -> None:
    sections = hook_sections()
    assert hook in sections, f"docs/plugin-hooks.md has no '## {hook}' section"
    blocks = re.findall(r"```python\n(.*?)```", sections[hook], flags=re.S)
    assert blocks, f"the {hook} section has no python example"
    example = "\n".join(blocks)
    assert f"def {hook}(" in example and "@hookimpl" in example


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_examples_register_cleanly(hook: str) -> None:
    """The example's hook implementations must match the spec (pluggy validates arguments)."""
    code = "\n".join(re.findall(r"```python\n(.*?)```", hook_sections()[hook], flags=re.S))
    module = types.ModuleType(f"doc_example_{hook}")
    exec(compile(code, f"docs/plugin-hooks.md#{hook}", "exec"), module.__dict__)
    host = PluginHost()
    host.register(module, f"doc-{hook}")
    host.pm.check_pending()
    assert hook in host.plugins[f"doc-{hook}"].hooks


def test_no_documented_hook_is_missing_from_the_specs() -> None:
    assert set(hook_sections()) <= set(HOOKS)


def test_manifest_reference_is_generated_from_the_schema() -> None:
    current = (DOCS / "manifest-reference.md").read_text(encoding="utf-8")
    assert current == builtin_reference(), (
        "docs/manifest-reference.md is stale: run `python -m harness._docgen`"
    )
