"""Parity of ``harness_plugins.bfcl._checker`` with BFCL's own checker (bfcl-eval 2026.3.23).

Every entry of the single-turn categories is scored in many variants (see ``bfcl_perturb``) by
BFCL's ``ast_checker`` and by ours; verdicts must agree on every case, and so must the
``error_type`` of every failure. The (ir)relevance categories are compared with BFCL's own
``_evaluate_single_relevance_entry``, the converters for Java/JavaScript one by one.

BFCL is imported only here, with a stub for its model registry (which would import every
provider SDK): ``pip install --no-deps bfcl-eval==2026.3.23`` is all these tests need.
The fast tests at the bottom do not need BFCL.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
import time
import types
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from harness_plugins.bfcl import _data as data
from harness_plugins.bfcl._checker import CheckResult
from harness_plugins.bfcl._checker import check_ast
from harness_plugins.bfcl._checker import check_irrelevance
from harness_plugins.bfcl._checker import check_relevance
from harness_plugins.bfcl._checker import check_relevance_category
from harness_plugins.bfcl._checker import decoder_failed
from harness_plugins.bfcl._checker import is_function_call_list
from harness_plugins.bfcl._typeconv import java_convert
from harness_plugins.bfcl._typeconv import js_convert

try:
    from . import bfcl_perturb as perturb
except ImportError:  # tests/ is not a package: pytest put its folder on sys.path
    import bfcl_perturb as perturb

PYTHON_CATEGORIES = list(data.AST_CATEGORIES)
FOREIGN_CATEGORIES = {"simple_java": "java", "simple_javascript": "javascript"}
RELEVANCE_CATEGORIES = list(data.RELEVANCE_CATEGORIES)


# ====================================================================== loading BFCL
@pytest.fixture(scope="module")
def bfcl() -> types.SimpleNamespace:
    """BFCL's checker, converters, relevance rule and data folder, or a skip."""
    if importlib.util.find_spec("bfcl_eval") is None:
        pytest.skip("bfcl_eval is not importable: pip install --no-deps bfcl-eval==2026.3.23")
    key = "bfcl_eval.constants.model_config"
    saved = sys.modules.get(key)
    sys.modules[key] = _model_config_stub()
    try:
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.constants.enums import ReturnFormat
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
        from bfcl_eval.eval_checker.ast_eval.type_convertor import java_type_converter
        from bfcl_eval.eval_checker.ast_eval.type_convertor import js_type_converter
        from bfcl_eval.utils import is_empty_output
    finally:
        if saved is None:
            sys.modules.pop(key, None)
        else:
            sys.modules[key] = saved
    package = Path(importlib.util.find_spec("bfcl_eval").origin).parent
    relevance = _relevance_rule(package, is_empty_output, ReturnFormat)
    return types.SimpleNamespace(
        ast_checker=ast_checker,
        Language=Language,
        java=java_type_converter.java_type_converter,
        js=js_type_converter.js_type_converter,
        relevance=relevance,
        data=package / "data",
    )


DOTTED_MODEL = "dotted-model"  # the one stub model whose config renames "a.b" to "a_b"


def _model_config_stub() -> types.ModuleType:
    """The one attribute ``convert_func_name`` reads: no dot renaming, except DOTTED_MODEL."""

    class _Config:
        def __init__(self, underscore_to_dot: bool) -> None:
            self.underscore_to_dot = underscore_to_dot

    class _AnyModel(dict):
        def __missing__(self, key: str) -> _Config:
            return _Config(key == DOTTED_MODEL)

    stub = types.ModuleType("bfcl_eval.constants.model_config")
    stub.MODEL_CONFIG_MAPPING = _AnyModel()  # type: ignore[attr-defined]
    return stub


def _relevance_rule(package: Path, is_empty_output: Callable, return_format: Any) -> Callable:
    """BFCL's ``_evaluate_single_relevance_entry``, taken from its source file.

    ``eval_runner`` imports every model handler, so the function is compiled on its own
    (BFCL's code, not model output) with the two names it uses.
    """
    source = (package / "eval_checker" / "eval_runner.py").read_text()
    tree = ast.parse(source)
    node = next(
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef) and n.name == "_evaluate_single_relevance_entry"
    )
    namespace = {
        "is_empty_output": is_empty_output,
        "ReturnFormat": return_format,
        "BaseHandler": object,
    }
    exec(compile(ast.Module(body=[node], type_ignores=[]), "eval_runner.py", "exec"), namespace)
    return namespace["_evaluate_single_relevance_entry"]


