"""``harness serve``: the OpenAI-compatible server over a harness backend.

Fast tests run the aiohttp app in a thread over a tiny echo backend (no model), and the real
command over the example plugin's ``calculator`` backend. Tests marked ``slow`` serve the
real SmolLM2 GGUF and point lm-eval's ``local-chat-completions`` client at it.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import HARNESS
from conftest import needs_llama
from conftest import write_jsonl
from harness_plugins.serve import is_loopback
from harness_plugins.serve._app import BadRequest
from harness_plugins.serve._app import Server
from harness_plugins.serve._app import chat_request
from harness_plugins.serve._app import create_app
from harness_plugins.serve._app import start

from harness import Backend
from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse
from harness import ToolCall

URL = re.compile(r"http://\S+/v1")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone.",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
        },
    },
}


# --- helpers --------------------------------------------------------------------------------


class EchoBackend(Backend):
    """Echoes the last message; calls the first offered tool when tools are passed; fails on
    "boom". Remembers every request so tests can check the conversion."""

    capabilities = frozenset({"native_tools", "constrained", "complete"})
    max_concurrency = 2

    def __init__(self) -> None:
        super().__init__({}, BuildContext(id="echo", base_dir=Path.cwd()))
        self.requests: list[ChatRequest] = []

    def chat(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        last = request.messages[-1].content or ""
        if last == "boom":
            raise RuntimeError("the echo chamber collapsed")
        if last == "too long":
            raise ValueError("the prompt has 9999 tokens and n_ctx is 2048")
        if request.tools:
            name = request.tools[0]["function"]["name"]
            call = ToolCall(name, {"city": "Paris"})
            return ChatResponse(text='[{"name": "x"}]', tool_calls=(call,), input_tokens=3)
        return ChatResponse(text=f"echo: {last}", input_tokens=3, output_tokens=2)


def post(url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, str]:
    """POST JSON (or raw bytes); return the status and the body text, errors included."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode()


def sse_events(text: str) -> list[str]:
    """The ``data:`` payloads of a Server-Sent Events body, in order."""
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


