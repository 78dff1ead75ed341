"""SpecTool's classifier and the paper's scoring, held to exact values.

Written against the survivors of a mutation audit (``scripts/mutation.py``, issue 20): each
test pins a value a plausible bug would change (a rate, a count, a pattern, an evidence
detail), so that a wrong score fails the suite instead of reaching a user.
"""

from __future__ import annotations

from typing import Any

import pytest
from harness_plugins.spectool._patterns import _NOT_COERCIBLE
from harness_plugins.spectool._patterns import PATTERNS
from harness_plugins.spectool._patterns import ArgExpectation
from harness_plugins.spectool._patterns import Call
from harness_plugins.spectool._patterns import Classification
from harness_plugins.spectool._patterns import Evidence
from harness_plugins.spectool._patterns import ExpectedCall
from harness_plugins.spectool._patterns import Param
from harness_plugins.spectool._patterns import Step
from harness_plugins.spectool._patterns import _assign
from harness_plugins.spectool._patterns import _kind
from harness_plugins.spectool._patterns import _literals
from harness_plugins.spectool._patterns import _missing
from harness_plugins.spectool._patterns import _short
from harness_plugins.spectool._patterns import calls_from_any
from harness_plugins.spectool._patterns import classify
from harness_plugins.spectool._patterns import classify_trajectory
from harness_plugins.spectool._patterns import coerce
from harness_plugins.spectool._patterns import compat_scores
from harness_plugins.spectool._patterns import expected_from_any
from harness_plugins.spectool._patterns import expected_from_bfcl
from harness_plugins.spectool._patterns import expected_from_paper
from harness_plugins.spectool._patterns import functions_from_any
from harness_plugins.spectool._patterns import paper_product
from harness_plugins.spectool._patterns import paper_type
from harness_plugins.spectool._patterns import standardize
from harness_plugins.spectool._patterns import steps_from_any
from harness_plugins.spectool._patterns import type_ok
from harness_plugins.spectool._patterns import value_ok

WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "units": {"type": "string", "default": "metric"},
                    "ratio": {"type": "number"},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
]
FUNCTIONS = functions_from_any(WEATHER)
PARIS_3 = expected_from_any([{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}])


def _calls(*calls: tuple[str, dict[str, Any]]) -> list[Call]:
    return [Call(name, arguments) for name, arguments in calls]


def _evidence(result: Classification) -> list[tuple]:
    return [(e.pattern, e.call_index, e.argument) for e in result.evidence]


# ---------------------------------------------------------------------------- rates
def test_every_rate_is_counted_over_its_own_denominator() -> None:
    """IFE over steps; IFN, IAN, IAT, RAC over calls; each pattern at a distinct rate."""
    steps = [
        Step(None, True, "bad"),
        Step(tuple(_calls(("get_weather", {"city": "Paris", "days": "3", "foo": 1}))), True),
        Step(
            tuple(
                _calls(
                    ("nope", {}),
                    ("get_weather", {"city": "Paris", "days": "3", "foo": 1}),
                    ("get_weather", {"city": "Rome", "bar": 2}),
                )
            ),
            True,
        ),
    ]
    result = classify_trajectory(steps, FUNCTIONS, PARIS_3)
    assert result.patterns == ["IAN", "IAT", "IFE", "IFN", "RAC"]
    assert result.counts == {
        "IAC": 0, "IAV": 0, "IAN": 3, "IAT": 2, "RAC": 1, "IFN": 1, "IFE": 1,
    }  # fmt: skip
    assert result.denominators == {"calls": 4, "steps": 3, "expected_calls": 1}
    assert result.rates() == {
        "IFN_per_call": 0.25,
        "IAN_per_call": 0.75,
        "IAT_per_call": 0.5,
        "IAV_per_call": 0.0,
        "RAC_per_call": 0.25,
        "IAC_per_expected_call": 0.0,
        "IFE_per_step": 1 / 3,
    }
    assert [e.to_dict() for e in result.evidence[:2]] == [
        {"pattern": "IFE", "detail": "output could not be decoded: bad", "step": 0},
        {
            "pattern": "IFN",
            "call_index": 1,
            "function": "nope",
            "detail": "'nope' is not an offered function",
            "step": 2,
        },
    ]
    rac = [e.to_dict() for e in result.evidence if e.pattern == "RAC"]
    assert rac == [
        {
            "pattern": "RAC",
            "call_index": 2,
            "function": "get_weather",
            "detail": "identical to an earlier call (1 before)",
            "step": 2,
        }
    ]


