"""ONNX-level steps of ``models export``: weight quantization, the ORT-format conversion, the
tied-head workaround, a load-and-run check and bits per weight. onnx and onnxruntime are
imported inside the functions (they come with the ``export`` extra)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import HarnessError

BLOCK_SIZE = 32
ACCURACY_LEVEL = 4  # int8 activations in the kernel: 1.7x faster int4 decoding, same accuracy
EXTERNAL_DATA_LIMIT = 1_800_000_000  # protobuf's 2 GB limit, with room for the graph
ORT_LEVEL = "all"
CHECK_PROMPT = "The capital of France is"
FLOAT_BITS = {1: 32, 10: 16, 16: 16, 11: 64}  # onnx TensorProto FLOAT, FLOAT16, BFLOAT16, DOUBLE


def matmul_nbits(src: Path, dst: Path, bits: int) -> None:
    """Weight-only MatMulNBits (block 32, symmetric, accuracy_level 4) of every MatMul whose
    weight is an initializer; the tied output head (a Transpose of the embedding) stays fp32.
    Without accuracy_level 4, 8-bit MatMulNBits has no fast CPU kernel (2 tok/s)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=bits,
        block_size=BLOCK_SIZE,
        is_symmetric=True,
        accuracy_level=ACCURACY_LEVEL,
    )
    with _quiet_logging():
        quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=_needs_external(src))


def dynamic_int8(src: Path, dst: Path) -> None:
    """onnxruntime's dynamic int8 (per channel, MatMul only, the head excluded). reduce_range
    (7-bit weights) is required: on x86 without VNNI the u8 x s8 kernel saturates with
    full-range per-channel weights and the model writes garbage."""
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic

    graph = onnx.load(str(src), load_external_data=False).graph
    head = [n.name for n in graph.node if n.op_type == "MatMul" and "lm_head" in n.name]
    with _quiet_logging():
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=head,
            use_external_data_format=_needs_external(src),
        )


def untie_head_int4(src: Path, dst: Path) -> bool:
    """Give the tied output head its own transposed weight and quantize it to 4 bits.

    optimum exports a tied head as ``MatMul(x, Transpose(embedding))``; ORT's converter
    folds the Transpose into a second fp32 copy of the embedding (113 MB for SmolLM2) inside
    the .ort. Returns False (and writes nothing) when the model has no such head.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    found = _tied_head(model.graph)
    if found is None:
        return False
    head, transpose = found
    weights = {i.name: i for i in model.graph.initializer}[transpose.input[0]]
    untied = np.ascontiguousarray(numpy_helper.to_array(weights).T)
    model.graph.initializer.append(numpy_helper.from_array(untied, "lm_head.weight_T"))
    head.input[1] = "lm_head.weight_T"
    if not any(transpose.output[0] in n.input for n in model.graph.node):
        model.graph.node.remove(transpose)
    quantizer = MatMulNBitsQuantizer(
        model, bits=4, block_size=BLOCK_SIZE, is_symmetric=True,
        accuracy_level=ACCURACY_LEVEL, nodes_to_include=[head.name],
    )  # fmt: skip
    with _quiet_logging():
        quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=_needs_external(src))
    return True


def _tied_head(graph: Any) -> tuple[Any, Any] | None:
    """The head MatMul and the Transpose of an initializer that feeds it, if any."""
    initializers = {i.name for i in graph.initializer}
    for node in graph.node:
        if node.op_type != "MatMul" or "lm_head" not in node.name:
            continue
        producer = next((n for n in graph.node if node.input[1] in n.output), None)
        if producer and producer.op_type == "Transpose" and producer.input[0] in initializers:
            return node, producer
    return None


def to_ort(model: Path, out_dir: Path) -> Path:
    """``model.onnx`` -> ``model.ort`` with onnxruntime's own converter (Fixed style: the
    optimizations are baked in; the level comes only from an environment variable)."""
    env = dict(os.environ, ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL=ORT_LEVEL)
    command = [
        sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(model),
        "--output_dir", str(out_dir), "--optimization_style", "Fixed",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    written = out_dir / f"{model.stem}.ort"
    if done.returncode != 0 or not written.is_file():
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        raise HarnessError(
            f"{model}: onnxruntime's ORT converter failed: {(lines or ['no output'])[-1]}"
        )
    return written


def check_runs(model: Path, threads: int = 2) -> dict[str, Any]:
    """Load ``model`` in onnxruntime and predict the token after :data:`CHECK_PROMPT`: a
    variant that does not load or gives non-finite logits is an error, not a file in the
    store, and the predicted token lets variants be compared at a glance."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    ids, decode = _prompt_ids(model.parent)
    started = time.perf_counter()
    try:
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        load_s = time.perf_counter() - started
        feeds = {i.name: _feed(i, ids) for i in session.get_inputs()}
        logits = session.run([session.get_outputs()[0].name], feeds)[0]
    except Exception as exc:
        raise HarnessError(f"{model}: does not run in onnxruntime: {first_line(exc)}") from exc
    if not np.isfinite(logits).all():
        raise HarnessError(f"{model}: onnxruntime gives non-finite logits; the export is broken")
    token = int(logits[0, -1].argmax())
    found = {"onnxruntime": ort.__version__, "load_s": round(load_s, 2), "next_token": token}
    return found | ({"prompt": CHECK_PROMPT, "next_text": decode(token)} if decode else {})


