"""Repeats (``run.repeats``): seeds per repeat, records per repeat, resume per repeat, and the
pass@k, pass^k and consistency rows against hand-computed values."""

from __future__ import annotations

import hashlib
import json
import threading
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness import Backend
from harness import ChatRequest
from harness import ChatResponse
from harness import GenerationParams
from harness import Message
from harness import Params
from harness import StopRun
from harness import hookimpl
from harness import param
from harness._cli import cli
from harness._errors import RunDirError
from harness._play import SeededBackend
from harness._repeats import estimates
from harness._repeats import pass_at_k
from harness._repeats import pass_hat_k
from harness._repeats import repeat_seed
from harness._results import Tally
from harness._run import run_manifest
from harness._store import iter_records
from harness.testing import write_jsonl

SEEN: list[tuple[str, int | None]] = []  # (sample_id, seed) of every request answered
SAMPLES = ["s0", "s1", "s2", "s3"]
#: which repeats answer wrongly: s0 right 3 of 3, s1 1 of 3, s2 0 of 3, s3 2 of 3
WRONG = {("s1", 1), ("s1", 2), ("s2", 0), ("s2", 1), ("s2", 2), ("s3", 2)}
SEED = 7


class BySeedParams(Params):
    """A backend whose answer depends on the sample and the seed only (never on order)."""

    wrong: list[str] = param([], description="'sample_id@seed' pairs answered wrongly.")
    flag: str = param("", description="While this file exists, request `stop_at` stops the run.")
    stop_at: int = param(0, description="Which request stops the run (counting from 1).")
    max_concurrency: int = param(1, minimum=1, description="Requests in flight at once.")


class BySeed(Backend):
    """Answers 'yes' unless (sample, seed) is listed in ``wrong``; the seed is the request's,
    else the run's (as the llama.cpp backend picks it)."""

    capabilities = frozenset({"loglikelihood"})

    def __init__(self, params: Any, context: Any) -> None:
        super().__init__(params, context)
        self.max_concurrency = params.max_concurrency
        self.count = 0
        self.lock = threading.Lock()

    def chat(self, request: ChatRequest) -> ChatResponse:
        seed = request.params.seed if request.params.seed is not None else self.context.seed
        with self.lock:
            self.count += 1
            stop = self.count == self.params.stop_at and Path(self.params.flag or "-").exists()
        if stop:
            raise StopRun("killed mid-run")
        SEEN.append((str(request.sample_id), seed))
        wrong = f"{request.sample_id}@{seed}" in self.params.wrong
        return ChatResponse(text="no" if wrong else "yes", timing={"total_s": 0.0})

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        return -1.5, True


class Plugin:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register("by_seed", BySeed, params=BySeedParams)


@pytest.fixture
def host(harness_host: Any) -> Any:
    SEEN.clear()
    harness_host.register(Plugin(), "repeats-test")
    return harness_host


def manifest(tmp_path: Path, repeats: int | None = 3, **backend: Any) -> Path:
    data = write_jsonl(
        tmp_path / "qa.jsonl", [{"id": s, "question": "?", "answer": "yes"} for s in SAMPLES]
    )
    wrong = [f"{s}@{repeat_seed(SEED, r)}" for s, r in sorted(WRONG)]
    run: dict[str, Any] = {"seed": SEED}
    if repeats is not None:
        run["repeats"] = repeats
    doc = {
        "name": "rep",
        "backends": [{"type": "by_seed", "id": "m", "wrong": wrong, **backend}],
        "tasks": [{"type": "qa", "path": str(data)}],
        "run": run,
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def cell(run_dir: Path) -> dict[str, Any]:
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    return dict(results["results"]["qa"]["m"])


# --- the estimators -------------------------------------------------------------------------


def test_pass_hat_k_is_tau_bench_and_pass_at_k_is_chen() -> None:
    assert pass_hat_k(4, 2, 1) == 0.5
    assert pass_hat_k(4, 2, 2) == pytest.approx(1 / 6)  # C(2,2)/C(4,2)
    assert pass_hat_k(4, 2, 3) == 0.0
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)  # 1 - C(2,2)/C(4,2)
    assert pass_at_k(4, 2, 3) == 1.0  # any 3 of 4 hold a success
    for n in range(1, 6):
        for c in range(n + 1):
            assert pass_at_k(n, c, 1) == pytest.approx(c / n) == pass_hat_k(n, c, 1)
            assert pass_hat_k(n, c, n) == (c == n)
            assert pass_at_k(n, c, n) == (c > 0)
            for k in range(1, n + 1):  # over every draw of k of the n repeats
                draws = list(combinations([1] * c + [0] * (n - c), k))
                assert pass_hat_k(n, c, k) == pytest.approx(sum(map(all, draws)) / len(draws))
                assert pass_at_k(n, c, k) == pytest.approx(sum(map(any, draws)) / len(draws))


