"""BFCL's AST checker rule by rule, fast and in process, with exact verdicts and messages.

The parity test (``test_bfcl_parity.py``) holds the checker to BFCL's own on every entry, but
it needs ``bfcl_eval`` and ~20 s, and it checks ``matching="optimal"`` one way only. These
tests pin each rule, both directions of optimal matching and the error vocabulary, so a
mutation audit (``scripts/mutation.py``, issue 20) finds no wrong verdict that passes.
"""

from __future__ import annotations

from typing import Any

import pytest
from harness_plugins.bfcl._checker import ERROR_TYPES
from harness_plugins.bfcl._checker import PYTHON_TYPES
from harness_plugins.bfcl._checker import CheckResult
from harness_plugins.bfcl._checker import check_ast
from harness_plugins.bfcl._checker import check_irrelevance
from harness_plugins.bfcl._checker import check_relevance
from harness_plugins.bfcl._checker import check_relevance_category
from harness_plugins.bfcl._checker import contains_function_call
from harness_plugins.bfcl._checker import decoder_failed
from harness_plugins.bfcl._checker import is_function_call_list
from harness_plugins.bfcl._checker import standardize_string


def _function(name: str, required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": {"type": "dict", "properties": properties, "required": required},
    }


LOOKUP = _function("lookup", ["city"], city={"type": "string"}, days={"type": "integer"})
TYPED = _function(
    "typed",
    [],
    f={"type": "float"},
    b={"type": "boolean"},
    t={"type": "tuple", "items": {"type": "integer"}},
    a={"type": "array", "items": {"type": "string"}},
    d={"type": "dict"},
    ld={"type": "array", "items": {"type": "dict"}},
    x={"type": "any"},
)


def _lookup(city: str, **extra: Any) -> dict[str, Any]:
    return {"lookup": {"city": city, **extra}}


def _verdict(result: CheckResult) -> tuple[bool, str]:
    return result.valid, result.error_type


# ---------------------------------------------------------------------------- parallel
PARIS_ROME = [{"lookup": {"city": ["Paris"]}}, {"lookup": {"city": ["Rome"]}}]


@pytest.mark.parametrize("matching", ["greedy", "optimal"])
def test_both_matchings_reject_wrong_parallel_calls(matching: str) -> None:
    """Optimal matching must not accept what no assignment satisfies (issue 20)."""
    for calls in (
        [_lookup("Berlin"), _lookup("Oslo")],
        [_lookup("Paris"), _lookup("Oslo")],
        [_lookup("Paris"), _lookup("Paris")],
        [_lookup("Oslo"), _lookup("Rome")],
    ):
        result = check_ast([LOOKUP], calls, PARIS_ROME, "parallel", matching=matching)
        assert _verdict(result) == (False, "parallel_function_checker_no_order:cannot_find_match")
    for calls in ([_lookup("Paris"), _lookup("Rome")], [_lookup("Rome"), _lookup("Paris")]):
        assert check_ast([LOOKUP], calls, PARIS_ROME, "parallel", matching=matching).valid


def test_optimal_reroutes_greedy_does_not_and_each_reports_what_it_tried() -> None:
    truth = [
        {"lookup": {"city": ["Paris", "Rome"]}},
        {"lookup": {"city": ["Paris"]}},
        {"lookup": {"city": ["Paris", "Oslo"]}},
    ]
    calls = [_lookup("Paris"), _lookup("Oslo"), _lookup("Rome")]
    greedy = check_ast([LOOKUP], calls, truth, "parallel")
    assert greedy.errors[0] == (
        "Could not find a matching function among index [1, 2] of model output for index 1 of "
        "possible answers."
    )
    assert greedy.errors[1].startswith("Model Result Index 1: value_error:string: Invalid value")
    assert len(greedy.errors) == 3
    dict_truth = [{"typed": {"d": [{"k": ["v"], "m": ["x"]}]}}]
    two = check_ast([TYPED], [{"typed": {"d": {"k": "w"}}}], dict_truth, "parallel")
    assert two.errors[1] == (
        "Model Result Index 0: value_error:dict_key: Invalid value for parameter 'k': 'w'. "
        "Expected one of ['v']. Missing dict key parameter: 'm'."
    )
    assert check_ast([LOOKUP], calls, truth, "parallel", matching="optimal").valid
    stuck = [_lookup("Paris"), _lookup("Rome"), _lookup("Rome")]
    optimal = check_ast([LOOKUP], stuck, truth, "parallel", matching="optimal")
    assert optimal == CheckResult(
        False,
        "parallel_function_checker_no_order:cannot_find_match",
        [
            "Could not find a matching function among index [2] of model output for index 2 of "
            "possible answers.",
            "No one-to-one assignment satisfies every call.",
        ],
    )