class _ReplayHandler:
    """Stands in for a BFCL model handler: decoding returns a fixed value or raises."""

    def __init__(self, decoded_ok: bool, value: Any) -> None:
        self.decoded_ok = decoded_ok
        self.value = value

    def decode_ast(self, result: Any, language: Any = None, has_tool_call_tag: bool = False) -> Any:
        if not self.decoded_ok:
            raise ValueError("could not decode")
        return self.value


def _entries(data: Path, category: str) -> Iterator[tuple[dict, list | None]]:
    """(question entry, ground truth or None) pairs, aligned by position like BFCL does."""
    questions = (data / f"BFCL_v4_{category}.json").read_text().splitlines()
    answer_file = data / "possible_answer" / f"BFCL_v4_{category}.json"
    answers = answer_file.read_text().splitlines() if answer_file.exists() else []
    for index, line in enumerate(questions):
        entry = json.loads(line)
        truth = json.loads(answers[index])["ground_truth"] if answers else None
        yield entry, truth


# ====================================================================== comparing
@dataclass
class Tally:
    """Agreement counts for one category."""

    cases: int = 0
    valid_agree: int = 0
    both_invalid: int = 0
    error_type_agree: int = 0
    errors_agree: int = 0
    both_raise: int = 0
    ground_truth_valid: int = 0
    entries: int = 0
    bfcl_seconds: float = 0.0
    ours_seconds: float = 0.0
    kinds: Counter = field(default_factory=Counter)
    error_types: Counter = field(default_factory=Counter)
    optimal_rescues: int = 0
    mismatches: list[str] = field(default_factory=list)


def _run(function: Callable[[], Any]) -> Any:
    """Call ``function``; an exception becomes a marker so both sides can be compared."""
    try:
        return function()
    except Exception as error:  # BFCL crashes on some malformed inputs; so must we
        return ("raised", type(error).__name__)


def _timed(check: Callable[[list, Any, list], Any], work: list) -> tuple[list[Any], float]:
    """Run ``check`` over every case; exceptions become markers. Returns results and seconds."""
    results: list[Any] = []
    start = time.perf_counter()
    for _, functions, truth, case in work:
        try:
            results.append(check(functions, case.calls, truth))
        except Exception as error:
            results.append(("raised", type(error).__name__))
    return results, time.perf_counter() - start


def _compare(tally: Tally, label: str, theirs: Any, ours: Any) -> None:
    tally.cases += 1
    if isinstance(theirs, tuple) or isinstance(ours, tuple):
        if isinstance(theirs, tuple) and isinstance(ours, tuple):
            tally.both_raise += 1
            tally.valid_agree += 1
        else:
            tally.mismatches.append(f"{label}: bfcl={theirs!r} ours={ours!r}")
        return
    if theirs["valid"] != ours.valid:
        tally.mismatches.append(f"{label}: bfcl={theirs} ours={ours}")
        return
    tally.valid_agree += 1
    if theirs["valid"]:
        return
    tally.both_invalid += 1
    tally.error_types[theirs.get("error_type")] += 1
    if theirs.get("error_type") == ours.error_type:
        tally.error_type_agree += 1
    else:
        tally.mismatches.append(
            f"{label}: error_type bfcl={theirs.get('error_type')} ours={ours.error_type}"
        )
    if [e for e in theirs["error"] if isinstance(e, str)] == ours.errors:
        tally.errors_agree += 1


def _score_category(bfcl: types.SimpleNamespace, category: str, language: str) -> Tally:
    """Score every case of a category with both checkers, timing each side on the same list."""
    bfcl_language = {"python": "PYTHON", "java": "JAVA", "javascript": "JAVASCRIPT"}[language]
    bfcl_lang = bfcl.Language[bfcl_language]
    tally = Tally()
    work = []
    for entry, truth in _entries(bfcl.data, category):
        tally.entries += 1
        functions = entry["function"]
        cases = (
            perturb.python_cases(functions, truth)
            if language == "python"
            else perturb.foreign_cases(functions, truth, language)
        )
        for case in cases:
            tally.kinds[case.kind] += 1
            work.append((entry["id"], functions, truth, case))

    def bfcl_check(functions: list, calls: Any, truth: list) -> Any:
        return bfcl.ast_checker(functions, calls, truth, bfcl_lang, category, "any-model")

    def our_check(functions: list, calls: Any, truth: list) -> Any:
        return check_ast(functions, calls, truth, category, language)

    theirs, tally.bfcl_seconds = _timed(bfcl_check, work)
    ours, tally.ours_seconds = _timed(our_check, work)

    if "parallel" in category:
        _compare_optimal(tally, work, ours, category)
    for (entry_id, _, _, case), their, our in zip(work, theirs, ours, strict=True):
        _compare(tally, f"{entry_id} {case.kind} {case.detail}", their, our)
        if case.kind == "ground_truth" and isinstance(our, CheckResult) and our.valid:
            tally.ground_truth_valid += 1
    return tally