def _prompt_ids(folder: Path) -> tuple[list[int], Any]:
    """The check prompt's ids and a decoder, from the variant's tokenizer.json (eight
    arbitrary ids and no decoder without one)."""
    if not (folder / "tokenizer.json").is_file():
        return list(range(1, 9)), None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return tokenizer.encode(CHECK_PROMPT).ids, lambda token: tokenizer.decode([token])


def _feed(spec: Any, ids: list[int]) -> Any:
    """An input for a text-generation-with-past graph: the prompt, an empty KV cache."""
    import numpy as np

    if spec.name == "input_ids":
        return np.array([ids], dtype=np.int64)
    if spec.name == "attention_mask":
        return np.ones((1, len(ids)), dtype=np.int64)
    if spec.name == "position_ids":
        return np.arange(len(ids), dtype=np.int64)[None, :]
    dtype = np.float16 if "float16" in spec.type else np.float32
    shape = [d if isinstance(d, int) else int("batch" in str(d)) for d in spec.shape]
    return np.zeros(shape, dtype=dtype)


def bits_per_weight(model: Path) -> float:
    """Average stored bits per element of the quantized weight matrices (MatMulNBits blocks
    with their scales, or int8 MatMulInteger weights); the float width when none is."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    sizes = {i.name: _stored_bytes(i) for i in graph.initializer}
    elements, stored = 0, 0
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "MatMulNBits":
            elements += attrs["K"] * attrs["N"]
            stored += sum(sizes.get(name, 0) for name in node.input[1:])
        elif node.op_type == "MatMulInteger" and node.input[1] in sizes:
            weight = next(i for i in graph.initializer if i.name == node.input[1])
            elements += _count(weight.dims)
            stored += sizes[node.input[1]]
    if elements:
        return round(8 * stored / elements, 2)
    return float(max((FLOAT_BITS.get(i.data_type, 0) for i in graph.initializer), default=32))


def _stored_bytes(tensor: Any) -> int:
    if tensor.raw_data:
        return len(tensor.raw_data)
    for entry in tensor.external_data:
        if entry.key == "length":
            return int(entry.value)
    return 0


def _count(dims: Any) -> int:
    total = 1
    for dim in dims:
        total *= dim
    return total


def external_files(model: Path) -> list[Path]:
    """The external-data files a ``.onnx`` names (none for a model under 2 GB)."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    names = {e.value for t in graph.initializer for e in t.external_data if e.key == "location"}
    return [model.parent / name for name in sorted(names)]


def _needs_external(src: Path) -> bool:
    """Write external data when the source did, or when the model nears protobuf's limit."""
    data = src.parent / f"{src.name}_data"
    return data.exists() or src.stat().st_size > EXTERNAL_DATA_LIMIT


class _quiet_logging:
    """The quantizers log every node at INFO, and advice at WARNING; keep errors."""

    def __enter__(self) -> None:
        logging.disable(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        logging.disable(logging.NOTSET)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
