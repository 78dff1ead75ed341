"""Concurrency of the ``openai`` backend against a local server of fixed latency, and the same
work through lm-eval's ``local-chat-completions`` client.

A server answering every request after exactly L seconds lets N samples at concurrency C
finish in N*L/C at best; the target is at most 1.1 x that. Both clients run as subprocesses
(``harness run`` and ``python -m lm_eval``) against the same server with the cache off, and
three figures are printed for each:

- ``wall``: the whole subprocess (interpreter, imports, set-up, writing results);
- ``net``: wall minus the fixed cost, measured as the wall of a 1-sample run minus L;
- ``server``: from the first request the server received to its last answer (no start-up).

The bound is checked on ``server``: it is the only figure free of interpreter start-up and
teardown, whose run-to-run noise (+-0.1 s on 2 cores) is larger than the margin being checked;
``net`` is printed as a cross-check. lm-eval needs the ``lm-eval[api]``
extra's packages (tenacity, aiohttp, requests, tqdm; tiktoken only for its OpenAI tokenizer).

The default N=256 is a multiple of C=16: with N=200, 12.5 "waves" of C requests need 13
latencies, so even a perfect client takes ceil(N/C)*L = 2.6 s = 1.04 x N*L/C.

    python benchmarks/api_concurrency.py [--samples 256] [--latency 0.2] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import add_json_option
from common import write_json
from fault_server import FaultServer


def write_questions(folder: Path, n: int) -> Path:
    """``q<i>?`` questions; the server answers ``i``, so both harnesses score 1.0."""
    path = folder / f"qa{n}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": f"s{i}", "question": f"q{i}?", "answer": str(i)}))
            handle.write("\n")
    return path


BFCL_CATEGORIES = ["simple_python", "multiple", "parallel", "parallel_multiple"]  # 1,000 items
TASK = {"name": "qa"}


def _task(folder: Path, n: int) -> dict[str, Any]:
    """``qa`` over generated questions, or (``--task bfcl``) BFCL's first ``n`` AST items in
    prompt mode: the server answers plain text, so every item goes through BFCL's decoder and
    checker (and fails), which is the per-sample work being measured."""
    if TASK["name"] == "bfcl":
        categories = BFCL_CATEGORIES
        task = {"type": "bfcl", "mode": "prompt", "categories": categories[: 1 if n == 1 else 4]}
        return task | ({"limit": n} if n < 1000 else {})  # per category: 1 for the fixed cost
    return {"type": "qa", "path": str(write_questions(folder, n))}


def harness_command(folder: Path, url: str, n: int, concurrency: int, tag: str) -> list[str]:
    manifest = folder / f"harness{n}.json"
    backend = {
        "type": "openai",
        "base_url": url,
        "model": "bench",
        "max_concurrency": concurrency,
        "cache": "off",
        "timeout_s": 30,
    }
    doc = {
        "name": f"api-bench-{n}",
        "backends": [backend],
        "tasks": [_task(folder, n)],
        "run": {"concurrency": concurrency},
    }
    manifest.write_text(json.dumps(doc), encoding="utf-8")
    out = folder / f"harness-out-{tag}"
    return [
        sys.executable,
        "-m",
        "harness",
        "run",
        str(manifest),
        "--out",
        str(out),
        "--no-progress",
    ]


def lm_eval_command(folder: Path, url: str, n: int, concurrency: int, tag: str) -> list[str]:
    """lm-eval's CLI on a generated generate_until task over the same questions."""
    tasks = folder / f"lm_tasks{n}"
    tasks.mkdir(exist_ok=True)
    name = f"api_bench_{n}"
    (tasks / f"{name}.yaml").write_text(
        "\n".join(
            [
                f"task: {name}",
                "dataset_path: json",
                "dataset_kwargs:",
                "  data_files:",
                f"    test: {write_questions(folder, n)}",
                "test_split: test",
                "output_type: generate_until",
                'doc_to_text: "{{question}}"',
                'doc_to_target: "{{answer}}"',
                'generation_kwargs: {until: ["\\n"], do_sample: false, max_gen_toks: 16}',
                "filter_list:",
                "  - name: strip",
                "    filter: [{function: remove_whitespace}, {function: take_first}]",
                "metric_list:",
                "  - {metric: exact_match, aggregation: mean, higher_is_better: true}",
                "metadata: {version: 1.0}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    model_args = (
        f"model=bench,base_url={url}/chat/completions,num_concurrent={concurrency},"
        "tokenized_requests=False,max_retries=2"
    )
    return [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "local-chat-completions",
        "--model_args",
        model_args,
        "--tasks",
        name,
        "--include_path",
        str(tasks),
        "--apply_chat_template",
        "--output_path",
        str(folder / f"lm-out-{tag}"),
    ]


def timed(server: FaultServer, command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds of the subprocess, the server's busy span); fails loudly on error."""
    server.reset_counts()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{command[2:4]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, server.busy_span_s


def measure(name: str, make: Any, args: argparse.Namespace, ctx: dict[str, Any]) -> dict:
    """Fixed cost (the fastest of three 1-sample runs, minus L), then the N-sample run."""
    folder, server, env = ctx["folder"], ctx["server"], ctx["env"]
    ones = []
    for attempt in range(3):
        command = make(folder, server.base_url, 1, args.concurrency, f"one{attempt}")
        ones.append(timed(server, command, env)[0])
    command = make(folder, server.base_url, args.samples, args.concurrency, "all")
    wall, span = timed(server, command, env)
    fixed = max(min(ones) - args.latency, 0.0)
    return {
        "name": name,
        "wall": wall,
        "fixed": fixed,
        "net": wall - fixed,
        "server": span,
        "requests": server.total_requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skip-lm-eval", action="store_true")
    parser.add_argument(
        "--task",
        choices=["qa", "bfcl"],
        default="qa",
        help="bfcl: the 1,000 items of BFCL's simple_python, multiple, parallel and "
        "parallel_multiple (with --samples 1000; a 1-sample run measures the fixed cost); "
        "lm-eval is skipped",
    )
    parser.add_argument(
        "--lm-eval-task",
        choices=["qa"],
        help="with --task bfcl: also run lm-eval on N generated questions (lm-eval has no "
        "BFCL task) at the same N, L and C, as the anchor",
    )
    add_json_option(parser)
    args = parser.parse_args()
    TASK["name"] = args.task
    if args.task == "bfcl" and args.samples != 1000:
        parser.error("--task bfcl runs BFCL's 1,000 items: give --samples 1000")
    args.skip_lm_eval = args.skip_lm_eval or (args.task == "bfcl" and not args.lm_eval_task)
    ideal = args.samples * args.latency / args.concurrency
    bound = 1.1 * ideal
    with tempfile.TemporaryDirectory() as tmp, FaultServer(latency=args.latency) as server:
        folder = Path(tmp)
        env = {
            **os.environ,
            "HARNESS_CACHE_DIR": str(folder / "cache"),
            "HF_HOME": str(folder / "hf"),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
        }
        ctx = {"folder": folder, "server": server, "env": env}
        rows = [measure("harness openai", harness_command, args, ctx)]
        if not args.skip_lm_eval:
            rows.append(measure("lm-eval local-chat-completions", lm_eval_command, args, ctx))
    print(
        f"N={args.samples} samples, latency L={args.latency}s, concurrency C={args.concurrency}: "
        f"ideal N*L/C = {ideal:.2f}s, bound 1.1*N*L/C = {bound:.2f}s"
    )
    print(
        f"{'client':32} {'wall s':>8} {'fixed s':>8} {'net s':>8} {'server s':>9} {'requests':>9}"
    )
    for r in rows:
        print(
            f"{r['name']:32} {r['wall']:8.2f} {r['fixed']:8.2f} {r['net']:8.2f} "
            f"{r['server']:9.2f} {r['requests']:9d}"
        )
    ours = rows[0]
    write_json(args, {"ideal_s": ideal, "rows": [r | {"ratio": r["server"] / ideal} for r in rows]})
    verdict = "within" if ours["server"] <= bound else "OVER"
    print(
        f"harness: server-side span {ours['server']:.2f}s is {verdict} the bound {bound:.2f}s "
        f"({ours['server'] / ideal:.3f} x N*L/C; wall minus fixed cost {ours['net']:.2f}s)"
    )
    if ours["server"] > bound:
        sys.exit(1)


if __name__ == "__main__":
    main()
