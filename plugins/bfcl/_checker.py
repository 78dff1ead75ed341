"""BFCL's AST checker, re-implemented with the same verdicts and error types.

This module decides whether decoded function calls match a BFCL ground truth exactly as the
Berkeley Function-Calling Leaderboard does (bfcl-eval 2026.3.23, ``eval_checker/ast_eval`` plus
the relevance logic of ``eval_checker/eval_runner.py``). It never imports ``bfcl_eval``; a parity
test (``tests/test_bfcl_parity.py``) holds it to BFCL's own checker on every python entry.

Shapes (BFCL's own):

* ``functions``: the entry's ``function`` list (name, description, ``parameters`` with
  ``properties`` and ``required``).
* ``calls``: the decoded model output, ``[{"func_name": {"arg": value}}, ...]``.
* ``ground_truth``: the entry's ``ground_truth``, ``[{"func_name": {"arg": [accepted, ...]}}]``.
  An accepted value ``""`` means "may be omitted".

BFCL's rules, kept as they are:

* Categories are routed by substring: ``"parallel"`` -> order-insensitive greedy matching,
  else ``"multiple"`` -> one call checked against the ground-truth function, else one call checked
  against the first function.
* Types are exact (``bool`` is no ``int``); an ``int`` is accepted for ``float``; a tuple counts as
  a list for ``tuple`` parameters. Only one level of array items is type checked.
* A ground-truth value whose type differs from the declared type is a "variable" (for example
  ``"docFields"`` for a ``dict``): a value of that type is then compared as is.
* Strings are compared after removing `` ,./-_*^``, lower-casing and turning ``'`` into ``"``
  (also inside lists and one level inside dicts); everything else by Python equality
  (so ``1 == 1.0 == True``).
* A dict argument matches a ground-truth dict if every given key is expected with an accepted
  value and every expected key not given is optional.
* Parallel calls: each ground-truth call, in order, takes the first still unmatched model call
  that passes. ``matching="optimal"`` (never the default, not BFCL) uses a bipartite matching.

Valid results carry ``error_type == ""``. (BFCL reports ``"simple_function_checker:unclear"`` or
nothing for valid calls, depending on the argument types; its evaluator never records it.)
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal
from typing import NamedTuple
from typing import cast

from ._typeconv import JAVA_TYPES
from ._typeconv import JS_TYPES
from ._typeconv import NESTED_CONVERSION_TYPES
from ._typeconv import java_convert
from ._typeconv import js_convert

Language = Literal["python", "java", "javascript"]
Matching = Literal["greedy", "optimal"]

#: Declared Python parameter type -> required Python type (BFCL's PYTHON_TYPE_MAPPING).
PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
_PYTHON_NESTED = frozenset({"array", "tuple"})

#: Every error_type this module can return (BFCL's vocabulary).
ERROR_TYPES: frozenset[str] = frozenset(
    {
        "ast_decoder:decoder_failed",
        "ast_decoder:decoder_wrong_output_format",
        "simple_function_checker:wrong_count",
        "simple_function_checker:wrong_func_name",
        "simple_function_checker:missing_required",
        "simple_function_checker:unexpected_param",
        "simple_function_checker:missing_optional",
        "multiple_function_checker:wrong_count",
        "parallel_function_checker_no_order:wrong_count",
        "parallel_function_checker_no_order:cannot_find_match",
        "type_error:simple",
        "type_error:nested",
        "type_error:java",
        "type_error:js",
        "value_error:string",
        "value_error:list/tuple",
        "value_error:dict_key",
        "value_error:dict_value",
        "value_error:list_dict_count",
        "value_error:others",
        "dict_checker:unclear",  # a dict given where only "" (omit) is accepted
        "list_dict_checker:unclear",  # unreachable: the item type check fails first
        "irrelevance_error:decoder_success",
        "relevance_error:decoder_failed",
    }
)

# Characters BFCL drops before comparing strings.
_STRING_NOISE = " ,./-_*^"


@dataclass(frozen=True)
class CheckResult:
    """Verdict for one entry: ``error_type`` uses BFCL's vocabulary and is ``""`` when valid."""

    valid: bool
    error_type: str = ""
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Options:
    """Settings that stay fixed while one entry is checked."""

    language: Language
    underscore_to_dot: bool


# One immutable settings object per combination, so no object is built per check.
_OPTIONS: dict[tuple[str, bool], _Options] = {
    (language, flag): _Options(cast(Language, language), flag)
    for language in ("python", "java", "javascript")
    for flag in (False, True)
}


