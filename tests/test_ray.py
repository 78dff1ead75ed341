"""The ray executor (``run.executor: ray``) on a real local cluster: ``ray start --head`` with
two CPUs on loopback, started once for the module and stopped at its end.

What is checked: results identical to the local executor's, a worker killed mid-run losing
nothing and doubling nothing, resume across executors both ways, the cluster-wide limiter of a
backend with ``max_concurrency``, and (without any cluster) that Ray is imported only when
asked for and that a missing Ray is a one-line validation error.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import needs_llama
from fault_server import FaultServer

from harness import Backend
from harness import ChatRequest
from harness import ChatResponse
from harness import ManifestError
from harness import StopRun
from harness import hookimpl
from harness import load_manifest
from harness import run_manifest
from harness._cli import cli
from harness._store import iter_records
from harness.testing import assert_run_dir
from harness.testing import make_host
from harness.testing import write_jsonl

try:
    import ray
    import ray.cloudpickle

    RAY_PROBLEM = None
except ImportError as exc:  # pragma: no cover - CI installs the test extra, which has ray
    RAY_PROBLEM = f"ray is not installed ({exc}); pip install -e .[test]"

REPO = Path(__file__).resolve().parents[1]
REPLAY_EXAMPLE = REPO / "registry" / "manifests" / "replay-example.yaml"
RAY = str(Path(sys.executable).with_name("ray"))

if RAY_PROBLEM is None:  # the test backends below reach the workers by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


# --- test backends ---------------------------------------------------------------------------


# A JSON Schema, not a Params class: the class travels to the workers by value, where its
# string annotations could not be resolved.
FLAG_SCHEMA = {
    "description": "Answers q<N>? with N; acts at request `at` while the flag file exists.",
    "properties": {
        "flag": {"type": "string", "description": "While this file exists, act once."},
        "at": {"type": "integer", "minimum": 1, "default": 5},
        "log": {"type": ["string", "null"], "default": None, "x-operational": True},
        "delay_s": {"type": "number", "minimum": 0, "default": 0.0},
    },
    "required": ["flag"],
}


class Echo(Backend):
    """Answers ``q<N>?`` with ``N`` (the qa task scores it right); logs each sample asked."""

    def __init__(self, params: Any, context: Any) -> None:
        super().__init__(params, context)
        self.count = 0

    def chat(self, request: ChatRequest) -> ChatResponse:
        self.count += 1
        if self.params["log"]:
            with open(self.params["log"], "a", encoding="utf-8") as handle:
                handle.write(f"{request.sample_id}\n")
        if self.count == self.params["at"] and self._took_flag():
            self.act()
        time.sleep(self.params["delay_s"])
        text = str(request.messages[-1].content)
        return ChatResponse(text=text.strip("q?"), timing={"total_s": 0.0})

    def _took_flag(self) -> bool:
        """Whether this process removed the flag (only one worker acts, once)."""
        try:
            os.unlink(self.params["flag"])
        except FileNotFoundError:
            return False
        return True

    def act(self) -> None:
        raise NotImplementedError


class DiesWhenFlagged(Echo):
    """Kills its whole worker process (as an out-of-memory kill would) at request ``at``."""

    def act(self) -> None:
        os._exit(1)


class StopsWhenFlagged(Echo):
    """Stops the run (:class:`StopRun`) at request ``at``."""

    def act(self) -> None:
        raise StopRun("stopped on purpose")


class FlagBackends:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register("dies_when_flagged", DiesWhenFlagged, schema=FLAG_SCHEMA)
        register("stops_when_flagged", StopsWhenFlagged, schema=FLAG_SCHEMA)


# --- fixtures and helpers --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A two-CPU Ray head on loopback (two worker processes); its address."""
    if RAY_PROBLEM is not None:
        pytest.skip(RAY_PROBLEM)
    port, temp = free_port(), tempfile.mkdtemp(prefix="hray", dir="/tmp")  # short: unix sockets
    # loopback only, so no token authentication (which recent Rays turn on when a token exists)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    command = [RAY, "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0"]
    command += ["--node-ip-address=127.0.0.1", "--include-dashboard=false", f"--temp-dir={temp}"]
    try:
        subprocess.run(command, check=True, capture_output=True, env=env, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def host() -> Any:
    return make_host(FlagBackends())


def on_ray(address: str, workers: int = 2, **run: Any) -> dict[str, Any]:
    """The ``run`` section that plays on the test cluster."""
    return {"executor": "ray", "ray": {"address": address, "workers": workers}, **run}


def qa_manifest(folder: Path, n: int, backend: dict[str, Any], **run: Any) -> Path:
    """``n`` questions ``q<i>?`` (answer ``i``) for ``backend``; the manifest's path."""
    questions = [{"id": f"s{i}", "question": f"q{i}?", "answer": str(i)} for i in range(n)]
    qa = write_jsonl(folder / "qa.jsonl", questions)
    doc = {"name": "t", "backends": [backend], "tasks": [{"type": "qa", "path": str(qa)}]}
    path = folder / f"m-{len(list(folder.glob('m-*.json')))}.json"
    path.write_text(json.dumps({**doc, "run": run}), encoding="utf-8")
    return path


def replay_manifest(folder: Path, n: int, **run: Any) -> Path:
    """A replay run built as benchmarks/core_throughput.py builds it (every third answer
    wrong, so the means are not trivial)."""
    folder.mkdir(exist_ok=True)
    questions = [{"id": f"s{i}", "question": f"What is {i}?", "answer": str(i)} for i in range(n)]
    outputs = [
        {"task": "qa", "sample_id": f"s{i}", "output": str(i + (i % 3 == 0))} for i in range(n)
    ]
    write_jsonl(folder / "qa.jsonl", questions)
    write_jsonl(folder / "replay.jsonl", outputs)
    doc = {
        "name": "bench",
        "backends": [{"type": "replay", "path": "replay.jsonl"}],
        "tasks": [{"type": "qa", "path": "qa.jsonl"}],
        "run": run,
    }
    path = folder / "bench.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def without_timing(run_dir: Path) -> Counter[str]:
    """The records as a multiset, less what differs between two plays (timing)."""
    records = ({k: v for k, v in r.items() if k != "timing"} for r in records_of(run_dir))
    return Counter(json.dumps(r, sort_keys=True) for r in records)


def records_of(run_dir: Path) -> list[dict[str, Any]]:
    return list(iter_records(run_dir / "samples.jsonl"))


def assert_same_results(local: Path, distributed: Path) -> None:
    for name in ("results.json", "summary.csv"):
        assert (local / name).read_bytes() == (distributed / name).read_bytes(), name
    assert without_timing(local) == without_timing(distributed)


def harness_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "harness", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)


