"""Decoders parse model output (never evaluate it) into calls, or raise a typed DecodeError."""

from __future__ import annotations

import contextlib
import time

import pytest

from harness import DecodeError
from harness import ToolCall
from harness._parts import Builder


@pytest.fixture(autouse=True)
def _host(host):
    return host


def decode(name: str, text: str | None, tool_calls=None) -> list[ToolCall]:
    return Builder().build("decoder", name).decode(text, tool_calls)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[get_weather(city="Paris", unit="celsius")]',
            [ToolCall("get_weather", {"city": "Paris", "unit": "celsius"})],
        ),
        ("get_weather(city='Paris')", [ToolCall("get_weather", {"city": "Paris"})]),
        (
            "[math.factorial(number=5), f(x=[1, 2], y={'a': (1, 2)})]",
            [
                ToolCall("math.factorial", {"number": 5}),
                ToolCall("f", {"x": [1, 2], "y": {"a": (1, 2)}}),
            ],
        ),
        (
            "[f(x=-3, y=2*3, z='ab' + 'c', w=2**10)]",
            [ToolCall("f", {"x": -3, "y": 6, "z": "abc", "w": 1024})],
        ),
        ("[f(x=None, y=True, z=...)]", [ToolCall("f", {"x": None, "y": True, "z": "..."})]),
        ("[f(pos, x=1)]", [ToolCall("f", {"x": 1})]),  # BFCL ignores positional arguments
        (
            "[f(x=np.array(a=1)), g(y=data[0])]",
            [ToolCall("f", {"x": {"np.array": {"a": 1}}}), ToolCall("g", {"y": "data[0]"})],
        ),
        ("[f(x=os.getcwd())]", [ToolCall("f", {"x": "os.getcwd()"})]),
    ],
)
def test_python_calls(text: str, expected: list[ToolCall]) -> None:
    assert decode("python_calls", text) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "empty"),
        ("The answer is 42.", "syntax"),
        ("[1, 2]", "shape"),
        ("```python\n[f(x=1)]\n```", "syntax"),  # as BFCL: a fenced answer does not decode
        ("[f(x=lambda: 1)]", "syntax"),
        ("[f(x=2**100000)]", "syntax"),
        ("[f(x='a' * 10**9)]", "syntax"),
        ("[f(x=__import__('os').system('touch /tmp/pwned') + 1)]", "syntax"),
    ],
)
def test_python_calls_rejects(text: str, kind: str) -> None:
    started = time.perf_counter()
    with pytest.raises(DecodeError) as info:
        decode("python_calls", text)
    assert info.value.kind == kind
    assert time.perf_counter() - started < 1.0


def test_python_calls_never_executes(tmp_path) -> None:
    marker = tmp_path / "pwned"
    payloads = [
        f"[f(x=__import__('os').system('touch {marker}'))]",
        f"[f(x=open('{marker}', 'w').write('x'))]",
        f"[__import__('os').system(cmd='touch {marker}')]",
        f"[f(x=(lambda: __import__('os').system('touch {marker}'))())]",
    ]
    for text in payloads:
        with contextlib.suppress(DecodeError):
            decode("python_calls", text)
    assert not marker.exists()


def test_json_calls() -> None:
    text = (
        '```json\n[{"function": "f", "parameters": {"a": 1}}, '
        '{"name": "g", "arguments": "{}"}]\n```'
    )
    assert decode("json_calls", text) == [ToolCall("f", {"a": 1}), ToolCall("g", {})]
    assert decode("json_calls", '{"name": "f", "arguments": {}}') == [ToolCall("f", {})]
    with pytest.raises(DecodeError, match="syntax"):
        decode("json_calls", "[{'name': 'f'}]")
    with pytest.raises(DecodeError, match="shape"):
        decode("json_calls", '[{"name": 3}]')


def test_openai_tool_calls() -> None:
    calls = (ToolCall("f", {"a": 1}),)
    assert decode("openai_tool_calls", None, calls) == list(calls)
    assert decode("openai_tool_calls", "I cannot help.", None) == []


def test_xlam() -> None:
    text = '{"thought": "use f", "tool_calls": [{"name": "f", "arguments": {"a": [1]}}]}'
    assert decode("xlam", text) == [ToolCall("f", {"a": [1]})]
    assert decode("xlam", '{"thought": "nothing to call", "tool_calls": []}') == []
    with pytest.raises(DecodeError, match="shape"):
        decode("xlam", "[]")


def test_hermes() -> None:
    text = (
        'Sure.<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>\n'
        '<tool_call>[{"name": "g", "arguments": {}}]</tool_call>'
    )
    assert decode("hermes", text) == [ToolCall("f", {"a": 1}), ToolCall("g", {})]
    assert decode("hermes", "no call here") == []
    assert decode("hermes", '<tool_call>{"name": "h", "arguments": {}}') == [ToolCall("h", {})]
    with pytest.raises(DecodeError, match="syntax"):
        decode("hermes", "<tool_call>{not json}</tool_call>")