def test_iav_and_iac_rates_and_a_wrong_value_with_its_detail() -> None:
    expected = expected_from_any(
        [
            {"name": "get_weather", "arguments": {"city": "Paris"}},
            {"name": "get_weather", "arguments": {"city": "Rome"}},
            {"name": "get_time", "arguments": {"city": "Oslo"}},
        ]
    )
    result = classify(FUNCTIONS, _calls(("get_weather", {"city": "Pariss"})), expected)
    assert result.patterns == ["IAC", "IAV"]
    assert result.counts["IAC"] == 2 and result.counts["IAV"] == 1
    assert result.rates()["IAV_per_call"] == 1.0
    assert result.rates()["IAC_per_expected_call"] == pytest.approx(2 / 3)
    details = [(e.pattern, e.function, e.detail) for e in result.evidence]
    assert details == [
        ("IAC", "get_weather", "2 call(s) to get_weather expected, 1 made (1 missing)"),
        ("IAV", "get_weather", "'Pariss' given; accepted ('Paris',)"),
        ("IAC", "get_time", "1 call(s) to get_time expected, 0 made (1 missing)"),
    ]


def test_no_call_when_one_is_expected_is_iac_at_rate_one() -> None:
    result = classify(FUNCTIONS, [], PARIS_3)
    assert result.patterns == ["IAC"]
    assert result.rates() == {"IAC_per_expected_call": 1.0, "IFE_per_step": 0.0}
    assert result.counts["IAC"] == 1


def test_rates_without_a_denominator_are_left_out_and_iac_is_capped() -> None:
    counts = dict.fromkeys(PATTERNS, 0) | {"IAC": 5, "IFE": 2}
    capped = Classification(["IAC"], [], counts, {"calls": 0, "steps": 2, "expected_calls": 2})
    assert capped.rates() == {"IAC_per_expected_call": 1.0, "IFE_per_step": 1.0}
    empty = Classification([], [], counts, {"calls": 0, "steps": 0, "expected_calls": 0})
    assert empty.rates() == {}


def test_others_are_the_evidence_labels_outside_the_seven() -> None:
    evidence = [Evidence("other:b"), Evidence("IAC"), Evidence("other:a"), Evidence("other:b")]
    result = Classification(["IAC"], evidence, {}, {})
    assert result.others == ["other:a", "other:b"]
    assert Evidence("IAV", 0, "f", "x", "why", 0).to_dict() == {
        "pattern": "IAV", "call_index": 0, "function": "f", "argument": "x", "detail": "why",
        "step": 0,
    }  # fmt: skip


# ---------------------------------------------------------------------------- patterns
def test_a_string_for_a_number_is_iat_only_when_it_reads_as_the_value() -> None:
    expected = expected_from_any(
        [{"name": "get_weather", "arguments": {"city": "Paris", "ratio": 1.5}}]
    )
    iat = classify(FUNCTIONS, _calls(("get_weather", {"city": "Paris", "ratio": "1.5"})), expected)
    assert iat.patterns == ["IAT"]
    assert iat.evidence[0].detail == "str '1.5' given, number declared"
    both = classify(FUNCTIONS, _calls(("get_weather", {"city": "Paris", "ratio": "2.5"})), expected)
    assert both.patterns == ["IAT", "IAV"]
    unreadable = classify(
        FUNCTIONS, _calls(("get_weather", {"city": "Paris", "ratio": "x"})), expected
    )
    assert unreadable.patterns == ["IAT", "IAV"]
    assert unreadable.evidence[1].detail == "'x' cannot be read as number"


def test_omissions_required_and_set_by_the_expected_call_are_iav() -> None:
    expected = expected_from_bfcl([{"get_weather": {"city": ["Paris"], "days": [3, ""]}}])
    assert [(a, e.may_omit) for a, e in expected[0].args.items()] == [
        ("city", False),
        ("days", True),
    ]
    right = classify(FUNCTIONS, _calls(("get_weather", {"city": "Paris"})), expected)
    assert right.patterns == [] and right.evidence == []
    missing = classify(FUNCTIONS, _calls(("get_weather", {"days": 3})), expected)
    assert missing.patterns == ["IAV"]
    assert [(e.argument, e.detail) for e in missing.evidence] == [("city", "omitted; required")]
    strict = expected_from_bfcl([{"get_weather": {"city": ["Paris"], "days": [3]}}])
    unset = classify(FUNCTIONS, _calls(("get_weather", {"city": "Paris"})), strict)
    assert [(e.argument, e.detail) for e in unset.evidence] == [
        ("days", "omitted; the expected call sets it")
    ]
    not_named = [ExpectedCall("get_weather", {"days": ArgExpectation((3,))})]
    required = classify(FUNCTIONS, _calls(("get_weather", {"days": 3})), not_named)
    assert [(e.argument, e.detail) for e in required.evidence] == [("city", "omitted; required")]
    given = classify(FUNCTIONS, _calls(("get_weather", {"city": "Oslo", "days": 3})), not_named)
    assert [(e.argument, e.detail) for e in given.evidence] == [
        ("city", "'Oslo' given; the expected call does not set it")
    ]