def test_samples_with_fewer_repeats_than_k_are_left_out_of_k() -> None:
    found = {name: list(values) for name, values in estimates([(3, 3), (1, 0), (2, 1)])}
    assert found["pass^1"] == [1.0, 0.0, 0.5]
    assert found["pass^2"] == [1.0, 0.0]  # (1, 0) has one repeat
    assert found["pass@3"] == [1.0]
    assert found["consistency"] == [1.0, 0.0]  # needs 2 repeats to compare
    assert "pass@4" not in found


def test_repeat_seeds_follow_the_documented_formula() -> None:
    assert repeat_seed(SEED, 0) == SEED and repeat_seed(None, 0) is None
    for r in (1, 2, 17):
        text = f"{SEED}:{r}".encode()
        assert repeat_seed(SEED, r) == int(hashlib.sha256(text).hexdigest()[:8], 16) % 2**31
    assert repeat_seed(None, 1) == repeat_seed(0, 1)
    assert repeat_seed(0, 1) != repeat_seed(1, 0)
    assert len({repeat_seed(SEED, r) for r in range(1, 200)}) == 199


def test_the_proxy_reseeds_chat_and_complete_and_forwards_the_rest(host: Any) -> None:
    from harness._parts import BuildContext

    real = BySeed(BySeedParams.from_mapping({"max_concurrency": 3}), BuildContext("m", Path(".")))
    proxy = SeededBackend.of(real, SEED, 2)
    request = ChatRequest(messages=(Message("user", "?"),), sample_id="s0")
    proxy.chat(request)
    proxy.complete("?", request)
    proxy.chat(ChatRequest(request.messages, params=GenerationParams(seed=5), sample_id="s0"))
    assert [seed for _, seed in SEEN] == [repeat_seed(SEED, 2)] * 2 + [repeat_seed(5, 2)]
    assert proxy.max_concurrency == 3 and proxy.capabilities == real.capabilities
    assert proxy.context is real.context and proxy.loglikelihood("a", "b") == (-1.5, True)


def test_tally_counts_binary_metrics_per_subtask_and_skips_the_others() -> None:
    def rec(sample: str, repeat: int, ok: float, sub: str) -> dict[str, Any]:
        scores = {"acc": ok, "len": 0.5 + repeat}
        return {"backend": "b", "task": "t", "sample_id": sample, "repeat": repeat,
                "subtask": sub, "scores": scores, "error": None}  # fmt: skip

    records = [rec("a", 0, 1.0, "x"), rec("a", 1, 0.0, "x"), rec("b", 0, 1.0, "y"),
               rec("b", 1, 1.0, "y")]  # fmt: skip
    rows = {(r["subtask"], r["metric"]): r for r in Tally().add_all(records).rows()}
    assert rows["", "pass^2:acc"]["value"] == 0.5 and rows["", "pass^2:acc"]["n"] == 2
    assert rows["x", "pass^2:acc"]["value"] == 0.0 and rows["y", "pass@2:acc"]["value"] == 1.0
    assert rows["", "consistency:acc"]["value"] == 0.5
    assert rows["", "pass^1:acc"]["n_samples"] == 4  # records, as every row of the key
    assert not [m for _, m in rows if m.endswith(":len")]  # not 0/1: no pass rows


# --- runs -----------------------------------------------------------------------------------


