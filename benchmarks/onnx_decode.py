"""Decode speed through the ``onnx`` backend next to onnxruntime-genai's own generation loop
on the same model files and prompts, and int4 over fp32, measured side by side.

For each variant (store names or folders), in this process, alternating ``--repeats`` times:
the backend's ``chat`` on its default engine (onnxruntime-genai's generator) and on our own
KV-cache loop (their ``decode_tok_s``), and onnxruntime-genai's bare ``Generator`` loop
(``generate_next_token`` per token, greedy, same prompt ids, same number of new tokens).
Targets on the 2-core reference machine: harness / onnxruntime-genai >= 0.95; int4 decodes
faster than fp32.

    python benchmarks/onnx_decode.py [--variants fp32-name int4-name] [--max-tokens 64]

Needs the ``onnx`` extra and exported variants (``harness models export --quant fp32 --quant
int4``); ``HARNESS_MODEL_STORE`` or ``--store`` says where they are.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from common import add_json_option
from common import write_json
from harness_plugins.onnx import OnnxParams
from harness_plugins.onnx._backend import OnnxBackend

from harness import BuildContext
from harness import ChatRequest
from harness import GenerationParams
from harness import Message

DEFAULT = ["smollm2-135m-instruct-onnx-fp32", "smollm2-135m-instruct-onnx-int4"]
PROMPTS = [f"Write a long story about {t}." for t in ("a lighthouse", "a robot", "a garden")]


def harness_rate(backend: OnnxBackend, prompt: str, tokens: int) -> tuple[float, int]:
    request = ChatRequest(
        messages=(Message("user", prompt),), params=GenerationParams(max_tokens=tokens)
    )
    response = backend.chat(request)
    return response.timing["decode_tok_s"], int(response.output_tokens or 0)


def genai_rate(genai: Any, ids: list[int], tokens: int) -> float:
    """onnxruntime-genai's loop: exactly ``tokens`` new tokens (end of text suppressed)."""
    import onnxruntime_genai as og

    params = og.GeneratorParams(genai.model)
    params.set_search_options(
        max_length=len(ids) + tokens, min_length=len(ids) + tokens, do_sample=False
    )
    generator = og.Generator(genai.model, params)
    generator.append_tokens(ids)
    first, count = None, 0
    while not generator.is_done():
        generator.generate_next_token()
        first = first or time.perf_counter()
        count += 1
    return (count - 1) / (time.perf_counter() - first)


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """The backend on its default engine (genai) and on our loop, and genai's raw loop."""
    backends = {
        engine: OnnxBackend(
            OnnxParams(model=name, threads=args.threads, warmup=1, engine=engine),
            BuildContext("bench", Path.cwd()),
        )
        for engine in ("genai", "loop")
    }
    genai = backends["genai"]._genai_model()
    rates: dict[str, list[float]] = {"genai": [], "loop": [], "raw": []}
    for _ in range(args.repeats):
        for prompt in PROMPTS:
            for engine, backend in backends.items():
                rate, count = harness_rate(backend, prompt, args.max_tokens)
                rates[engine].append(rate)
            ids = backends["loop"].template.encode([Message("user", prompt)], None)
            rates["raw"].append(genai_rate(genai, ids, count))
    size = backends["loop"].model.model_file.stat().st_size / 2**20
    for backend in backends.values():
        backend.close()
    medians = {k: statistics.median(v) for k, v in rates.items()}
    return {"variant": name, "size_mb": size, **{f"{k}_tok_s": v for k, v in medians.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=DEFAULT)
    parser.add_argument("--store", help="model store folder (default: HARNESS_MODEL_STORE)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    add_json_option(parser)
    args = parser.parse_args()
    if args.store:
        os.environ["HARNESS_MODEL_STORE"] = args.store
    rows = [measure(name, args) for name in args.variants]
    print(f"{'variant':40}{'MB':>6}{'harness':>9}{'raw genai':>11}{'ratio':>7}{'our loop':>10}")
    for r in rows:
        r["ratio"] = r["genai_tok_s"] / r["raw_tok_s"]
        print(
            f"{r['variant']:40}{r['size_mb']:6.0f}{r['genai_tok_s']:9.1f}{r['raw_tok_s']:11.1f}"
            f"{r['ratio']:7.3f}{r['loop_tok_s']:10.1f}"
        )
    print("(decode tok/s, medians; harness = the onnx backend on its default engine)")
    if len(rows) >= 2:
        speedup = rows[-1]["genai_tok_s"] / rows[0]["genai_tok_s"]
        print(f"{rows[-1]['variant']} / {rows[0]['variant']} decode: {speedup:.2f} x")
    write_json(args, {"rows": rows})


if __name__ == "__main__":
    main()
