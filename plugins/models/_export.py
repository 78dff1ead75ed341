"""``harness models export``: a GGUF (or a Hugging Face folder) -> ONNX variants.

The pipeline (measured on SmolLM2-135M, 2 cores): transformers dequantizes the GGUF into an
fp32 HF folder and its tokenizer is fixed to match llama.cpp's; optimum exports it for
``text-generation-with-past``; onnxruntime quantizes the weights (MatMulNBits) and, with
``--ort``, converts each variant to ORT format. The HF folder and the fp32 export live in a
work folder inside the store, removed when the command ends. torch, transformers and optimum
are imported here only (the ``export`` extra).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import HarnessError

from . import _onnx
from ._sources import Source
from ._variants import Echo
from ._variants import check_name
from ._variants import existing
from ._variants import file_facts
from ._variants import now
from ._variants import publish
from ._variants import staging
from ._variants import step
from ._variants import up_to_date
from ._variants import versions

SIDE_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "config.json",
    "generation_config.json",
)
TOOLS = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "gguf")
QUANT_METHODS = {
    "fp32": "fp32",
    "int8": "onnxruntime MatMulNBitsQuantizer bits=8 block_size=32 symmetric accuracy_level=4",
    "int4": "onnxruntime MatMulNBitsQuantizer bits=4 block_size=32 symmetric accuracy_level=4",
    "int8-dynamic": "onnxruntime quantize_dynamic QInt8 per_channel reduce_range MatMul "
    "(lm_head excluded)",
}

TIED = "tied embedding stored twice"
TIED_WHY = (
    "ORT's converter folds the Transpose of a tied embedding into a second fp32 weight, so "
    "the .ort file and the memory it loads into grow by that much; --ort-head-int4 avoids it "
    "for the quantized variants"
)
UNTIED = "lm_head 4-bit"
UNTIED_WHY = (
    "the output head got its own weight, quantized to 4 bits (MatMulNBits block 32), instead "
    "of a second fp32 copy of the embedding; its logits differ slightly from the .onnx "
    "variant's"
)

NO_TIED_HEAD = (
    "--ort-head-int4: no tied head found (a MatMul named lm_head fed by a Transpose of an "
    "initializer); converted as it is"
)


@dataclass(frozen=True)
class ExportPlan:
    """One ``models export`` command."""

    source: Source
    quants: tuple[str, ...]
    ort: bool
    ort_head_int4: bool
    store: Path
    prefix: str
    force: bool = False


def run(plan: ExportPlan, echo: Echo) -> list[dict[str, Any]]:
    """Make the ONNX variants that are missing (one export serves them all), then the ORT
    ones; returns every requested variant's card."""
    echo(f"source: {plan.source.label()}")
    pending = [q for q in plan.quants if not _onnx_up_to_date(plan, q, echo)]
    made = {}
    if pending:
        made = _export_pending(plan, pending, echo)
    cards = [made.get(q) or existing(onnx_name(plan, q), plan.store) for q in plan.quants]
    if plan.ort:
        cards += [make_ort(plan, card, echo) for card in list(cards)]
        for line in _ort_summary(cards):
            echo(line)
    if plan.source.quantized:
        echo(f"note: {_requantized_note(plan.source)}")
    return cards


def _export_pending(plan: ExportPlan, pending: list[str], echo: Echo) -> dict[str, Any]:
    with _workdir(plan.store) as work:
        hf = plan.source.path
        if plan.source.format == "gguf":
            hf = gguf_to_hf(plan.source, work / "hf", echo)
        exported = export_onnx(hf, work / "onnx", echo)
        return {q: make_onnx(plan, q, exported, echo) for q in pending}


@contextlib.contextmanager
def _workdir(store: Path) -> Iterator[Path]:
    folder = store / f".work-export-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- GGUF -> HF fp32 -> ONNX fp32 -----------------------------------------------------------