def test_an_argument_the_expected_call_does_not_set_is_iav_unless_at_its_default() -> None:
    paris = expected_from_any([{"name": "get_weather", "arguments": {"city": "Paris"}}])
    at_default = classify(
        FUNCTIONS, _calls(("get_weather", {"city": "Paris", "units": "metric"})), paris
    )
    assert at_default.patterns == []
    other = classify(
        FUNCTIONS, _calls(("get_weather", {"city": "Paris", "units": "imperial"})), paris
    )
    assert [(e.pattern, e.argument, e.detail) for e in other.evidence] == [
        ("IAV", "units", "'imperial' given; the expected call does not set it")
    ]
    no_default = classify(FUNCTIONS, _calls(("get_weather", {"city": "Paris", "days": 2})), paris)
    assert no_default.patterns == ["IAV"]
    typed = classify(FUNCTIONS, _calls(("get_weather", {"city": "Paris", "days": "2"})), paris)
    assert typed.patterns == ["IAT", "IAV"]


def test_repeats_beyond_what_is_expected_are_rac_and_do_not_count_as_calls_made() -> None:
    twice = expected_from_any([{"name": "get_time", "arguments": {"city": "Oslo"}}] * 2)
    call = ("get_time", {"city": "Oslo"})
    assert classify(FUNCTIONS, _calls(call, call), twice).patterns == []
    three = classify(FUNCTIONS, _calls(call, call, call), twice)
    assert three.patterns == ["RAC"] and three.counts["RAC"] == 1
    once = expected_from_any([{"name": "get_time", "arguments": {"city": "Oslo"}}])
    rome = ("get_time", {"city": "Rome"})
    looped = classify(FUNCTIONS, _calls(rome, rome), twice)
    assert looped.patterns == ["IAC", "IAV", "RAC"]
    assert looped.counts == dict.fromkeys(PATTERNS, 0) | {"IAC": 1, "IAV": 1, "RAC": 1}
    assert classify(FUNCTIONS, _calls(call, call), once).patterns == ["RAC"]
    typed = ("get_weather", {"city": "Paris", "days": "3"})
    assert classify(FUNCTIONS, _calls(typed, typed), PARIS_3 * 2).counts["RAC"] == 1


def test_unexpected_and_extra_calls_are_evidence_without_a_pattern() -> None:
    result = classify(
        FUNCTIONS,
        _calls(("get_time", {"city": "Paris"}), ("get_weather", {"city": "Paris", "days": 3}),
               ("get_weather", {"city": "Paris", "days": 4})),
        PARIS_3,
    )  # fmt: skip
    assert result.patterns == []
    assert [(e.pattern, e.call_index, e.function) for e in result.evidence] == [
        ("other:unexpected_call", 0, "get_time"),
        ("other:extra_call", 2, "get_weather"),
    ]
    assert result.others == ["other:extra_call", "other:unexpected_call"]
    assert [e.detail for e in result.evidence] == [
        "valid call to a function the answer should not call",
        "more calls to get_weather than expected",
    ]


def test_irrelevance_relevance_and_undecodable_answers() -> None:
    nothing = classify(FUNCTIONS, _calls(("get_time", {"city": "Oslo"})), [])
    assert nothing.patterns == [] and nothing.others == ["other:unexpected_call"]
    assert nothing.rates().get("IAC_per_expected_call") is None
    unknown = classify(FUNCTIONS, [], None, require_call=True)
    assert unknown.patterns == ["IAC"]
    assert unknown.evidence[0].detail == "a call was expected; none was made"
    assert classify(FUNCTIONS, [], None).patterns == []
    assert classify(FUNCTIONS, _calls(("get_time", {})), None, require_call=True).patterns == []
    failed = classify(FUNCTIONS, None, PARIS_3, detail="no brackets")
    assert failed.patterns == ["IFE"] and failed.denominators["calls"] == 0
    assert failed.evidence[0].detail == "output could not be decoded: no brackets"
    bare = classify(FUNCTIONS, None, PARIS_3)
    assert bare.evidence[0].detail == "output could not be decoded"


