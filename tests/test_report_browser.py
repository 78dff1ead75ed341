"""report.html in a real browser: headless Chromium (Debian's ``chromium``; ``.ci/run``
installs it when missing) renders the report of a run with two backends, two tasks, repeats
and a multi-step task; the test keeps a screenshot (``$HARNESS_ARTIFACTS``, default
``artifacts/``) and checks the DOM after the page's script ran: the summary, every figure,
the heatmap, the sample browser, and that filters given in the address filter the samples."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness import ChatRequest
from harness import ChatResponse
from harness import hookimpl
from harness import run_manifest
from harness.testing import ScriptedBackend
from harness.testing import ScriptedParams
from harness.testing import make_host

REGISTRY = Path(__file__).resolve().parents[1] / "registry"
CHROMIUM = next(
    (
        found
        for name in (os.environ.get("HARNESS_CHROMIUM"), "chromium", "chromium-browser")
        if name and (found := shutil.which(name))
    ),
    None,
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium; .ci/run does)"
)


class Deliberate(ScriptedBackend):
    """A scripted backend that takes a few milliseconds, as a model would (the report draws
    latencies only for backends that took time)."""

    def chat(self, request: ChatRequest) -> ChatResponse:
        time.sleep(0.003)
        return super().chat(request)


class Parts:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register("deliberate", Deliberate, params=ScriptedParams)


def move(block: str, destination: str) -> dict[str, Any]:
    return {
        "tool_calls": [{"name": "move", "arguments": {"block": block, "destination": destination}}]
    }


def manifest() -> dict[str, Any]:
    capitals = {"q1": "Paris", "q2": "Tokyo", "q3": "Madrid"}
    good = {**capitals, "blocks-1": move("A", "B"), "blocks-2": move("B", "C")}
    poor = {
        "q1": "Lyon",
        "blocks-1": move("B", "A"),
        "blocks-2": {"tool_calls": [{"name": "fly", "arguments": {}}]},
    }
    return {
        "name": "browser",
        "backends": [
            {"type": "deliberate", "id": "good", "answers": good, "responses": ["no idea"]},
            {"type": "deliberate", "id": "poor", "answers": poor, "responses": ["no idea"]},
        ],
        "tasks": [
            {
                "type": "qa",
                "id": "capitals",
                "path": str(REGISTRY / "data" / "capitals.jsonl"),
                "limit": 6,
            },
            {
                "type": "agent",
                "id": "blocks",
                "environment": "blocks",
                "agent": "act",
                "episodes": ["blocks-1", "blocks-2", "blocks-unstack"],
                "max_steps": 3,
            },
        ],
        "run": {"seed": 0, "repeats": 2},
    }


def chromium(*args: str) -> str:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    done = subprocess.run(
        [*command, "--virtual-time-budget=5000", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    path = folder / "m.json"
    path.write_text(json.dumps(manifest()))
    result = run_manifest(path, make_host(Parts()), folder / "run", progress=False)
    return result.run_dir / "report.html"


def rows(dom: str) -> list[str]:
    body = dom.split('id="samples"', 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<tr class="sample"[^>]*>(.*?)</tr>', body, re.S)


@needs_chromium
def test_the_report_renders_in_chromium_with_every_part(report: Path) -> None:
    artifacts = Path(os.environ.get("HARNESS_ARTIFACTS", "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report.png"
    chromium("--window-size=1280,3000", f"--screenshot={shot.resolve()}", report.as_uri())
    assert shot.stat().st_size > 20_000  # a page was drawn, not a blank one
    dom = chromium("--dump-dom", report.as_uri())
    for part in ('id="summary"', 'id="headline"', 'id="cost"', 'id="figures"', 'id="browser"'):
        assert part in dom, part
    figures = re.findall(r'<figure id="([^"]+)" class="plot"><img src="data:image/png;base64,', dom)
    assert {"fig-latency", "fig-categories-0", "fig-heatmap"} <= set(figures), figures
    assert all('alt="' in f for f in re.findall(r"<img [^>]+>", dom))
    # the script replaced the plain rows with all of them: 2 backends x (6 + 3) samples x 2 repeats
    assert len(rows(dom)) == 36
    assert "36 of 36 samples match" in dom
    assert "pass^2:success" in dom  # repeats' rows are in the tables


@needs_chromium
def test_filters_in_the_address_filter_the_samples(report: Path) -> None:
    records = [
        json.loads(line) for line in (report.parent / "samples.jsonl").read_text().splitlines()
    ]
    wanted = [r for r in records if r["task"] == "blocks" and r["backend"] == "poor"]
    dom = chromium("--dump-dom", report.as_uri() + "#task=blocks&backend=poor")
    shown = rows(dom)
    assert len(shown) == len(wanted) == 6
    assert all("<td>blocks</td><td>poor</td>" in row for row in shown)
    failing = [
        r for r in records if r["task"] == "capitals" and r["scores"].get("exact_match") == 0
    ]
    dom = chromium("--dump-dom", report.as_uri() + "#task=capitals&outcome=fail")
    assert len(rows(dom)) == len(failing) > 0


def test_without_javascript_the_first_samples_are_plain_html(report: Path) -> None:
    page = report.read_text()
    static = page.split('id="samples"', 1)[1].split("</tbody>", 1)[0]
    assert static.count('<tr class="sample">') == 36  # every sample, when there are few
    assert "<details><summary>open</summary>" in static and "<h4>Prompt</h4>" in static
    assert "<noscript" not in page  # nothing hidden from readers without scripts
