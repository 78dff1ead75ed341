"""``harness models quantize``: the GGUF ladder through llama.cpp's own quantizer.

llama.cpp's ``llama_model_quantize`` is reached through llama-cpp-python (xllamacpp, the
default engine, exports no quantizer). By default the quantized source is first dequantized
to an F16 GGUF with the pure ``gguf`` package and each type is made from that F16 file (the
usual llama.cpp route: quantize from full precision); ``--requantize`` quantizes straight from
the quantized source instead. Either way a variant made from a quantized file carries that
file's rounding errors, which its card says (``requantized``, ``origin``, ``notes``).
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from harness import HarnessError

from ._deps import need_gguf
from ._deps import need_llama_cpp
from ._gguf import TYPE_IDS
from ._gguf import GGUFInfo
from ._gguf import read_gguf
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

LADDER = ("Q8_0", "Q4_0", "Q3_K_M", "Q2_K")
TYPES = (
    "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0",
    "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K",
)  # fmt: skip
EMBEDDING_TYPES = ("F16", "Q8_0", "Q6_K", "Q5_0", "Q4_0", "Q4_K", "Q3_K", "Q2_K")
FALLBACK_WIDTH = re.compile(r"ncols\s+(\d+) not divisible by (\d+)")


class QuantizeError(HarnessError):
    """llama.cpp refused or failed a quantization (the message is its own last error)."""


@dataclass(frozen=True)
class Plan:
    """One ``models quantize`` command: what to make from what, and where."""

    source: Source
    types: tuple[str, ...]
    requantize: bool
    store: Path
    prefix: str
    threads: int
    embedding_type: str | None = None
    force: bool = False


def run(plan: Plan, echo: Echo) -> list[dict[str, Any]]:
    """Make every requested variant; returns their cards (with ``path``)."""
    llama = need_llama_cpp()
    echo(f"source: {plan.source.label()}")
    made: list[dict[str, Any]] = []
    parent = plan.source
    if plan.source.quantized and not plan.requantize:
        made.append(make_f16(plan, echo))
        parent = _variant_source(made[-1])
    for qtype in plan.types:
        made.append(quantize_one(llama, plan, parent, qtype, echo))
    if any(card["requantized"] for card in made):
        echo(f"note: {next(c for c in made if c['requantized'])['notes'][0]}")
    return made


def _variant_source(card: dict[str, Any]) -> Source:
    """A variant just made, as the source of the next step."""
    path = Path(card["path"]) / card["file"]
    return Source(card["name"], path, "gguf", card["name"], card, "variant")


# --- F16 from a quantized GGUF (the gguf package) ------------------------------------------


def make_f16(plan: Plan, echo: Echo) -> dict[str, Any]:
    """The F16 variant dequantized from the source (reused when already in the store)."""
    gguf = need_gguf("quantize")
    source = plan.source
    name = check_name(f"{plan.prefix}-F16")
    method = (
        f"gguf {versions('gguf')['gguf']} GGUFReader + quants.dequantize: "
        f"{source.quantization} -> F16 matrices, F32 vectors, metadata copied"
    )
    target = plan.store / name
    if up_to_date(target, source.sha256, method, plan.force):
        echo(f"  F16 {name}: already in the store (same source and method)")
        return existing(name, plan.store)
    with staging(plan.store, name) as folder, step(echo, f"F16 {name}") as info:
        out = folder / f"{name}.gguf"
        write_f16(gguf, source.path, out)
        card = _card(name, source, "F16", method, read_gguf(out), out, versions("gguf"))
        info["detail"] = (
            f"{card['size_bytes'] / 1e6:.1f} MB, dequantized from {source.quantization}"
        )
        return publish(folder, card, target)


def write_f16(gguf: ModuleType, src: Path, dst: Path) -> None:
    """Every tensor of ``src`` dequantized: F16 for matrices, F32 for vectors (llama.cpp's
    convention), every metadata key copied with ``general.file_type`` set to F16."""
    reader = gguf.GGUFReader(str(src))
    writer = gguf.GGUFWriter(str(dst), arch=reader.fields["general.architecture"].contents())
    _copy_fields(gguf, reader, writer)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, _dequantized(gguf, tensor, src))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _copy_fields(gguf: ModuleType, reader: Any, writer: Any) -> None:
    """Metadata keys, except those the writer sets itself (``GGUF.*``, the architecture and
    the alignment, which the writer uses to lay out tensors)."""
    skip = {"general.architecture", "general.alignment"}
    for item in reader.fields.values():
        if item.name.startswith("GGUF.") or item.name in skip:
            continue
        value = item.contents()
        if item.name == "general.file_type":
            value = int(gguf.LlamaFileType.MOSTLY_F16)
        vtype = item.types[0]
        sub_type = item.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(item.name, value, vtype, sub_type=sub_type)


def _dequantized(gguf: ModuleType, tensor: Any, src: Path) -> Any:
    import numpy as np

    try:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    except NotImplementedError:
        raise HarnessError(
            f"{src}: the gguf package cannot dequantize {tensor.tensor_type.name} "
            f"({tensor.name}); quantize straight from it with --requantize"
        ) from None
    return values.astype(np.float16 if values.ndim >= 2 else np.float32)


# --- llama.cpp's quantizer ------------------------------------------------------------------


def quantize_one(
    llama: ModuleType, plan: Plan, parent: Source, qtype: str, echo: Echo
) -> dict[str, Any]:
    """One quantized variant of ``parent`` (skipped when already in the store)."""
    direct = parent.quantized
    name = check_name(_variant_name(plan.prefix, qtype, plan.embedding_type, direct))
    method = _method(qtype, direct, plan.embedding_type)
    target = plan.store / name
    if up_to_date(target, parent.sha256, method, plan.force):
        echo(f"  {qtype} {name}: already in the store (same source and method)")
        return existing(name, plan.store)
    with staging(plan.store, name) as folder, step(echo, f"{qtype} {name}") as info:
        out = folder / f"{name}.gguf"
        log = llama_quantize(llama, parent.path, out, qtype, plan, direct)
        header = read_gguf(out)
        tools = versions("llama_cpp_python")
        card = _card(name, parent, qtype, method, header, out, tools)
        card["notes"] += _fallback_notes(qtype, log, header)
        info["detail"] = f"{card['size_bytes'] / 1e6:.1f} MB, {card['bits']} bits per weight"
        published = publish(folder, card, target)
    for note in card["notes"]:
        if note.startswith("K-quant"):
            echo(f"    note: {note}")
    return published


def _variant_name(prefix: str, qtype: str, embedding: str | None, direct: bool) -> str:
    name = f"{prefix}-{qtype}" + (f"-emb{embedding}" if embedding else "")
    return name + ("-requant" if direct else "")


def _method(qtype: str, direct: bool, embedding: str | None) -> str:
    version = versions("llama_cpp_python")["llama_cpp_python"]
    extras = (", allow_requantize" if direct else "") + (
        f", token_embd {embedding}" if embedding else ""
    )
    return f"llama.cpp llama_model_quantize {qtype}{extras} (llama-cpp-python {version})"


def llama_quantize(
    llama: ModuleType, src: Path, dst: Path, qtype: str, plan: Plan, direct: bool
) -> list[str]:
    """Run llama.cpp's quantizer with its log captured (one line per tensor otherwise);
    returns the log, or raises with its last error line."""
    params = llama.llama_model_quantize_default_params()
    params.ftype = getattr(llama, f"LLAMA_FTYPE_MOSTLY_{qtype}")
    params.nthread = plan.threads
    params.allow_requantize = direct
    if plan.embedding_type:
        params.token_embedding_type = TYPE_IDS[plan.embedding_type]
    with captured_log(llama) as lines:
        status = llama.llama_model_quantize(
            str(src).encode(), str(dst).encode(), ctypes.byref(params)
        )
    if status != 0:
        raise QuantizeError(f"{src}: llama.cpp could not make {qtype}: {_last_error(lines)}")
    return lines


@contextmanager
def captured_log(llama: ModuleType) -> Iterator[list[str]]:
    """llama.cpp's log (through ``llama_log_set``) and anything C code writes to fd 2, as
    lines, instead of the terminal."""
    lines: list[str] = []

    def collect(level: int, text: bytes, user_data: Any) -> None:
        lines.append(text.decode("utf-8", "replace"))

    callback = llama.llama_log_callback(collect)  # referenced here until llama.cpp lets go
    llama.llama_log_set(callback, ctypes.c_void_p(0))
    try:
        with _fd2_captured() as stderr_text:
            yield lines
        lines.extend(stderr_text)
    finally:
        _restore_log(llama)


@contextmanager
def _fd2_captured() -> Iterator[list[str]]:
    sys.stderr.flush()
    saved = os.dup(2)
    captured: list[str] = []
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.extend(sink.read().decode("utf-8", "replace").splitlines(keepends=True))


def _restore_log(llama: ModuleType) -> None:
    """Give llama.cpp's log back to llama-cpp-python's own handler (or to stderr)."""
    try:
        from llama_cpp import _logger

        llama.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    except (ImportError, AttributeError):
        llama.llama_log_set(ctypes.cast(None, llama.llama_log_callback), ctypes.c_void_p(0))


def _last_error(lines: list[str]) -> str:
    text = [ln.strip() for ln in "".join(lines).splitlines() if ln.strip()]
    errors = [ln for ln in text if re.search(r"error|failed|cannot|unable", ln, re.I)]
    return (errors or text or ["no message (see llama.cpp's log with --debug)"])[-1]


def _fallback_notes(qtype: str, log: list[str], header: GGUFInfo) -> list[str]:
    """The K-quant caveat: rows whose width is not a multiple of 256 cannot take K-quant
    types, and llama.cpp silently uses older types for them (SmolLM2's width is 576)."""
    if "_K" not in qtype:
        return []
    text = "".join(log)
    widths = FALLBACK_WIDTH.findall(text)
    legacy = [t for t in header.weights if "_K" not in t.type_name and t.type_name != "F16"]
    fell_back = len(widths) or len(legacy)
    if not fell_back:
        return []
    cols = ", ".join(sorted({w for w, _ in widths})) or "not a multiple of 256"
    types = ", ".join(f"{k} x{v}" for k, v in header.type_counts().items())
    return [
        f"K-quant fallback: {fell_back} of {len(header.weights)} weight matrices could not "
        f"take {qtype}'s K-quant types (row width {cols}; K-quants need a multiple of 256) "
        f"and llama.cpp stored them in older types; tensor types: {types}. The file is "
        f"larger and closer to Q4_0 than the name {qtype} suggests"
    ]


# --- cards ----------------------------------------------------------------------------------


def _card(
    name: str,
    parent: Source,
    qtype: str,
    method: str,
    header: GGUFInfo,
    out: Path,
    tools: dict[str, str],
) -> dict[str, Any]:
    """A GGUF variant's card (the fields of :mod:`harness_plugins.shared.store`, plus
    ``tensor_types``, ``origin`` and ``notes``)."""
    origin = _origin(parent)
    card: dict[str, Any] = {
        "name": name,
        "format": "gguf",
        "file": out.name,
        "base": parent.base,
        "source": parent.describe(),
        "method": method,
        "quantization": qtype,
        "bits": header.bits_per_weight(),
        "requantized": origin is not None,
        **file_facts(out),
        "tensor_types": header.type_counts(),
        "tools": tools,
        "created_at": now(),
        "notes": [],
    }
    if origin is not None:
        card["origin"] = origin
        card["notes"].append(_requantized_note(origin, parent))
    return card


def _origin(parent: Source) -> dict[str, Any] | None:
    """The first quantized file upstream, whose rounding errors a variant inherits."""
    if parent.quantized:
        return parent.describe()
    return parent.card.get("origin") if parent.card.get("requantized") else None


def _requantized_note(origin: dict[str, Any], parent: Source) -> str:
    via = "" if parent.quantized else f" through {parent.quantization} ({parent.name})"
    what = origin.get("name") or origin["path"]
    return (
        f"requantized: made from {what}, a {origin['quantization']} file{via}; its rounding "
        "errors are in this variant too, so it is no better than that file and may be worse "
        "than the same type made from the original weights"
    )