def test_trajectories_skip_finish_and_do_not_count_rejected_calls() -> None:
    steps = [
        Step(tuple(_calls(("get_weather", {"city": "Paris", "days": 3}))), False),
        Step(tuple(_calls(("finish", {"answer": "x"}))), True),
    ]
    result = classify_trajectory(steps, FUNCTIONS, PARIS_3)
    assert result.patterns == ["IAC"] and result.denominators["calls"] == 1
    executed = [Step(steps[0].calls, None), steps[1]]
    assert classify_trajectory(executed, FUNCTIONS, PARIS_3).patterns == []
    offered = FUNCTIONS | functions_from_any(
        [{"name": "finish", "parameters": {"type": "object", "properties": {}}}]
    )
    judged = classify_trajectory(steps, offered, PARIS_3)
    assert judged.denominators["calls"] == 2 and "IAN" in judged.patterns


def test_the_alternative_with_fewest_misses_then_errors_wins() -> None:
    rome = expected_from_any([{"name": "get_weather", "arguments": {"city": "Rome", "days": 3}}])
    call = _calls(("get_weather", {"city": "Paris", "days": 3}))
    step = [Step(tuple(call), True)]
    assert classify_trajectory(step, FUNCTIONS, rome, alternatives=[PARIS_3]).patterns == []
    assert classify_trajectory(step, FUNCTIONS, PARIS_3, alternatives=[rome]).patterns == []
    assert classify_trajectory(step, FUNCTIONS, rome).patterns == ["IAV"]


def test_a_string_that_is_a_ground_truth_variable_is_no_type_error() -> None:
    functions = functions_from_any(
        [{"name": "f", "parameters": {"type": "dict", "properties": {"d": {"type": "dict"}}}}]
    )
    expected = expected_from_bfcl([{"f": {"d": ["docFields"]}}])
    assert classify(functions, _calls(("f", {"d": "docFields"})), expected).patterns == []
    assert classify(functions, _calls(("f", {"d": "other"})), expected).patterns == ["IAT", "IAV"]


# ---------------------------------------------------------------------------- views
@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        *[(n, "string") for n in ("string", "str", "enum", "char", "text")],
        *[(n, "integer") for n in ("integer", "int", "long", "short", "byte", "bigint")],
        *[(n, "number") for n in ("number", "float", "double", "num", "decimal")],
        *[(n, "boolean") for n in ("boolean", "bool")],
        *[(n, "array") for n in ("array", "list", "tuple", "set", "arraylist", "sequence")],
        *[(n, "object") for n in ("object", "dict", "hashmap", "mapping")],
        ("List[int]", "array"),
        ("int | None", "integer"),
        ("array<int>", "array"),
        ("float,optional", "number"),
        ("Int x", "integer"),
        (" Dict ", "object"),
        ("", "any"),
        (None, "any"),
        ("weird", "any"),
        (["null", "integer"], "integer"),
        (["null"], "any"),
    ],
)
def test_declared_type_names_map_to_one_vocabulary(raw: Any, kind: str) -> None:
    assert _kind(raw) == kind


def test_functions_from_each_source() -> None:
    bfcl = functions_from_any(
        [
            {
                "name": "g",
                "parameters": {
                    "type": "dict",
                    "properties": {"x": {"type": "array", "items": {"type": "float"}}},
                    "required": ["x"],
                },
            }
        ]
    )
    assert bfcl["g"].required == ("x",)
    assert bfcl["g"].params["x"] == Param("array", "array", "number", None, False)
    assert functions_from_any([{"name": "g", "parameters": {"type": "object"}}])["g"].params == {}
    bare = functions_from_any([{"type": "function", "name": "h", "parameters": None}])
    assert bare["h"].params == {} and bare["h"].required == ()
    apigen = functions_from_any(
        [
            {
                "name": "f",
                "parameters": {
                    "a": {"type": "List[int], optional", "default": [1]},
                    "b": {"type": "str"},
                    "c": None,
                },
            }
        ]
    )
    assert apigen["f"].required == ("b", "c")
    assert apigen["f"].params["a"] == Param("array", "List[int]", "integer", [1], True)
    assert apigen["f"].params["c"] == Param("any", "", None, None, False)
    assert functions_from_any([]) == {} and functions_from_any(None) == {}
    # The format is guessed from the first item: OpenAI with or without "type", a bare function
    # object typed "function" (its schema read as such, not as APIGen's flat parameters), a BFCL
    # doc with "properties" but no "type".
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    untyped = functions_from_any([{"function": {"name": "u", "parameters": schema}}])
    assert untyped["u"].params["x"].kind == "integer" and untyped["u"].required == ("x",)
    flat = functions_from_any(
        [{"type": "function", "name": "v", "parameters": {"x": {"type": "int"}}}]
    )
    assert flat["v"].params == {} and flat["v"].required == ()
    doc = functions_from_any(
        [{"name": "w", "parameters": {"properties": {"x": {"type": "float"}}}}]
    )
    assert doc["w"].params["x"].kind == "number" and doc["w"].required == ()
    assert FUNCTIONS["get_weather"].params["units"] == Param(
        "string", "string", None, "metric", True
    )