@contextmanager
def app_in_thread(backend: Backend, model: str = "echo") -> Iterator[str]:
    """The real aiohttp app on a free loopback port, served by a thread's event loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        server = Server(backend, model)
        runner, state["url"] = await start(create_app(server), "127.0.0.1", 0)
        state["stop"] = asyncio.Event()
        ready.set()
        await state["stop"].wait()
        await runner.cleanup()
        server.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the server did not start"
    try:
        yield state["url"]
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(10)
        loop.close()


@contextmanager
def serve_process(
    args: list[str], log: Path, env: dict[str, str] | None = None, wait_s: float = 120
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``harness serve ARGS --port 0`` in a subprocess; yields it and its printed base URL,
    then stops it with SIGINT (what Ctrl-C sends)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*HARNESS, "serve", *args, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=full_env,
        )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    try:
        yield proc, _wait_for_url(proc, lines, wait_s, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_url(proc: subprocess.Popen[str], lines: queue.Queue[str], wait_s: float, log: Path):
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            found = URL.search(lines.get(timeout=0.2))
        except queue.Empty:
            if proc.poll() is not None:
                pytest.fail(f"harness serve exited {proc.returncode}: {log.read_text()}")
            continue
        if found:
            return found.group(0)
    pytest.fail(f"harness serve printed no URL in {wait_s}s: {log.read_text()}")


# --- request conversion (no server) ---------------------------------------------------------

BOTH = frozenset({"native_tools", "constrained"})
NATIVE_ONLY = frozenset({"native_tools"})
USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("extra", "capabilities", "tool_mode", "mode"),
    [
        ({}, BOTH, "auto", None),
        ({"tools": [WEATHER]}, BOTH, "auto", "native"),
        ({"tools": [WEATHER], "tool_choice": "auto"}, BOTH, "auto", "native"),
        ({"tools": [WEATHER], "tool_choice": "required"}, BOTH, "auto", "constrained"),
        ({"tools": [WEATHER], "tool_choice": "required"}, NATIVE_ONLY, "auto", "native"),
        (
            {
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            },
            BOTH,
            "auto",
            "constrained",
        ),
        ({"tools": [WEATHER], "tool_choice": "none"}, BOTH, "auto", None),
        ({"tools": [WEATHER]}, BOTH, "constrained", "constrained"),
        ({"tools": [WEATHER], "tool_choice": "required"}, BOTH, "native", "native"),
        ({"tools": [WEATHER], "harness_mode": "constrained"}, BOTH, "native", "constrained"),
        ({"tools": [WEATHER], "harness_mode": "prompt"}, BOTH, "auto", "prompt"),
    ],
)
def test_mode_mapping(
    extra: dict[str, Any], capabilities: frozenset[str], tool_mode: str, mode: str | None
) -> None:
    request = chat_request({"messages": USER, **extra}, capabilities, tool_mode)
    assert request.mode == mode
    assert (request.tools is not None) == (mode in ("native", "constrained"))


def test_conversation_with_tool_calls_and_sampling_settings() -> None:
    body = {
        "model": "anything",
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [WEATHER],
        "max_completion_tokens": 12,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": "\n",
        "seed": 7,
        "logit_bias": {},
    }
    request = chat_request(body, BOTH)
    system, _, assistant, tool = request.messages
    assert (system.role, system.content) == ("system", "Be brief.")
    assert assistant.tool_calls == (ToolCall("get_weather", {"city": "Paris"}),)
    assert (tool.role, tool.tool_call_id, tool.content) == ("tool", "call_1", "sunny")
    params = request.params
    assert (params.max_tokens, params.temperature, params.top_p) == (12, 0.5, 0.9)
    assert (params.stop, params.seed) == (("\n",), 7)


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"role": "robot", "content": "hi"}]},
        {"messages": USER, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        {"messages": USER, "max_tokens": 0},
        {"messages": USER, "temperature": "hot"},
        {"messages": USER, "n": 2},
        {"messages": USER, "tools": [WEATHER], "harness_mode": "telepathy"},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
    ],
)
def test_bad_bodies_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        chat_request(body, BOTH)


def test_constrained_needs_the_capability() -> None:
    body = {"messages": USER, "tools": [WEATHER], "harness_mode": "constrained"}
    with pytest.raises(BadRequest, match="constrained"):
        chat_request(body, NATIVE_ONLY)


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("192.168.1.4", False),
        ("example.org", False),
    ],
)
def test_loopback_detection(host: str, ok: bool) -> None:
    assert is_loopback(host) is ok


# --- the HTTP layer over the echo backend ---------------------------------------------------


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[str, EchoBackend]]:
    backend = EchoBackend()
    with app_in_thread(backend) as url:
        yield url, backend


def test_chat_completion_shape(echo: tuple[str, EchoBackend]) -> None:
    url, _ = echo
    status, text = post(f"{url}/chat/completions", {"model": "x", "messages": USER})
    assert status == 200, text
    body = json.loads(text)
    assert body["object"] == "chat.completion" and body["model"] == "echo"
    assert body["id"].startswith("chatcmpl-") and isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant", "content": "echo: hi"}
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_tool_calls_shape(echo: tuple[str, EchoBackend]) -> None:
    url, backend = echo
    body = {"messages": USER, "tools": [WEATHER, TIME], "tool_choice": "required"}
    status, text = post(f"{url}/chat/completions", body)
    assert status == 200, text
    choice = json.loads(text)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert backend.requests[-1].mode == "constrained"
    assert backend.requests[-1].tool_choice == "required"


def test_stream_is_server_sent_events(echo: tuple[str, EchoBackend]) -> None:
    url, _ = echo
    body = {"messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    status, text = post(f"{url}/chat/completions", body)
    assert status == 200, text
    events = sse_events(text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]]
    assert "".join(deltas) == "echo: hi"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 5


def test_stream_of_tool_calls(echo: tuple[str, EchoBackend]) -> None:
    url, _ = echo
    body = {"messages": USER, "tools": [WEATHER], "stream": True}
    chunks = [json.loads(e) for e in sse_events(post(f"{url}/chat/completions", body)[1])[:-1]]
    calls = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert [(c["index"], c["function"]["name"]) for c in calls] == [(0, "get_weather")]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all("usage" not in c for c in chunks)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'{"model": "x"}', "missing_messages"),
        (b'["a list"]', "invalid_request"),
    ],
)
def test_bad_requests_get_openai_errors(
    echo: tuple[str, EchoBackend], raw: bytes, code: str
) -> None:
    status, text = post(f"{echo[0]}/chat/completions", raw=raw)
    assert status == 400
    error = json.loads(text)["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == code
    assert error["message"]


def test_backend_failure_is_a_500_without_traceback(echo: tuple[str, EchoBackend]) -> None:
    body = {"messages": [{"role": "user", "content": "boom"}]}
    status, text = post(f"{echo[0]}/chat/completions", body)
    assert status == 500
    error = json.loads(text)["error"]
    assert error["type"] == "server_error"
    assert "the echo chamber collapsed" in error["message"]
    assert "Traceback" not in text


def test_backend_refusal_is_a_400(echo: tuple[str, EchoBackend]) -> None:
    body = {"messages": [{"role": "user", "content": "too long"}]}
    status, text = post(f"{echo[0]}/chat/completions", body)
    assert status == 400
    error = json.loads(text)["error"]
    assert error["code"] == "backend_refused" and "n_ctx" in error["message"]


def test_models_completions_and_unknown_routes(echo: tuple[str, EchoBackend]) -> None:
    url, _ = echo
    status, text = get(f"{url}/models")
    assert status == 200 and [m["id"] for m in json.loads(text)["data"]] == ["echo"]
    status, text = post(f"{url}/completions", {"prompt": ["one", "two"], "max_tokens": 4})
    assert status == 200, text
    body = json.loads(text)
    assert body["object"] == "text_completion"
    assert [c["text"] for c in body["choices"]] == ["echo: one", "echo: two"]
    assert post(f"{url}/completions", {"prompt": "x", "echo": True, "logprobs": 1})[0] == 400
    status, text = post(f"{url}/nowhere", {})
    assert status == 404 and "error" in json.loads(text)


# --- the command ----------------------------------------------------------------------------


def calculator_manifest(tmp_path: Path, backends: list[dict[str, Any]] | None = None) -> Path:
    manifest = {
        "name": "serve-test",
        "backends": backends or [{"type": "calculator", "id": "calc", "fail_every": 3}],
        "tasks": [{"type": "addition", "count": 2}],
    }
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return path


def test_serve_command_answers_and_stops_on_ctrl_c(tmp_path: Path, example_plugin: Path) -> None:
    env = {"PYTHONPATH": str(example_plugin)}
    with serve_process([str(calculator_manifest(tmp_path))], tmp_path / "err.log", env) as (
        proc,
        url,
    ):
        assert url.startswith("http://127.0.0.1:")
        question = {"messages": [{"role": "user", "content": "What is 2 plus 3?"}]}
        status, text = post(f"{url}/chat/completions", question)
        assert status == 200, text
        assert json.loads(text)["choices"][0]["message"]["content"] == "The answer is 5."
        assert json.loads(text)["model"] == "calc"
        post(f"{url}/chat/completions", question)
        status, text = post(f"{url}/chat/completions", question)  # fail_every: 3
        assert status == 500 and "calculator overheated" in text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    log = (tmp_path / "err.log").read_text()
    assert "stopped" in log and "RuntimeError" in log  # the traceback stays in the log


def test_serve_picks_a_backend_by_id(tmp_path: Path, example_plugin: Path) -> None:
    backends = [{"type": "calculator", "id": "a"}, {"type": "calculator", "id": "b"}]
    manifest = str(calculator_manifest(tmp_path, backends))
    env = {**os.environ, "PYTHONPATH": str(example_plugin)}
    refused = subprocess.run(
        [*HARNESS, "serve", manifest], capture_output=True, text=True, env=env, timeout=60
    )
    assert refused.returncode == 2 and "--backend" in refused.stderr
    with serve_process([manifest, "--backend", "b"], tmp_path / "err.log", env) as (_, url):
        _, text = get(f"{url}/models")
        assert [m["id"] for m in json.loads(text)["data"]] == ["b"]


def test_bad_manifest_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nbackends:\n  - type: no_such_backend\ntasks: []\n")
    result = subprocess.run(
        [*HARNESS, "serve", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) >= 2 and all(line.startswith(str(path)) for line in lines)


def test_non_loopback_host_needs_allow_remote(tmp_path: Path) -> None:
    result = subprocess.run(
        [*HARNESS, "serve", "--gguf", "whatever", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr and "Traceback" not in result.stderr


def test_manifest_or_gguf_is_required() -> None:
    result = subprocess.run([*HARNESS, "serve"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--gguf" in result.stderr


# --- the real model -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``harness serve`` of SmolLM2 (from a run manifest) shared by the slow tests."""
    folder = tmp_path_factory.mktemp("serve-smollm2")
    questions = write_jsonl(folder / "qa.jsonl", [{"id": "1", "question": "2+2?", "answer": "4"}])
    manifest = {
        "name": "serve-smollm2",
        "backends": [
            {
                "type": "llamacpp",
                "id": "smollm2",
                "model": "smollm2-135m-instruct",
                "n_ctx": 2048,
                "n_threads": 1,
            }
        ],
        "tasks": [{"type": "qa", "path": str(questions)}],
    }
    path = folder / "serve.yaml"
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    with serve_process([str(path)], folder / "err.log") as (_, url):
        yield url