def _compare_optimal(tally: Tally, work: list, greedy: list, category: str) -> None:
    """Optimal matching must accept all that greedy accepts; count what only it accepts."""
    for (entry_id, functions, truth, case), verdict in zip(work, greedy, strict=True):
        optimal = check_ast(functions, case.calls, truth, category, matching="optimal")
        if verdict.valid and not optimal.valid:
            tally.mismatches.append(f"{entry_id} {case.kind}: optimal rejects a greedy match")
        elif optimal.valid and not verdict.valid:
            tally.optimal_rescues += 1


def _report(title: str, tallies: dict[str, Tally]) -> None:
    print(f"\n{title}")
    header = (
        f"{'category':<24}{'entries':>8}{'gt ok':>7}{'cases':>9}{'valid=':>9}"
        f"{'invalid':>9}{'etype=':>9}{'msgs=':>9}{'raise':>7}{'bfcl s':>8}{'ours s':>8}"
    )
    print(header)
    for name, t in tallies.items():
        print(
            f"{name:<24}{t.entries:>8}{t.ground_truth_valid:>7}{t.cases:>9}{t.valid_agree:>9}"
            f"{t.both_invalid:>9}{t.error_type_agree:>9}{t.errors_agree:>9}{t.both_raise:>7}"
            f"{t.bfcl_seconds:>8.2f}{t.ours_seconds:>8.2f}"
        )
    kinds: Counter = sum((t.kinds for t in tallies.values()), Counter())
    print("cases per perturbation kind:", dict(sorted(kinds.items())))
    error_types: Counter = sum((t.error_types for t in tallies.values()), Counter())
    print("BFCL error_type of the invalid cases:", dict(sorted(error_types.items())))


def _assert_no_mismatch(tallies: dict[str, Tally]) -> None:
    problems = [m for t in tallies.values() for m in t.mismatches]
    assert not problems, f"{len(problems)} disagreements, first ones:\n" + "\n".join(problems[:15])


# ====================================================================== parity tests
@pytest.mark.slow
def test_python_categories_match_bfcl(bfcl: types.SimpleNamespace) -> None:
    """Every python entry, perturbed: same verdict and same error_type as BFCL."""
    tallies = {c: _score_category(bfcl, c, "python") for c in PYTHON_CATEGORIES}
    _report("AST parity, python categories", tallies)
    rescues = {name: t.optimal_rescues for name, t in tallies.items() if "parallel" in name}
    print("cases only matching='optimal' accepts (greedy rejects):", rescues)
    _assert_no_mismatch(tallies)


@pytest.mark.slow
def test_java_and_javascript_match_bfcl(bfcl: types.SimpleNamespace) -> None:
    """simple_java and simple_javascript, with source-text arguments as BFCL decodes them."""
    tallies = {c: _score_category(bfcl, c, lang) for c, lang in FOREIGN_CATEGORIES.items()}
    _report("AST parity, Java/JavaScript", tallies)
    _assert_no_mismatch(tallies)


@pytest.mark.slow
def test_edge_cases_match_bfcl(bfcl: types.SimpleNamespace) -> None:
    """Hand-made entries for branches the data rarely reaches (see ``edge_entries``)."""
    tally = Tally()
    for category, functions, truth, cases in perturb.edge_entries():
        tally.entries += 1
        for case in cases:
            theirs = _run(
                partial(
                    bfcl.ast_checker,
                    functions,
                    case.calls,
                    truth,
                    bfcl.Language.PYTHON,
                    category,
                    "any-model",
                )
            )
            ours = _run(partial(check_ast, functions, case.calls, truth, category))
            _compare(tally, f"{category} {case.detail}", theirs, ours)
    _report("Edge-case parity", {"hand-made": tally})
    _assert_no_mismatch({"hand-made": tally})


