"""report.html for a large run: how long it takes to write, how big it is, and how long
Chromium takes to open it (targets: 100,000 samples open in under 5 s, the file under 20 MB).

A synthetic run directory (4 backends x 2 tasks, categories, SpecTool patterns, one sample in
ten a multi-step trajectory, prompts and outputs of realistic length) is aggregated and its
report written as ``harness report`` writes it; then headless Chromium loads the page and the
page's own script says when it was ready (``data-ready``: milliseconds since navigation began,
its filters and sample table built), next to the wall time of the whole browser process and
that of an empty page (Chromium's own start).

    python benchmarks/report_size.py [--samples 100000] [--chromium chromium]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import add_json_option
from common import write_json

from harness import RunView
from harness._report import write_report

BACKENDS = ("model-a", "model-b", "model-c", "model-d")
TASKS = {"bfcl": ("simple", "multiple", "parallel", "live_simple"), "agent": ("easy", "hard")}


def record(rng: random.Random, backend: str, task: str, index: int) -> dict[str, Any]:
    ok = rng.random() < 0.6
    out = {
        "backend": backend,
        "task": task,
        "sample_id": f"{task}-{index}",
        "subtask": rng.choice(TASKS[task]),
        "output": "[get_weather(city='Paris', unit='celsius')]" * rng.randint(1, 4),
        "calls": [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}],
        "target": [{"get_weather": {"city": ["Paris"], "unit": ["celsius", ""]}}],
        "prompt": "What is the weather like in Paris today, in degrees Celsius? " * 5,
        "scores": {"accuracy": float(ok), "latency_s": rng.uniform(0.05, 2.0)},
        "error": None if rng.random() > 0.01 else "TimeoutError: the backend took too long",
        "timing": {"total_s": rng.uniform(0.05, 2.0), "input_tokens": 300, "output_tokens": 30},
        "patterns": [] if ok else rng.sample(["IFN", "IAN", "IAT", "IAV", "RAC"], 2),
    }
    if task == "agent" and index % 10 == 0:
        step = {"thought": "I should look first.", "actions": [{"name": "look", "arguments": {}}]}
        out["trajectory"] = [dict(step, observation="A is on B; B is on the table")] * 6
    return out


def make_run(folder: Path, samples: int) -> None:
    rng = random.Random(0)
    per = samples // (len(BACKENDS) * len(TASKS))
    with (folder / "samples.jsonl").open("w") as stream:
        for backend in BACKENDS:
            for task in TASKS:
                for index in range(per):
                    stream.write(json.dumps(record(rng, backend, task, index)) + "\n")
    manifest = {"name": "large", "manifest": {"tasks": [{"type": t, "id": t} for t in TASKS]}}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def browser(chromium: str, url: str) -> tuple[float, str]:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    add_json_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_run(folder, args.samples)
        started = time.perf_counter()
        path = write_report(RunView.open(folder))
        write_s = time.perf_counter() - started
        size_mb = path.stat().st_size / 2**20
        (folder / "blank.html").write_text("<!doctype html><title>blank</title>")
        blank_s, _ = browser(args.chromium, (folder / "blank.html").as_uri())
        open_s, dom = browser(args.chromium, path.as_uri())
    ready = re.search(r'data-ready="(\d+)"', dom)
    ready_ms = int(ready.group(1)) if ready else None
    print(
        f"{args.samples:,} samples: report written in {write_s:.1f} s, {size_mb:.1f} MB (< 20 MB)"
    )
    print(
        f"Chromium: page ready after {ready_ms} ms (< 5,000 ms); process {open_s:.2f} s, of which"
    )
    print(f"          {blank_s:.2f} s is Chromium's own start (an empty page)")
    figures = {"samples": args.samples, "write_s": write_s, "size_mb": size_mb}
    write_json(args, {**figures, "ready_ms": ready_ms, "open_s": open_s, "blank_s": blank_s})


if __name__ == "__main__":
    main()