@pytest.mark.slow
@needs_llama
def test_real_model_answers_with_usage(smollm2: str) -> None:
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 16,
    }
    status, text = post(f"{smollm2}/chat/completions", body)
    assert status == 200, text
    answer = json.loads(text)
    assert answer["choices"][0]["message"]["content"].strip()
    usage = answer["usage"]
    assert usage["prompt_tokens"] > 5 and 0 < usage["completion_tokens"] <= 16
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.slow
@needs_llama
def test_real_model_constrained_tool_calls(smollm2: str) -> None:
    body = {
        "messages": [{"role": "user", "content": "What is the weather in Paris right now?"}],
        "tools": [WEATHER, TIME],
        "tool_choice": "required",
        "max_tokens": 64,
    }
    status, text = post(f"{smollm2}/chat/completions", body)
    assert status == 200, text
    answer = json.loads(text)
    assert answer["harness"]["mode"] == "constrained"
    calls = answer["choices"][0]["message"]["tool_calls"]
    assert calls and answer["choices"][0]["finish_reason"] == "tool_calls"
    for call in calls:
        assert call["function"]["name"] in {"get_weather", "get_time"}
        assert isinstance(json.loads(call["function"]["arguments"]), dict)


@pytest.mark.slow
@needs_llama
def test_real_model_streams(smollm2: str) -> None:
    body = {
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 8,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, text = post(f"{smollm2}/chat/completions", body)
    assert status == 200, text
    events = sse_events(text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1]).strip()
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["usage"]["completion_tokens"] > 0