@dataclass(frozen=True)
class _Entry:
    """One BFCL entry being checked: the offered functions, the model's decoded calls, the
    ground truth and the fixed settings."""

    functions: list[dict[str, Any]]
    calls: list[dict[str, dict[str, Any]]]
    ground_truth: list[dict[str, Any]]
    options: _Options

    def function_for(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        """The offered function a ground-truth call names."""
        return _find_function(self.functions, _answer_name(answer))


class _TypeVerdict(NamedTuple):
    """Outcome of the type check: a failure, and whether the value is a ground-truth variable."""

    failure: CheckResult | None
    is_variable: bool


def _ok() -> CheckResult:
    return CheckResult(True, "", [])


def _fail(error_type: str, *errors: str) -> CheckResult:
    return CheckResult(False, error_type, list(errors))


# ====================================================================== public entry points
def check_ast(
    functions: list[dict[str, Any]],
    calls: list[dict[str, dict[str, Any]]],
    ground_truth: list[dict[str, Any]],
    category: str,
    language: str = "python",
    *,
    matching: Matching = "greedy",
    underscore_to_dot: bool = False,
) -> CheckResult:
    """Check decoded ``calls`` against one BFCL entry, as BFCL's ``ast_checker`` does.

    ``calls`` that are not a list of one-key ``{name: {args}}`` dicts fail with
    ``ast_decoder:decoder_wrong_output_format``, the check BFCL's evaluator runs before its
    checker. ``underscore_to_dot=True`` mirrors models whose BFCL config renames ``a.b`` to ``a_b``
    (the expected name is rewritten; the default model config leaves names alone).
    """
    if language not in ("python", "java", "javascript"):
        raise ValueError(f"Unsupported language: {language}")
    if matching not in ("greedy", "optimal"):
        raise ValueError(f"Unknown matching mode: {matching}")
    if not is_function_call_list(calls):
        return _fail(
            "ast_decoder:decoder_wrong_output_format",
            "Did not output in the specified format.",
        )
    options = _OPTIONS[language, bool(underscore_to_dot)]
    entry = _Entry(functions, calls, ground_truth, options)
    if "parallel" in category:
        return _check_parallel(entry, matching)
    if "multiple" in category:
        return _check_multiple(entry)
    if len(calls) != 1:
        return _fail("simple_function_checker:wrong_count", "Wrong number of functions.")
    return _check_call(functions[0], calls[0], ground_truth[0], options)


def decoder_failed(message: str = "") -> CheckResult:
    """Verdict for an AST entry whose model output could not be decoded at all."""
    return _fail(
        "ast_decoder:decoder_failed", f"Invalid syntax. Failed to decode AST. {message}".strip()
    )


def is_function_call_list(calls: object) -> bool:
    """BFCL's format check: a (possibly empty) list of one-key ``{name: {args}}`` dicts."""
    if type(calls) is not list:
        return False
    for item in calls:
        if type(item) is not dict or len(item) != 1:
            return False
        if type(next(iter(item.values()))) is not dict:
            return False
    return True


def contains_function_call(decoded_ok: bool, calls: object) -> bool:
    """Whether BFCL counts the output as a function call in the (ir)relevance categories.

    No call means: decoding raised (``decoded_ok=False``), or the decoded value is not a
    well-formed call list (plain text, ``[{}]``, a list mixing calls and junk ...), or it is ``[]``.
    Any well-formed call counts, whatever its name or arguments: nothing is checked against the
    functions.
    """
    return decoded_ok and is_function_call_list(calls) and len(cast(list[Any], calls)) > 0


def check_irrelevance(decoded_ok: bool, calls: object = None) -> CheckResult:
    """``irrelevance`` / ``live_irrelevance``: correct when the model produced no function call."""
    if not contains_function_call(decoded_ok, calls):
        return _ok()
    return _fail(
        "irrelevance_error:decoder_success",
        "Valid syntax. Successfully decode AST when it should not.",
    )


def check_relevance(decoded_ok: bool, calls: object = None, decode_error: str = "") -> CheckResult:
    """``live_relevance``: correct when the model produced any function call at all."""
    if contains_function_call(decoded_ok, calls):
        return _ok()
    message = f"Invalid syntax. Failed to decode AST when it should have. {decode_error}"
    return _fail("relevance_error:decoder_failed", message.strip())


def check_relevance_category(
    category: str, decoded_ok: bool, calls: object = None, decode_error: str = ""
) -> CheckResult:
    """Route like BFCL: categories containing ``"irrelevance"`` expect no call, others one."""
    if "irrelevance" in category:
        return check_irrelevance(decoded_ok, calls)
    return check_relevance(decoded_ok, calls, decode_error)


# ====================================================================== category checkers
def _find_function(functions: Sequence[Any] | Mapping[str, Any], name: str) -> dict[str, Any]:
    """The description named ``name``; a bare dict is BFCL's single-function form."""
    if isinstance(functions, Mapping):
        return dict(functions)
    for function in functions:
        if function["name"] == name:
            return function
    raise ValueError(f"Ground truth names function {name!r}, which is not among the functions.")


def _answer_name(answer: Mapping[str, Any]) -> str:
    return next(iter(answer))


def _check_multiple(entry: _Entry) -> CheckResult:
    """One call, checked against the function the ground truth names."""
    if len(entry.calls) != len(entry.ground_truth):
        return _fail("multiple_function_checker:wrong_count", "Wrong number of functions.")
    answer = entry.ground_truth[0]
    return _check_call(entry.function_for(answer), entry.calls[0], answer, entry.options)


def _check_parallel(entry: _Entry, matching: Matching) -> CheckResult:
    """Same number of calls as the ground truth, matched regardless of order."""
    if len(entry.calls) != len(entry.ground_truth):
        return _fail("parallel_function_checker_no_order:wrong_count", "Wrong number of functions.")
    if matching == "optimal":
        return _match_optimal(entry)
    return _match_greedy(entry)


def _match_greedy(entry: _Entry) -> CheckResult:
    """BFCL's rule: each ground-truth call takes the first unmatched model call that passes.

    A model call that could satisfy several ground-truth calls is taken by the earliest one, so
    a later ground-truth call can fail although a perfect assignment exists.
    """
    calls = entry.calls
    matched: set[int] = set()
    for index, answer in enumerate(entry.ground_truth):
        function = entry.function_for(answer)
        errors: list[str] = []
        for position, call in enumerate(calls):
            if position in matched:
                continue
            result = _check_call(function, call, answer, entry.options)
            if result.valid:
                matched.add(position)
                break
            errors.append(_describe_miss(position, result))
        else:
            return _no_match(index, [i for i in range(len(calls)) if i not in matched], errors)
    return _ok()


def _match_optimal(entry: _Entry) -> CheckResult:
    """Not BFCL: valid when some one-to-one assignment satisfies every ground-truth call."""
    passes = []
    for answer in entry.ground_truth:
        function = entry.function_for(answer)
        passes.append(
            [_check_call(function, call, answer, entry.options).valid for call in entry.calls]
        )
    owner: list[int | None] = [None] * len(entry.calls)
    for index in range(len(entry.ground_truth)):
        if not _augment(index, passes, owner, set()):
            free = [i for i in range(len(entry.calls)) if owner[i] is None]
            return _no_match(index, free, ["No one-to-one assignment satisfies every call."])
    return _ok()


def _augment(index: int, passes: list[list[bool]], owner: list[int | None], seen: set[int]) -> bool:
    """Kuhn's augmenting path: give ground-truth call ``index`` a model call, re-routing others."""
    for position, ok in enumerate(passes[index]):
        if not ok or position in seen:
            continue
        seen.add(position)
        holder = owner[position]
        if holder is None or _augment(holder, passes, owner, seen):
            owner[position] = index
            return True
    return False


def _describe_miss(position: int, result: CheckResult) -> str:
    return f"Model Result Index {position}: {result.error_type}: {' '.join(result.errors)}"


def _no_match(index: int, considered: list[int], errors: list[str]) -> CheckResult:
    head = (
        f"Could not find a matching function among index {considered} of model output "
        f"for index {index} of possible answers."
    )
    return _fail("parallel_function_checker_no_order:cannot_find_match", head, *errors)


# ====================================================================== one call
def _expected_name(name: str, underscore_to_dot: bool) -> str:
    """BFCL's convert_func_name: models that cannot emit dots are expected to use underscores."""
    return name.replace(".", "_") if underscore_to_dot else name


def _check_call(
    function: Mapping[str, Any],
    call: Mapping[str, Mapping[str, Any]],
    answer: Mapping[str, Any],
    options: _Options,
) -> CheckResult:
    """BFCL's simple_function_checker: name, required, then each given argument, then omissions."""
    accepted_by_param: Mapping[str, list[Any]] = next(iter(answer.values()))
    name = _expected_name(function["name"], options.underscore_to_dot)
    if name not in call:
        return _fail(
            "simple_function_checker:wrong_func_name",
            f"Function name {name!r} not found in model output.",
        )
    arguments = call[name]
    properties = function["parameters"]["properties"]
    for param in function["parameters"]["required"]:
        if param not in arguments:
            return _fail(
                "simple_function_checker:missing_required",
                f"Missing required parameter: {param!r}.",
            )
    for param, value in arguments.items():
        if param not in properties or param not in accepted_by_param:
            return _fail(
                "simple_function_checker:unexpected_param", f"Unexpected parameter: {param!r}."
            )
        failure = _check_argument(
            param, value, properties[param], accepted_by_param[param], options.language
        )
        if failure is not None:
            return failure
    for param, accepted in accepted_by_param.items():
        if param not in arguments and "" not in accepted:
            return _fail(
                "simple_function_checker:missing_optional",
                f"Optional parameter {param!r} not provided and not marked as optional.",
            )
    return _ok()


def _check_argument(
    param: str, value: Any, schema: Mapping[str, Any], accepted: list[Any], language: Language
) -> CheckResult | None:
    """Convert (Java/JS), type check, then compare one argument; ``None`` means it passes."""
    declared: str = schema["type"]
    if language == "python":
        value, expected, nested = _prepare_python(value, schema)
    else:
        prepared = _prepare_foreign(param, value, schema, language)
        if isinstance(prepared, CheckResult):
            return prepared
        value, expected, nested = prepared
    verdict = _check_type(param, value, accepted, declared, expected, nested)
    if verdict.failure is not None:
        return verdict.failure
    if not verdict.is_variable:
        compare = _value_comparer(expected, nested)
        if compare is not None:
            return compare(param, value, accepted)
    if value not in accepted:
        return _fail(
            "value_error:others",
            f"Invalid value for parameter {param!r}: {value!r}. Expected one of {accepted}.",
        )
    return None


def _prepare_python(value: Any, schema: Mapping[str, Any]) -> tuple[Any, type, type | None]:
    """Required types for a Python argument; tuples become lists, ints become floats."""
    declared = schema["type"]
    expected = PYTHON_TYPES[declared]
    nested = PYTHON_TYPES[schema["items"]["type"]] if declared in _PYTHON_NESTED else None
    if declared == "tuple" and type(value) is tuple:
        value = list(value)
    elif declared == "float" and type(value) is int:
        value = float(value)
    return value, expected, nested


def _prepare_foreign(
    param: str, value: Any, schema: Mapping[str, Any], language: Language
) -> tuple[Any, type, type | None] | CheckResult:
    """Java/JS arguments arrive as source text and are converted before the type check."""
    java = language == "java"
    types = JAVA_TYPES if java else JS_TYPES
    convert = java_convert if java else js_convert
    declared = schema["type"]
    expected = types[declared]
    if type(value) is not str:
        return _fail(
            "type_error:java" if java else "type_error:js",
            f"Incorrect type for parameter {param!r}. Expected type String, got "
            f"{type(value).__name__}. Parameter value: {value!r}.",
        )
    if declared not in NESTED_CONVERSION_TYPES:
        return convert(value, declared), expected, None
    item_type = schema["items"]["type"]
    nested = types[item_type]
    return convert(value, declared, item_type), expected, nested


# ====================================================================== type rules
def _first_answer_type(accepted: Sequence[Any]) -> type | None:
    """Type of the first non-optional accepted value; BFCL infers "variables" from it."""
    for answer in accepted:
        if answer != "":
            return type(answer)
    return None


def _check_type(
    param: str,
    value: Any,
    accepted: Sequence[Any],
    declared: str,
    expected: type,
    nested: type | None,
) -> _TypeVerdict:
    """BFCL's type_checker, including its fall-through after a failed item check."""
    answer_type = _first_answer_type(accepted)
    is_variable = answer_type is not None and answer_type is not expected
    errors: list[str] = []
    error_type = "type_error:simple"
    if type(value) is expected:
        if nested is None or _items_match(value, accepted, nested):
            return _TypeVerdict(None, is_variable)
        errors.append(
            f"Nested type checking failed for parameter {param!r}. Expected outer type "
            f"{declared} with inner type {nested}. Parameter value: {value!r}."
        )
        error_type = "type_error:nested"
    if answer_type is not None and type(value) is answer_type:
        # A value typed like the ground truth's variable passes, unless its items failed above.
        failure = CheckResult(False, error_type, errors) if errors else None
        return _TypeVerdict(failure, True)
    errors.append(
        f"Incorrect type for parameter {param!r}. Expected type {declared}, got "
        f"{type(value).__name__}. Parameter value: {value!r}."
    )
    return _TypeVerdict(CheckResult(False, "type_error:simple", errors), is_variable)


def _items_match(value: list[Any], accepted: Sequence[Any], nested: type) -> bool:
    """One level of item checking: some accepted entry must type-accept every item.

    An item passes with the declared item type or with the type of the entry's first
    non-optional item (a variable). An accepted entry that is not a list (``""`` or a variable
    name) accepts any items. Note: no int -> float allowance for items.
    """
    for candidate in accepted:
        if type(candidate) is not list:
            return True
        answer_type = _first_answer_type(candidate)
        if all(type(item) is nested or type(item) is answer_type for item in value):
            return True
    return False


# ====================================================================== value rules
ValueComparer = Callable[[str, Any, list[Any]], CheckResult | None]


def _value_comparer(expected: type, nested: type | None) -> ValueComparer | None:
    """The special comparison BFCL uses for a declared type, or ``None`` for plain equality."""
    if expected is dict:
        return _check_dict_argument
    if expected is list:
        return _check_list_of_dicts if nested is dict else _check_list
    if expected is str:
        return _check_string
    return None


def standardize_string(text: str) -> str:
    """BFCL's normalisation: drop `` ,./-_*^``, lower-case, ``'`` -> ``"``.

    It spares models for "April 1, 2024" vs "april 1 2024"; other punctuation still counts.
    (Repeated ``str.replace`` is about twice as fast as a regex or ``str.translate`` here.)
    """
    for noise in _STRING_NOISE:
        text = text.replace(noise, "")
    return text.lower().replace("'", '"')


def _standardize_items(values: Any) -> list[Any]:
    """Normalise the string entries of a sequence, keep the rest (iterating a str gives chars)."""
    return [standardize_string(v) if type(v) is str else v for v in values]


def _check_string(param: str, value: str, accepted: list[Any]) -> CheckResult | None:
    if standardize_string(value) in [standardize_string(a) for a in accepted if type(a) is str]:
        return None
    return _fail(
        "value_error:string",
        f"Invalid value for parameter {param!r}: {value!r}. Expected one of {accepted}. "
        "Case insensitive.",
    )


def _check_list(param: str, value: list[Any], accepted: list[Any]) -> CheckResult | None:
    """Element-wise, ordered equality with string items normalised (nested lists are not)."""
    if _standardize_items(value) in [_standardize_items(candidate) for candidate in accepted]:
        return None
    return _fail(
        "value_error:list/tuple",
        f"Invalid value for parameter {param!r}: {value!r}. Expected one of {accepted}.",
    )


def _check_dict_argument(
    param: str, value: dict[str, Any], accepted: list[Any]
) -> CheckResult | None:
    result = _check_dict(value, accepted)
    return None if result.valid else result


def _check_dict(value: Mapping[str, Any], accepted: Sequence[Any]) -> CheckResult:
    """BFCL's dict_checker: the last tried candidate's error is reported.

    Optional (``""``) candidates are skipped, so a dict given for an optional-only parameter
    fails with ``dict_checker:unclear``.
    """
    result = _fail("dict_checker:unclear")
    for candidate in accepted:
        if candidate == "":
            continue
        result = _check_dict_candidate(value, candidate)
        if result.valid:
            return result
    return result


def _check_dict_candidate(value: Mapping[str, Any], candidate: Mapping[str, Any]) -> CheckResult:
    """Given keys must be expected with an accepted value; expected keys may be omitted only if
    optional. BFCL runs the omission scan even after a value error, so its type can win."""
    errors: list[str] = []
    error_type = ""
    for key, item in value.items():
        if key not in candidate:
            errors.append(f"Unexpected dict key parameter: '{key}'.")
            error_type = "value_error:dict_key"
            break
        options = _standardize_items(candidate[key])
        if (standardize_string(item) if type(item) is str else item) not in options:
            errors.append(
                f"Invalid value for parameter {key!r}: {item!r}. Expected one of {options}."
            )
            error_type = "value_error:dict_value"
            break
    for key, options in candidate.items():
        if key not in value and "" not in options:
            errors.append(f"Missing dict key parameter: '{key}'.")
            error_type = "value_error:dict_key"
            break
    if error_type:
        return CheckResult(False, error_type, errors)
    return _ok()


def _check_list_of_dicts(param: str, value: list[Any], accepted: list[Any]) -> CheckResult | None:
    """Ordered list of dicts; each candidate must have as many dicts (``""`` has zero)."""
    result = _fail("list_dict_checker:unclear")
    for candidate in accepted:
        if len(value) != len(candidate):
            result = _fail(
                "value_error:list_dict_count", "Wrong number of dictionaries in the list."
            )
            continue
        for item, expected in zip(value, candidate, strict=True):
            result = _check_dict(item, [expected])
            if not result.valid:
                break
        else:
            return None
    return result
