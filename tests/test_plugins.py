"""Plugin discovery: entry points, listing, blocking, name clashes, broken plugins, hooks."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pluggy
import pytest
from conftest import run_harness

from harness import hookimpl
from harness._errors import PluginError
from harness._plugins import PluginHost
from harness._plugins import UnknownPlugin

BUILTINS = {("replay", "backend"), ("qa", "task"), ("exact_match", "metric")}


def plugin_rows(*args: str, env: dict[str, str] | None = None) -> list[dict]:
    result = run_harness("plugins", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_builtins_are_listed_with_kind_package_and_version() -> None:
    rows = plugin_rows()
    found = {(r["name"], r["kind"]) for r in rows}
    assert found >= BUILTINS
    for row in rows:
        if (row["name"], row["kind"]) in BUILTINS:
            assert row["package"] == "harness"
            assert row["version"] and row["version"][0].isdigit()


def test_example_package_is_discovered_through_its_entry_point(example_plugin: Path) -> None:
    rows = plugin_rows(env={"PYTHONPATH": str(example_plugin)})
    mine = {(r["name"], r["kind"]): r for r in rows if r["package"] == "harness-example-plugin"}
    assert set(mine) == {
        ("calculator", "backend"),
        ("addition", "task"),
        ("numeric_match", "metric"),
        ("example", "hooks"),  # its other hooks are listed too
    }
    assert mine[("example", "hooks")]["description"] == "on_run_end"
    assert all(r["version"] == "0.3.1" for r in mine.values())


def test_manifest_using_the_example_plugin_runs(tmp_path: Path, example_plugin: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "name: ex\nbackends:\n  - type: calculator\n    wrong_every: 4\n"
        "tasks:\n  - type: addition\n    count: 12\n"
    )
    env = {"PYTHONPATH": str(example_plugin)}
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "o"), env=env)
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["results"]["addition"]["calculator"]["numeric_match"] == pytest.approx(9 / 12)
    versions = results["versions"]["plugins"]
    assert versions["backend:calculator"] == {
        "package": "harness-example-plugin",
        "plugin": "example",
        "version": "0.3.1",
    }
    assert (
        json.loads((tmp_path / "o" / "example-plugin-hook.json").read_text())["status"]
        == "finished"
    )


def test_a_0_1_plugin_validates_runs_resumes_and_compares_unchanged(
    tmp_path: Path, example_plugin: Path
) -> None:
    """The example package is written against 0.1's documented API (JSON Schema parameters,
    dict params, a positional lifecycle hook): every command still works with it."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "name: ex\nbackends:\n  - type: calculator\n    wrong_every: 4\n"
        "tasks:\n  - type: addition\n    count: 12\n"
    )
    env = {"PYTHONPATH": str(example_plugin)}
    check = run_harness("validate", str(manifest), env=env)
    assert check.returncode == 0 and "valid" in check.stdout, check.stderr
    first = run_harness("run", str(manifest), "--out", str(tmp_path / "a"), "--limit", "5", env=env)
    assert first.returncode == 0 and "5 sample(s) played, 0 already done" in first.stdout
    resumed = run_harness("run", str(manifest), "--out", str(tmp_path / "a"), env=env)
    assert resumed.returncode == 0 and "7 sample(s) played, 5 already done" in resumed.stdout
    # the calculator counts its calls, so b is played in the same two steps as a
    run_harness("run", str(manifest), "--out", str(tmp_path / "b"), "--limit", "5", env=env)
    other = run_harness("run", str(manifest), "--out", str(tmp_path / "b"), env=env)
    assert other.returncode == 0, other.stderr
    same = [(tmp_path / d / "results.json").read_text() for d in "ab"]
    assert json.loads(same[0])["results"] == json.loads(same[1])["results"]
    compared = run_harness("compare", str(tmp_path / "a"), str(tmp_path / "b"), env=env)
    assert compared.returncode == 0, compared.stderr
    assert "a/calculator" in compared.stdout and "b/calculator" in compared.stdout
    assert "0.8333" in compared.stdout  # 10 of 12: every 4th call of each step is wrong
    for result in (check, first, resumed, other, compared):
        assert "DeprecationWarning" not in result.stderr


