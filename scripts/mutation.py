#!/usr/bin/env python3
"""Mutation testing of the scoring and storage code: do the tests fail when the code is wrong?

A passing suite says little unless it fails on a wrong score. This script makes small,
plausible bugs ("mutants") in a module, one at a time, and runs the tests that cover the
mutated line against each: a mutant the tests fail on is *killed*; one they pass is a
*survivor*, a bug the suite would let through. See docs/testing.md.

How it works:

1. **Mutants** are generated from the module's ``ast``: comparison, boolean, arithmetic and
   augmented-assignment operator swaps; constant changes (True/False, n -> n+1, strings ->
   ``""``); negated ``if``/``while``/conditional/comprehension conditions; ``not x`` -> ``x``;
   ``return X`` -> ``return None``; deleted ``raise``, early ``return`` and call statements;
   ``continue`` <-> ``break``; one item removed from a list, tuple, set or dict literal. Only
   the mutated span of the file changes. Docstrings, annotations, decorators, imports, f-string
   pieces and ``if TYPE_CHECKING`` blocks are not mutated.
2. **Test selection**: the candidate tests run once under coverage.py with one dynamic
   context per test, which maps each line to the tests that ran it. A mutant runs the tests
   that cover its lines (fastest first, stopping at the first failure); a line run only at
   import (a signature default, a constant table) takes the tests that ran the enclosing
   function, or, at module level, every test that ran the module.
3. **Running** a mutant rewrites the file in place (the editable install imports
   ``harness_plugins.X`` from ``plugins/X``), runs pytest in a fresh interpreter with a
   timeout, and restores the file; the restore is checked byte for byte. A backup and a marker
   under the report folder let the next run restore the file if this one was killed.
4. **Equivalent mutants** (same behaviour whatever the input) are listed in ``EQUIVALENT``
   below, each with its reason; they are reported, not run, and not scored.

Needs coverage.py in the environment (``pip install coverage``). Run from the repository root:

    python scripts/mutation.py                        # the four modules, every mutant
    python scripts/mutation.py harness/_store.py --sample 150 --seed 1
    python scripts/mutation.py --list plugins/spectool/_patterns.py
    python scripts/mutation.py --show patterns#41     # one mutant as a diff

Score = (killed + timeout) / (run); ``run`` excludes equivalent mutants. A table is printed
at the end; ``<report>/mutation.json`` lists every mutant run and ``<report>/survivors.md``
the survivors (line, original and mutated source).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: The modules audited by default (issue 20).
DEFAULT_MODULES = (
    "plugins/bfcl/_checker.py",
    "harness/_store.py",
    "plugins/spectool/_patterns.py",
    "harness/_results.py",
)
#: Tests that may judge mutants (coverage picks, per line, those that actually run it). Tests
#: that start a model or a subprocess tree are left out: slow, and coverage cannot see into
#: the child processes anyway.
CANDIDATE_TESTS = (
    "tests/test_bfcl_parity.py",
    "tests/test_bfcl_task.py",
    "tests/test_spectool_patterns.py",
    "tests/test_spectool_task.py",
    "tests/test_scoring_mutants.py",
    "tests/test_bfcl_checker_rules.py",
    "tests/test_store_corrupt.py",
    "tests/test_core_units.py",
    "tests/test_run_dir_trust.py",
    "tests/test_runner.py",
    "tests/test_repeats.py",
    "tests/test_report.py",
    "tests/test_compare.py",
)
DESELECT = (
    "tests/test_spectool_task.py::test_probe_suite_on_smollm2",  # runs a real model
    "tests/test_runner.py::test_ctrl_c_exits_130_and_resumes",  # 10 s of signals
    "tests/test_run_dir_trust.py::test_a_second_writer_is_refused_naming_the_holder",  # timing
)


@dataclass(frozen=True)
class Equivalent:
    """A mutant that cannot change behaviour: ``line`` is the stripped source line it starts
    on, ``original`` -> ``mutated`` the replaced text, ``reason`` why no input tells them apart."""

    path: str
    line: str
    original: str
    mutated: str
    reason: str


_STORE = "harness/_store.py"
_PATTERNS = "plugins/spectool/_patterns.py"
EQUIVALENT: tuple[Equivalent, ...] = (
    Equivalent(
        _STORE,
        'and type(value.get("repeat", 0)) is int',
        "0",
        "1",
        "the default only feeds type(): type(1) is int as type(0) is",
    ),
    Equivalent(
        _STORE,
        "start = max(0, end - (1 << 16))",
        "16",
        "17",
        "the scan's chunk size: any positive size finds the same last newline",
    ),
    Equivalent(
        _STORE,
        'cut = handle.read(end - start).rfind(b"\\n")',
        " - ",
        " + ",
        "reads past `end` only bytes already scanned (no newline there): same rfind result",
    ),
    Equivalent(
        _STORE,
        "os.ftruncate(fd, 0)",
        "0",
        "1",
        "the pid written next (2+ bytes, at offset 0) overwrites the 1 byte kept: same file",
    ),
    Equivalent(
        _PATTERNS,
        'raw = next((r for r in raw if r != "null"), "any")',
        '"any"',
        "''",
        'the default only feeds _KINDS.get(head, "any"): "" and "any" both give "any"',
    ),
    Equivalent(
        _PATTERNS,
        'head = re.split(r"[\\[\\s|<,]", text, maxsplit=1)[0].lower()',
        "1",
        "0",
        "maxsplit=0 splits at every separator, maxsplit=1 at the first: [0] is the same",
    ),
    Equivalent(
        _PATTERNS,
        'head = re.split(r"[\\[\\s|<,]", str(raw_type).strip(), maxsplit=1)[0].lower()',
        "1",
        "0",
        "maxsplit=0 splits at every separator, maxsplit=1 at the first: [0] is the same",
    ),
    Equivalent(
        _PATTERNS,
        'if kind == "any":',
        '"any"',
        "''",
        'kind "any" then falls through every branch to the final `return True`',
    ),
)


# ====================================================================== mutants
@dataclass(frozen=True)
class Mutant:
    """One change: bytes ``start:end`` of the file's UTF-8 source replaced by ``mutated``."""

    ident: str
    path: str
    line: int
    kind: str
    start: int
    end: int
    original: str
    mutated: str
    source_line: str
    scope: tuple[int, int] | None  # the enclosing function's lines, for test selection
    lines: tuple[int, int]  # first and last line of the mutated span

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.mutated.encode() + source[self.end :]

    def describe(self) -> str:
        where = f"{self.ident} {self.path}:{self.line} [{self.kind}]"
        return f"{where} {self.original!r} -> {self.mutated!r}"