TASK_YAML = """
task: serve_toy
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Answer in one word. {{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs: {{until: ["\\n"], do_sample: false, max_gen_toks: 16}}
metric_list:
  - {{metric: exact_match, aggregation: mean, higher_is_better: true, ignore_case: true}}
metadata: {{version: 1.0}}
"""


@pytest.mark.slow
@needs_llama
def test_lm_eval_local_chat_completions(smollm2: str, tmp_path: Path) -> None:
    pytest.importorskip("tenacity", reason="lm-eval's API client needs the lm-eval[api] extra")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    rows = [
        {"question": "What is the capital of France?", "answer": "Paris"},
        {"question": "What is 2 plus 2?", "answer": "4"},
    ]
    data = write_jsonl(tasks / "data.jsonl", rows)
    (tasks / "serve_toy.yaml").write_text(TASK_YAML.format(data=data), encoding="utf-8")
    model_args = (
        f"model=smollm2,base_url={smollm2}/chat/completions,num_concurrent=1,"
        "tokenized_requests=False,max_retries=1"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
    }
    result = subprocess.run(
        [
            *(sys.executable, "-m", "lm_eval", "--model", "local-chat-completions"),
            *("--model_args", model_args, "--tasks", "serve_toy", "--include_path", str(tasks)),
            *("--apply_chat_template", "--output_path", str(tmp_path / "out"), "--log_samples"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (results_file,) = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]["serve_toy"]
    assert 0 <= results["exact_match,none"] <= 1
    (samples_file,) = (tmp_path / "out").rglob("samples_serve_toy_*.jsonl")
    answers = [json.loads(line)["resps"][0][0] for line in samples_file.read_text().splitlines()]
    assert len(answers) == 2 and all(a.strip() for a in answers)


@pytest.mark.slow
@needs_llama
def test_openai_backend_runs_bfcl_against_served_smollm2(smollm2: str, tmp_path: Path) -> None:
    """The whole remote path on a real model: `harness run` with the `openai` backend talks to
    `harness serve`, in prompt and constrained modes, and nothing leaks the key."""
    key = "sk-serve-test-0123456789"
    manifest = {
        "name": "remote-smollm2",
        "backends": [
            {
                "type": "openai",
                "base_url": smollm2,
                "model": "smollm2",
                "api_key": "${HARNESS_TEST_KEY}",
                "max_concurrency": 1,
                "cache": "off",
            }
        ],
        "tasks": [
            {
                "type": "bfcl",
                "id": "prompt",
                "mode": "prompt",
                "limit": 2,
                "max_tokens": 48,
                "categories": ["simple_python", "irrelevance"],
            },
            {
                "type": "bfcl",
                "id": "constrained",
                "mode": "constrained",
                "limit": 2,
                "max_tokens": 96,
                "categories": ["simple_python", "irrelevance"],
            },
        ],
    }
    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    out = tmp_path / "o"
    env = {**os.environ, "HARNESS_TEST_KEY": key, "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [*HARNESS, "run", str(path), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 8 and not any(r["error"] for r in records)
    constrained = [r for r in records if r["task"] == "constrained"]
    assert all("decode_error" not in r for r in constrained)
    assert all(r["timing"]["input_tokens"] > 0 for r in records)
    for file in out.iterdir():
        assert key not in file.read_text(), file.name
    assert key not in result.stdout + result.stderr


# --- issue 10: inputs refused with a 400, loopback names only, one model by id --------------


def _request(url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [5]}, "tools"),
        ({"seed": 1e400}, "seed"),  # json.dumps writes Infinity; the server reads inf
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_bad_or_unsupported_fields_are_a_400_not_a_500(
    echo: tuple[str, EchoBackend], extra: dict[str, Any], param: str
) -> None:
    url, _ = echo
    status, text = post(f"{url}/chat/completions", {"model": "x", "messages": USER, **extra})
    assert status == 400, text
    assert json.loads(text)["error"]["param"] == param


def test_default_values_of_those_fields_are_accepted(echo: tuple[str, EchoBackend]) -> None:
    url, _ = echo
    defaults = {"parallel_tool_calls": True, "logprobs": False, "response_format": {"type": "text"}}
    status, text = post(f"{url}/chat/completions", {"model": "x", "messages": USER, **defaults})
    assert status == 200, text


def test_a_foreign_host_or_origin_is_refused(echo: tuple[str, EchoBackend]) -> None:
    """A web page (Origin) or a DNS-rebound name (Host) must not drive the served model."""
    url, _ = echo
    body = {"model": "x", "messages": USER}
    for headers in ({"Origin": "https://evil.example"}, {"Host": "evil.example"}):
        status, text = _request(f"{url}/chat/completions", body, headers)
        assert status == 403, (headers, text)
        assert json.loads(text)["error"]["code"] == "forbidden"
    local = {"Origin": "http://localhost:3000"}
    assert _request(f"{url}/chat/completions", body, local)[0] == 200


def test_one_model_by_id(echo: tuple[str, EchoBackend]) -> None:
    url, _ = echo
    status, text = get(f"{url}/models/echo")
    assert status == 200 and json.loads(text)["id"] == "echo"
    status, text = _request(f"{url}/models/other")
    assert status == 404 and json.loads(text)["error"]["type"] == "invalid_request_error"


def test_completions_stream_as_server_sent_events(echo: tuple[str, EchoBackend]) -> None:
    url, _ = echo
    body = {"prompt": ["one", "two"], "stream": True, "stream_options": {"include_usage": True}}
    status, text = post(f"{url}/completions", body)
    assert status == 200, text
    events = sse_events(text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"}
    texts = ["", ""]
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["text"]
    assert texts == ["echo: one", "echo: two"]
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert finishes == ["stop", "stop"]
    assert chunks[-1]["usage"]["total_tokens"] == 10


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "x", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"model": "x", "seed": ' + b"1" * 5000 + b', "messages": []}',
        b'{"model": "x", "messages": [{"role": "user", "content": "caf\xe9"}]}',
    ],
    ids=["deep", "long-number", "not-utf8"],
)
def test_unreadable_bodies_are_a_400(echo: tuple[str, EchoBackend], raw: bytes) -> None:
    url, _ = echo
    status, text = post(f"{url}/chat/completions", raw=raw)
    assert status == 400, text
    assert json.loads(text)["error"]["code"] == "invalid_json"


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_body_of_millions_of_objects_is_refused_before_parsing(
    tmp_path: Path, example_plugin: Path
) -> None:
    """30 MB of ``{}`` used to take ~800 MB of the server's memory."""
    env = {"PYTHONPATH": str(example_plugin)}
    with serve_process([str(calculator_manifest(tmp_path))], tmp_path / "err.log", env) as (
        proc,
        url,
    ):
        before = _peak_rss_mb(proc.pid)
        raw = b'{"model": "x", "messages": [' + b"{}," * 10_000_000 + b"{}]}"
        status, text = post(f"{url}/chat/completions", raw=raw)
        assert status == 400 and json.loads(text)["error"]["code"] == "request_too_large"
        assert _peak_rss_mb(proc.pid) - before < 150  # the body itself is 30 MB
        question = {"messages": [{"role": "user", "content": "What is 2 plus 3?"}]}
        assert post(f"{url}/chat/completions", question)[0] == 200  # still serving