def test_expected_calls_from_each_source() -> None:
    (bfcl,) = expected_from_any([{"f": {"a": [1, ""], "b": "x", "c": [""]}}])
    assert bfcl == ExpectedCall(
        "f",
        {
            "a": ArgExpectation((1,), True),
            "b": ArgExpectation(("x",), False),
            "c": ArgExpectation((), True),
        },
        normalize=True,
    )
    (paper,) = expected_from_any({"f": [{"a": "optional", "b": 2}]})
    assert paper == ExpectedCall(
        "f", {"a": ArgExpectation((), True), "b": ArgExpectation((2,))}, normalize=False
    )
    (apigen,) = expected_from_any([{"name": "f", "arguments": {"a": 1}}])
    assert apigen == ExpectedCall("f", {"a": ArgExpectation((1,))}, normalize=False)
    assert expected_from_any([{"name": "f", "arguments": None}])[0].args == {}
    assert expected_from_any([]) == [] and expected_from_any(None) is None
    assert len(expected_from_paper({"f": [{"a": 1}, {"a": 2}], "g": [{}]})) == 3


def test_calls_and_steps_from_each_shape() -> None:
    class Obj:
        name = "o"
        arguments = '{"x": 1}'

    calls = calls_from_any(
        [{"name": "a", "arguments": None}, {"b": {"y": 2}}, Obj(), {"name": "c", "arguments": " "}]
    )
    assert calls == (Call("a", {}), Call("b", {"y": 2}), Call("o", {"x": 1}), Call("c", {}))
    assert calls_from_any(None) is None
    steps = steps_from_any(
        [
            {"calls": None, "executed": False, "decode_error": "no Action"},
            {"calls": [{"name": "a", "arguments": {}}], "executed": True},
        ]
    )
    assert steps == [Step(None, False, "no Action"), Step((Call("a", {}),), True, "")]


# ---------------------------------------------------------------------------- values, types
@pytest.mark.parametrize(
    ("value", "kind", "items", "ok"),
    [
        (1, "any", None, True),
        ("x", "string", None, True),
        (1, "string", None, False),
        (1, "integer", None, True),
        (True, "integer", None, False),
        (1.0, "integer", None, False),
        (1, "number", None, True),
        (1.5, "number", None, True),
        ("1.5", "number", None, False),
        (False, "number", None, False),
        (True, "boolean", None, True),
        (1, "boolean", None, False),
        ({}, "object", None, True),
        ([], "object", None, False),
        ((1, 2), "array", "integer", True),
        ([1, "2"], "array", "integer", False),
        ([1, "2"], "array", None, True),
        ("[1]", "array", None, False),
        (object(), "unknown-kind", None, True),
    ],
)
def test_type_rules(value: Any, kind: str, items: str | None, ok: bool) -> None:
    assert type_ok(value, kind, items) is ok


def test_coercion_reads_what_the_model_meant() -> None:
    assert coerce("5", "integer") == 5 and coerce(" 5.0 ", "integer") == 5
    assert coerce(5.0, "integer") == 5 and type(coerce(5.0, "integer")) is int
    assert coerce(5.5, "integer") is _NOT_COERCIBLE
    assert coerce(7, "string") == "7" and coerce(2.5, "string") == "2.5"
    assert coerce(True, "string") is _NOT_COERCIBLE
    assert coerce("True", "boolean") is True and coerce("false", "boolean") is False
    assert coerce(["1", "2"], "array", "integer") == [1, 2]
    assert coerce(["1", "x"], "array", "integer") is _NOT_COERCIBLE
    assert coerce(["1"], "array") is _NOT_COERCIBLE
    assert coerce("[1, 2]", "array", "integer") == [1, 2]
    assert coerce("(1, 2)", "array") == (1, 2)
    assert coerce("1.5", "number") == 1.5 and coerce("x", "number") is _NOT_COERCIBLE
    assert _literals("TRUE") == [True] and _literals("False") == [False]
    assert _literals("FALSE") == [False] and _literals("true") == [True]
    assert _literals("[1]") == [[1], [1]] and _literals("(1,)") == [(1,)]
    padded = "(1," + " " * 9995 + ")"  # 9,999 characters: still read as a Python literal
    assert len(padded) == 9999 and _literals(padded) == [(1,)]
    assert _literals(padded + " ") == []  # 10,000: not evaluated
    assert _literals("[" * 5000) == []