def test_counts_and_category_routing() -> None:
    one = [{"lookup": {"city": ["Paris"]}}]
    assert _verdict(check_ast([LOOKUP], [], one, "parallel")) == (
        False,
        "parallel_function_checker_no_order:wrong_count",
    )
    assert _verdict(check_ast([LOOKUP], [_lookup("Paris")] * 2, one, "multiple")) == (
        False,
        "multiple_function_checker:wrong_count",
    )
    assert _verdict(check_ast([LOOKUP], [], one, "simple")) == (
        False,
        "simple_function_checker:wrong_count",
    )
    other = _function("other", [], q={"type": "string"})
    truth = [{"lookup": {"city": ["Paris"]}}]
    assert check_ast([other, LOOKUP], [_lookup("Paris")], truth, "live_multiple").valid
    assert not check_ast([other, LOOKUP], [_lookup("Paris")], truth, "simple").valid
    assert check_ast([other, LOOKUP], [_lookup("Paris")], truth, "live_parallel_multiple").valid
    assert check_ast(LOOKUP, [_lookup("Paris")], truth, "multiple").valid  # a bare dict
    with pytest.raises(ValueError, match="Ground truth names function 'nope'"):
        check_ast([LOOKUP], [_lookup("Paris")], [{"nope": {}}], "multiple")
    with pytest.raises(ValueError, match="Unsupported language: go"):
        check_ast([LOOKUP], [], one, "simple", "go")
    with pytest.raises(ValueError, match="Unknown matching mode: best"):
        check_ast([LOOKUP], [], one, "simple", matching="best")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- one call
def test_name_required_unexpected_and_optional_rules_in_order() -> None:
    truth = [{"lookup": {"city": ["Paris"], "days": [3, ""]}}]
    cases = {
        "wrong_func_name": [{"find": {"city": "Paris"}}],
        "missing_required": [{"lookup": {"days": 3}}],
        "unexpected_param": [_lookup("Paris", hours=2)],
    }
    for error, calls in cases.items():
        assert check_ast([LOOKUP], calls, truth, "simple").error_type == (
            f"simple_function_checker:{error}"
        )
    assert check_ast([LOOKUP], [_lookup("Paris")], truth, "simple").valid
    strict = [{"lookup": {"city": ["Paris"], "days": [3]}}]
    missing = check_ast([LOOKUP], [_lookup("Paris")], strict, "simple")
    assert missing == CheckResult(
        False,
        "simple_function_checker:missing_optional",
        ["Optional parameter 'days' not provided and not marked as optional."],
    )
    no_days = [{"lookup": {"city": ["Paris"]}}]
    declared_not_expected = check_ast([LOOKUP], [_lookup("Paris", days=3)], no_days, "simple")
    assert declared_not_expected.errors == ["Unexpected parameter: 'days'."]
    assert check_ast([LOOKUP], [{"lookup": {"days": 3}}], truth, "simple").errors == [
        "Missing required parameter: 'city'."
    ]
    assert check_ast([LOOKUP], [{"find": {}}], truth, "simple").errors == [
        "Function name 'lookup' not found in model output."
    ]


def test_types_values_and_variables() -> None:
    def one(param: str, value: Any, accepted: list[Any]) -> tuple[bool, str]:
        truth = [{"typed": {param: accepted}}]
        return _verdict(check_ast([TYPED], [{"typed": {param: value}}], truth, "simple"))

    assert one("f", 2, [2.0]) == (True, "")  # an int is accepted for a float
    assert one("f", 2, [3.0]) == (False, "value_error:others")
    assert one("f", True, [1.0]) == (False, "type_error:simple")
    assert one("b", 1, [True]) == (False, "type_error:simple")
    assert one("b", False, [True]) == (False, "value_error:others")
    assert one("t", (1, 2), [[1, 2]]) == (True, "")  # a tuple counts as a list
    assert one("t", (1, "2"), [[1, 2]]) == (False, "type_error:nested")
    assert one("a", ["New York"], [["new york"]]) == (True, "")
    assert one("a", ["Boston"], [["new york"]]) == (False, "value_error:list/tuple")
    assert one("a", [1], [["x"]]) == (False, "type_error:nested")
    # a non-list answer accepts any items (then the value is compared as is)
    assert one("a", [1], ["items_var"]) == (False, "value_error:others")
    assert one("a", "items_var", ["items_var"]) == (True, "")  # a variable of another type
    assert one("a", "other", ["items_var"]) == (False, "value_error:others")
    assert one("x", "anything", ["Anything"]) == (True, "")
    assert one("d", {"k": "V"}, [{"k": ["v"]}]) == (True, "")
    assert one("d", {"k": "w"}, [{"k": ["v"]}]) == (False, "value_error:dict_value")
    assert one("d", {"z": 1}, [{"k": ["v", ""]}]) == (False, "value_error:dict_key")
    assert one("d", {}, [{"k": ["v"]}]) == (False, "value_error:dict_key")
    assert one("d", {}, [{"k": ["v", ""]}]) == (True, "")
    assert one("d", {"k": "v"}, [""]) == (False, "dict_checker:unclear")
    assert one("d", {"k": "w"}, [{"k": ["x"]}, {"k": ["w"]}]) == (True, "")
    assert one("ld", [{"k": "v"}], [[{"k": ["v"]}]]) == (True, "")
    assert one("ld", [{"k": "w"}], [[{"k": ["v"]}]]) == (False, "value_error:dict_value")
    assert one("ld", [{"k": "v"}, {"k": "v"}], [[{"k": ["v"]}]]) == (
        False,
        "value_error:list_dict_count",
    )
    assert one("ld", [{"k": "v"}], [[{"k": ["w"]}], [{"k": ["v"]}]]) == (True, "")


