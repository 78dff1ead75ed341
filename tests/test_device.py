"""The ``device`` backend: a local backend in a worker process under a phone's limits, with a
hard memory cap that stops the run (resumably) and a model too big for the device refused
before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_harness
from conftest import write_jsonl

pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e .[onnx]")
pytest.importorskip("onnx", reason="builds the tiny test model: pip install onnx")

from harness_plugins.device._backend import wrapped_spec
from harness_plugins.onnx._tiny import make_tiny_model_folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_folder(tmp_path_factory.mktemp("models") / "tiny")


def device_manifest(write_manifest, tmp_path: Path, model: Path, memory_mb: int) -> Path:
    """A manifest (its own file per cap) running 4 questions on the device profile."""
    qa = write_jsonl(
        tmp_path / "qa.jsonl",
        [{"id": f"q{i}", "question": f"q{i}?", "answer": "x"} for i in range(4)],
    )
    backend = {
        "type": "device",
        "profile": "phone-2gb",
        "memory_mb": memory_mb,
        "backend": {"type": "onnx", "model": str(model), "max_tokens": 6},
    }
    return write_manifest(
        {
            "name": "phone",
            "backends": [backend],
            "tasks": [{"type": "qa", "path": str(qa)}],
            "metrics": [{"type": "efficiency"}],
        },
        name=f"phone-{memory_mb}.yaml",
    )


def records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]


def test_the_profile_sets_the_wrapped_backends_threads_and_context() -> None:
    spec = wrapped_spec({"type": "onnx", "model": "m"}, {"threads": 2, "n_ctx": 2048})
    assert spec == {"type": "onnx", "model": "m", "threads": 2, "n_ctx": 2048}
    spec = wrapped_spec({"type": "llamacpp", "model": "m"}, {"threads": 4, "n_ctx": None})
    assert spec == {"type": "llamacpp", "model": "m", "n_threads": 4}


@pytest.mark.slow
def test_a_memory_cap_stops_the_run_and_a_larger_one_resumes_it(
    tiny: Path, tmp_path: Path, write_manifest
) -> None:
    run = tmp_path / "run"
    roomy = device_manifest(write_manifest, tmp_path, tiny, memory_mb=1024)
    first = run_harness("run", str(roomy), "--out", str(run), "--limit", "2")
    assert first.returncode == 0, first.stderr
    assert len(records(run)) == 2
    peak = records(run)[0]["scores"]["peak_rss_mb"]
    assert 20 < peak < 1024  # the worker's memory, reported by the efficiency metric

    tight = device_manifest(write_manifest, tmp_path, tiny, memory_mb=24)
    stopped = run_harness("run", str(tight), "--out", str(run))
    assert stopped.returncode == 1, stopped.stderr
    lines = stopped.stderr.strip().splitlines()
    assert len(lines) == 1 and "device memory cap exceeded" in lines[0] and "24 MiB" in lines[0]
    assert "Traceback" not in stopped.stderr
    assert len(records(run)) == 2  # nothing finished was lost

    resumed = run_harness("run", str(roomy), "--out", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(r["sample_id"] for r in records(run)) == ["q0", "q1", "q2", "q3"]


def test_a_model_larger_than_the_device_is_refused_before_anything_starts(
    tiny: Path, tmp_path: Path, write_manifest
) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for item in tiny.iterdir():
        (big / item.name).write_bytes(item.read_bytes())
    with (big / "model.onnx").open("r+b") as handle:
        handle.truncate(40 * 2**20)  # 40 MiB on disk (sparse): what the cap is checked against
    manifest = device_manifest(write_manifest, tmp_path, big, memory_mb=32)
    for command in (["validate"], ["run", "--out", str(tmp_path / "run")]):
        done = run_harness(command[0], str(manifest), *command[1:])
        assert done.returncode == 2, done.stderr
        assert "40 MiB of weights, more than the device's memory cap of 32 MiB" in done.stderr
    assert not (tmp_path / "run" / "samples.jsonl").exists()


def test_a_device_forwards_the_logit_probe_to_its_worker(
    tiny: Path, tmp_path: Path, write_manifest
) -> None:
    """``logprobs`` crosses the process boundary: the wrapped model scores as it does alone."""
    plain = {"type": "onnx", "model": str(tiny), "threads": 1, "warmup": 0}
    device = {"type": "device", "id": "phone", "profile": "phone-2gb", "backend": plain}
    manifest = write_manifest(
        {
            "name": "probe",
            "backends": [device],
            "tasks": [{"type": "logit_probe", "limit": 2, "reference": plain}],
        },
        name="probe.yaml",
    )
    done = run_harness("run", str(manifest), "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    scores = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    assert scores["logit_probe"]["phone"]["kl"] == pytest.approx(0, abs=1e-9)
    assert scores["logit_probe"]["phone"]["top1"] == 1.0