def gguf_to_hf(source: Source, out: Path, echo: Echo) -> Path:
    """The GGUF dequantized to an fp32 HF folder by transformers, tokenizer fixed."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers import AutoTokenizer

    where, name = str(source.path.parent), source.path.name
    with step(echo, "dequantize GGUF -> HF fp32 (transformers)"), _heavy("dequantize"):
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32)
        _set_special_ids(model, source.gguf.metadata)
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        fix_tokenizer(out, source.gguf.metadata)
    return out


def _set_special_ids(model: Any, meta: dict[str, Any]) -> None:
    """bos/eos/pad ids from the GGUF into config.json and generation_config.json (the
    GGUF-derived config keeps transformers' defaults otherwise)."""
    for key in ("bos", "eos", "pad"):
        value = meta.get(f"tokenizer.ggml.{'padding' if key == 'pad' else key}_token_id")
        if isinstance(value, int):
            setattr(model.config, f"{key}_token_id", value)
            setattr(model.generation_config, f"{key}_token_id", value)


def fix_tokenizer(folder: Path, meta: dict[str, Any]) -> None:
    """Make the saved tokenizer encode as llama.cpp does with the same GGUF.

    transformers 4.57 turns a GGUF byte-level BPE vocabulary into a tokenizer that adds a
    BOS, decodes like sentencepiece and names the wrong special tokens; with these fixes its
    ids equal llama.cpp's on ChatML, unicode and emoji text, and llama.cpp's own HF -> GGUF
    converter writes back the original tokenizer metadata.
    """
    if meta.get("tokenizer.ggml.model") == "gpt2":
        _byte_level(folder / "tokenizer.json")
    specials = _special_tokens(folder / "tokenizer.json", meta)
    config = _read_json(folder / "tokenizer_config.json")
    config.update(specials, add_bos_token=bool(meta.get("tokenizer.ggml.add_bos_token", False)))
    config["add_eos_token"] = False
    if meta.get("tokenizer.ggml.model") == "gpt2":
        config.update(tokenizer_class="GPT2Tokenizer", add_prefix_space=False)
    config["chat_template"] = _chat_template(folder, meta) or config.get("chat_template")
    for key in ("legacy", "use_default_system_prompt"):
        config.pop(key, None)
    _write_json(folder / "tokenizer_config.json", config)
    if (folder / "special_tokens_map.json").exists():
        tokens = _read_json(folder / "special_tokens_map.json")
        _write_json(folder / "special_tokens_map.json", tokens | specials)


def _byte_level(path: Path) -> None:
    data = _read_json(path)
    byte_level = {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": False,
        "use_regex": False,
    }
    data.update(normalizer=None, post_processor=byte_level, decoder=dict(byte_level))
    if data.get("model", {}).get("type") == "BPE":
        data["model"]["byte_fallback"] = False
    _write_json(path, data)


def _special_tokens(tokenizer_json: Path, meta: dict[str, Any]) -> dict[str, str]:
    """bos/eos/pad/unk token strings for the ids the GGUF names."""
    data = _read_json(tokenizer_json)
    by_id = {i: t for t, i in data.get("model", {}).get("vocab", {}).items()}
    by_id |= {t["id"]: t["content"] for t in data.get("added_tokens", [])}
    keys = {"bos": "bos", "eos": "eos", "pad": "padding", "unk": "unknown"}
    found = {}
    for key, gguf_key in keys.items():
        token_id = meta.get(f"tokenizer.ggml.{gguf_key}_token_id")
        if isinstance(token_id, int) and token_id in by_id:
            found[f"{key}_token"] = by_id[token_id]
    return found


def _chat_template(folder: Path, meta: dict[str, Any]) -> str | None:
    """transformers 4.57 saves the template apart (chat_template.jinja); older readers and
    onnxruntime-genai look in tokenizer_config.json, so it goes in both."""
    jinja = folder / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text(encoding="utf-8")
    template = meta.get("tokenizer.chat_template")
    return template if isinstance(template, str) else None


def export_onnx(hf: Path, out: Path, echo: Echo) -> Path:
    """optimum's ``main_export`` for text-generation-with-past (a KV-cache decoder), then the
    fixed tokenizer files over the ones optimum copied. optimum's own validation is skipped:
    each variant is loaded and run in onnxruntime instead."""
    from optimum.exporters.onnx import main_export

    with step(echo, "export ONNX fp32 (optimum, text-generation-with-past)"), _heavy("export"):
        main_export(
            str(hf),
            output=str(out),
            task="text-generation-with-past",
            device="cpu",
            local_files_only=True,
            do_validation=False,
        )
    _copy_side_files(hf, out)
    _merge_chat_template(out)
    return out / "model.onnx"


def _merge_chat_template(folder: Path) -> None:
    """Put a separate chat_template.jinja into tokenizer_config.json too, unless it has one
    (an HF folder given as SOURCE; a GGUF's folder got it from :func:`fix_tokenizer`)."""
    jinja, config_path = folder / "chat_template.jinja", folder / "tokenizer_config.json"
    if jinja.exists() and config_path.exists():
        config = _read_json(config_path)
        config.setdefault("chat_template", jinja.read_text(encoding="utf-8"))
        _write_json(config_path, config)


# --- variants -------------------------------------------------------------------------------


def onnx_name(plan: ExportPlan, quant: str) -> str:
    return check_name(f"{plan.prefix}-onnx-{quant}")


def _onnx_method(plan: ExportPlan, quant: str) -> str:
    tools = versions(*TOOLS)
    start = "GGUF dequantized to fp32" if plan.source.format == "gguf" else "HF folder"
    export = (
        f"transformers {tools['transformers']} ({start}) + optimum-onnx "
        f"{tools['optimum-onnx']} main_export text-generation-with-past"
    )
    if quant == "fp32":
        return f"{export}, fp32"
    return f"{export} + {QUANT_METHODS[quant]} (onnxruntime {tools['onnxruntime']})"


def _onnx_up_to_date(plan: ExportPlan, quant: str, echo: Echo) -> bool:
    name = onnx_name(plan, quant)
    fresh = up_to_date(plan.store / name, plan.source.sha256, _onnx_method(plan, quant), plan.force)
    if fresh:
        echo(f"  onnx {quant} {name}: already in the store (same source and method)")
    return fresh


def make_onnx(plan: ExportPlan, quant: str, exported: Path, echo: Echo) -> dict[str, Any]:
    """One ONNX variant from the fp32 export: model, side files, a run check and its card."""
    name = onnx_name(plan, quant)
    with staging(plan.store, name) as folder, step(echo, f"onnx {quant} {name}") as info:
        model = folder / "model.onnx"
        _quantized(quant, exported, model)
        _copy_side_files(exported.parent, folder)
        check = _onnx.check_runs(model)
        method = _onnx_method(plan, quant)
        card = _card(plan, name, "onnx", quant, model, method, plan.source.describe())
        card |= {"bits": _onnx.bits_per_weight(model), "check": check}
        info["detail"] = f"{card['size_bytes'] / 1e6:.1f} MB, {card['bits']} bits per weight"
        return publish(folder, card, plan.store / name)


def _quantized(quant: str, exported: Path, out: Path) -> None:
    if quant == "fp32":
        for path in [exported, *_onnx.external_files(exported)]:
            _link_or_copy(path, out.parent / path.name)
    elif quant == "int8-dynamic":
        _onnx.dynamic_int8(exported, out)
    else:
        _onnx.matmul_nbits(exported, out, bits=8 if quant == "int8" else 4)


def make_ort(plan: ExportPlan, parent: dict[str, Any], echo: Echo) -> dict[str, Any]:
    """The ORT-format twin of an ONNX variant (from the copy in the store)."""
    quant = parent["quantization"]
    head4 = plan.ort_head_int4 and quant != "fp32"
    name = check_name(f"{plan.prefix}-ort-{quant}" + ("-head4" if head4 else ""))
    model = Path(parent["path"]) / parent["file"]
    method = _ort_method(head4)
    if up_to_date(plan.store / name, parent["sha256"], method, plan.force):
        echo(f"  ort {quant} {name}: already in the store (same source and method)")
        return existing(name, plan.store)
    with staging(plan.store, name) as folder, step(echo, f"ort {quant} {name}") as info:
        card = _ort_variant(plan, name, parent, model, folder, head4)
        extra = [n.split(": ", 1)[0] for n in card["notes"] if n.startswith((TIED, UNTIED))]
        info["detail"] = "; ".join([f"{card['size_bytes'] / 1e6:.1f} MB", *extra])
        return publish(folder, card, plan.store / name)


def _ort_variant(
    plan: ExportPlan, name: str, parent: dict[str, Any], model: Path, folder: Path, head4: bool
) -> dict[str, Any]:
    _copy_side_files(model.parent, folder)
    source = model
    untied = head4 and _onnx.untie_head_int4(model, folder / "model.onnx")
    if untied:
        source = folder / "model.onnx"
    bits = _onnx.bits_per_weight(source)
    ort_file = _onnx.to_ort(source, folder)
    (folder / "model.onnx").unlink(missing_ok=True)
    check = _onnx.check_runs(ort_file)
    method, quant = _ort_method(head4), parent["quantization"]
    card = _card(plan, name, "ort", quant, ort_file, method, _described(parent, model))
    card |= {"bits": bits, "check": check}
    card["notes"] += _ort_notes(ort_file, model, untied)
    if head4 and not untied:
        card["notes"].append(NO_TIED_HEAD)
    return card


def _ort_method(head4: bool) -> str:
    version = versions("onnxruntime")["onnxruntime"]
    head = "; lm_head untied and MatMulNBits 4-bit (block 32)" if head4 else ""
    return (
        f"onnxruntime {version} convert_onnx_models_to_ort --optimization_style Fixed "
        f"(level {_onnx.ORT_LEVEL}){head}"
    )


def _ort_notes(ort_file: Path, onnx_file: Path, untied: bool) -> list[str]:
    """Say when the .ort carries a second copy of a tied embedding, or that the head was
    quantized to avoid it (the outputs then differ slightly from the .onnx variant)."""
    before, after = onnx_file.stat().st_size / 1e6, ort_file.stat().st_size / 1e6
    sizes = f"{before:.0f} MB .onnx -> {after:.0f} MB .ort"
    if untied:
        return [f"{UNTIED} ({sizes}): {UNTIED_WHY}"]
    if after > before * 1.1:
        return [f"{TIED} (+{after - before:.0f} MB; {sizes}): {TIED_WHY}"]
    return []


def _ort_summary(cards: list[dict[str, Any]]) -> list[str]:
    """The why of the ORT notes, once per command rather than once per variant."""
    notes = [n for card in cards for n in card.get("notes", [])]
    found = [
        why
        for key, why in ((TIED, TIED_WHY), (UNTIED, UNTIED_WHY))
        if any(n.startswith(key) for n in notes)
    ]
    return [f"note: {why}" for why in found]


# --- cards ----------------------------------------------------------------------------------


def _card(
    plan: ExportPlan,
    name: str,
    fmt: str,
    quant: str,
    model: Path,
    method: str,
    source: dict[str, Any],
) -> dict[str, Any]:
    """An ONNX or ORT variant's card; ``size_bytes`` counts external data too."""
    data = _onnx.external_files(model) if fmt == "onnx" else []
    requantized = plan.source.quantized or bool(plan.source.card.get("requantized"))
    card: dict[str, Any] = {
        "name": name,
        "format": fmt,
        "file": model.name,
        "base": plan.source.base,
        "source": source,
        "method": method,
        "quantization": quant,
        "requantized": requantized,
        **file_facts(model),
        "tools": versions(*TOOLS),
        "created_at": now(),
        "notes": [_requantized_note(plan.source)] if requantized else [],
    }
    if requantized:
        card["origin"] = plan.source.card.get("origin") or plan.source.describe()
    if data:
        card["size_bytes"] += sum(p.stat().st_size for p in data)
        card["data_files"] = {p.name: file_facts(p)["sha256"] for p in data}
    return card


def _described(card: dict[str, Any], model: Path) -> dict[str, Any]:
    """The card's ``source`` entry for a variant made from the store variant ``card``."""
    return {
        "path": str(model),
        "sha256": card["sha256"],
        "format": card["format"],
        "quantization": card["quantization"],
        "name": card["name"],
    }


def _requantized_note(source: Source) -> str:
    origin = source.card.get("origin") or {}
    what = origin.get("quantization") or source.quantization
    return (
        f"made from a {what} GGUF dequantized to fp32: its rounding errors are in every "
        "variant (fp32 included), so compare variants with each other, not with the "
        "original model"
    )


# --- helpers --------------------------------------------------------------------------------


def _copy_side_files(src: Path, dst: Path) -> None:
    for name in SIDE_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link when the work folder and the store share a file system (they do: the
    work folder is inside the store), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


@contextlib.contextmanager
def _heavy(what: str) -> Iterator[None]:
    """Run a library step with its prints and logs captured: shown only when it fails, as
    the last line of a one-line error (the traceback with ``harness --debug``)."""
    captured = io.StringIO()
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            yield
    except HarnessError:
        raise
    except Exception as exc:
        raise HarnessError(f"{what} failed: {_onnx.first_line(exc)}") from exc
    finally:
        logging.disable(logging.NOTSET)
