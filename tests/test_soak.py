"""The soak test of issue 10: 20,000 samples through the ``openai`` backend against a loopback
server that injects 429s, 500s, hangs, dropped connections, malformed and oversized bodies,
with the run SIGKILLed three times mid-run and a second writer attempted while it runs.

It must end with every sample recorded exactly once, results equal to an unfaulted run's,
the API key in no file and no output, and no process of the run above 400 MB of peak RSS.
Run it alone with ``pytest -m soak``; CI runs it with the rest.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import HARNESS
from tests.conftest import write_jsonl
from tests.fault_server import FaultServer

N = 20_000
KEY = "sk-soak-4f1d0c2b9e7a6c5d"  # distinctive: it must not appear anywhere
FAULTS: list[tuple[Any, int]] = [
    (("429", 0), 600),
    ("500", 600),
    ("hang", 24),
    ("drop", 300),
    ("drop_mid", 150),
    ("malformed", 150),
    (("oversized", 1.5), 40),  # past max_response_mb: 1
]

pytestmark = [pytest.mark.soak, pytest.mark.slow]


def _manifest(tmp_path: Path, base_url: str, name: str) -> Path:
    questions = [
        {"id": f"s{i}", "question": f"q{i}?", "answer": str(i if i % 7 else i + 1)}
        for i in range(N)
    ]
    data = write_jsonl(tmp_path / "qa.jsonl", questions)
    backend = {
        "type": "openai",
        "id": "api",
        "base_url": base_url,
        "model": "soak",
        "api_key": "${SOAK_KEY}",
        "max_concurrency": 16,
        "timeout_s": 1.0,
        "max_retries": 6,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "max_response_mb": 1,
        "cache": "off",
    }
    doc = {"name": name, "backends": [backend], "tasks": [{"type": "qa", "path": str(data)}]}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _script_faults(server: FaultServer, rng: random.Random) -> int:
    """At most two faults for a sample (a retry budget of six always suffices)."""
    total = 0
    for action, count in FAULTS:
        for i in rng.sample(range(N), count):
            queue = server.script[f"q{i}?"]
            if len(queue) < 2:
                queue.append(action)
                total += 1
    return total


class Harness:
    """``harness run`` processes and their peak RSS. The peak is read from the process's own
    ``VmHWM`` while it runs: ``wait4``'s ``ru_maxrss`` also counts the memory of the parent it
    was forked from (pytest, with models loaded by earlier tests), charged at ``exec``."""

    def __init__(self, manifest: Path, out: Path, log: Path) -> None:
        self.command = [*HARNESS, "-v", "run", str(manifest), "--out", str(out), "--no-progress"]
        self.env = {**os.environ, "SOAK_KEY": KEY}
        self.log = log
        self.peak_rss_mb = 0.0

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            proc = subprocess.Popen(self.command, stdout=log, stderr=log, env=self.env)
        threading.Thread(target=self._watch, args=(proc,), daemon=True).start()
        return proc

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.returncode is None:
            try:
                lines = status.read_text().splitlines()
            except OSError:  # the process is gone
                return
            for line in lines:
                if line.startswith("VmHWM:"):
                    self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)
            time.sleep(0.02)

    def reap(self, proc: subprocess.Popen[bytes]) -> int:
        return proc.wait()


def _lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _wait_for_growth(path: Path, proc: subprocess.Popen[bytes], more_than: int) -> int:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        count = _lines(path)
        if count > more_than:
            return count
        assert proc.poll() is None, "the run ended before the test could interrupt it"
        time.sleep(0.05)
    raise AssertionError(f"{path} did not grow past {more_than} lines in 240 s")


def _records(run_dir: Path) -> list[dict[str, Any]]:
    with (run_dir / "samples.jsonl").open() as handle:
        return [json.loads(line) for line in handle]


def test_soak_faults_kills_and_a_second_writer(tmp_path: Path) -> None:
    rng = random.Random(20261202)
    out = tmp_path / "faulted"
    with FaultServer() as server:
        injected = _script_faults(server, rng)
        harness = Harness(_manifest(tmp_path, server.base_url, "soak"), out, tmp_path / "run.log")
        samples = out / "samples.jsonl"
        done = 0
        for _ in range(3):  # killed at a random moment, each time after some progress
            proc = harness.start()
            done = _wait_for_growth(samples, proc, done + rng.randrange(500, 3000))
            time.sleep(rng.uniform(0, 0.5))
            proc.kill()
            assert harness.reap(proc) == -9
            done = _lines(samples)
        proc = harness.start()
        _wait_for_growth(samples, proc, done + 200)
        second = subprocess.run(
            harness.command, capture_output=True, text=True, env=harness.env, timeout=60
        )
        assert second.returncode == 2 and f"pid {proc.pid}" in second.stderr, second.stderr
        assert harness.reap(proc) == 0, (tmp_path / "run.log").read_text()[-3000:]
        assert injected > 1500 and not any(server.script.values())  # every fault was met
        faulted_requests = server.total_requests
        clean_out = tmp_path / "clean"
        server.script.clear()
        clean = Harness(_manifest(tmp_path, server.base_url, "soak"), clean_out, tmp_path / "c.log")
        assert clean.reap(clean.start()) == 0

    faulted, unfaulted = _records(out), _records(clean_out)
    assert len(faulted) == N and len({r["sample_id"] for r in faulted}) == N  # exactly once
    assert all(r["error"] is None for r in faulted)

    def answers(records: list[dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
        return {r["sample_id"]: (r["output"], r["scores"]) for r in records}

    assert answers(faulted) == answers(unfaulted)
    results = [json.loads((d / "results.json").read_text())["results"] for d in (out, clean_out)]
    for cell in (results[0]["qa"]["api"], results[1]["qa"]["api"]):
        cell.pop("n_retries", None)
    assert results[0] == results[1]
    assert results[0]["qa"]["api"]["n_samples"] == N

    for path in [*out.rglob("*"), *clean_out.rglob("*"), tmp_path / "run.log"]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"the key leaked into {path}"
    assert KEY not in second.stdout + second.stderr
    print(
        f"\nsoak: {N} samples, {injected} faults injected, {faulted_requests} requests, "
        f"peak RSS {harness.peak_rss_mb:.0f} MB (unfaulted run {clean.peak_rss_mb:.0f} MB)"
    )
    assert harness.peak_rss_mb < 400, f"peak RSS {harness.peak_rss_mb:.0f} MB"
    assert clean.peak_rss_mb < 400, f"peak RSS {clean.peak_rss_mb:.0f} MB"