# --- without a cluster -----------------------------------------------------------------------


def test_importing_harness_and_running_locally_never_imports_ray(tmp_path: Path) -> None:
    code = (
        "import sys, harness\n"
        f"harness.run_manifest({str(REPLAY_EXAMPLE)!r}, out={str(tmp_path / 'run')!r}, "
        "progress=False)\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_ray_executor_without_ray_is_a_validation_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what find_spec sees when ray is missing
    with pytest.raises(ManifestError) as caught:
        load_manifest(REPLAY_EXAMPLE, sets=["run.executor=ray"])
    (line,) = caught.value.problems
    assert "run.executor" in line and "pip install -e .[ray]" in line
    result = CliRunner().invoke(cli, ["run", str(REPLAY_EXAMPLE), "--executor", "ray"])
    assert result.exit_code == 2
    assert "run.executor: 'ray' needs Ray" in result.output


def test_ray_address_without_the_ray_executor_is_a_usage_error(tmp_path: Path) -> None:
    args = ["run", str(REPLAY_EXAMPLE), "--out", str(tmp_path / "r"), "--ray-address", "auto"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--executor ray" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.ray
@pytest.mark.skipif(RAY_PROBLEM is not None, reason=RAY_PROBLEM or "")
def test_an_address_where_no_ray_answers_fails_at_once(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    args = ["run", str(REPLAY_EXAMPLE), "--out", str(tmp_path / "r"), "--executor", "ray"]
    started = time.perf_counter()
    result = CliRunner().invoke(cli, [*args, "--ray-address", address])
    assert result.exit_code == 1 and time.perf_counter() - started < 30
    assert f"run.ray.address: cannot connect to Ray at '{address}'" in result.output


# --- on the cluster --------------------------------------------------------------------------


@pytest.mark.ray
def test_the_replay_example_through_the_cli_on_ray_equals_local(
    cluster: str, tmp_path: Path
) -> None:
    local, distributed = tmp_path / "local", tmp_path / "ray"
    assert harness_cli("run", str(REPLAY_EXAMPLE), "--out", str(local)).returncode == 0
    args = ["--executor", "ray", "--ray-address", cluster, "--set", "run.ray.workers=2"]
    result = harness_cli("run", str(REPLAY_EXAMPLE), "--out", str(distributed), *args)
    assert result.returncode == 0, result.stderr
    assert "harness: ray: 2 worker(s) per backend" in result.stderr
    assert_same_results(local, distributed)


@pytest.mark.ray
def test_a_larger_replay_run_on_two_workers_equals_local(cluster: str, tmp_path: Path) -> None:
    manifest = replay_manifest(tmp_path / "in", 3000, seed=0)
    local = run_manifest(manifest, out=tmp_path / "local", progress=False)
    ray_manifest = load_manifest(manifest, sets=[f"run={json.dumps(on_ray(cluster, seed=0))}"])
    distributed = run_manifest(ray_manifest, out=tmp_path / "ray", progress=False)
    assert (local.played, distributed.played) == (3000, 3000)
    assert_same_results(local.run_dir, distributed.run_dir)


@pytest.mark.ray
def test_two_backends_with_repeats_on_ray_equal_local(cluster: str, tmp_path: Path) -> None:
    """Four workers asked of two CPUs: the second backend's wait for the first's to end."""
    manifest = replay_manifest(tmp_path / "in", 40, seed=3, repeats=2)
    doc = json.loads(manifest.read_text())
    doc["backends"] = [{**doc["backends"][0], "id": "a"}, {**doc["backends"][0], "id": "b"}]
    manifest.write_text(json.dumps(doc), encoding="utf-8")
    local = run_manifest(manifest, out=tmp_path / "local", progress=False)
    sets = [f"run={json.dumps(on_ray(cluster, seed=3, repeats=2))}"]
    distributed = run_manifest(
        load_manifest(manifest, sets=sets), out=tmp_path / "ray", progress=False
    )
    assert local.played == distributed.played == 160
    assert_same_results(local.run_dir, distributed.run_dir)


@pytest.mark.ray
@pytest.mark.slow
@needs_llama
def test_a_bfcl_slice_on_the_embedded_model_scores_the_same_on_ray(
    cluster: str, tmp_path: Path
) -> None:
    doc = {
        "name": "bfcl-ray",
        "backends": [{"type": "llamacpp", "model": "smollm2-135m-instruct", "n_threads": 1}],
        "tasks": [{"type": "bfcl", "categories": ["simple_python"], "limit": 4, "max_tokens": 96}],
        "run": {"seed": 0},
    }
    manifest = tmp_path / "bfcl.json"
    manifest.write_text(json.dumps(doc), encoding="utf-8")
    local = run_manifest(manifest, out=tmp_path / "local", progress=False)
    sets = [f"run={json.dumps(on_ray(cluster, seed=0))}"]
    distributed = run_manifest(
        load_manifest(manifest, sets=sets), out=tmp_path / "ray", progress=False
    )
    scores = [
        {r["sample_id"]: r["scores"] for r in records_of(d)}
        for d in (local.run_dir, distributed.run_dir)
    ]
    assert scores[0] == scores[1] and len(scores[0]) == 4
    assert local.results["results"] == distributed.results["results"]


@pytest.mark.ray
def test_a_worker_killed_mid_run_loses_nothing_and_doubles_nothing(
    cluster: str, tmp_path: Path, host: Any, caplog: pytest.LogCaptureFixture
) -> None:
    flag = tmp_path / "flag"
    flag.write_text("die")
    backend = {"type": "dies_when_flagged", "flag": str(flag), "at": 8, "delay_s": 0.02}
    manifest = qa_manifest(tmp_path, 30, backend, **on_ray(cluster))
    result = run_manifest(manifest, host, tmp_path / "run", progress=False)
    assert not flag.exists(), "no worker died"
    assert "a replacement plays its shard again" in caplog.text
    records = assert_run_dir(result.run_dir, samples=30)
    assert result.status == "finished" and result.played == 30
    assert all(r["scores"]["exact_match"] == 1 for r in records)


@pytest.mark.ray
@pytest.mark.parametrize("first", ["local", "ray"])
def test_a_run_stopped_on_one_executor_finishes_on_the_other(
    first: str, cluster: str, tmp_path: Path, host: Any
) -> None:
    flag, log = tmp_path / "flag", tmp_path / "asked.log"
    flag.write_text("stop")
    backend = {"type": "stops_when_flagged", "flag": str(flag), "at": 6, "log": str(log)}
    run = {"seed": 0, "ray": {"address": cluster, "workers": 2}}
    manifest = qa_manifest(tmp_path, 24, backend, **run)
    second = "ray" if first == "local" else "local"
    with pytest.raises(StopRun, match="stopped on purpose"):
        run_manifest(
            load_manifest(manifest, host, [f"run.executor={first}"]),
            host,
            tmp_path / "run",
            progress=False,
        )
    kept = {r["sample_id"] for r in records_of(tmp_path / "run")}
    asked_before = len(log.read_text().splitlines())
    assert 0 < len(kept) < 24
    finished = run_manifest(
        load_manifest(manifest, host, [f"run.executor={second}"]),
        host,
        tmp_path / "run",
        progress=False,
    )
    assert finished.status == "finished" and finished.skipped == len(kept)
    assert_run_dir(tmp_path / "run", samples=24)
    asked_after = log.read_text().splitlines()[asked_before:]
    assert not kept & set(asked_after), "a finished sample was played again"
    assert Counter(asked_after).most_common(1)[0][1] == 1


@pytest.mark.ray
def test_a_backend_with_max_concurrency_is_limited_across_all_workers(
    cluster: str, tmp_path: Path
) -> None:
    with FaultServer(latency=0.1) as server:
        backend = {
            "type": "openai",
            "base_url": server.base_url,
            "model": "m",
            "max_concurrency": 2,
            "cache": "off",
        }
        manifest = qa_manifest(tmp_path, 24, backend, **on_ray(cluster))
        result = run_manifest(manifest, out=tmp_path / "run", progress=False)
        peak = server.max_in_flight
    records = assert_run_dir(result.run_dir, samples=24)
    assert all(r["scores"]["exact_match"] == 1 for r in records)
    assert peak == 2, f"{peak} requests in flight at once; the limit over both workers is 2"
