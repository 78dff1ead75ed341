"""BFCL rescoring end to end: ``harness run`` over recorded outputs of every BFCL category.

Ten replay "models" answer all 3,491 single-turn BFCL items (34,910 samples): model k gives,
for each item, the k-th case of the parity test's generator (ground truth first, then wrong
values, types, names, dropped and extra calls; for the (ir)relevance categories the k-th
relevance output), written as BFCL's Python call-list text and decoded by ``python_calls``, as
a model's result file would be. Everything a user's rescoring pays is in the figure: loading
BFCL's data, decoding, checking, writing samples.jsonl, aggregating BFCL's groups and writing
the report. Target on the 2-core reference machine: >= 10,000 samples/s end to end.

The anchor, measured in the same run: BFCL's own decode and check functions
(``default_decode_ast_prompting`` and ``ast_checker`` from the ``bfcl-eval`` wheel, imported
with stubs for the tree-sitter parsers and the model registry it would import) over the same
outputs in a plain loop that writes nothing.

    python benchmarks/bfcl_rescoring.py [--models 10] [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bfcl_perturb import python_cases
from bfcl_perturb import relevance_outputs
from common import add_json_option
from common import harness_run
from common import write_json
from harness_plugins.bfcl import _data as data


def call_text(calls: Any) -> str:
    """BFCL's Python call-list text for decoded calls; anything else as plain text."""
    if not isinstance(calls, list):
        return str(calls)
    parts = []
    for call in calls:
        if not isinstance(call, dict) or len(call) != 1:
            return json.dumps(calls)
        ((name, args),) = call.items()
        if not isinstance(args, dict):
            return json.dumps(calls)
        parts.append(f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})")
    return "[" + ", ".join(parts) + "]"


def outputs(category: str, entry: dict[str, Any], truth: Any) -> list[str]:
    """Every recorded output the generator makes for one item, as text."""
    if truth is None:
        return [call_text(value) for _, _, value in relevance_outputs(entry["function"])]
    return [call_text(case.calls) for case in python_cases(entry["function"], truth)]


def replay_lines(models: int) -> Iterator[tuple[int, str]]:
    """(model index, replay line) for every model and item."""
    for category in data.CATEGORIES:
        for entry, truth in data.entries(category):
            texts = outputs(category, entry, truth)
            for k in range(models):
                line = {"task": "bfcl", "sample_id": entry["id"], "output": texts[k % len(texts)]}
                yield k, json.dumps(line)


def make_inputs(folder: Path, models: int) -> Path:
    """Replay files and a manifest running every category on every model; returns it."""
    handles = [(folder / f"model{k}.jsonl").open("w") for k in range(models)]
    for k, line in replay_lines(models):
        handles[k].write(line + "\n")
    for handle in handles:
        handle.close()
    manifest = folder / "rescore.json"
    backends = [{"type": "replay", "id": f"m{k}", "path": f"model{k}.jsonl"} for k in range(models)]
    task = {"type": "bfcl", "id": "bfcl", "categories": list(data.CATEGORIES), "mode": "prompt"}
    manifest.write_text(json.dumps({"name": "rescore", "backends": backends, "tasks": [task]}))
    return manifest


def bfcl_functions() -> tuple[Any, Any, Any]:
    """BFCL's decoder and checker, importable without its declared dependencies."""

    class _Inert:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

    for name in ("tree_sitter", "tree_sitter_java", "tree_sitter_javascript"):
        module = types.ModuleType(name)
        module.Language = module.Parser = _Inert  # type: ignore[attr-defined]
        module.language = lambda: None  # type: ignore[attr-defined]
        sys.modules.setdefault(name, module)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bfcl_checker_speed import bfcl_checker

    ast_checker, python = bfcl_checker()
    from bfcl_eval.model_handler.utils import default_decode_ast_prompting

    return default_decode_ast_prompting, ast_checker, python


def bfcl_loop(models: int) -> tuple[int, float]:
    """(outputs, seconds) of BFCL's own decode + check over every model's outputs."""
    decode, check, python = bfcl_functions()
    work = []
    for category in data.CATEGORIES:
        for entry, truth in data.entries(category):
            texts = outputs(category, entry, truth)
            for k in range(models):
                work.append((category, entry["function"], truth, texts[k % len(texts)]))
    started = time.perf_counter()
    for category, functions, truth, text in work:
        try:
            decoded = decode(text)
        except Exception:
            continue  # BFCL counts a decode failure as wrong (irrelevance: as right)
        if truth is not None:
            check(functions, decoded, truth, python, category, "m")
    return len(work), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    add_json_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = make_inputs(root, args.models)
        samples = args.models * sum(data.count(c) for c in data.CATEGORIES)
        walls = [harness_run(manifest, root / f"out{i}") for i in range(args.repeats)]
    wall = min(walls)
    count, bfcl_s = min(bfcl_loop(args.models) for _ in range(args.repeats))
    ours, theirs = samples / wall, count / bfcl_s
    print(f"BFCL rescoring: {samples:,} samples ({args.models} models x every category)")
    print(f"harness run (best of {args.repeats}): {wall:.2f} s, {ours:,.0f} samples/s end to end")
    print(f"BFCL's decode+check loop: {bfcl_s:.2f} s, {theirs:,.0f} samples/s (writes nothing)")
    print(f"harness / BFCL loop: {ours / theirs:.2f}; target: >= 10,000 samples/s end to end")
    write_json(
        args,
        {
            "samples": samples,
            "wall_s": wall,
            "samples_per_s": ours,
            "bfcl_loop_samples_per_s": theirs,
        },
    )


if __name__ == "__main__":
    main()
