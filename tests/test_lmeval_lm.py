"""Our backends inside lm-eval: ``HarnessLM`` answers lm-eval's request types, and the shipped
lm-eval YAML suite (registry/lmeval) runs through ``lm_eval.simple_evaluate`` offline, with a
task manager that never builds lm-eval's own index."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("lm_eval", reason="the lm-eval extra: pip install -e .[lm-eval]")
pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e .[onnx]")
pytest.importorskip("onnx", reason="builds the tiny test model: pip install onnx")

from harness_plugins.lmeval import suite_path
from harness_plugins.lmeval.lm import HarnessLM
from harness_plugins.onnx._tiny import make_tiny_model_folder


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> HarnessLM:
    tiny = make_tiny_model_folder(tmp_path_factory.mktemp("models") / "tiny")
    return HarnessLM({"type": "onnx", "model": str(tiny), "threads": 1, "warmup": 0})


def request(*args: object) -> SimpleNamespace:
    return SimpleNamespace(args=args)


def test_loglikelihood_sums_the_continuations_tokens_after_the_context(lm: HarnessLM) -> None:
    context, continuation = "Q: What is the capital of France?\nA:", " Paris"
    ((logprob, greedy),) = lm.loglikelihood([request(context, continuation)])
    ids, rows = lm.backend.logprobs(context + continuation)
    start = len(lm.backend.tokenize(context))
    assert len(ids) - start == len(" Paris")  # byte-level tokenizer: one token per byte
    assert logprob == pytest.approx(sum(rows[i - 1][ids[i]] for i in range(start, len(ids))))
    assert logprob < 0 and isinstance(greedy, bool)
    (rolling,) = lm.loglikelihood_rolling([request(context + continuation)])
    assert rolling < logprob  # the whole text is less likely than its last word


def test_generate_until_cuts_at_the_first_stop_string(lm: HarnessLM) -> None:
    (free,) = lm.generate_until([request("Hello", {"max_gen_toks": 20})])
    assert free
    stop = free[3:5]
    (cut,) = lm.generate_until([request("Hello", {"max_gen_toks": 20, "until": [stop]})])
    assert cut == free[: free.index(stop)]


def test_the_shipped_suite_runs_offline_through_simple_evaluate(
    lm: HarnessLM, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.chdir(suite_path())  # lm-eval reads data_files against the working directory
    manager = TaskManager(include_path=str(suite_path()), include_defaults=False)
    out = lm_eval.simple_evaluate(
        model=lm, tasks=["harness_capitals"], task_manager=manager, bootstrap_iters=0
    )
    results = out["results"]
    assert results["harness_capitals_gen"]["sample_len"] == 9
    assert 0 <= results["harness_capitals_gen"]["exact_match,strip"] <= 1
    accuracy = results["harness_capitals_mc"]["acc,none"]
    assert 0 <= accuracy <= 1 and not math.isnan(accuracy)
    assert results["harness_capitals"]["sample_len"] == 18  # the group over both


def test_a_backend_without_log_probabilities_is_named(tmp_path: Path) -> None:
    replay = tmp_path / "replay.jsonl"
    replay.write_text('{"sample_id": "x", "output": "y"}\n')
    lm = HarnessLM({"type": "replay", "path": str(replay)})
    with pytest.raises(ValueError, match=r"gives no log-likelihoods.*llama-cpp-python"):
        lm.loglikelihood([request("Q:", " A")])


def test_lm_eval_model_args_become_the_backend_entry(tmp_path: Path) -> None:
    replay = tmp_path / "replay.jsonl"
    replay.write_text('{"sample_id": "x", "output": "y"}\n')
    lm = HarnessLM.create_from_arg_string(f"type=replay,path={replay}")
    assert lm.spec == {"type": "replay", "path": str(replay)}


@pytest.mark.slow
def test_lm_evals_own_command_line_runs_a_harness_backend(lm: HarnessLM, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    model = lm.spec["model"]
    command = [sys.executable, "-m", "harness_plugins.lmeval", "--model", "harness"]
    command += ["--model_args", f"type=onnx,model={model},threads=1,warmup=0"]
    command += ["--tasks", "harness_capitals_mc", "--include_path", str(suite_path())]
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        command, cwd=suite_path(), env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    row = next(line for line in done.stdout.splitlines() if "harness_capitals_mc" in line)
    assert "|acc" in row.replace(" ", "")
    assert HarnessLM.create_from_arg_obj(dict(lm.spec), {"batch_size": 1}).spec == lm.spec
