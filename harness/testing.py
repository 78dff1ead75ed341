"""Test helpers for plugin authors, shipped as a pytest plugin (entry point ``pytest11``).

With harness installed, every pytest session has these fixtures; nothing runs unless a test
asks for one:

- ``harness_host``: a :class:`~harness.PluginHost` with every installed plugin (yours
  included, through its entry point) and the ``scripted`` backend; it is the process-wide host
  for the test, so ``harness.run_manifest`` and the CLI in this process use it.
- ``harness_run``: run a manifest (a dict, YAML text or a path) into a temporary directory and
  get the :class:`~harness.RunResult` back.

And plain helpers: :class:`ScriptedBackend` (answers from a list, never a model),
:func:`scripted_plugin` (registers it), :func:`assert_run_dir` (checks a run directory against
the contract) and :func:`write_jsonl`.

Example, in a plugin package's tests::

    def test_my_task(harness_run):
        result = harness_run({
            "name": "t",
            "backends": [{"type": "scripted", "responses": ["42"]}],
            "tasks": [{"type": "my_task", "count": 1}],
        })
        records = assert_run_dir(result.run_dir, samples=1)
        assert records[0]["scores"]["my_metric"] == 1.0
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness._errors import HarnessError
from harness._hookspecs import hookimpl
from harness._parts import Backend
from harness._parts import BuildContext
from harness._plugins import PluginHost
from harness._plugins import get_host
from harness._plugins import reset_host
from harness._records import ChatRequest
from harness._records import ChatResponse
from harness._records import ToolCall
from harness._run import RunResult
from harness._run import run_manifest
from harness._schema import Params
from harness._schema import param
from harness._store import iter_records

#: what every ``samples.jsonl`` record holds (CONTRACT.md)
RECORD_FIELDS = ("backend", "task", "sample_id", "output", "calls", "scores", "error", "timing")


class ScriptedParams(Params):
    """Parameters of the ``scripted`` backend."""

    responses: list[Any] = param(
        [],
        description="Answers in order: a string (the text), or an object with text and/or "
        "tool_calls ({name, arguments}). After the last one the list starts again.",
    )
    answers: dict[str, Any] = param(
        {},
        description="Answers by sample id (same shapes as responses); they win over responses.",
    )
    max_concurrency: int = param(1, minimum=1, description="Requests the runner may send at once.")


class ScriptedBackend(Backend):
    """A backend that answers from a script, never a model: for testing tasks and metrics.

    ``requests`` keeps every :class:`~harness.ChatRequest` it was sent, in order.
    """

    def __init__(self, params: Mapping[str, Any], context: BuildContext) -> None:
        super().__init__(params, context)
        self.max_concurrency = int(params.get("max_concurrency", 1))
        self.requests: list[ChatRequest] = []
        self._lock = threading.Lock()

    def chat(self, request: ChatRequest) -> ChatResponse:
        with self._lock:
            index = len(self.requests)
            self.requests.append(request)
        answers, responses = self.params.get("answers") or {}, self.params.get("responses") or []
        if request.sample_id is not None and str(request.sample_id) in answers:
            return _response(answers[str(request.sample_id)])
        if not responses:
            raise HarnessError(f"scripted backend {self.context.id!r} has no answer to give")
        return _response(responses[index % len(responses)])


def _response(item: Any) -> ChatResponse:
    if isinstance(item, str):
        return ChatResponse(text=item, timing={"total_s": 0.0})
    calls = item.get("tool_calls")
    return ChatResponse(
        text=item.get("text"),
        tool_calls=None if calls is None else tuple(ToolCall.from_openai(c) for c in calls),
        timing={"total_s": 0.0},
    )


class _ScriptedPlugin:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register("scripted", ScriptedBackend, params=ScriptedParams)


def scripted_plugin() -> Any:
    """A plugin object that registers the ``scripted`` backend (``host.register(it, name)``)."""
    return _ScriptedPlugin()


def make_host(*plugins: Any, entry_points: bool = True) -> PluginHost:
    """A fresh host: installed entry points (unless ``entry_points=False``), the ``scripted``
    backend, then ``plugins`` (objects or modules with hooks), registered in that order."""
    host = PluginHost()
    if entry_points:
        host.load_entrypoints()
    host.register(scripted_plugin(), "harness-testing-scripted", "harness.testing")
    for index, plugin in enumerate(plugins):
        host.register(plugin, getattr(plugin, "__name__", f"test-plugin-{index}"))
    return host


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as JSON lines (task data, replay files) and return the path."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def assert_run_dir(
    run_dir: str | Path, *, samples: int | None = None, errors: int | None = 0
) -> list[dict[str, Any]]:
    """Check a run directory against the contract and return its records.

    Every file is there; every record has the contract's fields; no (backend, task, sample) is
    recorded twice; ``results.json`` counts the same samples. ``samples`` checks how many
    records there are; ``errors`` how many ended in an error (None: any number).
    """
    run_dir = Path(run_dir)
    for name in ("manifest.json", "samples.jsonl", "results.json", "summary.csv", "report.html"):
        assert (run_dir / name).is_file(), f"{run_dir}: {name} is missing"
    records = list(iter_records(run_dir / "samples.jsonl"))
    for record in records:
        missing = [f for f in RECORD_FIELDS if f not in record]
        assert not missing, f"record {record.get('sample_id')!r} lacks {missing}"
    keys = [(r["backend"], r["task"], str(r["sample_id"]), r.get("repeat", 0)) for r in records]
    assert len(keys) == len(set(keys)), "a sample is recorded more than once"
    if samples is not None:
        assert len(records) == samples, f"{len(records)} records, expected {samples}"
    if errors is not None:
        failed = [(r["sample_id"], r["error"]) for r in records if r["error"] is not None]
        assert len(failed) == errors, f"{len(failed)} errors, expected {errors}: {failed[:3]}"
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    counted = sum(c["n_samples"] for t in results["results"].values() for c in t.values())
    assert counted == len(records), f"results.json counts {counted} samples, not {len(records)}"
    return records


@pytest.fixture
def harness_host() -> Iterator[PluginHost]:
    """A host with every installed plugin and the ``scripted`` backend, made the process-wide
    host for the test (restored afterwards). Register more with ``harness_host.register``."""
    previous = get_host() if _has_host() else None
    host = make_host()
    reset_host(host)
    yield host
    reset_host(previous)


def _has_host() -> bool:
    from harness import _plugins

    return _plugins._HOST is not None


@pytest.fixture
def harness_run(harness_host: PluginHost, tmp_path: Path) -> Callable[..., RunResult]:
    """Run a manifest (dict, YAML text or path) into ``tmp_path``; returns the RunResult.

    Relative data paths in a dict or text manifest start at ``tmp_path``. Keyword arguments:
    ``out`` (default ``"run"``; a relative folder is inside ``tmp_path``), ``retry_errors``.
    """

    def run(
        manifest: Mapping[str, Any] | str | Path,
        out: str | Path | None = None,
        retry_errors: bool = False,
    ) -> RunResult:
        path = _manifest_path(manifest, tmp_path)
        target = tmp_path / (out if out is not None else "run")  # an absolute out stays
        return run_manifest(path, harness_host, target, progress=False, retry_errors=retry_errors)

    return run


def _manifest_path(manifest: Mapping[str, Any] | str | Path, folder: Path) -> Path:
    if isinstance(manifest, Path):
        return manifest
    path = folder / "manifest.yaml"
    text = manifest if isinstance(manifest, str) else yaml.safe_dump(dict(manifest))
    path.write_text(text, encoding="utf-8")
    return path