def _run_into(manifest: Path, out: Path) -> subprocess.CompletedProcess[str]:
    command = [*HARNESS, "run", str(manifest), "--out", str(out), "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_serving_recorded_outputs_answers_the_manifests_samples(tmp_path: Path) -> None:
    """The README's no-model path, served: requests carry no sample id, so the served replay
    backend finds the sample from the conversation, and a run against it scores as the
    replay run does."""
    example = Path(__file__).resolve().parents[1] / "registry" / "manifests" / "replay-example.yaml"
    with serve_process([str(example)], tmp_path / "err.log") as (_, url):
        unknown = {"messages": [{"role": "user", "content": "What is the capital of Mars?"}]}
        status, text = post(f"{url}/chat/completions", unknown)
        assert status == 400 and json.loads(text)["error"]["code"] == "unknown_sample"
        status, text = post(f"{url}/completions", {"prompt": "Paris?"})
        assert status == 400 and json.loads(text)["error"]["code"] == "unknown_sample"
        data = example.parent.parent / "data" / "capitals.jsonl"
        manifest = {
            "name": "served-replay",
            "backends": [{"type": "openai", "base_url": url, "model": "recorded"}],
            "tasks": [{"type": "qa", "path": str(data)}],
        }
        path = tmp_path / "m.yaml"
        path.write_text(yaml.safe_dump(manifest))
        served = _run_into(path, tmp_path / "a")
    assert served.returncode == 0, served.stderr
    direct = _run_into(example, tmp_path / "b")
    assert direct.returncode == 0, direct.stderr

    def outputs(run: str) -> dict[str, str]:
        lines = (tmp_path / run / "samples.jsonl").read_text().splitlines()
        return {r["sample_id"]: r["output"] for r in map(json.loads, lines)}

    assert outputs("a") == outputs("b") and len(outputs("a")) == 12