def test_a_dict_reports_its_first_problem_like_bfcl() -> None:
    """The first bad key ends the scan of given keys; the omission scan still runs and its
    type wins; each scan reports one problem."""
    truth = [{"typed": {"d": [{"k": ["v"], "m": ["x"]}]}}]

    def errors(value: dict[str, Any]) -> tuple[str, list[str]]:
        result = check_ast([TYPED], [{"typed": {"d": value}}], truth, "simple")
        return result.error_type, result.errors

    assert errors({"z": 1, "k": "w", "m": "x"}) == (
        "value_error:dict_key",
        ["Unexpected dict key parameter: 'z'."],
    )
    assert errors({"k": "w", "z": 1, "m": "x"}) == (
        "value_error:dict_value",
        ["Invalid value for parameter 'k': 'w'. Expected one of ['v']."],
    )
    assert errors({"k": "w"}) == (
        "value_error:dict_key",
        [
            "Invalid value for parameter 'k': 'w'. Expected one of ['v'].",
            "Missing dict key parameter: 'm'.",
        ],
    )
    assert errors({}) == ("value_error:dict_key", ["Missing dict key parameter: 'k'."])
    count = check_ast(
        [TYPED],
        [{"typed": {"ld": [{"k": "v"}] * 2}}],
        [{"typed": {"ld": [[{"k": ["v"]}]]}}],
        "simple",
    )
    assert count.errors == ["Wrong number of dictionaries in the list."]


def test_the_type_error_messages_name_the_parameter_and_types() -> None:
    truth = [{"typed": {"t": [[1, 2]]}}]
    nested = check_ast([TYPED], [{"typed": {"t": [1, "2"]}}], truth, "simple")
    assert nested.errors == [
        "Nested type checking failed for parameter 't'. Expected outer type tuple with inner "
        "type <class 'int'>. Parameter value: [1, '2']."
    ]
    simple = check_ast([TYPED], [{"typed": {"t": "1, 2"}}], truth, "simple")
    assert simple.errors == [
        "Incorrect type for parameter 't'. Expected type tuple, got str. Parameter value: '1, 2'."
    ]
    string = check_ast([LOOKUP], [_lookup("Rome")], [{"lookup": {"city": ["Paris"]}}], "simple")
    assert string.errors == [
        "Invalid value for parameter 'city': 'Rome'. Expected one of ['Paris']. Case insensitive."
    ]


def test_foreign_languages_take_source_text() -> None:
    java = _function(
        "j", ["n"], n={"type": "long"}, xs={"type": "ArrayList", "items": {"type": "integer"}}
    )
    truth = [{"j": {"n": [5], "xs": [[1, 2], ""]}}]
    assert check_ast([java], [{"j": {"n": "5L"}}], truth, "simple", "java").valid
    wrong = check_ast([java], [{"j": {"n": 5}}], truth, "simple", "java")
    assert wrong == CheckResult(
        False,
        "type_error:java",
        ["Incorrect type for parameter 'n'. Expected type String, got int. Parameter value: 5."],
    )
    js = _function("s", ["n"], n={"type": "integer"})
    assert check_ast(
        [js], [{"s": {"n": 5}}], [{"s": {"n": [5]}}], "simple", "javascript"
    ).error_type == ("type_error:js")
    assert check_ast([js], [{"s": {"n": "5"}}], [{"s": {"n": [5]}}], "simple", "javascript").valid