@pytest.mark.slow
def test_dotted_names_match_bfcl_with_underscore_to_dot(bfcl: types.SimpleNamespace) -> None:
    """Entries with dotted names, for a model whose config sets underscore_to_dot.

    Every case is scored as generated and with all its function names underscored.
    """
    tallies: dict[str, Tally] = {}
    for category in PYTHON_CATEGORIES:
        tally = Tally()
        for entry, truth in _entries(bfcl.data, category):
            functions = entry["function"]
            if not any("." in f["name"] for f in functions):
                continue
            tally.entries += 1
            for case in perturb.python_cases(functions, truth):
                for calls in (case.calls, _underscored(case.calls)):
                    theirs = _run(
                        partial(
                            bfcl.ast_checker,
                            functions,
                            calls,
                            truth,
                            bfcl.Language.PYTHON,
                            category,
                            DOTTED_MODEL,
                        )
                    )
                    ours = _run(
                        partial(
                            check_ast, functions, calls, truth, category, underscore_to_dot=True
                        )
                    )
                    _compare(tally, f"{entry['id']} {case.kind} {case.detail}", theirs, ours)
        tallies[category] = tally
    _report("AST parity with underscore_to_dot=True (entries with dotted names)", tallies)
    _assert_no_mismatch(tallies)


def _underscored(calls: list) -> list:
    """The same calls with every "." in a function name replaced by "_"."""
    return [{name.replace(".", "_"): args for name, args in call.items()} for call in calls]


@pytest.mark.slow
def test_converters_match_bfcl(bfcl: types.SimpleNamespace) -> None:
    """Java/JS converters give BFCL's value (or BFCL's exception) for every text we can make."""
    corpus = _converter_corpus(bfcl)
    pairs = {"java": (java_convert, bfcl.java), "javascript": (js_convert, bfcl.js)}
    checked = 0
    mismatches = []
    for language, type_name, item_type, text in corpus:
        ours_fn, theirs_fn = pairs[language]
        ours = _run(partial(ours_fn, text, type_name, item_type))
        theirs = _run(partial(theirs_fn, text, type_name, item_type))
        checked += 1
        same = type(ours) is type(theirs) and ours == theirs
        if not same and not _both_nan(ours, theirs):
            mismatches.append(f"{language} {type_name}/{item_type} {text!r}: {theirs!r} {ours!r}")
    print(f"\nconverter parity: {checked - len(mismatches)}/{checked} texts agree")
    assert not mismatches, "\n".join(mismatches[:15])


def _both_nan(a: Any, b: Any) -> bool:
    return isinstance(a, float) and isinstance(b, float) and a != a and b != b


def _converter_corpus(bfcl: types.SimpleNamespace) -> list[tuple[str, str, str | None, str]]:
    """Every (type, item type) of the data and of BFCL's tables, times many texts."""
    texts: set[str] = set(_HANDMADE_TEXTS)
    for category, language in FOREIGN_CATEGORIES.items():
        for entry, truth in _entries(bfcl.data, category):
            for case in perturb.foreign_cases(entry["function"], truth, language):
                if isinstance(case.calls, list):
                    for call in case.calls:
                        for value in next(iter(call.values())).values():
                            if isinstance(value, str):
                                texts.add(value)
    java_types = ["byte", "short", "integer", "float", "double", "long", "boolean", "char"]
    java_types += ["Array", "ArrayList", "HashMap", "String", "any", "Set", "Queue", "Nope"]
    js_types = ["String", "integer", "float", "Bigint", "Boolean", "dict", "array", "any", "x"]
    items = [None, "String", "integer", "long", "float", "char", "any", "Boolean", "array"]
    corpus = []
    for text in sorted(texts):
        for type_name in java_types:
            for item in items if type_name in ("Array", "ArrayList") else [None]:
                corpus.append(("java", type_name, item, text))
        for type_name in js_types:
            for item in items if type_name == "array" else [None]:
                corpus.append(("javascript", type_name, item, text))
    return corpus


_HANDMADE_TEXTS = [
    "",
    "0",
    "-7",
    "12L",
    "12l",
    "3.5f",
    "3e2F",
    "-1.5e-3",
    "42n",
    "true",
    "false",
    "True",
    "'a'",
    '"quoted"',
    '"',
    "1_000",
    " 5 ",
    "٣",
    "nan",
    "inf",
    "5\n",
    "5L\n",
    "5n\n",
    "new int[]{}",
    "new int[] { 1, 2 , 3 }",
    'new String[]{"a", "b"}',
    "new ArrayList<>()",
    'new ArrayList<String>(Arrays.asList("a", "b"))',
    "new ArrayList<Integer>() {{ add(1); add(2); }}",
    "new ArrayList<Character>() {{ add('a'); add('b'); }}",
    "new HashMap<>()",
    "new HashMap<>() {{}}",
    'new HashMap<String, Object>() {{ put("k", 1); put("s", "v"); put("k", true); }}',
    'new HashMap<String, String>() { { put("key", "value"); } }',
    "[]",
    "[1, 2, 3]",
    "['a', \"b\", c]",
    "[[1, 2], [3, 4]]",
    " [ [ 1, 2 ], [ 3,   4], [5, 6]]",
    "new Array(1, 2)",
    "new Array([1, 2], [3, 4])",
    "new Array()",
    "[1n, 2n]",
    "[1.5, 'x']",
    "{}",
    "{a: 1}",
    "{'key': 'value', 'n': 2, 'b': false}",
    '{"list": [1, 2], "obj": {"x": 1}}',
    '{"initialState": s, "middlewares": ["m"], "enhancers": ["a", "b"]}',
    "{a: 1, b}",
    "{:}",
    "{\n a: 1}",
]