#: Generic types: their subscripts are type expressions, not behaviour.
TYPE_NAMES = frozenset(
    {
        *("tuple", "list", "dict", "set", "frozenset", "type", "Counter", "Literal"),
        *("Mapping", "Sequence", "Iterable", "Iterator", "Callable", "Optional", "Union"),
    }
)
COMPARE_SWAP = {
    ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">", ast.Eq: "!=", ast.NotEq: "==",
    ast.Is: "is not", ast.IsNot: "is", ast.In: "not in", ast.NotIn: "in",
}  # fmt: skip
COMPARE_TEXT = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}  # fmt: skip
BINOP_SWAP = {
    ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.Mult: ("*", "/"), ast.Div: ("/", "*"),
    ast.FloorDiv: ("//", "/"), ast.Mod: ("%", "//"), ast.BitOr: ("|", "&"),
    ast.BitAnd: ("&", "|"), ast.LShift: ("<<", ">>"), ast.RShift: (">>", "<<"),
    ast.Pow: ("**", "*"),
}  # fmt: skip


class _Source:
    """A module's bytes with (line, column) -> byte offset (ast columns count UTF-8 bytes)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.starts = [0]
        for line in data.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        return start, self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]

    def text(self, start: int, end: int) -> str:
        return self.data[start:end].decode()

    def line(self, number: int) -> str:
        return self.data[self.starts[number - 1] : self.starts[number]].decode().strip()


class _Generator(ast.NodeVisitor):
    """Walks a module and yields (node span, kind, replacement) candidates."""

    def __init__(self, source: _Source) -> None:
        self.src = source
        self.found: list[tuple[int, int, str, str, int, tuple[int, int] | None, int]] = []
        self.scope: list[tuple[int, int]] = []

    # -- helpers
    def add(self, start: int, end: int, kind: str, mutated: str, node: ast.AST) -> None:
        scope = self.scope[-1] if self.scope else None
        self.found.append(
            (start, end, kind, mutated, node.lineno, scope, node.end_lineno)  # type: ignore[attr-defined]
        )

    def replace_gap(self, left: ast.AST, right: ast.AST, old: str, new: str, kind: str) -> None:
        """Swap the operator between two operands (text between them, parentheses kept)."""
        start, end = self.src.span(left)[1], self.src.span(right)[0]
        gap = self.src.text(start, end)
        pattern = r"(?<![\w=<>!])" + re.escape(old).replace(r"\ ", r"\s+") + r"(?![\w=<>])"
        if old.isalpha() or " " in old:
            pattern = r"\b" + re.escape(old).replace(r"\ ", r"\s+") + r"\b"
        changed, count = re.subn(pattern, new, gap, count=1)
        if count:
            self.add(start, end, kind, changed, left)

    # -- skipped parts
    def visit_Import(self, node: ast.Import) -> None:
        return

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        return

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                self.visit(value.value)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in TYPE_NAMES:
            return  # a type expression (an alias such as ``Key = tuple[str, str, str]``)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in ("cast", "TypeVar"):
            return
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_arguments(self, node: ast.arguments) -> None:
        for default in [*node.defaults, *node.kw_defaults]:
            if default is not None:
                self.visit(default)

    def _body(self, body: list[ast.stmt]) -> None:
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        for statement in body:
            self.visit(statement)

    def visit_Module(self, node: ast.Module) -> None:
        self._body(node.body)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._body(node.body)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.visit(node.args)
        self.scope.append((node.body[0].lineno, node.end_lineno or node.lineno))
        self._body(node.body)
        self._returns(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
            return
        self._negate(test)
        self.generic_visit(node)

    # -- mutations
    def _negate(self, test: ast.expr) -> None:
        start, end = self.src.span(test)
        self.add(start, end, "negate", f"not ({self.src.text(start, end)})", test)

    def visit_While(self, node: ast.While) -> None:
        self._negate(node.test)
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._negate(node.test)
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        for condition in node.ifs:
            self._negate(condition)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            old, new = COMPARE_TEXT[type(op)], COMPARE_SWAP[type(op)]
            self.replace_gap(operands[i], operands[i + 1], old, new, "compare")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        start, end = self.src.span(node)
        text = self.src.data[start:end]
        pieces, last = [], start
        for left, right in zip(node.values, node.values[1:], strict=False):
            gap_start, gap_end = self.src.span(left)[1], self.src.span(right)[0]
            gap = self.src.text(gap_start, gap_end)
            pieces.append(self.src.text(last, gap_start) + re.sub(rf"\b{old}\b", new, gap))
            last = gap_end
        mutated = "".join(pieces) + self.src.text(last, end)
        if mutated.encode() != text:
            self.add(start, end, "boolop", mutated, node)
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if type(node.op) in BINOP_SWAP:
            old, new = BINOP_SWAP[type(node.op)]
            self.replace_gap(node.left, node.right, old, new, "binop")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if type(node.op) in BINOP_SWAP:
            old, new = BINOP_SWAP[type(node.op)]
            self.replace_gap(node.target, node.value, old + "=", new + "=", "augassign")
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not | ast.USub):
            start, end = self.src.span(node)
            inner = self.src.text(*self.src.span(node.operand))
            self.add(start, end, "unary", f"({inner})", node)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            new: Any = not value
        elif isinstance(value, int):
            new = {0: 1, 1: 0}.get(value, value + 1)
        elif isinstance(value, float):
            new = value + 1.0
        elif isinstance(value, str):
            new = "" if value else "mutant"
        elif isinstance(value, bytes):
            new = b"" if value else b"mutant"
        else:
            return
        self.add(*self.src.span(node), "constant", repr(new), node)

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None
        ):
            self.add(*self.src.span(node), "return", "return None", node)
        self.generic_visit(node)

    def _returns(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """Early returns deleted (the last statement's return is the ``return None`` case)."""
        last = function.body[-1]
        for node in ast.walk(function):
            own = isinstance(node, ast.Return) and _owner(function, node) is function
            if own and node is not last:
                self.add(*self.src.span(node), "delete", "pass", node)

    def visit_Raise(self, node: ast.Raise) -> None:
        self.add(*self.src.span(node), "delete", "pass", node)
        self.generic_visit(node)

    def visit_Continue(self, node: ast.Continue) -> None:
        self.add(*self.src.span(node), "flow", "break", node)

    def visit_Break(self, node: ast.Break) -> None:
        self.add(*self.src.span(node), "flow", "continue", node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Call):
            self.add(*self.src.span(node), "delete", "pass", node)
        self.generic_visit(node)

    def _remove_items(self, node: ast.AST, items: list[tuple[ast.AST, ast.AST]]) -> None:
        """One mutant per item: the item and its separating comma removed."""
        if len(items) == 1:
            empty = {ast.List: "[]", ast.Tuple: "()", ast.Set: "set()", ast.Dict: "{}"}
            self.add(*self.src.span(node), "remove-item", empty[type(node)], node)
            return
        for i, (first, last) in enumerate(items):
            if i < len(items) - 1:
                cut = (self.src.span(first)[0], self.src.span(items[i + 1][0])[0])
            else:
                cut = (self.src.span(items[i - 1][1])[1], self.src.span(last)[1])
            self.add(*cut, "remove-item", "", first)

    def visit_List(self, node: ast.List | ast.Tuple | ast.Set) -> None:
        if not isinstance(getattr(node, "ctx", ast.Load()), ast.Store) and node.elts:
            self._remove_items(node, [(e, e) for e in node.elts])
        self.generic_visit(node)

    visit_Tuple = visit_Set = visit_List  # type: ignore[assignment]

    def visit_Dict(self, node: ast.Dict) -> None:
        if node.keys:
            items = [
                (k if k is not None else v, v) for k, v in zip(node.keys, node.values, strict=True)
            ]
            self._remove_items(node, items)  # type: ignore[arg-type]
        self.generic_visit(node)


def _owner(function: ast.AST, target: ast.AST) -> ast.AST | None:
    """The innermost function definition that contains ``target``."""
    nested = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
    for node in ast.walk(function):
        inside = node is not function and isinstance(node, nested)
        if inside and any(child is target for child in ast.walk(node)):
            return node
    return function


def generate(path: str) -> list[Mutant]:
    """Every mutant of one module that compiles and differs from the original."""
    data = (REPO / path).read_bytes()
    source = _Source(data)
    tree = ast.parse(data)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.decorator_list = []
    generator = _Generator(source)
    generator.visit(tree)
    original = ast.dump(ast.parse(data))
    prefix = Path(path).stem.lstrip("_")
    out, seen = [], set()
    for start, end, kind, mutated, line, scope, end_line in sorted(generator.found):
        candidate = data[:start] + mutated.encode() + data[end:]
        digest = hashlib.sha1(candidate).hexdigest()
        if digest in seen or not _compiles(candidate) or ast.dump(ast.parse(candidate)) == original:
            continue
        seen.add(digest)
        original_text, source_line = source.text(start, end), source.line(line)
        ident = f"{prefix}#{len(out)}"
        span = (line, end_line)
        out.append(
            Mutant(
                ident,
                path,
                line,
                kind,
                start,
                end,
                original_text,
                mutated,
                source_line,
                scope,
                span,
            )
        )
    return out


def _compiles(code: bytes) -> bool:
    try:
        compile(code, "<mutant>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def equivalent_reason(mutant: Mutant) -> str | None:
    for item in EQUIVALENT:
        if (item.path, item.line, item.original, item.mutated) == (
            mutant.path, mutant.source_line, mutant.original, mutant.mutated
        ):  # fmt: skip
            return item.reason
    return None


# ====================================================================== coverage
def collect_coverage(output: Path, modules: list[str], pytest_args: list[str]) -> int:
    """(Run in a child process.) Run the candidate tests under coverage; write line -> tests."""
    import coverage
    import pytest

    class ContextPlugin:
        """One coverage context per test (its node id), and each test's time."""

        def __init__(self) -> None:
            self.durations: dict[str, float] = {}
            self.failed: set[str] = set()

        def pytest_runtest_logreport(self, report: Any) -> None:
            if report.failed:
                self.failed.add(report.nodeid)

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Iterator[None]:
            cov.switch_context(item.nodeid)
            started = time.perf_counter()
            yield
            self.durations[item.nodeid] = time.perf_counter() - started
            cov.switch_context("")

    sys.path.insert(0, str(REPO))  # as ``python -m pytest`` does: tests import ``tests.x``
    files = [str(REPO / m) for m in modules]
    cov = coverage.Coverage(data_file=None, include=files, config_file=False)
    cov.start()
    plugin = ContextPlugin()
    code = pytest.main(pytest_args, plugins=[plugin])
    cov.stop()
    data = cov.get_data()
    lines = {}
    for module, file in zip(modules, files, strict=True):
        found = data.contexts_by_lineno(file) if file in data.measured_files() else {}
        lines[module] = {str(n): sorted(c) for n, c in found.items()}
    document = {"lines": lines, "durations": plugin.durations, "failed": sorted(plugin.failed)}
    output.write_text(json.dumps(document | {"exit": int(code)}))
    return int(code)


def run_coverage(modules: list[str], report: Path) -> dict[str, Any]:
    """Candidate tests under coverage in a fresh interpreter; their per-line contexts."""
    target = report / "coverage.json"
    tests = [t for t in CANDIDATE_TESTS if (REPO / t).exists()]
    args = [*tests, "-q", "-p", "no:cacheprovider", "-m", "not soak and not ray"]
    for nodeid in DESELECT:
        args += ["--deselect", nodeid]
    command = [sys.executable, __file__, "--_coverage", str(target), *modules, "--", *args]
    print(f"coverage: running {len(tests)} test files once to map lines to tests ...", flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True)
    result: dict[str, Any] = json.loads(target.read_text()) if target.exists() else {}
    if done.returncode not in (0, 1) or result.get("exit") not in (0, 1):
        sys.exit(f"the candidate tests could not run:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    result["fingerprint"] = _fingerprint(modules)
    target.write_text(json.dumps(result))
    for nodeid in result["failed"]:  # a test failing unmutated would "kill" every mutant
        print(f"coverage: {nodeid} fails unmutated; it judges no mutant")
    print(f"coverage: {len(result['durations'])} tests in {time.monotonic() - started:.0f} s")
    return result


def _fingerprint(modules: list[str]) -> dict[str, str]:
    """What the coverage map depends on: the candidate tests and the mutated modules."""
    paths = [*CANDIDATE_TESTS, "tests/conftest.py", *modules]
    return {
        p: hashlib.sha1((REPO / p).read_bytes()).hexdigest() for p in paths if (REPO / p).exists()
    }


def _reused_coverage(report: Path, modules: list[str]) -> dict[str, Any] | None:
    path = report / "coverage.json"
    found = json.loads(path.read_text()) if path.exists() else {}
    if found.get("fingerprint") != _fingerprint(modules):
        print("coverage: the tests or modules changed since coverage.json; measuring again")
        return None
    return found


def select_tests(mutant: Mutant, coverage: dict[str, Any]) -> list[str]:
    """Tests that ran the mutated lines; else the enclosing function; else the module."""
    lines: dict[str, list[str]] = coverage["lines"].get(mutant.path, {})

    failing = set(coverage.get("failed", ()))

    def running(first: int, last: int) -> set[str]:
        found = {c for n in range(first, last + 1) for c in lines.get(str(n), ()) if c}
        return found - failing

    chosen = running(*mutant.lines)
    if not chosen and mutant.scope:
        chosen = running(*mutant.scope)
    if not chosen and not mutant.scope:
        chosen = {c for contexts in lines.values() for c in contexts if c} - failing
    durations = coverage["durations"]
    return sorted(chosen, key=lambda t: (durations.get(t, 0.0), t))


# ====================================================================== running
def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", HF_HUB_OFFLINE="1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    return env


def _drop_bytecode(path: Path) -> None:
    """A mutant may have the size and mtime second of the original: never trust a .pyc."""
    for pyc in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        pyc.unlink(missing_ok=True)


class InPlace:
    """Writes mutants into a file and always puts the original back, checked byte for byte.

    A backup and a marker under the report folder survive a SIGKILL: the next run restores
    the file from them before doing anything else."""

    def __init__(self, path: Path, report: Path) -> None:
        self.path = path
        self.original = path.read_bytes()
        self.backup = report / "backup" / path.name
        self.marker = report / "backup" / "MUTATING"

    def __enter__(self) -> InPlace:
        self.backup.parent.mkdir(parents=True, exist_ok=True)
        self.backup.write_bytes(self.original)
        self.marker.write_text(str(self.path))
        return self

    def write(self, data: bytes) -> None:
        self.path.write_bytes(data)
        _drop_bytecode(self.path)

    def __exit__(self, *exc: object) -> None:
        self.path.write_bytes(self.original)
        _drop_bytecode(self.path)
        if self.path.read_bytes() != self.original:
            raise SystemExit(f"{self.path} could not be restored; the original is {self.backup}")
        self.marker.unlink(missing_ok=True)


def restore_after_crash(report: Path) -> None:
    marker = report / "backup" / "MUTATING"
    if marker.exists():
        path = Path(marker.read_text())
        path.write_bytes((report / "backup" / path.name).read_bytes())
        _drop_bytecode(path)
        marker.unlink()
        print(f"restored {path} from the backup of an interrupted run")


PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "--no-header", "-W", "ignore"]
#: Imported once by this process and inherited by each forked test run: a third of a test
#: run's start-up. Never ``harness``: each run must import the mutated file afresh.
PRELOAD = ("pytest", "yaml", "jsonschema", "aiohttp", "anyio", "orjson", "jinja2", "tqdm")


def preload() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(name)
    assert not any(m.split(".")[0] in ("harness", "harness_plugins") for m in sys.modules)


def run_mutant(mutant: Mutant, tests: list[str], timeout: float, files: InPlace) -> str:
    """killed | survived | timeout | no-tests | error (the selection no longer collects: the
    tests changed since the coverage run)."""
    if not tests:
        return "no-tests"
    files.write(mutant.apply(files.original))
    code = _pytest(tests, timeout)
    if code is None:
        return "timeout"
    if code in (4, 5):  # a usage error or nothing collected: the mutant's, or a stale selection?
        files.write(files.original)
        return "killed" if _pytest([*tests, "--collect-only"], timeout) == 0 else "error"
    return "survived" if code == 0 else "killed"


def _pytest(arguments: list[str], timeout: float) -> int | None:
    """pytest's exit code in a forked child, or None when it timed out."""
    pid = os.fork()
    if pid == 0:  # the child: pytest in a fresh session, its output discarded
        _child_pytest(arguments)
    return _wait(pid, timeout)


def _child_pytest(tests: list[str]) -> None:
    code = 4
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.environ.update(_env())
        sys.dont_write_bytecode = True
        sys.path[0] = str(REPO)  # as ``python -m pytest`` from the root: ``tests.x`` imports
        import pytest

        code = int(pytest.main([*PYTEST_ARGS, *tests]))
    except BaseException:
        code = 3  # pytest itself raised: as its internal error
    finally:
        os._exit(code)


def _wait(pid: int, timeout: float) -> int | None:
    """The child's exit code, or None after killing its session at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _timeout(tests: list[str], coverage: dict[str, Any], minimum: float) -> float:
    expected = sum(coverage["durations"].get(t, 1.0) for t in tests)
    return max(minimum, 3 * expected + 15)


# ====================================================================== reporting
def _table(rows: list[dict[str, Any]]) -> str:
    head = "| module | mutants | sampled | equivalent | run | killed | timeout | survived | score |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        score = (r["killed"] + r["timeout"]) / r["run"] if r["run"] else float("nan")
        lines.append(
            f"| `{r['module']}` | {r['mutants']} | {r['sampled']} | {r['equivalent']} | {r['run']} "
            f"| {r['killed']} | {r['timeout']} | {r['survived']} | {score:.1%} |"
        )
    return "\n".join(lines)


def _survivors_markdown(results: list[dict[str, Any]]) -> str:
    out = ["# Surviving mutants", ""]
    for r in results:
        if r["status"] in ("survived", "no-tests", "error"):
            out += [
                f"## {r['ident']} `{r['path']}:{r['line']}` [{r['kind']}] {r['status']}",
                "",
                f"    line:     {r['source_line']}",
                f"    original: {r['original']!r}",
                f"    mutated:  {r['mutated']!r}",
                "",
            ]
    return "\n".join(out) + "\n"


def show(mutant: Mutant) -> str:
    original = (REPO / mutant.path).read_bytes()
    diff = difflib.unified_diff(
        original.decode().splitlines(keepends=True),
        mutant.apply(original).decode().splitlines(keepends=True),
        f"a/{mutant.path}",
        f"b/{mutant.path}",
    )
    return mutant.describe() + "\n" + "".join(diff)


# ====================================================================== main
HELP = {
    "modules": f"files to mutate (default: {', '.join(DEFAULT_MODULES)})",
    "--sample": "mutants per module, drawn at random; nested (default: all)",
    "--seed": "seed of the sample (default 20)",
    "--timeout": "least seconds per mutant (default 30; else 3x the tests' time + 15 s)",
    "--report": "folder for mutation.json, survivors.md, coverage.json (default build/mutation)",
    "--list": "list the mutants (after sampling) and exit",
    "--show": "print one mutant (e.g. patterns#41) as a diff and exit",
    "--only": "run only these mutants (repeatable)",
    "--rerun-survivors": "run only the last report's survivors; keep the others' results",
    "--reuse-coverage": "reuse <report>/coverage.json (the tests have not changed)",
}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="How mutants and tests are chosen: the module docstring, docs/testing.md.",
    )
    parser.add_argument("modules", nargs="*", help=HELP["modules"])
    parser.add_argument("--sample", type=int, default=0, help=HELP["--sample"])
    parser.add_argument("--seed", type=int, default=20, help=HELP["--seed"])
    parser.add_argument("--timeout", type=float, default=30.0, help=HELP["--timeout"])
    parser.add_argument(
        "--report", type=Path, default=REPO / "build" / "mutation", help=HELP["--report"]
    )
    for flag in ("--list", "--rerun-survivors", "--reuse-coverage"):
        parser.add_argument(flag, action="store_true", help=HELP[flag])
    parser.add_argument("--show", metavar="ID", help=HELP["--show"])
    parser.add_argument("--only", metavar="ID", action="append", default=[], help=HELP["--only"])
    return parser.parse_args(argv)


def _sampled(mutants: list[Mutant], size: int, seed: int) -> list[Mutant]:
    """A seeded random sample, nested: the sample of 60 is part of the sample of 160."""
    if not size or size >= len(mutants):
        return mutants
    order = list(range(len(mutants)))
    random.Random(seed).shuffle(order)
    picked = set(order[:size])
    return [m for i, m in enumerate(mutants) if i in picked]


def _previous(report: Path) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """The last report's results, keyed by what identifies a mutant across runs."""
    path = report / "mutation.json"
    results = json.loads(path.read_text())["mutants"] if path.exists() else []
    return {_key(r): r for r in results}


def _key(item: Mutant | dict[str, Any]) -> tuple[str, str, str, str]:
    get = item.get if isinstance(item, dict) else lambda k: getattr(item, k)
    return (get("path"), get("source_line"), get("original"), get("mutated"))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--_coverage"]:
        split = argv.index("--")
        return collect_coverage(Path(argv[1]), argv[2:split], argv[split + 1 :])
    args = _parse(argv)
    modules = args.modules or list(DEFAULT_MODULES)
    args.report.mkdir(parents=True, exist_ok=True)
    restore_after_crash(args.report)
    everything = {m: generate(m) for m in modules}
    if args.show:
        found = [m for ms in everything.values() for m in ms if m.ident == args.show]
        print(show(found[0]) if found else f"no mutant {args.show}")
        return 0 if found else 2
    chosen = {m: _sampled(ms, args.sample, args.seed) for m, ms in everything.items()}
    if args.only:
        chosen = {m: [x for x in ms if x.ident in args.only] for m, ms in everything.items()}
    if args.list:
        for mutant in (m for ms in chosen.values() for m in ms):
            print(mutant.describe() + (" (equivalent)" if equivalent_reason(mutant) else ""))
        return 0
    coverage = _reused_coverage(args.report, modules) if args.reuse_coverage else None
    coverage = coverage or run_coverage(modules, args.report)
    preload()
    return _run_all(everything, chosen, coverage, args)


def _run_module(
    mutants: list[Mutant], coverage: dict[str, Any], args: argparse.Namespace,
    previous: dict[tuple[str, str, str, str], dict[str, Any]],
) -> list[dict[str, Any]]:  # fmt: skip
    """Each mutant's result: equivalent (not run), carried over from the last report (with
    ``--rerun-survivors``, when it was killed there), or run now."""
    results = []
    with InPlace(REPO / mutants[0].path, args.report) as files:
        for number, mutant in enumerate(mutants, start=1):
            reason, tests, started = (
                equivalent_reason(mutant),
                select_tests(mutant, coverage),
                time.monotonic(),
            )
            before = previous.get(_key(mutant), {}).get("status")
            if reason:
                status = "equivalent"
            elif args.rerun_survivors and before in ("killed", "timeout"):
                status = before
            else:
                status = run_mutant(mutant, tests, _timeout(tests, coverage, args.timeout), files)
            seconds = round(time.monotonic() - started, 1)
            extra = {"status": status, "tests": len(tests), "seconds": seconds, "reason": reason}
            results.append(asdict(mutant) | extra)
            print(f"[{number}/{len(mutants)}] {status:<10} {mutant.describe()}", flush=True)
    return results


def _row(module: str, total: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    counts = Counter(r["status"] for r in results)
    return {
        "module": module,
        "mutants": total,
        "sampled": len(results),
        "equivalent": counts["equivalent"],
        "run": len(results) - counts["equivalent"],
        "killed": counts["killed"],
        "timeout": counts["timeout"],
        "survived": counts["survived"] + counts["no-tests"] + counts["error"],
    }


def _run_all(
    everything: dict[str, list[Mutant]], chosen: dict[str, list[Mutant]],
    coverage: dict[str, Any], args: argparse.Namespace,
) -> int:  # fmt: skip
    previous = _previous(args.report) if args.rerun_survivors else {}
    started, results, rows = time.monotonic(), [], []
    for module, mutants in chosen.items():
        found = _run_module(mutants, coverage, args, previous) if mutants else []
        results += found
        rows.append(_row(module, len(everything[module]), found))
    minutes = (time.monotonic() - started) / 60
    document = {"table": rows, "minutes": round(minutes, 1), "sample": args.sample}
    document |= {"seed": args.seed, "mutants": results}
    (args.report / "mutation.json").write_text(json.dumps(document, indent=1) + "\n")
    (args.report / "survivors.md").write_text(_survivors_markdown(results))
    print(f"\n{_table(rows)}\n\n{minutes:.1f} min; survivors: {args.report / 'survivors.md'}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the restores in `finally`
    sys.exit(main(sys.argv[1:]))
