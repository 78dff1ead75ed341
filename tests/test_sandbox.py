"""The sandbox: model-chosen calls run only registered functions, arguments stay data, and
nothing a call does escapes its child process (no shell, no files, no network, no secrets)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness_plugins.shared import sandbox
from harness_plugins.shared.sandbox import run_call
from harness_plugins.shared.toolsets import TOOLSETS
from harness_plugins.shared.toolsets import ToolSet
from harness_plugins.shared.toolsets import get_toolset
from harness_plugins.shared.toolsets import register_toolset
from harness_plugins.shared.toolsets import unregister_toolset

IS_ROOT = os.geteuid() == 0

# A tool set that only tests register: each function tries to break out of the sandbox.
EVIL_MODULE = """
import os
import socket

TOOLS = [
    {"name": n, "description": n, "parameters": {"type": "object", "properties": p,
     "required": list(p)}}
    for n, p in [
        ("environment", {}),
        ("connect", {"port": {"type": "integer"}}),
        ("shell", {"command": {"type": "string"}}),
        ("write", {"path": {"type": "string"}}),
        ("read", {"path": {"type": "string"}}),
        ("scratch", {}),
        ("hog", {"megabytes": {"type": "integer"}}),
        ("spin", {}),
        ("evaluate", {"text": {"type": "string"}}),
    ]
]


def environment():
    return dict(os.environ)


def connect(port):
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return "connected"


def shell(command):
    return os.system(command)


def write(path):
    with open(path, "w") as handle:
        handle.write("escaped")
    return "written"


def read(path):
    with open(path) as handle:
        return handle.read()


def scratch():
    with open("note.txt", "w") as handle:
        handle.write("ok")
    with open("note.txt") as handle:
        return handle.read()


def hog(megabytes):
    return len(bytearray(megabytes * 1024 * 1024))


def spin():
    while True:
        pass


def evaluate(text):
    return eval(text)
