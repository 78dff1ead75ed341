"""The ``openai`` backend against a fault-injecting local server, and the response cache.

End-to-end checks go through the real CLI (a subprocess, as a user runs it): every sample
ends scored or with an error, once; retries are counted; the API key never reaches the run
directory, the output or the logs; a killed run resumes without asking again for what was
finished. Every test points HARNESS_CACHE_DIR at its tmp_path: nothing is written to ~/.cache.
"""

from __future__ import annotations

import email.utils
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HARNESS
from conftest import qa_files
from conftest import run_harness
from fault_server import FaultServer
from harness_plugins.openai import OpenAIParams
from harness_plugins.openai._backend import OpenAIAPIError
from harness_plugins.openai._backend import OpenAIBackend
from harness_plugins.openai._backend import _retry_after
from harness_plugins.openai._backend import wire_messages
from harness_plugins.shared.cache import ResponseCache
from harness_plugins.shared.cache import cache_key
from harness_plugins.shared.cache import cache_stats

from harness import BuildContext
from harness import ChatRequest
from harness import GenerationParams
from harness import Message
from harness import ToolCall
from harness._store import iter_records

KEY = "sk-test-4f9c2a7e0d1b-DO-NOT-LEAK"
TOOLS = ({"type": "function", "function": {"name": "answer", "parameters": {"type": "object"}}},)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"HARNESS_TEST_KEY": KEY, "HARNESS_CACHE_DIR": str(tmp_path / "cache")}


