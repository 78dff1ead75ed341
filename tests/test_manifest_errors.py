"""Bad manifests exit 2 with one line per problem, naming the file and the field; no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import qa_files
from conftest import run_harness

GOOD_BACKEND = "  - type: replay\n    path: replay.jsonl\n"
GOOD_TASK = "  - type: qa\n    path: qa.jsonl\n"


def body(backends: str = GOOD_BACKEND, tasks: str = GOOD_TASK, extra: str = "") -> str:
    return f"name: bad\nbackends:\n{backends}tasks:\n{tasks}{extra}"


# (id, manifest text, extra CLI args, field named in the message, words the message must hold)
CASES = [
    ("malformed-yaml", "name: [unclosed\nbackends: x\n", [], "line 2", "malformed YAML"),
    ("top-level-list", "- a\n- b\n", [], "(top level)", "expected a mapping"),
    ("empty-file", "", [], "(top level)", "empty"),
    ("unknown-key", body(extra="nmae: x\n"), [], "nmae", "did you mean 'name'"),
    ("missing-tasks", f"name: bad\nbackends:\n{GOOD_BACKEND}", [], "tasks", "required"),
    ("wrong-type", body(extra="run:\n  limit: ten\n"), [], "run.limit", "expected an integer"),
    (
        "empty-backends",
        body(backends="  []\n").replace("backends:\n  []", "backends: []"),
        [],
        "backends",
        "at least 1",
    ),
    (
        "unknown-plugin",
        body(backends="  - type: repaly\n    path: replay.jsonl\n"),
        [],
        "backends[0].type",
        "did you mean 'replay'",
    ),
    (
        "missing-data-file",
        body(tasks="  - type: qa\n    path: nope.jsonl\n"),
        [],
        "tasks[0].path",
        "file not found",
    ),
    (
        "unknown-plugin-param",
        body(backends="  - type: replay\n    pth: replay.jsonl\n"),
        [],
        "backends[0].pth",
        "did you mean 'path'",
    ),
    (
        "missing-plugin-param",
        body(backends="  - type: replay\n"),
        [],
        "backends[0].path",
        "required",
    ),
    ("duplicate-id", body(tasks=GOOD_TASK + GOOD_TASK), [], "tasks[1].id", "distinct id"),
    ("bad-set-syntax", body(), ["--set", "run.limit"], "--set run.limit", "KEY=VALUE"),
    ("bad-set-index", body(), ["--set", "tasks[5].limit=3"], "--set tasks[5].limit=3", "no item 5"),
    ("bad-set-value", body(), ["--set", "run.concurrency=0"], "run.concurrency", "out of range"),
    (
        "missing-env",
        body(backends="  - type: replay\n    path: ${HARNESS_TEST_NOPE}\n"),
        [],
        "backends[0].path",
        "HARNESS_TEST_NOPE is not set",
    ),
    ("entry-not-mapping", body(backends="  - replay\n"), [], "backends[0]", "expected a mapping"),
    (
        "plugin-param-type",
        body(tasks="  - type: qa\n    path: qa.jsonl\n    limit: many\n"),
        [],
        "tasks[0].limit",
        "expected an integer",
    ),
    (
        "bad-id",
        body(tasks="  - type: qa\n    id: 'has space'\n    path: qa.jsonl\n"),
        [],
        "tasks[0].id",
        "does not match",
    ),
    (
        "unknown-run-option",
        body(extra="run:\n  concurency: 2\n"),
        [],
        "run.concurency",
        "did you mean 'concurrency'",
    ),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    qa_files(tmp_path, 3)
    return tmp_path


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(
    ("case", "text", "args", "field", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_manifest_exits_2_naming_file_and_field(
    folder: Path, command: str, case: str, text: str, args: list[str], field: str, words: str
) -> None:
    manifest = folder / f"{case}.yaml"
    manifest.write_text(text, encoding="utf-8")
    result = run_harness(command, str(manifest), *args, cwd=folder)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines, "no message printed"
    assert all(line.startswith(f"{manifest}: ") for line in lines), lines
    assert any(f": {field}" in line and words in line for line in lines), lines
    assert not (folder / "runs").exists(), "nothing may start for an invalid manifest"


def test_every_problem_is_reported_in_one_pass(folder: Path) -> None:
    text = body(backends="  - type: replay\n    pth: x\n", extra="nmae: x\nrun:\n  limit: 0\n")
    manifest = folder / "many.yaml"
    manifest.write_text(text, encoding="utf-8")
    result = run_harness("validate", str(manifest), cwd=folder)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) >= 2


def test_valid_manifest_passes(folder: Path) -> None:
    manifest = folder / "good.yaml"
    manifest.write_text(body(), encoding="utf-8")
    result = run_harness("validate", str(manifest), cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_json_manifest_is_accepted(folder: Path) -> None:
    manifest = folder / "good.json"
    manifest.write_text(
        '{"name": "j", "backends": [{"type": "replay", "path": "replay.jsonl"}],'
        ' "tasks": [{"type": "qa", "path": "qa.jsonl"}]}',
        encoding="utf-8",
    )
    assert run_harness("validate", str(manifest), cwd=folder).returncode == 0


def test_missing_manifest_file(folder: Path) -> None:
    result = run_harness("run", str(folder / "absent.yaml"), cwd=folder)
    assert result.returncode == 2
    assert "absent.yaml" in result.stderr and "Traceback" not in result.stderr