def test_value_comparison_rules() -> None:
    assert standardize("New York, NY.") == "newyorkny" and standardize("It's") == 'it"s'
    assert standardize(5) == 5
    bfcl = ArgExpectation(("New York",))
    assert value_ok("new-york", bfcl, True) and not value_ok("new-york", bfcl, False)
    assert value_ok(" New York ", bfcl, False)
    assert value_ok(1, ArgExpectation((1.0,)), True) and not value_ok(
        True, ArgExpectation((1,)), True
    )
    assert value_ok(2**53 + 1, ArgExpectation((2.0**53,)), False)  # numbers compare as floats
    assert value_ok(True, ArgExpectation((True,)), True)
    assert not value_ok(False, ArgExpectation((True,)), True)
    assert value_ok([1, "A b"], ArgExpectation(([1, "ab"],)), True)
    assert not value_ok([1], ArgExpectation(([1, 2],)), True)
    assert not value_ok([1, 3], ArgExpectation(([1, 2],)), True)
    bfcl_dict = ArgExpectation(({"a": [1], "b": ["", 2]},))
    assert value_ok({"a": 1}, bfcl_dict, True) and value_ok({"a": 1, "b": 2}, bfcl_dict, True)
    assert not value_ok({"b": 2}, bfcl_dict, True)
    assert not value_ok({"a": 1, "c": 1}, bfcl_dict, True)
    assert not value_ok({"a": 1, "b": 3}, bfcl_dict, True)
    exact = ArgExpectation(({"a": 1},))
    assert value_ok({"a": 1}, exact, False) and not value_ok({"a": 1, "b": 2}, exact, False)
    assert not value_ok({"a": 2}, exact, False)
    assert value_ok(None, ArgExpectation((None,)), True) and not value_ok(
        None, ArgExpectation(), True
    )


def test_assignment_pairs_for_fewest_errors_exactly_then_greedily() -> None:
    assert _assign([]) == [] and _assign([[]]) == []
    assert _assign([[1, 0], [0, 1]]) == [(0, 1), (1, 0)]
    assert _assign([[0, 0], [0, 0]]) == [(0, 0), (1, 1)]
    assert _assign([[5], [1], [3]]) == [(1, 0)]
    assert _assign([[2, 0, 1]]) == [(0, 1)]
    wide = [[1] * 17 for _ in range(2)]
    wide[0][3] = 0
    wide[1][3] = 0
    assert _assign(wide) == [(0, 3), (1, 0)]


def test_small_helpers() -> None:
    assert _missing(Evidence("IAC", detail="x (3 missing)")) == 3
    assert _missing(Evidence("IAC", detail="none was made")) == 1
    assert _short("x" * 10) == repr("x" * 10)
    assert _short("x" * 100) == repr("x" * 100)[:57] + "..." and len(_short("x" * 100)) == 60
    assert _short("x" * 58) == repr("x" * 58)


# ---------------------------------------------------------------------------- compat
def _step(name: str, executed: bool | None = None, **arguments: Any) -> Step:
    return Step((Call(name, arguments),), executed)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("str", str), ("enum", str), ("string", str), ("number", (int, float, complex)),
        ("num", (int, float, complex)), ("bool", bool), ("boolean", bool), ("int", int),
        ("integer", int), ("float", float), ("list", list), ("array", list), ("tuple", tuple),
        ("dict", dict), ("object", dict), ("List[int]", list), ("whatever", object), ("", object),
        ("nu", object), ("in", object),
    ],
)  # fmt: skip
def test_paper_type_map(raw: str, expected: Any) -> None:
    assert paper_type(raw) == expected