def test_a_run_with_repeats_records_each_repeat_with_its_seed(tmp_path: Path, host: Any) -> None:
    result = run_manifest(manifest(tmp_path), host, tmp_path / "run", progress=False)
    records = list(iter_records(tmp_path / "run" / "samples.jsonl"))
    assert [(r["sample_id"], r["repeat"]) for r in records] == [
        (s, r) for s in SAMPLES for r in range(3)
    ]  # each sample's repeats one after another
    seeds = [repeat_seed(SEED, r) for r in range(3)]
    assert seeds[0] == SEED and len(set(seeds)) == 3
    assert all(r["seed"] == seeds[r["repeat"]] for r in records)
    assert list(SEEN) == [(s, seeds[r]) for s in SAMPLES for r in range(3)]  # requests got
    assert list(records[0])[:5] == ["backend", "task", "sample_id", "repeat", "seed"]
    got = {(r["sample_id"], r["repeat"]): r["scores"]["exact_match"] for r in records}
    assert got == {(s, r): float((s, r) not in WRONG) for s in SAMPLES for r in range(3)}
    # per sample (n, c): s0 (3, 3), s1 (3, 1), s2 (3, 0), s3 (3, 2)
    expected = {
        "exact_match": 6 / 12,
        "pass@1:exact_match": (1 + 1 / 3 + 0 + 2 / 3) / 4,
        "pass@2:exact_match": (1 + 2 / 3 + 0 + 1) / 4,  # 1 - C(3-c, 2)/C(3, 2)
        "pass@3:exact_match": 3 / 4,
        "pass^1:exact_match": 0.5,
        "pass^2:exact_match": (1 + 0 + 0 + 1 / 3) / 4,  # C(c, 2)/C(3, 2)
        "pass^3:exact_match": 1 / 4,
        "consistency:exact_match": 2 / 4,  # s0 and s2 agree with themselves
    }
    found = cell(result.run_dir)
    assert {k: found[k] for k in expected} == pytest.approx(expected)
    assert found["pass^2:exact_match_n"] == 4 and found["n_samples"] == 12
    summary = (result.run_dir / "summary.csv").read_text(encoding="utf-8")
    assert "m,qa,task,,pass^2:exact_match,0.3333333333," in summary
    assert result.results["config"]["repeats"] == 3
    manifest_doc = json.loads((result.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest_doc["experiment"]["repeats"] == 3


def test_a_run_killed_midway_resumes_per_repeat_and_ends_identical(
    tmp_path: Path, host: Any
) -> None:
    flag = tmp_path / "flag"
    path = manifest(tmp_path, flag=str(flag), stop_at=6)  # in s1's last repeat
    whole = run_manifest(path, host, tmp_path / "whole", progress=False)
    flag.write_text("stop")
    with pytest.raises(StopRun, match="killed mid-run"):
        run_manifest(path, host, tmp_path / "run", progress=False)
    before = {
        (r["sample_id"], r["repeat"]) for r in iter_records(tmp_path / "run" / "samples.jsonl")
    }
    assert 0 < len(before) < 12
    flag.unlink()
    SEEN.clear()
    resumed = run_manifest(path, host, tmp_path / "run", progress=False)
    assert (resumed.played, resumed.skipped) == (12 - len(before), len(before))
    seeds = [repeat_seed(SEED, r) for r in range(3)]
    replayed = {(s, seeds.index(seed)) for s, seed in SEEN}
    assert not replayed & before and len(SEEN) == len(replayed)
    for name in ("results.json", "summary.csv"):
        assert (whole.run_dir / name).read_bytes() == (resumed.run_dir / name).read_bytes()


def test_one_repeat_writes_what_a_run_always_wrote(tmp_path: Path, host: Any) -> None:
    plain = run_manifest(manifest(tmp_path, None), host, tmp_path / "plain", progress=False)
    one = run_manifest(manifest(tmp_path, 1), host, tmp_path / "one", progress=False)
    for result in (plain, one):
        records = list(iter_records(result.run_dir / "samples.jsonl"))
        assert len(records) == 4 and not [r for r in records if {"repeat", "seed"} & set(r)]
        assert "repeats" not in result.results["config"]
        assert not [k for k in cell(result.run_dir) if k.startswith(("pass", "consistency"))]
    assert "repeats" not in json.loads((one.run_dir / "manifest.json").read_text())["experiment"]
    assert plain.results["config"]["manifest_sha256"] == one.results["config"]["manifest_sha256"]


def test_resuming_with_other_repeats_is_refused(tmp_path: Path, host: Any) -> None:
    run_manifest(manifest(tmp_path, 2), host, tmp_path / "run", progress=False)
    with pytest.raises(RunDirError, match=r"run\.repeats: 2 -> 3"):
        run_manifest(manifest(tmp_path, 3), host, tmp_path / "run", progress=False)
    with pytest.raises(RunDirError, match=r"run\.repeats: 2 -> 1"):
        run_manifest(manifest(tmp_path, None), host, tmp_path / "run", progress=False)
    again = run_manifest(manifest(tmp_path, 2), host, tmp_path / "run", progress=False)
    assert (again.played, again.skipped) == (0, 8)


def test_the_cli_repeats_option_wins_over_the_manifest(tmp_path: Path, host: Any) -> None:
    path, out = manifest(tmp_path, 3, max_concurrency=3), str(tmp_path / "run")
    result = CliRunner().invoke(cli, ["run", str(path), "--out", out, "--repeats", "2"])
    assert result.exit_code == 0, result.output
    assert "pass^2:exact_match" in result.output
    records = list(iter_records(tmp_path / "run" / "samples.jsonl"))
    assert sorted({r["repeat"] for r in records}) == [0, 1] and len(records) == 8
    refused = CliRunner().invoke(cli, ["run", str(path), "--out", out])  # the manifest's 3
    assert refused.exit_code == 2 and "run.repeats: 2 -> 3" in refused.output
    bad = CliRunner().invoke(cli, ["run", str(path), "--out", out, "--repeats", "0"])
    assert bad.exit_code == 2