@pytest.mark.slow
def test_relevance_categories_match_bfcl(bfcl: types.SimpleNamespace) -> None:
    """(Ir)relevance: BFCL's rule and ours agree on every decoded output shape."""
    tallies: dict[str, Tally] = {}
    for category in RELEVANCE_CATEGORIES:
        tally = Tally()
        for entry, _ in _entries(bfcl.data, category):
            tally.entries += 1
            for label, decoded_ok, value in perturb.relevance_outputs(entry["function"]):
                tally.kinds[label] += 1
                handler = _ReplayHandler(decoded_ok, value)
                theirs = bfcl.relevance(handler, entry["id"], "raw", entry, "m", category)
                ours = check_relevance_category(category, decoded_ok, value)
                _compare(tally, f"{entry['id']} {label}", theirs, ours)
        tallies[category] = tally
    _report("Relevance parity", tallies)
    _assert_no_mismatch(tallies)


# ====================================================================== fast tests (no BFCL)
_LOOKUP = {
    "name": "lookup",
    "parameters": {
        "type": "dict",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}


def test_greedy_matching_can_miss_an_assignment_that_optimal_finds() -> None:
    """BFCL's greedy rule is the default; "optimal" finds the assignment greedy misses."""
    truth = [
        {"lookup": {"city": ["Paris", "Rome"], "days": ["", 1]}},
        {"lookup": {"city": ["Paris"], "days": [""]}},
    ]
    calls = [{"lookup": {"city": "Paris"}}, {"lookup": {"city": "Rome"}}]
    greedy = check_ast([_LOOKUP], calls, truth, "parallel")
    assert not greedy.valid
    assert greedy.error_type == "parallel_function_checker_no_order:cannot_find_match"
    assert check_ast([_LOOKUP], calls, truth, "parallel", matching="optimal").valid
    assert check_ast([_LOOKUP], calls[::-1], truth, "parallel").valid


def test_type_and_string_rules() -> None:
    truth = [{"lookup": {"city": ["New York, NY"], "days": [3]}}]
    ok = check_ast([_LOOKUP], [{"lookup": {"city": "new york ny", "days": 3}}], truth, "simple")
    assert ok == CheckResult(True, "", [])
    wrong_type = check_ast(
        [_LOOKUP], [{"lookup": {"city": "New York NY", "days": True}}], truth, "simple"
    )
    assert wrong_type.error_type == "type_error:simple"
    punct = check_ast([_LOOKUP], [{"lookup": {"city": "New York!", "days": 3}}], truth, "simple")
    assert punct.error_type == "value_error:string"


def test_dotted_names_follow_underscore_to_dot() -> None:
    function = {**_LOOKUP, "name": "geo.lookup"}
    truth = [{"geo.lookup": {"city": ["Paris"], "days": [""]}}]
    dotted = [{"geo.lookup": {"city": "Paris"}}]
    underscored = [{"geo_lookup": {"city": "Paris"}}]
    assert check_ast([function], dotted, truth, "simple").valid
    assert not check_ast([function], underscored, truth, "simple").valid
    assert check_ast([function], underscored, truth, "simple", underscore_to_dot=True).valid


def test_format_and_relevance_rules() -> None:
    assert is_function_call_list([]) and not is_function_call_list([{}])
    bad = check_ast([_LOOKUP], [{"lookup": "city=Paris"}], [], "simple")
    assert bad.error_type == "ast_decoder:decoder_wrong_output_format"
    assert decoder_failed("boom").error_type == "ast_decoder:decoder_failed"
    assert check_irrelevance(False).valid
    assert check_irrelevance(True, []).valid
    assert check_irrelevance(True, [{"lookup": {}}, {}]).valid  # malformed: not a call
    assert not check_irrelevance(True, [{"anything": {}}]).valid
    assert check_relevance(True, [{"anything": {}}]).valid
    assert not check_relevance(True, []).valid
