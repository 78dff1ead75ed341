"""The shape of the code: a small public API, private core modules, plugins that import only
public names and their own modules, and generated API docs that are current."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import harness
from harness._docgen import api_markdown

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "harness"
PLUGINS = REPO / "plugins"


def imported_modules(path: Path) -> list[str]:
    """Absolute module names a file imports (relative imports resolved for plugin packages)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _package_of(path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def _package_of(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    parts[0] = {"plugins": "harness_plugins"}.get(parts[0], parts[0])
    return ".".join(parts[:-1])  # a module's package; __init__ is its own package


def test_public_api_is_exactly_the_documented_groups() -> None:
    grouped = sorted(name for names in harness.API_GROUPS.values() for name in names)
    assert harness.__all__ == grouped
    for name in harness.__all__:
        assert getattr(harness, name) is not None


def test_core_modules_are_private_and_import_no_plugin() -> None:
    public = {p.stem for p in CORE.glob("*.py") if not p.stem.startswith("_")}
    assert public == {"testing"}, f"public core modules besides testing: {public - {'testing'}}"
    for path in CORE.glob("*.py"):
        plugins = [m for m in imported_modules(path) if m.startswith("harness_plugins")]
        assert not plugins, f"{path.name} imports plugin code: {plugins}"


def test_plugins_import_public_names_and_their_own_modules_only() -> None:
    problems = []
    for path in PLUGINS.rglob("*.py"):
        own = _package_of(path).split(".")[:2]
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "harness" and len(parts) > 1 and parts[1].startswith("_"):
                problems.append(f"{path.relative_to(REPO)} imports private {module}")
            private = [p for p in parts[2:] if p.startswith("_") and not p.startswith("__")]
            if parts[0] == "harness_plugins" and parts[:2] != own and private:
                problems.append(f"{path.relative_to(REPO)} imports {module}")
    assert not problems, "\n".join(problems)


def test_the_old_module_names_still_work_and_warn() -> None:
    for name in ("harness.runner", "harness.execute", "harness.decoding", "harness.plugins"):
        sys.modules.pop(name, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner = importlib.import_module("harness.runner")
        execute = importlib.import_module("harness.execute")
        decoding = importlib.import_module("harness.decoding")
    assert runner.run_manifest is harness.run_manifest
    assert callable(execute.build) and callable(decoding.load_decoder)
    assert callable(decoding.decode_outcome)
    messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
    assert any("harness.runner is private" in m for m in messages), messages


def test_a_plugin_written_for_0_1_internals_still_builds_a_decoder(host) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from harness.decoding import load_decoder

    calls = load_decoder("json_calls").decode('[{"name": "f", "arguments": {"x": 1}}]', None)
    assert calls == [harness.ToolCall("f", {"x": 1})]


def test_api_docs_are_current() -> None:
    current = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    assert current == api_markdown(), (
        "docs/api.md is stale; regenerate it with `python -m harness._docgen`"
    )


def test_every_public_name_has_a_docstring() -> None:
    missing = [n for n in harness.__all__ if not (getattr(harness, n).__doc__ or "").strip()]
    assert not missing, f"public names without a docstring: {missing}"


def test_python_dash_m_harness_runs_without_deprecation_warnings() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning:harness", "-m", "harness", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