def backend_entry(srv: FaultServer, **params: Any) -> dict[str, Any]:
    entry = {
        "type": "openai",
        "base_url": srv.base_url,
        "model": "test-model",
        "api_key": "${HARNESS_TEST_KEY}",
        "timeout_s": 0.5,
        "max_retries": 3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    return entry | params


def write_manifest(tmp_path: Path, srv: FaultServer, n: int, run: dict | None = None, **params):
    qa, _ = qa_files(tmp_path, n)
    manifest = {
        "name": "api",
        "backends": [backend_entry(srv, **params)],
        "tasks": [{"type": "qa", "path": str(qa)}],
        "run": {"concurrency": 8, **(run or {})},
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def records(run_dir: Path) -> list[dict[str, Any]]:
    return list(iter_records(run_dir / "samples.jsonl"))


def make_backend(srv: FaultServer, tmp_path: Path, **params: Any) -> OpenAIBackend:
    entry = backend_entry(srv, api_key=KEY, cache_path=str(tmp_path / "c.sqlite")) | params
    entry.pop("type")
    return OpenAIBackend(OpenAIParams(**entry), BuildContext(id="openai", base_dir=tmp_path))


def ask(content: str, **kw: Any) -> ChatRequest:
    return ChatRequest(messages=(Message("system", "Be brief."), Message("user", content)), **kw)


# --- end to end: faults, retries, the key ------------------------------------------------------


def test_faults_end_scored_or_errored_once_with_retries_counted_and_no_key_leaked(
    tmp_path: Path, server: FaultServer, env: dict[str, str]
) -> None:
    n = 16
    date = email.utils.formatdate(time.time() + 0.2, usegmt=True)
    server.script.update(
        {
            "q0?": [("429", 0.05)],
            "q1?": ["500", "500"],
            "q2?": [("slow", 0.1)],
            "q3?": ["hang"],
            "q4?": ["drop"],
            "q5?": ["drop_mid"],
            "q6?": ["malformed"],
            "q7?": ["500"] * 10,  # more than max_retries: an error record
            "q8?": ["400"],  # never retried: an error record
            "q9?": [("429", date)],
            "q10?": ["trickle"],
            "q11?": ["drop", "500", "malformed"],
        }
    )
    manifest = write_manifest(tmp_path, server, n, cache="off")
    out = tmp_path / "out"
    result = run_harness("-vv", "run", str(manifest), "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    recs = {r["sample_id"]: r for r in records(out)}
    assert len(records(out)) == len(recs) == n
    errors = {sid for sid, r in recs.items() if r["error"]}
    assert errors == {"s7", "s8"}
    assert "HTTP 500" in recs["s7"]["error"] and "4 attempt(s)" in recs["s7"]["error"]
    assert "HTTP 400" in recs["s8"]["error"] and "not retried" in recs["s8"]["error"]
    assert all(r["scores"]["exact_match"] == 1.0 for sid, r in recs.items() if sid not in errors)
    forced = {sid: server.requests[f"q{sid[1:]}?"] - 1 for sid in recs}
    assert {sid: r.get("retries", 0) for sid, r in recs.items()} == forced
    assert forced["s7"] == 3 and forced["s8"] == 0 and forced["s11"] == 3
    cell = json.loads((out / "results.json").read_text())["results"]["qa"]["openai"]
    assert cell["n_retries"] == server.total_requests - n == sum(forced.values())
    assert cell["n_errors"] == 2
    # the key: the server got it, nothing the run wrote or printed holds it
    assert set(server.authorizations) == {f"Bearer {KEY}"}
    assert "retry 1 of 3" in result.stderr  # the -vv logs were on
    assert_no_key(out, result.stdout + result.stderr)


def assert_no_key(folder: Path, *texts: str) -> None:
    for text in texts:
        assert KEY not in text
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_streaming_measures_ttft_and_tokens_per_sample(
    tmp_path: Path, server: FaultServer, env: dict[str, str]
) -> None:
    server.latency = 0.02
    server.script["q1?"] = ["drop"]
    manifest = write_manifest(tmp_path, server, 6, stream=True, cache="off")
    out = tmp_path / "out"
    result = run_harness("run", str(manifest), "--out", str(out), "--no-progress", env=env)
    assert result.returncode == 0, result.stderr
    for rec in records(out):
        assert rec["error"] is None and rec["scores"]["exact_match"] == 1.0
        timing = rec["timing"]
        assert 0 < timing["ttft_s"] <= timing["total_s"]
        assert (timing["input_tokens"], timing["output_tokens"]) == (11, 2)
    assert all(body["stream"] is True for body in server.bodies.values())
    assert json.loads((out / "manifest.json").read_text())["backends"]["openai"]["stream"]


# --- kill, resume, cache ----------------------------------------------------------------------


def _kill_after(proc: subprocess.Popen, samples: Path, at_least: int) -> None:
    deadline = time.monotonic() + 30
    while len(list(iter_records(samples))) < at_least:
        assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "run made no progress"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.parametrize("cache", ["off", "auto"])
def test_killed_run_resumes_without_asking_again_for_finished_samples(
    tmp_path: Path, server: FaultServer, env: dict[str, str], cache: str
) -> None:
    n = 40
    server.latency = 0.1
    manifest = write_manifest(
        tmp_path, server, n, run={"concurrency": 4, "flush_every": 1}, cache=cache
    )
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*HARNESS, "run", str(manifest), "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    _kill_after(proc, out / "samples.jsonl", 10)
    assert proc.returncode == -signal.SIGKILL
    finished = {r["sample_id"] for r in records(out)}
    assert 10 <= len(finished) < n
    cached = cache_stats(tmp_path / "cache" / "responses.sqlite")["entries"]
    assert cached == 0 if cache == "off" else cached >= len(finished)
    server.reset_counts()
    result = run_harness("run", str(manifest), "--out", str(out), "--no-progress", env=env)
    assert result.returncode == 0, result.stderr
    again = {f"s{c[1:-1]}" for c in server.requests} & finished
    assert not again, f"finished samples were asked again: {sorted(again)}"
    ids = [r["sample_id"] for r in records(out)]
    assert len(ids) == len(set(ids)) == n
    assert server.total_requests <= n - len(finished)
    if cache == "auto":  # answers received before the kill but not yet recorded cost nothing
        assert server.total_requests == n - cached
    assert_no_key(out, result.stdout, result.stderr)


def test_cache_hit_costs_no_request_when_samples_are_lost(
    tmp_path: Path, server: FaultServer, env: dict[str, str]
) -> None:
    manifest = write_manifest(tmp_path, server, 12)
    first = run_harness("run", str(manifest), "--out", str(tmp_path / "a"), env=env)
    assert first.returncode == 0, first.stderr
    assert server.total_requests == 12
    server.reset_counts()
    second = run_harness("run", str(manifest), "--out", str(tmp_path / "b"), env=env)
    assert second.returncode == 0, second.stderr
    assert server.total_requests == 0
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert a["results"] == b["results"]
    cache_file = tmp_path / "cache" / "responses.sqlite"
    assert cache_file.exists()
    assert_no_key(tmp_path / "cache")


def test_cache_info_and_clear_from_the_cli(
    tmp_path: Path, server: FaultServer, env: dict[str, str]
) -> None:
    empty = run_harness("cache", "info", "--json", env=env)
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout)["entries"] == 0
    manifest = write_manifest(tmp_path, server, 5)
    assert run_harness("run", str(manifest), "--out", str(tmp_path / "o"), env=env).returncode == 0
    info = run_harness("cache", "info", env=env)
    assert info.returncode == 0, info.stderr
    assert str(tmp_path / "cache" / "responses.sqlite") in info.stdout
    assert "entries: 5" in info.stdout and "size:" in info.stdout
    stats = json.loads(run_harness("cache", "info", "--json", env=env).stdout)
    assert stats["entries"] == 5 and stats["size_bytes"] > 0
    cleared = run_harness("cache", "clear", env=env)
    assert cleared.returncode == 0 and "cleared 5 entries" in cleared.stdout
    assert json.loads(run_harness("cache", "info", "--json", env=env).stdout)["entries"] == 0


# --- in process: modes, tool calls, cache policy, errors ---------------------------------------


def test_modes_decide_what_is_sent_and_tool_calls_are_parsed(
    tmp_path: Path, server: FaultServer
) -> None:
    backend = make_backend(server, tmp_path, cache="off")
    try:
        server.script["q1?"] = ["tool"]
        native = backend.chat(ask("q1?", tools=TOOLS, tool_choice="auto", mode="native"))
        assert native.tool_calls == (ToolCall("answer", {"value": 1}),)
        assert server.bodies["q1?"]["tool_choice"] == "auto"
        assert server.bodies["q1?"]["tools"] == list(TOOLS)
        backend.chat(ask("q2?", tools=TOOLS, mode="constrained"))
        assert server.bodies["q2?"]["tool_choice"] == "required"
        named = {"type": "function", "function": {"name": "answer"}}
        backend.chat(ask("q3?", tools=TOOLS, tool_choice=named, mode="constrained"))
        assert server.bodies["q3?"]["tool_choice"] == named
        prompt = backend.chat(ask("q4?", tools=TOOLS, mode="prompt"))
        assert "tools" not in server.bodies["q4?"] and prompt.text == "4"
        server.script["q5?"] = ["bad_tool"]
        bad = backend.chat(ask("q5?", tools=TOOLS, mode="native"))
        assert bad.tool_calls is None and "not valid JSON" in bad.extra["tool_call_error"]
        params = GenerationParams(max_tokens=7, temperature=0.5, top_p=0.9, stop=("\n",), seed=3)
        backend.chat(ask("q6?", params=params))
        sent = server.bodies["q6?"]
        assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (7, 0.5, 0.9)
        assert (sent["stop"], sent["seed"], sent["model"]) == (["\n"], 3, "test-model")
    finally:
        backend.close()


def test_streamed_tool_call_deltas_are_joined(tmp_path: Path, server: FaultServer) -> None:
    backend = make_backend(server, tmp_path, cache="off", stream=True)
    try:
        server.script["q9?"] = ["tool"]
        response = backend.chat(ask("q9?", tools=TOOLS, mode="native"))
        assert response.tool_calls == (ToolCall("answer", {"value": 9}),)
        assert response.finish_reason == "tool_calls" and response.timing["ttft_s"] > 0
        assert response.output_tokens == 2
        server.streaming = False  # a server that ignores stream=true: plain JSON is read
        assert backend.chat(ask("q8?")).text == "8"
    finally:
        backend.close()


def test_cache_policy_auto_on_off(tmp_path: Path, server: FaultServer) -> None:
    backend = make_backend(server, tmp_path)
    try:
        first, second = backend.chat(ask("q1?")), backend.chat(ask("q1?"))
        assert server.requests["q1?"] == 1
        assert "cached" not in first.extra and second.extra["cached"] is True
        assert second.text == first.text and "retries" not in second.extra
        sampled = ask("q2?", params=GenerationParams(temperature=0.8))
        backend.chat(sampled), backend.chat(sampled)
        assert server.requests["q2?"] == 2  # auto: unseeded sampling is not cached
        seeded = ask("q3?", params=GenerationParams(temperature=0.8, seed=1))
        backend.chat(seeded), backend.chat(seeded)
        assert server.requests["q3?"] == 1
        assert backend.info()["cache"]["path"] == str(tmp_path / "c.sqlite")
    finally:
        backend.close()
    forced = make_backend(server, tmp_path, cache="on")  # "on": sampling is cached too
    try:
        forced.chat(sampled), forced.chat(sampled)
        assert server.requests["q2?"] == 3
    finally:
        forced.close()


def test_cache_key_ignores_the_api_key_and_store_holds_no_key(tmp_path: Path) -> None:
    parts = {"backend": "openai", "body": {"model": "m", "messages": []}}
    assert cache_key(parts) == cache_key(dict(reversed(parts.items())))
    cache = ResponseCache(tmp_path / "x.sqlite")
    try:
        from harness import ChatResponse

        cache.put("k", ChatResponse(text="t", tool_calls=(ToolCall("f", {"a": 1}),)))
        hit = cache.get("k")
        assert hit is not None and hit.tool_calls == (ToolCall("f", {"a": 1}),)
        assert len(cache) == 1
    finally:
        cache.close()
    assert cache_stats(tmp_path / "x.sqlite")["entries"] == 1
    assert cache_stats(tmp_path / "none.sqlite") == {
        "path": str(tmp_path / "none.sqlite"),
        "exists": False,
        "entries": 0,
        "size_bytes": 0,
    }


def test_errors_name_the_status_and_never_the_key(tmp_path: Path, server: FaultServer) -> None:
    backend = make_backend(server, tmp_path, cache="off", max_retries=1)
    try:
        server.script["q1?"] = ["400"]
        with pytest.raises(OpenAIAPIError) as fatal:
            backend.chat(ask("q1?"))
        assert fatal.value.status == 400 and fatal.value.retries == 0
        assert KEY not in str(fatal.value) and "***" in str(fatal.value)
        server.script["q2?"] = ["hang", "hang"]
        started = time.perf_counter()
        with pytest.raises(OpenAIAPIError, match=r"timed out after 0\.5s") as slow:
            backend.chat(ask("q2?"))
        assert slow.value.retries == 1 and time.perf_counter() - started < 3
        assert KEY not in json.dumps(backend.info())
    finally:
        backend.close()


def test_concurrency_is_bounded_by_max_concurrency(tmp_path: Path, server: FaultServer) -> None:
    import concurrent.futures as cf

    server.latency = 0.05
    backend = make_backend(server, tmp_path, cache="off", max_concurrency=3)
    try:
        with cf.ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(lambda i: backend.chat(ask(f"q{i}?")).text, range(20)))
        assert answers == [str(i) for i in range(20)]
        assert server.max_in_flight <= 3
    finally:
        backend.close()


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    from multidict import CIMultiDict

    assert _retry_after(CIMultiDict({"Retry-After": "2.5"})) == 2.5
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < _retry_after(CIMultiDict({"retry-after": later})) <= 30
    assert _retry_after(CIMultiDict({"Retry-After": "soon"})) is None
    assert _retry_after(CIMultiDict()) is None


def test_wire_messages_give_calls_ids_and_json_arguments() -> None:
    messages = (
        Message("user", "hi"),
        Message("assistant", None, tool_calls=(ToolCall("f", {"x": 1}), ToolCall("g"))),
        Message("tool", "1"),
        Message("tool", "2"),
    )
    wire = wire_messages(messages)
    calls = wire[1]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_1_0", "call_1_1"]
    assert calls[0]["function"] == {"name": "f", "arguments": '{"x": 1}'}
    assert [w["tool_call_id"] for w in wire[2:]] == ["call_1_0", "call_1_1"]


def test_ctrl_c_during_slow_requests_exits_at_once(
    tmp_path: Path, server: FaultServer, env: dict[str, str]
) -> None:
    """Requests still waiting on the server are cancelled by close(): no wait for timeouts."""
    server.latency = 20
    manifest = write_manifest(tmp_path, server, 8, timeout_s=30, cache="off")
    proc = subprocess.Popen(
        [*HARNESS, "run", str(manifest), "--out", str(tmp_path / "o"), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    deadline = time.monotonic() + 20
    while server.total_requests < 8:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 5


def test_an_oversized_response_is_refused_while_read_and_retried(
    tmp_path: Path, server: FaultServer
) -> None:
    """A 3 GB body used to be buffered whole (12.4 GB of memory)."""
    server.script["q1?"] = [("oversized", 2)]
    server.script["q2?"] = [("oversized", 2)] * 10
    backend = make_backend(server, tmp_path, max_response_mb=1, cache="off", max_retries=2)
    try:
        answer = backend.chat(ask("q1?"))
        assert answer.text == "1" and answer.extra["retries"] == 1
        with pytest.raises(Exception, match="response larger than 1 MiB"):
            backend.chat(ask("q2?"))
        assert server.requests["q2?"] == 3  # the first try and two retries
    finally:
        backend.close()