"""


@pytest.fixture
def evil(tmp_path: Path) -> Iterator[str]:
    """Register the test-only tool set for one test, then remove it."""
    path = tmp_path / "evil_tools.py"
    path.write_text(EVIL_MODULE)
    spec = importlib.util.spec_from_file_location("evil_tools", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # our own test module, to read its TOOLS
    register_toolset(ToolSet("test_evil", path, tuple(module.TOOLS)))
    yield "test_evil"
    unregister_toolset("test_evil")


def sandbox_dirs() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("harness-sandbox-")}


# --- ordinary calls ----------------------------------------------------------------------------


def test_a_registered_call_runs_in_an_isolated_child() -> None:
    before = sandbox_dirs()
    result = run_call("weather", "get_current_weather", {"city": "Paris", "unit": "fahrenheit"})
    assert result.ok and result.kind == "ok"
    assert result.result["temperature"] == 57.2 and result.result["condition"] == "cloudy"
    assert {"rlimits", "no_socket", "audit"} <= set(result.isolation)
    if IS_ROOT:  # here the network namespace and the drop to nobody apply as well
        assert {"netns", "nobody"} <= set(result.isolation)
    assert sandbox_dirs() == before  # the scratch and I/O folders are removed


def test_every_builtin_toolset_spec_names_a_function_that_runs() -> None:
    calls = {
        "weather": ("get_weather_forecast", {"city": "Tokyo", "days": 2}),
        "math_tools": ("gcd", {"a": 12, "b": 18}),
        "movies": ("get_streaming_providers", {"movie_id": "tt1375666", "country": "fr"}),
        "files": ("list_files", {"directory": "docs"}),
    }
    assert set(calls) <= set(TOOLSETS)
    for name, (function, arguments) in calls.items():
        assert len(get_toolset(name).functions) in range(3, 7)
        result = run_call(name, function, arguments)
        assert result.ok, result
    assert run_call("math_tools", "gcd", {"a": 12, "b": 18}).result == 6


def test_a_tool_error_is_an_error_result() -> None:
    result = run_call("weather", "get_current_weather", {"city": "Atlantis"})
    assert result.kind == "error" and "unknown city" in result.error


# --- names: only registered functions ------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "__import__",
        "eval",
        "exec",
        "_city",  # a private helper in the module: not registered
        "CITIES",
        "TOOLS",
        "get_current_weather; import os",
        "../weather.get_current_weather",
        "get_current_weather.__globals__",
        "",
        None,
    ],
)
def test_an_unregistered_name_never_runs(name: object) -> None:
    result = run_call("weather", name, {"command": "touch /tmp/x"})  # type: ignore[arg-type]
    assert result.kind == "unknown_function" and not result.ok
    assert result.isolation == ()  # no child was started


def test_an_unknown_toolset_is_a_configuration_error() -> None:
    with pytest.raises(KeyError, match="unknown tool set"):
        run_call("os", "system", {})


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "missing_argument: city"),
        ({"city": "Paris", "shell": "ls"}, "unknown_argument: shell"),
        ({"city": 3}, "wrong_type: city"),
        ({"city": "Paris", "unit": "kelvin"}, "invalid_value: unit"),
        (["Paris"], "not_an_object"),
    ],
)
def test_arguments_are_validated_before_anything_runs(arguments: object, problem: str) -> None:
    result = run_call("weather", "get_current_weather", arguments)
    assert result.kind == "bad_arguments" and problem in result.error
    assert result.isolation == ()


def test_types_are_strict() -> None:
    assert run_call("math_tools", "gcd", {"a": True, "b": 2}).kind == "bad_arguments"
    assert run_call("math_tools", "gcd", {"a": 4.0, "b": 2}).kind == "bad_arguments"
    assert run_call("math_tools", "calculate_triangle_area", {"base": 3, "height": 4}).ok


# --- malicious arguments are data ----------------------------------------------------------


SHELL_STRINGS = [
    "; touch {marker}",
    "$(touch {marker})",
    "`touch {marker}`",
    "| touch {marker}",
    "&& touch {marker} #",
    "'; import os; os.system('touch {marker}'); '",
    "__import__('os').system('touch {marker}')",
    "; rm -rf /",
]


@pytest.mark.parametrize("template", SHELL_STRINGS)
def test_shell_strings_in_arguments_are_only_data(template: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    text = template.format(marker=marker)
    weather = run_call("weather", "get_current_weather", {"city": text})
    assert weather.kind == "error" and "unknown city" in weather.error
    written = run_call("files", "write_file", {"path": "notes/x.txt", "content": text})
    assert written.ok and written.result["bytes_written"] == len(text.encode())
    found = run_call("movies", "search_movies", {"title": text})
    assert found.ok and found.result == []
    assert not marker.exists()


@pytest.mark.parametrize(
    "path",
    [
        "../../etc/passwd",
        "docs/../../etc/passwd",
        "/etc/passwd",
        "//etc/passwd",
        "~root/.bashrc",
        "..\\..\\etc\\passwd",
        "docs/\x00/../../etc/passwd",
        "docs/../" * 50 + "etc/passwd",
    ],
)
def test_path_traversal_in_the_files_toolset_reads_nothing_real(path: str) -> None:
    result = run_call("files", "read_file", {"path": path})
    assert result.kind == "error" and not result.ok
    assert result.result is None and "root:" not in (result.error or "")
    listing = run_call("files", "list_files", {"directory": path})
    assert listing.kind == "error"


def test_the_files_toolset_is_in_memory_only() -> None:
    written = run_call("files", "write_file", {"path": "new.txt", "content": "hello"})
    assert written.ok
    assert run_call("files", "read_file", {"path": "new.txt"}).kind == "error"  # nothing kept
    assert not Path("new.txt").exists()
    assert run_call("files", "read_file", {"path": "./docs//guide.md"}).ok


def test_huge_work_is_stopped_by_the_timeout() -> None:
    started = time.perf_counter()
    result = run_call("math_tools", "factorial", {"number": 10**9}, timeout_s=1)
    assert result.kind in ("timeout", "killed") and not result.ok
    assert time.perf_counter() - started < 5


def test_a_huge_result_is_a_bad_result() -> None:
    result = run_call("math_tools", "factorial", {"number": 100_000}, timeout_s=5)
    assert result.kind == "bad_result"


def test_huge_or_deep_arguments_are_refused_without_running() -> None:
    started = time.perf_counter()
    big = run_call("weather", "get_current_weather", {"city": "x" * (100 * 1024 * 1024)})
    assert big.kind == "bad_arguments" and "larger than" in big.error
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    deep = run_call("files", "read_file", {"path": nested})
    assert deep.kind == "bad_arguments" and "nested deeper" in deep.error
    huge_int = run_call("math_tools", "factorial", {"number": 10**5000})
    assert huge_int.kind == "bad_arguments"
    assert time.perf_counter() - started < 5


# --- what a tool function itself cannot do ------------------------------------------------


def test_the_child_gets_an_empty_environment(evil: str, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-123")
    result = run_call(evil, "environment", {})
    assert result.ok
    assert "OPENAI_API_KEY" not in result.result
    assert "sk-test-secret-123" not in str(result.result)
    assert set(result.result) <= {"LC_CTYPE"}  # Python's own C-locale coercion at most


def test_no_network_from_inside_a_tool(evil: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result = run_call(evil, "connect", {"port": port})
        assert result.kind == "error" and result.result is None
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody ever connected


@pytest.mark.skipif(not IS_ROOT, reason="a network namespace needs root here")
def test_the_network_namespace_alone_blocks_loopback() -> None:
    """The outermost layer on its own: no in-process socket patch, no audit hook."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        code = textwrap.dedent(
            f"""
            import socket, sys
            sys.path.insert(0, {str(Path(sandbox.__file__).parent)!r})
            import sandbox
            assert sandbox._unshare_network()
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=1)
            except OSError as exc:
                print("refused", exc.errno)
            else:
                print("connected")
            """
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.startswith("refused"), out.stderr
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()


def test_no_shell_no_files_outside_no_eval(evil: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    shell = run_call(evil, "shell", {"command": f"touch {marker}"})
    assert shell.kind == "error" and "not allowed" in shell.error
    outside = tmp_path / "escaped.txt"
    assert run_call(evil, "write", {"path": str(outside)}).kind == "error"
    assert run_call(evil, "write", {"path": "../escaped.txt"}).kind == "error"
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    read = run_call(evil, "read", {"path": str(secret)})
    assert read.kind == "error" and read.result is None
    assert run_call(evil, "read", {"path": "/etc/hostname"}).kind == "error"
    evaluated = run_call(evil, "evaluate", {"text": "__import__('os').getpid()"})
    assert evaluated.kind == "error" and "not allowed" in evaluated.error
    assert not marker.exists() and not outside.exists()
    assert run_call(evil, "scratch", {}).result == "ok"  # its own scratch folder works


def test_memory_and_cpu_limits(evil: str) -> None:
    hog = run_call(evil, "hog", {"megabytes": 2048}, memory_mb=128)
    assert hog.kind == "killed" and not hog.ok
    started = time.perf_counter()
    spin = run_call(evil, "spin", {}, timeout_s=0.5)
    assert spin.kind == "timeout" and time.perf_counter() - started < 3