def test_compat_ian_counts_unknown_or_missing_once_per_step() -> None:
    truth = [expected_from_paper({"get_weather": [{"city": "Paris"}]})]
    unknown_only = _step("get_weather", city="Paris", foo=1)
    missing_only = _step("get_weather", days=1)
    both = _step("get_weather", foo=1)
    ok = _step("get_weather", city="Paris")
    scores = compat_scores([unknown_only, missing_only, both, ok], truth, FUNCTIONS)
    assert scores["IAN_errors"] == 3.0 and scores["IAN"] == pytest.approx(0.7)
    assert scores["IAT_errors"] == 0.0 and scores["IAC"] == 1.0 and scores["IAV"] == 1.0


def test_compat_types_executed_flags_and_repeats() -> None:
    truth = [expected_from_paper({"get_weather": [{"city": "Paris", "days": 2}]})]
    steps = [
        _step("get_weather", city="Paris", days=True),  # bool passes isinstance(int)
        _step("get_weather", city="Paris", days=2.0),  # a float fails int: rejected
        _step("get_weather", city="Paris", days=2),
        _step("get_weather", city="Paris", days=2),  # a repeat
        _step("get_weather", False, city="Rome"),  # not executed: not in the route
        _step("nope", True),  # executed although unknown: in the route
        Step(None),
    ]
    scores = compat_scores(steps, truth, FUNCTIONS)
    assert {k: scores[f"{k}_errors"] for k in PATTERNS} == {
        "IAC": 0.0, "IAV": 0.0, "IAN": 0.0, "IAT": 1.0, "RAC": 1.0, "IFN": 1.0, "IFE": 1.0,
    }  # fmt: skip
    assert scores["IAT"] == pytest.approx(0.9) and scores["RAC"] == pytest.approx(0.9)
    assert compat_scores(steps, truth, FUNCTIONS, max_steps=4)["IFN"] == pytest.approx(0.75)
    tuples = functions_from_any(
        [{"name": "t", "parameters": {"type": "dict", "properties": {"p": {"type": "tuple"}}}}]
    )
    t_truth = [expected_from_paper({"t": [{"p": (1, 2)}]})]
    assert compat_scores([_step("t", p=(1, 2))], t_truth, tuples)["IAT_errors"] == 0.0
    as_list = [_step("t", p=[1, 2]), _step("t", True, p=(1, 2))]  # a list is no tuple
    assert compat_scores(as_list, t_truth, tuples)["IAT_errors"] == 1.0


def test_compat_picks_the_ground_truth_with_fewest_misses_then_errors() -> None:
    paris = expected_from_paper({"get_weather": [{"city": "Paris"}]})
    rome = expected_from_paper({"get_weather": [{"city": "Rome"}]})
    two = expected_from_paper({"get_weather": [{"city": "Paris"}, {"city": "Oslo"}]})
    call = [_step("get_weather", city="Paris")]
    for truths in ([rome, paris], [paris, rome]):
        scores = compat_scores(call, truths, FUNCTIONS)
        assert scores["IAV_errors"] == 0.0 and scores["IAC_errors"] == 0.0
    scores = compat_scores(call, [two, rome], FUNCTIONS)
    assert scores["IAC_errors"] == 0.0 and scores["IAV_errors"] == 1.0
    scores = compat_scores(call, [two], FUNCTIONS)
    assert scores["IAC"] == 0.5 and scores["IAC_errors"] == 1.0 and scores["IAV_errors"] == 1.0
    none = compat_scores(call, [], FUNCTIONS)
    assert none["IAC"] == 1.0 and none["IAV"] == 1.0 and none["IAC_errors"] == 0.0
    assert compat_scores(call, [[]], FUNCTIONS)["IAC"] == 1.0


def test_compat_equality_and_the_finish_call() -> None:
    truth = expected_from_bfcl([{"get_weather": {"city": ["Paris", "Rome"], "days": ["", 2]}}])
    for args, errors in [
        ({"city": "Rome"}, 0.0),
        ({"city": "Rome", "days": 2}, 0.0),
        ({"city": "rome"}, 1.0),
        ({"city": "Rome", "days": 3}, 1.0),
        ({"city": "Rome", "units": "x"}, 1.0),
    ]:
        scores = compat_scores([_step("get_weather", True, **args)], [truth], FUNCTIONS)
        assert scores["IAV_errors"] == errors, args
    strict = expected_from_bfcl([{"get_weather": {"city": ["Paris"], "days": [2]}}])
    scores = compat_scores([_step("get_weather", True, city="Paris")], [strict], FUNCTIONS)
    assert scores["IAV_errors"] == 1.0
    finished = compat_scores([_step("finish", True, answer="x")], [truth], FUNCTIONS)
    assert finished["IAC"] == 0.0 and finished["IFN_errors"] == 0.0  # no executed call: all 0