def test_dotted_names_and_underscores() -> None:
    dotted = {**LOOKUP, "name": "geo.lookup"}
    truth = [{"geo.lookup": {"city": ["Paris"]}}]
    assert check_ast(
        [dotted], [{"geo_lookup": {"city": "Paris"}}], truth, "parallel", underscore_to_dot=True
    ).valid
    assert not check_ast([dotted], [{"geo_lookup": {"city": "Paris"}}], truth, "parallel").valid


# ---------------------------------------------------------------------------- format, relevance
def test_format_relevance_and_strings() -> None:
    assert is_function_call_list([]) and is_function_call_list([{"f": {}}])
    for bad in ((), [{}], [{"f": {}, "g": {}}], [{"f": []}], [["f"]], "f()", None):
        assert not is_function_call_list(bad), bad
    bad_format = check_ast([LOOKUP], [{"lookup": "x"}], [], "simple")
    assert bad_format.errors == ["Did not output in the specified format."]
    assert decoder_failed("boom") == CheckResult(
        False, "ast_decoder:decoder_failed", ["Invalid syntax. Failed to decode AST. boom"]
    )
    assert decoder_failed().errors == ["Invalid syntax. Failed to decode AST."]
    assert not contains_function_call(True, []) and not contains_function_call(False, [{"f": {}}])
    assert contains_function_call(True, [{"f": {}}])
    assert check_irrelevance(True, [{"f": {}}]) == CheckResult(
        False,
        "irrelevance_error:decoder_success",
        ["Valid syntax. Successfully decode AST when it should not."],
    )
    assert check_relevance(False, None, "oops") == CheckResult(
        False,
        "relevance_error:decoder_failed",
        ["Invalid syntax. Failed to decode AST when it should have. oops"],
    )
    assert check_relevance_category("live_irrelevance", True, []).valid
    assert not check_relevance_category("live_relevance", True, []).valid
    assert check_relevance_category("live_relevance", True, [{"f": {}}]).valid
    assert standardize_string("New York, N.Y. - *It's*_^/") == 'newyorknyit"s'


def test_the_error_vocabulary_is_what_the_checker_returns() -> None:
    """Every error type returned is in ERROR_TYPES, and every entry of ERROR_TYPES but the
    unreachable one is returned by some call above (a report groups failures by it)."""
    seen = {
        check_ast([LOOKUP], [{"lookup": "x"}], [], "simple").error_type,
        decoder_failed().error_type,
        check_irrelevance(True, [{"f": {}}]).error_type,
        check_relevance(True, []).error_type,
        check_ast([LOOKUP], [], PARIS_ROME, "parallel").error_type,
        check_ast([LOOKUP], [_lookup("x")] * 2, PARIS_ROME, "parallel").error_type,
        check_ast([LOOKUP], [], PARIS_ROME, "multiple").error_type,
        check_ast([LOOKUP], [], PARIS_ROME, "simple").error_type,
    }
    truth = [{"lookup": {"city": ["Paris"], "days": [3]}}]
    for calls in ([{"x": {}}], [{"lookup": {}}], [_lookup("Paris", z=1)], [_lookup("Paris")]):
        seen.add(check_ast([LOOKUP], calls, truth, "simple").error_type)
    seen.add(check_ast([LOOKUP], [_lookup("Rome", days=3)], truth, "simple").error_type)
    seen.add(check_ast([LOOKUP], [_lookup("Paris", days=4)], truth, "simple").error_type)
    seen.add(check_ast([LOOKUP], [_lookup("Paris", days="3")], truth, "simple").error_type)
    for param, value, accepted in [
        ("t", [1, "2"], [[1, 2]]),
        ("a", ["b"], [["a"]]),
        ("d", {"z": 1}, [{"k": ["v"]}]),
        ("d", {"k": "w"}, [{"k": ["v"]}]),
        ("d", {"k": "v"}, [""]),
        ("ld", [{"k": "v"}] * 2, [[{"k": ["v"]}]]),
    ]:
        seen.add(
            check_ast(
                [TYPED], [{"typed": {param: value}}], [{"typed": {param: accepted}}], "simple"
            ).error_type
        )
    java = _function("j", [], n={"type": "long"})
    seen.add(check_ast([java], [{"j": {"n": 5}}], [{"j": {"n": [5]}}], "simple", "java").error_type)
    js = _function("s", [], n={"type": "integer"})
    seen.add(
        check_ast([js], [{"s": {"n": 5}}], [{"s": {"n": [5]}}], "simple", "javascript").error_type
    )
    assert seen <= ERROR_TYPES
    assert ERROR_TYPES - seen == {"list_dict_checker:unclear"}


def test_python_type_map() -> None:
    assert {
        "string": str, "integer": int, "float": float, "boolean": bool, "array": list,
        "tuple": list, "dict": dict, "any": str,
    } == PYTHON_TYPES  # fmt: skip
