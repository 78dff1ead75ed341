"""lm-eval tasks inside manifests (task ``lmeval``): the shipped YAML suite through the embedded
SmolLM2 gives the same scores from ``harness run`` as from ``lm_eval.simple_evaluate`` with our
``LM``; a finished run resumes without a model call; a task needing log-likelihoods on a
backend without them, a malformed YAML and an unknown name stop at validation (exit 2) with
the reason. No test builds lm-eval's own task index; conftest sets the offline variables."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ENGINES
from conftest import LLAMA_PROBLEM
from conftest import run_harness

pytest.importorskip("lm_eval", reason="the lm-eval extra: pip install -e .[lm-eval]")

from harness_plugins.lmeval import suite_path
from harness_plugins.lmeval import task_manager

from harness import ManifestError
from harness import RunView
from harness import load_manifest
from harness import run_manifest

needs_scoring_llama = pytest.mark.skipif(
    LLAMA_PROBLEM is not None or "llama-cpp-python" not in ENGINES,
    reason="needs the embedded model on llama-cpp-python (bash scripts/install.sh test)",
)
SMOL = {
    "id": "smol",
    "type": "llamacpp",
    "model": "smollm2-135m-instruct",
    "engine": "llama-cpp-python",
    "warmup": 0,
    "n_threads": 2,
}
#: A loglikelihood_rolling task whose metrics are not means (weighted perplexities): lm-eval's
#: own aggregation must give them, not the core's mean of per-sample numbers.
ROLLING = {
    "task": "tiny_rolling",
    "dataset_path": "json",
    "dataset_kwargs": {"data_files": {"test": "texts.jsonl"}},
    "test_split": "test",
    "output_type": "loglikelihood_rolling",
    "doc_to_text": "",
    "doc_to_target": "{{text}}",
    "metric_list": [{"metric": "word_perplexity"}, {"metric": "bits_per_byte"}],
    "metadata": {"version": 2.0},
}
TEXTS = ["The capital of France is Paris.", "Water boils at one hundred degrees.", "Hello world."]


def manifest(tmp_path: Path, tasks: list[str], include: list[str], **backend: Any) -> Path:
    path = tmp_path / "m.yaml"
    entry = {"id": "suite", "type": "lmeval", "tasks": tasks, "include_path": include}
    document = {"name": "lmeval", "backends": [SMOL | backend], "tasks": [entry]}
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def lm_eval_scores(tasks: list[str], include: Path) -> dict[str, dict[str, Any]]:
    import lm_eval
    from harness_plugins.lmeval.lm import HarnessLM

    lm = HarnessLM({k: v for k, v in SMOL.items() if k != "id"})
    try:
        manager = task_manager([include])
        out = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager)
    finally:
        lm.backend.close()
    return out["results"]  # type: ignore[no-any-return]


def rows_by_part(summary_rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["subtask"], r["metric"]): r for r in summary_rows if r["level"] != "task"}


def assert_same(ours: dict[tuple[str, str], dict[str, Any]], theirs: dict[str, Any]) -> int:
    """Every lm-eval value and stderr equals ours; returns how many were compared."""
    compared = 0
    for part, values in theirs.items():
        for key, value in values.items():
            metric, _, filter_key = key.partition(",")
            if not filter_key or metric.endswith("_stderr") or not isinstance(value, float):
                continue
            row = ours[(part, key)]
            assert row["value"] == pytest.approx(value, rel=1e-9), (part, key)
            stderr = values[f"{metric}_stderr,{filter_key}"]
            if isinstance(stderr, float):
                assert row["stderr"] == pytest.approx(stderr, rel=1e-9), (part, key)
            compared += 1
    return compared


@needs_scoring_llama
def test_the_shipped_suite_scores_the_same_from_a_manifest_and_from_lm_eval(
    tmp_path: Path,
) -> None:
    path = manifest(tmp_path, ["harness_capitals"], [str(suite_path())])
    first = run_manifest(load_manifest(path), out=tmp_path / "run", progress=False)
    assert first.played == 18 and first.status == "finished"
    theirs = lm_eval_scores(["harness_capitals"], suite_path())
    assert assert_same(rows_by_part(first.rows), theirs) == 4  # gen, mc and the group's two
    accuracy = theirs["harness_capitals_mc"]["acc,none"]
    assert 0 < accuracy < 1  # a real model: neither all right nor all wrong

    record = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[0])
    assert record["sample_id"] == "harness_capitals_gen/0"
    assert record["lm_eval"]["filtered_resps"]["strip"] == [record["output"].strip()]
    assert record["scores"] == record["lm_eval"]["metrics"]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    info = results["task_info"]["suite"]["lm_eval"]["harness_capitals_gen"]
    assert info == {
        "version": 1.0,
        "output_type": "generate_until",
        "n-shot": 3,
        "higher_is_better": {"exact_match": True},
    }

    # `harness report` reads the run's own aggregates (lm-eval's group row included)
    view = RunView.open(tmp_path / "run")
    assert ("group", "harness_capitals") in {(r["level"], r["subtask"]) for r in view.rows}

    # a rerun of the finished manifest: no model call, the same records and scores
    before = (tmp_path / "run" / "samples.jsonl").read_bytes()
    again = run_manifest(load_manifest(path), out=tmp_path / "run", progress=False)
    assert (again.played, again.skipped) == (0, 18)
    assert (tmp_path / "run" / "samples.jsonl").read_bytes() == before
    assert again.rows == first.rows


@needs_scoring_llama
def test_metrics_that_are_not_means_use_lm_eval_s_own_aggregation(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "tiny_rolling.yaml").write_text(yaml.safe_dump(ROLLING), encoding="utf-8")
    lines = [json.dumps({"text": t}) for t in TEXTS]
    (suite / "texts.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = run_manifest(
        load_manifest(manifest(tmp_path, ["tiny_rolling"], ["suite"])),
        out=tmp_path / "run",
        progress=False,
    )
    theirs = lm_eval_scores(["tiny_rolling"], suite)
    ours = rows_by_part(run.rows)
    assert assert_same(ours, theirs) == 2
    assert ours[("tiny_rolling", "word_perplexity,none")]["value"] > 1
    record = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[0])
    logprob, words = record["lm_eval"]["metrics"]["word_perplexity,none"]
    assert logprob < 0 and words == len(TEXTS[0].split())
    assert "word_perplexity,none" not in record["scores"]  # a pair, not a score


# --- refused before anything runs ----------------------------------------------------------


def validate(path: Path) -> Any:
    return run_harness("validate", str(path), cwd=path.parent)


def test_a_scoring_task_on_a_backend_without_log_likelihoods_is_refused(tmp_path: Path) -> None:
    path = manifest(tmp_path, ["harness_capitals"], [str(suite_path())], engine="xllamacpp")
    done = validate(path)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert "tasks[0] (suite)" in line and "backend 'smol' (llamacpp)" in line
    assert "harness_capitals_mc (multiple_choice)" in line and "llama-cpp-python" in line
    generation_only = manifest(tmp_path, ["harness_capitals_gen"], [str(suite_path())])
    assert load_manifest(generation_only).tasks[0].type == "lmeval"


def copy_suite(tmp_path: Path) -> Path:
    suite = tmp_path / "suite"
    shutil.copytree(suite_path(), suite)
    return suite


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("task: broken\noutput_type: [unclosed\n", r"broken\.yaml: .*(flow sequence|expected)"),
        ("- just\n- a list\n", r"broken\.yaml: ValueError: Expected YAML dict"),
    ],
)
def test_a_malformed_task_yaml_exits_2_with_lm_eval_s_reason(
    tmp_path: Path, breakage: str, reason: str
) -> None:
    suite = copy_suite(tmp_path)
    (suite / "broken.yaml").write_text(breakage, encoding="utf-8")
    done = validate(manifest(tmp_path, ["broken"], ["suite"]))
    assert done.returncode == 2
    assert "knows no task, group or tag 'broken'" in done.stderr
    assert re.search(reason, done.stderr), done.stderr


def test_an_unknown_task_name_exits_2_naming_it_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest(tmp_path, ["harness_capitalz"], [str(suite_path())]))
    (line,) = caught.value.problems
    assert "tasks[0].tasks: lm-eval knows no task, group or tag 'harness_capitalz'" in line
    assert "include_defaults: true" in line and caught.value.exit_code == 2


def test_relative_data_files_are_read_beside_their_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not the suite's folder: lm-eval alone would not find the data
    manager = task_manager([suite_path()])
    task = manager.load(["harness_capitals_mc"])["tasks"]["harness_capitals_mc"]
    files = task.get_config("dataset_kwargs")["data_files"]
    assert Path(files["test"]) == suite_path() / "data" / "capitals_mc.jsonl"
    assert len(task.eval_docs) == 9


@needs_scoring_llama
def test_harness_lm_eval_is_lm_eval_s_command_line_with_our_model(tmp_path: Path) -> None:
    args = "type=llamacpp,model=smollm2-135m-instruct,engine=llama-cpp-python,warmup=0"
    done = run_harness(
        "lm-eval",
        "--model",
        "harness",
        "--model_args",
        args,
        "--tasks",
        "harness_capitals_mc",
        "--include_path",
        str(suite_path()),
        "--limit",
        "3",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "|harness_capitals_mc|" in done.stdout and "|acc" in done.stdout


def test_harness_lm_eval_help_is_lm_eval_s() -> None:
    done = run_harness("lm-eval", "--help")
    assert done.returncode == 0 and "Language Model Evaluation Harness" in done.stdout


@pytest.mark.skipif(LLAMA_PROBLEM is not None, reason=LLAMA_PROBLEM or "")
def test_bfcl_runs_inside_lm_eval_scored_by_the_bfcl_task_s_own_checker(tmp_path: Path) -> None:
    import lm_eval
    from harness_plugins.lmeval.lm import HarnessLM

    from harness import BuildContext
    from harness import ChatResponse

    spec = {"type": "bfcl", "categories": ["simple_python"], "mode": "prompt", "limit": 3}
    suite = tmp_path / "suite"
    suite.mkdir()
    task_yaml = (suite_path() / "tools" / "harness_bfcl_simple.yaml").read_text()
    task_yaml = task_yaml.replace("task: harness_bfcl_simple", "task: bfcl_three")
    task_yaml = task_yaml.replace("max_gen_toks: 256", "max_gen_toks: 40")
    task_yaml = task_yaml.replace("mode: prompt}", "mode: prompt, limit: 3}")
    (suite / "bfcl_three.yaml").write_text(task_yaml, encoding="utf-8")
    lm = HarnessLM({"type": "llamacpp", "model": "smollm2-135m-instruct", "warmup": 0})
    try:
        out = lm_eval.simple_evaluate(
            model=lm, tasks=["bfcl_three"], task_manager=task_manager([suite]), log_samples=True
        )
    finally:
        lm.backend.close()
    logged = out["samples"]["bfcl_three"]
    assert len(logged) == 3 and out["results"]["bfcl_three"]["sample_len"] == 3
    check = BuildContext("check", tmp_path)
    task, metric = check.build("task", spec), check.build("metric", "bfcl_ast")
    samples = {s.id: s for s in task.samples()}
    for item in logged:
        sample = samples[item["doc"]["id"]]
        prompt, answer = item["arguments"][0][0], item["resps"][0][0]
        assert sample.metadata["functions"][0]["name"] in prompt  # BFCL's system prompt
        outcome = task.decode(sample, ChatResponse(text=answer))
        assert metric.score(sample, outcome).values["accuracy"] == item["accuracy"]
    mean = sum(item["accuracy"] for item in logged) / 3
    assert out["results"]["bfcl_three"]["accuracy,none"] == pytest.approx(mean)


class PromptLogprobServer:
    """A loopback ``/v1/completions`` that answers ``echo`` + ``logprobs`` from a real model
    (the tiny ONNX one: byte-level, so token i is character i and its offset is i)."""

    def __init__(self, backend: Any) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler
        from http.server import ThreadingHTTPServer

        model = backend

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/v1/completions" and body["echo"] and body["max_tokens"] == 0
                ids, rows = model.logprobs(body["prompt"])
                tokens = [body["prompt"][i] for i in range(len(ids))]
                logprobs = {
                    "tokens": tokens,
                    "text_offset": list(range(len(ids))),
                    "token_logprobs": [None]
                    + [float(rows[i - 1][ids[i]]) for i in range(1, len(ids))],
                    "top_logprobs": [None]
                    + [{"x": float(rows[i - 1].max())} for i in range(1, len(ids))],
                }
                data = json.dumps({"choices": [{"text": body["prompt"], "logprobs": logprobs}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_openai_with_logprobs_scores_continuations_as_the_model_behind_it(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e .[onnx]")
    pytest.importorskip("onnx", reason="builds the tiny test model: pip install onnx")
    from harness_plugins.onnx._tiny import make_tiny_model_folder

    from harness import BuildContext

    context = BuildContext("t", tmp_path)
    tiny = make_tiny_model_folder(tmp_path / "tiny")
    local = context.build("backend", {"type": "onnx", "model": str(tiny), "warmup": 0})
    server = PromptLogprobServer(local)
    remote = context.build(
        "backend",
        {
            "type": "openai",
            "base_url": server.url,
            "model": "tiny",
            "logprobs": True,
            "cache": "off",
        },
    )
    try:
        for pair in [("Q: capital of France?\nA: ", "Paris"), ("", "Hello world")]:
            assert remote.loglikelihood(*pair)[0] == pytest.approx(local.loglikelihood(*pair)[0])
            assert remote.loglikelihood(*pair)[1] == local.loglikelihood(*pair)[1]
    finally:
        remote.close()
        local.close()
        server.httpd.shutdown()
    plain = context.build("backend", {"type": "openai", "base_url": server.url, "model": "t"})
    assert "loglikelihood" not in plain.capabilities
    plain.close()