def test_disable_env_blocks_a_plugin(example_plugin: Path) -> None:
    env = {"PYTHONPATH": str(example_plugin), "HARNESS_DISABLE_PLUGINS": "example,qa"}
    names = {r["name"] for r in plugin_rows(env=env)}
    assert "calculator" not in names and "qa" not in names and "replay" in names


def test_load_env_is_an_allow_list(example_plugin: Path) -> None:
    env = {"PYTHONPATH": str(example_plugin), "HARNESS_LOAD_PLUGINS": "replay"}
    assert {r["name"] for r in plugin_rows(env=env)} == {"replay"}


def test_unknown_name_suggests_the_near_miss(host: PluginHost) -> None:
    with pytest.raises(UnknownPlugin, match="did you mean 'exact_match'"):
        host.component("metric", "exact_mach")


def _plugin(name: str, **hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(__name__=name, **{k: hookimpl(v) for k, v in hooks.items()})


def test_name_claimed_twice_names_both_packages(host: PluginHost) -> None:
    def register_backends(register):
        register("replay", "somewhere:Replay")

    host.register(
        _plugin("copycat", register_backends=register_backends),
        "copycat",
        package="copycat-dist",
        version="1.0",
    )
    with pytest.raises(PluginError, match=r"by package 'harness'.*by package 'copycat-dist'"):
        _ = host.catalog


def test_registration_is_lazy(host: PluginHost) -> None:
    def register_backends(register):
        register("lazy", "module_that_does_not_exist:Thing", schema={"properties": {}})

    host.register(_plugin("lazy", register_backends=register_backends), "lazy")
    component = host.component("backend", "lazy")  # registering imported nothing
    assert "module_that_does_not_exist" not in sys.modules
    with pytest.raises(PluginError, match="could not be loaded"):
        component.load()


def test_broken_plugin_is_reported_and_does_not_stop_others(tmp_path: Path) -> None:
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[harness]\nbroken = broken_plugin_module\n")
    (tmp_path / "broken_plugin_module.py").write_text(
        "raise ImportError('missing dependency xyz')\n"
    )
    rows = plugin_rows(env={"PYTHONPATH": str(tmp_path)})
    broken = [r for r in rows if r["kind"] == "broken"]
    assert broken and broken[0]["package"] == "broken-plugin"
    assert "missing dependency xyz" in broken[0]["description"]
    assert {r["name"] for r in rows} >= {"replay", "qa"}


def test_check_pending_rejects_misspelled_hooks() -> None:
    host = PluginHost()
    host.register(_plugin("typo", register_backend=lambda register: None), "typo")
    with pytest.raises(pluggy.PluginValidationError):
        host.pm.check_pending()


def test_lifecycle_hooks_receive_records(tmp_path: Path, host: PluginHost) -> None:
    from conftest import qa_files
    from conftest import qa_manifest

    from harness._manifest import load_manifest
    from harness._run import run_manifest

    seen: dict[str, list] = {"start": [], "sample": [], "end": []}
    plugin = _plugin(
        "spy",
        on_run_start=lambda run: seen["start"].append(run.already_finished),
        on_sample_finished=lambda record: seen["sample"].append(record["sample_id"]),
        on_run_end=lambda status: seen["end"].append(status),
    )
    host.register(plugin, "spy")
    qa, replay = qa_files(tmp_path, 6)
    (tmp_path / "m.json").write_text(json.dumps(qa_manifest(qa, replay)))
    run_manifest(load_manifest(tmp_path / "m.json", host), host, tmp_path / "o", progress=False)
    assert seen["start"] == [0]
    assert sorted(seen["sample"]) == sorted(f"s{i}" for i in range(6))
    assert seen["end"] == ["finished"]


def test_trace_env_prints_hook_calls() -> None:
    result = run_harness("plugins", env={"HARNESS_TRACE_PLUGINS": "1"})
    assert result.returncode == 0
    assert "register_backends" in result.stderr
