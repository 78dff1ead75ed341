"""The logit probe on a small ladder (a tiny ONNX model and its int8 quantization, both built
here): likelihood and KL statistics as llama.cpp defines them, and the report's comparison."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_harness

pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e .[onnx]")
pytest.importorskip("onnx", reason="builds the tiny test model: pip install onnx")

from harness_plugins.onnx._tiny import make_tiny_model_folder
from harness_plugins.quality._probe import divergence
from harness_plugins.quality._probe import likelihood


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32, its dynamic int8 quantization, and a model with other weights."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic

    root = tmp_path_factory.mktemp("ladder")
    fp32 = make_tiny_model_folder(root / "fp32")
    int8 = root / "int8"
    shutil.copytree(fp32, int8)
    logging.disable(logging.WARNING)  # the quantizer's advice about pre-processing
    quantize_dynamic(
        str(fp32 / "model.onnx"), str(int8 / "model.onnx"), weight_type=QuantType.QInt8
    )
    logging.disable(logging.NOTSET)
    other = make_tiny_model_folder(root / "other", seed=7)
    return {"fp32": fp32, "int8": int8, "other": other}


def test_statistics_follow_their_definitions() -> None:
    rng = np.random.default_rng(0)
    ref = np.log(rng.dirichlet(np.ones(6), size=4))
    same = divergence(ref, ref)
    assert same["kl"] == pytest.approx(0, abs=1e-12) and same["top1"] == 1.0
    other = np.log(rng.dirichlet(np.ones(6), size=4))
    manual = np.mean([sum(np.exp(r) * (r - o)) for r, o in zip(ref, other, strict=True)])
    assert divergence(ref, other)["kl"] == pytest.approx(manual)
    ids = [0, 3, 1, 5, 2]
    stats = likelihood(ids, ref)
    nll = -np.mean([ref[i, ids[i + 1]] for i in range(4)])
    assert stats["nll"] == pytest.approx(nll) and stats["ppl"] == pytest.approx(np.exp(nll))
    assert stats["tokens"] == 4


def test_ladder_variants_are_scored_and_compared(
    ladder: dict[str, Path], tmp_path: Path, write_manifest
) -> None:
    backends = [
        {"type": "onnx", "id": name, "model": str(path), "threads": 1, "warmup": 0}
        for name, path in ladder.items()
    ]
    manifest = write_manifest(
        {
            "name": "ladder",
            "backends": backends,
            "tasks": [{"type": "logit_probe", "limit": 3, "reference": backends[0]}],
        }
    )
    done = run_harness("run", str(manifest), "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    scores = results["logit_probe"]
    assert scores["fp32"]["kl"] == pytest.approx(0, abs=1e-9) and scores["fp32"]["top1"] == 1.0
    assert 0 < scores["int8"]["kl"] < scores["other"]["kl"]  # quantized: close, not equal
    assert scores["int8"]["top1"] > scores["other"]["top1"]
    assert scores["int8"]["tokens_n"] == 3 and scores["int8"]["ppl"] > 1
    page = (tmp_path / "run" / "report.html").read_text()
    section = page[page.index("<h2>Quality against cost</h2>") :]
    assert all(f"<td>{name}</td>" in section for name in ladder)
    plotted = section.index("<svg") < section.index("<table") if "<svg" in section else False
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "pip install -e .[plots]" in section
    else:
        assert plotted  # the scatter plots come before the table


def test_a_backend_that_cannot_score_text_is_told_how(tmp_path: Path, write_manifest) -> None:
    replay = tmp_path / "replay.jsonl"
    replay.write_text('{"task": "logit_probe", "sample_id": "p0", "output": "x"}\n')
    manifest = write_manifest(
        {
            "name": "no-logprobs",
            "backends": [{"type": "replay", "path": str(replay)}],
            "tasks": [{"type": "logit_probe", "limit": 1}],
        }
    )
    done = run_harness("run", str(manifest), "--out", str(tmp_path / "run"))
    record = json.loads((tmp_path / "run" / "samples.jsonl").read_text())
    assert "no `logprobs` capability" in record["error"] and "llama-cpp-python" in record["error"]
    assert done.returncode == 1 and "logprobs" in done.stderr  # samples failed: exit 1
