"""Scoring throughput of our BFCL AST checker next to BFCL's own, on the same decoded outputs.

The decoded outputs are the ground truth of every python AST entry plus systematic
perturbations of it (the parity test's generator), so both checkers see passes and failures
of every kind. BFCL's checker is imported here only (``bfcl-eval`` installed ``--no-deps``),
with a stub for its model registry. Target: ours at least as fast.

    python benchmarks/bfcl_checker_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bfcl_perturb import python_cases
from harness_plugins.bfcl import _data as data
from harness_plugins.bfcl._checker import check_ast


def bfcl_checker() -> tuple:
    stub = types.ModuleType("bfcl_eval.constants.model_config")

    class _Config:
        underscore_to_dot = False

    class _Any(dict):
        def __missing__(self, key: str) -> _Config:
            return _Config()

    stub.MODEL_CONFIG_MAPPING = _Any()
    sys.modules["bfcl_eval.constants.model_config"] = stub
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    return ast_checker, Language.PYTHON


def workload() -> list[tuple]:
    cases = []
    for category in data.AST_CATEGORIES:
        for entry, truth in data.entries(category):
            for case in python_cases(entry["function"], truth):
                cases.append((entry["function"], case.calls, truth, category))
    return cases


def timed(fn, cases: list[tuple], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        inputs = copy.deepcopy(cases)  # both checkers may normalise their inputs in place
        started = time.process_time()
        for functions, calls, truth, category in inputs:
            fn(functions, calls, truth, category)
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ast_checker, python = bfcl_checker()
    cases = workload()
    ours = timed(lambda f, c, t, cat: check_ast(f, c, t, cat), cases, args.repeats)
    theirs = timed(lambda f, c, t, cat: ast_checker(f, c, t, python, cat, "m"), cases, args.repeats)
    print(
        f"decoded outputs scored: {len(cases):,} (python AST categories, ground truth + "
        "perturbations)"
    )
    print(f"ours:  {ours:.2f} s CPU, {len(cases) / ours:,.0f} samples/s")
    print(f"BFCL:  {theirs:.2f} s CPU, {len(cases) / theirs:,.0f} samples/s")
    print(f"ours / BFCL time: {ours / theirs:.2f} (target <= 1.00)")


if __name__ == "__main__":
    main()