def test_paper_product_spells_out_the_accepted_dicts() -> None:
    (exp,) = expected_from_bfcl([{"f": {"a": [1, 2], "b": ["", "x"]}}])
    assert paper_product(exp) == [
        {"a": 1, "b": "x"}, {"a": 1}, {"a": 2, "b": "x"}, {"a": 2},
    ]  # fmt: skip
    assert paper_product(exp, limit=3) == [{"a": 1, "b": "x"}, {"a": 1}, {"a": 2, "b": "x"}]


# ---------------------------------------------------------------------------- failed answers
GENOTYPE = [
    {
        "name": "calculate_genotype_frequency",
        "parameters": {
            "type": "dict",
            "properties": {
                "allele_frequency": {"type": "float"},
                "genotype": {"type": "string"},
            },
            "required": ["allele_frequency", "genotype"],
        },
    }
]
# BFCL parallel_116: three genotypes that BFCL's string normalisation makes equal.
GENOTYPE_TRUTH = [
    {"calculate_genotype_frequency": {"allele_frequency": [0.7], "genotype": [g]}}
    for g in ("AA", "Aa", "aa")
]


def _genotype_calls(*genotypes: str) -> list[dict[str, Any]]:
    return [
        {"calculate_genotype_frequency": {"allele_frequency": 0.7, "genotype": g}}
        for g in genotypes
    ]


def test_a_repeated_call_one_too_many_is_rac_even_when_it_matches_every_expected_call() -> None:
    """The repeat matches all three expected calls (they normalise alike), yet it is one call
    too many: RAC, not a wrong answer without a pattern (issue 20)."""
    functions, expected = functions_from_any(GENOTYPE), expected_from_any(GENOTYPE_TRUTH)
    result = classify(functions, calls_from_any(_genotype_calls("AA", "Aa", "aa", "AA")), expected)
    assert result.patterns == ["RAC"] and result.counts["RAC"] == 1
    assert [e.to_dict() for e in result.evidence] == [
        {
            "pattern": "RAC",
            "call_index": 3,
            "function": "calculate_genotype_frequency",
            "detail": "identical to an earlier call, beyond the 3 expected call(s) to "
            "calculate_genotype_frequency",
            "step": 0,
        }
    ]
    assert result.rates()["RAC_per_call"] == 0.25
    extra = classify(functions, calls_from_any(_genotype_calls("AA", "Aa", "aa", "AAA")), expected)
    assert extra.patterns == [] and extra.others == ["other:extra_call"]  # not a repeat


def _bfcl_sample(truth: list, calls: list[dict[str, Any]], functions: list) -> tuple:
    from harness import Outcome
    from harness import Sample
    from harness import ToolCall

    sample = Sample(
        id="p",
        messages=(),
        target=truth,
        metadata={"functions": functions, "category": "parallel"},
    )
    tool_calls = tuple(ToolCall(*next(iter(c.items()))) for c in calls)
    return sample, Outcome(output="", calls=tool_calls)


def test_a_failed_bfcl_answer_always_shows_a_pattern_or_says_why() -> None:
    from harness_plugins.spectool._metric import classify_sample

    sample, outcome = _bfcl_sample(
        GENOTYPE_TRUTH, _genotype_calls("AA", "Aa", "aa", "AA"), GENOTYPE
    )
    assert classify_sample(sample, outcome).patterns == ["RAC"]
    lookup = [
        {
            "name": "lookup",
            "parameters": {
                "type": "dict",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    truth = [{"lookup": {"city": ["Paris", "Rome"]}}, {"lookup": {"city": ["Paris"]}}]
    greedy_trap = [{"lookup": {"city": "Paris"}}, {"lookup": {"city": "Rome"}}]
    sample, outcome = _bfcl_sample(truth, greedy_trap, lookup)
    result = classify_sample(sample, outcome)
    assert result.patterns == []
    assert [e.to_dict() for e in result.evidence] == [
        {
            "pattern": "other:unclassified",
            "detail": "the task's checker says wrong "
            "(parallel_function_checker_no_order:cannot_find_match); no SpecTool pattern applies",
        }
    ]
    assert classify_sample(sample, outcome, trust_verdict=False).evidence == []
    sample, outcome = _bfcl_sample(truth, greedy_trap[::-1], lookup)
    right = classify_sample(sample, outcome)
    assert right.patterns == [] and right.evidence == [] and right.denominators["calls"] == 2
