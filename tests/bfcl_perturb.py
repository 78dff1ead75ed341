"""Ground-truth calls and systematic perturbations of them, for the BFCL parity tests.

Nothing here decides right or wrong: both checkers (BFCL's and ours) score every case and the
parity test compares their verdicts. The cases only need to be varied enough to reach every
branch of the checker: correct calls, alternative accepted values, wrong values and types,
missing and extra parameters, wrong names, string-normalisation variants, reordered, dropped
and duplicated calls, and (for Java/JavaScript) source-text variants.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Call = dict[str, dict[str, Any]]
_MISSING = object()


@dataclass(frozen=True)
class Case:
    """One model output to score: ``kind`` is the perturbation family, ``detail`` its target."""

    kind: str
    detail: str
    calls: Any


# ====================================================================== ground truth
def unwrap(value: Any) -> Any:
    """Turn one accepted ground-truth value into the value a model would send.

    Dict answers list the accepted values of every key (``{"k": [v1, v2]}``), one level deep:
    take the first, and leave out keys whose first accepted value is ``""`` (optional). A list
    of such dicts is unwrapped item by item. Deeper values are literal, as BFCL compares them.
    """
    if type(value) is dict:
        return _unwrap_dict(value)
    if type(value) is list:
        return [unwrap(item) if type(item) is dict else item for item in value]
    return value


def _unwrap_dict(value: dict[str, Any]) -> dict[str, Any]:
    """First accepted value per key; optional-first keys left out; literal values kept."""
    out = {}
    for key, options in value.items():
        if type(options) is not list:
            out[key] = options
        elif options and options[0] != "":
            out[key] = options[0]
    return out


def first_choice(accepted: Any, required: bool = False) -> Any:
    """The value a correct model would send, or ``_MISSING`` when it would leave it out.

    That is the first accepted value, unless it is ``""`` (optional): then the argument is left
    out, or, for a required parameter, the first non-optional alternative is sent.
    """
    if type(accepted) is not list:
        return _MISSING
    choices = [a for a in accepted if a != ""] if required else accepted[:1]
    if not choices or choices[0] == "":
        return _MISSING
    return unwrap(choices[0])


def ground_truth_calls(
    ground_truth: list[dict[str, Any]], functions: list[dict[str, Any]] | None = None
) -> list[Call]:
    """The model output that the ground truth describes.

    With ``functions``, required parameters get a value even when ``""`` is listed first, and
    optional ground-truth parameters the schema does not declare are left out.
    """
    calls = []
    for answer in ground_truth:
        ((name, arguments),) = answer.items()
        function = _function(functions or [], name)
        parameters = function["parameters"] if function else {"properties": {}, "required": []}
        built = {}
        for param, accepted in arguments.items():
            if function and param not in parameters["properties"] and "" in accepted:
                continue
            value = first_choice(accepted, param in parameters["required"])
            if value is not _MISSING:
                built[param] = value
        calls.append({name: built})
    return calls


# ====================================================================== value perturbations
def wrong_values(value: Any) -> list[tuple[str, Any]]:
    """Same type, different value."""
    kind = type(value)
    if kind is bool:
        return [("negated", not value)]
    if kind is int:
        return [("plus_one", value + 1), ("negated", -value - 1)]
    if kind is float:
        return [("plus_1.5", value + 1.5), ("tiny_delta", value + 1e-9)]
    if kind is str:
        return [("suffix", value + "zz"), ("empty", ""), ("other_word", "unrelated value")]
    if kind is list:
        return [("appended", [*value, value[-1] if value else 1])]
    if kind is dict:
        return [("extra_key", {**value, "zz_key": "zz"})]
    return [("string", "zz")]


def wrong_types(value: Any) -> list[tuple[str, Any]]:
    """Right content where possible, wrong Python type (BFCL checks types exactly)."""
    kind = type(value)
    if kind is bool:
        return [("int_for_bool", int(value)), ("str_for_bool", str(value).lower())]
    if kind is int:
        return [
            ("str_for_int", str(value)),
            ("bool_for_int", value != 0),
            ("float_for_int", float(value)),
            ("list_for_int", [value]),
        ]
    if kind is float:
        return [
            ("int_for_float", int(value)),
            ("str_for_float", str(value)),
            ("bool_for_float", True),
        ]
    if kind is str:
        numeric = [("int_for_str", int(value))] if value.lstrip("-").isdigit() else []
        return [("list_for_str", [value]), ("int_const_for_str", 1), *numeric]
    if kind is list:
        return [
            ("tuple_for_list", tuple(value)),
            ("json_for_list", json.dumps(value)),
            ("dict_for_list", {"items": value}),
        ]
    if kind is dict:
        return [("json_for_dict", json.dumps(value)), ("list_for_dict", [value])]
    return [("str_for_other", str(value))]


def string_variants(text: str) -> list[tuple[str, str]]:
    """Variants BFCL normalises away (case, `` ,./-_*^``, quotes) and some it does not."""
    words = text.split(" ")
    variants = [
        ("upper", text.upper()),
        ("lower", text.lower()),
        ("title", text.title()),
        ("no_spaces", text.replace(" ", "")),
        ("underscores", "_".join(words)),
        ("hyphens", "-".join(words)),
        ("double_spaces", "  ".join(words)),
        ("comma_after_first", ", ".join(words) if len(words) > 1 else text + ","),
        ("trailing_dot", text + "."),
        ("punct_noise", f"*{text}^/"),
        ("padded", f"  {text}  "),
        ("single_to_double_quotes", text.replace("'", '"')),
        ("double_to_single_quotes", text.replace('"', "'")),
        ("quoted", f"'{text}'"),
        ("exclamation", text + "!"),  # not normalised: should fail
        ("question_mark", text + "?"),
        ("colon", text + ":"),
        ("nbsp", text.replace(" ", "\u00a0")),
        ("tab", text.replace(" ", "\t")),
    ]
    return [(name, variant) for name, variant in variants if variant != text or name == "upper"]


def list_variants(value: list[Any]) -> list[tuple[str, Any]]:
    """Element-level changes: order, length, element types and element strings."""
    variants: list[tuple[str, Any]] = [("empty_list", [])]
    if value:
        variants += [
            ("drop_last", value[:-1]),
            ("repeat_last", [*value, value[-1]]),
            ("first_as_str", [str(value[0]), *value[1:]]),
            ("first_as_list", [[value[0]], *value[1:]]),
            ("first_as_none", [None, *value[1:]]),
        ]
    if len(value) > 1:
        variants.append(("reversed", value[::-1]))
    for index, item in enumerate(value[:3]):
        for name, changed in _item_variants(item):
            variants.append((f"item{index}_{name}", [*value[:index], changed, *value[index + 1 :]]))
    return variants


def _item_variants(item: Any) -> list[tuple[str, Any]]:
    """A few value, type and string variants for one list element."""
    if type(item) is str:
        return [*string_variants(item)[:6], ("exclaim", item + "!")]
    if type(item) is dict:
        return dict_variants(item)[:6]
    if type(item) is list:
        return [("nested_empty", []), ("nested_reversed", item[::-1])]
    variants = wrong_values(item)[:1] + wrong_types(item)[:3]
    return variants


def dict_variants(value: dict[str, Any]) -> list[tuple[str, Any]]:
    """Key-level changes: dropped, extra and renamed keys, wrong and re-typed values."""
    variants: list[tuple[str, Any]] = [("empty_dict", {}), ("extra_key", {**value, "zz": 1})]
    for key, item in value.items():
        rest = {k: v for k, v in value.items() if k != key}
        variants.append((f"drop_{key}", rest))
        variants.append((f"rename_{key}", {**rest, key.upper() + "_X": item}))
        for name, changed in wrong_values(item)[:1] + wrong_types(item)[:2]:
            variants.append((f"{key}_{name}", {**value, key: changed}))
        if type(item) is str:
            for name, changed in [*string_variants(item)[:4], ("exclaim", item + "!")]:
                variants.append((f"{key}_{name}", {**value, key: changed}))
    return variants


def value_variants(value: Any) -> Iterator[tuple[str, str, Any]]:
    """Every variant of one argument value, as (kind, detail, new value)."""
    for name, changed in wrong_values(value):
        yield "wrong_value", name, changed
    for name, changed in wrong_types(value):
        yield "wrong_type", name, changed
    yield "wrong_type", "none", None
    yield "explicit_empty_string", "", ""
    if type(value) is str:
        for name, changed in string_variants(value):
            yield "string_norm", name, changed
    elif type(value) is list:
        for name, changed in list_variants(value):
            yield "list", name, changed
    elif type(value) is dict:
        for name, changed in dict_variants(value):
            yield "dict", name, changed


# ====================================================================== call perturbations
def _replace_arg(calls: list[Call], index: int, param: str, value: Any) -> list[Call]:
    """Copy of ``calls`` with one argument of one call set (``_MISSING`` removes it)."""
    out = copy.deepcopy(calls)
    ((_name, arguments),) = out[index].items()
    if value is _MISSING:
        arguments.pop(param, None)
    else:
        arguments[param] = value
    return out


def _rename(calls: list[Call], index: int, new_name: str) -> list[Call]:
    out = copy.deepcopy(calls)
    ((_, arguments),) = out[index].items()
    out[index] = {new_name: arguments}
    return out


def _function(functions: list[dict[str, Any]], name: str) -> Mapping[str, Any] | None:
    return next((f for f in functions if f["name"] == name), None)


def _dummy(schema: Mapping[str, Any]) -> Any:
    """A plausible value for a documented parameter the ground truth does not use."""
    return {
        "string": "zz",
        "integer": 7,
        "float": 7.5,
        "boolean": True,
        "array": ["zz"],
        "tuple": [1, 2],
        "dict": {"zz": 1},
    }.get(schema.get("type", ""), "zz")


def _argument_cases(
    functions: list[dict[str, Any]], ground_truth: list[dict[str, Any]], base: list[Call]
) -> Iterator[Case]:
    """Per-argument perturbations of every call."""
    for index, answer in enumerate(ground_truth):
        ((name, accepted_by_param),) = answer.items()
        arguments = base[index][name]
        for param, accepted in accepted_by_param.items():
            options = accepted if type(accepted) is list else []
            for alt_index, alternative in enumerate(options[1:], start=1):
                if alternative != "":
                    value = unwrap(alternative)
                    yield Case(
                        "alt_value",
                        f"{index}.{param}#{alt_index}",
                        _replace_arg(base, index, param, value),
                    )
            if param not in arguments:
                continue
            yield Case(
                "missing_param", f"{index}.{param}", _replace_arg(base, index, param, _MISSING)
            )
            for kind, detail, value in value_variants(arguments[param]):
                yield Case(
                    kind, f"{index}.{param}.{detail}", _replace_arg(base, index, param, value)
                )
        function = _function(functions, name)
        properties = function["parameters"]["properties"] if function else {}
        yield Case("extra_param", f"{index}.unknown", _replace_arg(base, index, "zz_unknown", 1))
        unused = [p for p in properties if p not in arguments]
        for param in unused[:3]:
            value = _dummy(properties[param])
            yield Case(
                "extra_param",
                f"{index}.documented.{param}",
                _replace_arg(base, index, param, value),
            )


def _name_cases(functions: list[dict[str, Any]], base: list[Call]) -> Iterator[Case]:
    """Wrong, re-cased, dotted/underscored and swapped function names."""
    for index, call in enumerate(base):
        name = next(iter(call))
        yield Case("wrong_func_name", f"{index}.suffix", _rename(base, index, name + "_zz"))
        yield Case("wrong_func_name", f"{index}.upper", _rename(base, index, name.upper()))
        if "." in name:
            yield Case(
                "wrong_func_name",
                f"{index}.underscored",
                _rename(base, index, name.replace(".", "_")),
            )
        for other in functions:
            if other["name"] != name:
                yield Case(
                    "wrong_func_name",
                    f"{index}.other:{other['name']}",
                    _rename(base, index, other["name"]),
                )


def _list_cases(base: list[Call]) -> Iterator[Case]:
    """Whole-output changes: empty, reordered, dropped, duplicated and swapped calls."""
    yield Case("empty_list", "", [])
    yield Case("extra_call", "unknown_function", [*copy.deepcopy(base), {"zz_unknown": {}}])
    if len(base) > 1:
        yield Case("reordered", "reversed", copy.deepcopy(base[::-1]))
        yield Case("reordered", "rotated", copy.deepcopy(base[1:] + base[:1]))
    for index in range(len(base)):
        yield Case("dropped_call", str(index), copy.deepcopy(base[:index] + base[index + 1 :]))
        yield Case("duplicated_call", str(index), copy.deepcopy([*base, base[index]]))
        if len(base) > 1:
            other = (index + 1) % len(base)
            replaced = copy.deepcopy(base)
            replaced[other] = copy.deepcopy(base[index])
            yield Case("duplicated_call", f"{index}->replaces->{other}", replaced)
    yield from _swap_cases(base)


def _swap_cases(base: list[Call]) -> Iterator[Case]:
    """Exchange one argument between two calls of the same function (a greedy-matching trap)."""
    for i in range(len(base)):
        for j in range(i + 1, len(base)):
            ((name_i, args_i),) = base[i].items()
            ((name_j, args_j),) = base[j].items()
            if name_i != name_j:
                continue
            for param in args_i:
                if param in args_j and args_i[param] != args_j[param]:
                    swapped = copy.deepcopy(base)
                    swapped[i][name_i][param] = copy.deepcopy(args_j[param])
                    swapped[j][name_j][param] = copy.deepcopy(args_i[param])
                    yield Case("swapped_args", f"{i}<->{j}.{param}", swapped)
                    break


def python_cases(
    functions: list[dict[str, Any]], ground_truth: list[dict[str, Any]]
) -> Iterator[Case]:
    """All cases for one python entry, the unperturbed ground truth first."""
    base = ground_truth_calls(ground_truth, functions)
    yield Case("ground_truth", "", copy.deepcopy(base))
    yield from _argument_cases(functions, ground_truth, base)
    yield from _name_cases(functions, base)
    yield from _list_cases(base)


# ====================================================================== Java / JavaScript
def _quote(text: str) -> str:
    return '"' + text + '"'


def java_element(value: Any, item_type: str | None) -> str:
    """A Java literal inside a collection (strings keep their quotes, as BFCL's decoder does)."""
    if type(value) is str:
        return _quote(value)
    return java_text(value, item_type or "any")


def java_text(value: Any, type_name: str, item_type: str | None = None) -> str:
    """The source text BFCL's Java decoder would hand over for ``value``."""
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if type(value) is int:
        suffix = {"long": "L", "float": "f"}.get(type_name, "")
        return f"{value}{suffix}"
    if type(value) is float:
        return f"{value}f" if type_name == "float" else repr(value)
    if type(value) in (list, tuple):
        items = ", ".join(java_element(item, item_type) for item in value)
        if type_name == "ArrayList":
            return f"new ArrayList<>(Arrays.asList({items}))"
        element = {"String": "String", "integer": "int", "long": "long"}.get(
            item_type or "", "Object"
        )
        return f"new {element}[]{{{items}}}"
    if type(value) is dict:
        puts = " ".join(f'put("{k}", {java_element(v, None)});' for k, v in value.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    return str(value)


def js_element(value: Any) -> str:
    """A JavaScript literal inside an array or object."""
    if type(value) is str:
        return _quote(value)
    return js_text(value, "any")


def js_text(value: Any, type_name: str, item_type: str | None = None) -> str:
    """The source text BFCL's JavaScript decoder would hand over for ``value``."""
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if type(value) is int and type_name == "Bigint":
        return f"{value}n"
    if type(value) in (int, float):
        return repr(value)
    if type(value) in (list, tuple):
        return "[" + ", ".join(js_element(item) for item in value) + "]"
    if type(value) is dict:
        return "{" + ", ".join(f"{k}: {js_element(v)}" for k, v in value.items()) + "}"
    return str(value)


def encode_calls(calls: Any, functions: list[dict[str, Any]], language: str) -> Any:
    """Turn python-valued calls into the source-text arguments of BFCL's Java/JS decoders."""
    if type(calls) is not list:
        return calls
    encoder = java_text if language == "java" else js_text
    out = []
    for call in calls:
        ((name, arguments),) = call.items()
        function = _function(functions, name) or functions[0]
        properties = function["parameters"]["properties"]
        encoded = {}
        for param, value in arguments.items():
            schema = properties.get(param, {})
            item_type = schema.get("items", {}).get("type")
            encoded[param] = encoder(value, schema.get("type", "any"), item_type)
        out.append({name: encoded})
    return out


def text_variants(text: str, type_name: str) -> list[tuple[str, str]]:
    """Source-text variants that exercise the converters' patterns."""
    variants = [
        ("upper", text.upper()),
        ("padded", f" {text} "),
        ("quoted", _quote(text)),
        ("single_quoted", f"'{text}'"),
        ("trailing_newline", text + "\n"),
        ("suffix_L", text + "L"),
        ("suffix_f", text + "f"),
        ("suffix_n", text + "n"),
        ("decimal", text + ".0"),
        ("exponent", text + "e2"),
        ("unquoted", text.strip("\"'")),
        ("strip_suffix", text[:-1] if text else text),
    ]
    if type_name in ("Array", "ArrayList", "HashMap", "array", "dict"):
        variants += [
            ("spaced_braces", text.replace("{", "{ ").replace("}", " }")),
            ("no_spaces", text.replace(" ", "")),
            ("single_quotes", text.replace('"', "'")),
            ("new_array", f"new Array({text.strip('[]')})" if text.startswith("[") else text),
            ("add_form", _add_form(text)),
            ("nested", f"[{text}, {text}]"),
            ("truncated", text[: len(text) // 2]),
        ]
    return [(name, variant) for name, variant in variants if variant != text]


def _add_form(text: str) -> str:
    """Rewrite ``Arrays.asList(a, b)`` as the ``{{ add(a); add(b); }}`` ArrayList form."""
    prefix = "new ArrayList<>(Arrays.asList("
    if not text.startswith(prefix):
        return text
    items = text[len(prefix) : -2].split(", ")
    return "new ArrayList<>() {{ " + " ".join(f"add({item});" for item in items) + " }}"


def foreign_cases(
    functions: list[dict[str, Any]], ground_truth: list[dict[str, Any]], language: str
) -> Iterator[Case]:
    """Java/JS cases: every python case encoded as source text, raw values and text variants."""
    raw_base = ground_truth_calls(ground_truth, functions)
    yield Case("raw_python_values", "", copy.deepcopy(raw_base))
    for case in python_cases(functions, ground_truth):
        yield Case(case.kind, case.detail, encode_calls(case.calls, functions, language))
    base = encode_calls(raw_base, functions, language)
    for index, call in enumerate(base):
        ((name, arguments),) = call.items()
        function = _function(functions, name) or functions[0]
        properties = function["parameters"]["properties"]
        for param, text in arguments.items():
            type_name = properties.get(param, {}).get("type", "any")
            for detail, variant in text_variants(text, type_name):
                changed = _replace_arg(base, index, param, variant)
                yield Case("source_text", f"{index}.{param}.{detail}", changed)


# ====================================================================== relevance
def relevance_outputs(functions: list[dict[str, Any]]) -> Iterator[tuple[str, bool, Any]]:
    """Decoded outputs for the (ir)relevance categories: (label, decoding succeeded, value)."""
    names = [function["name"] for function in functions] or ["zz_function"]
    first, last = names[0], names[-1]
    yield "decode_failed", False, None
    yield "empty_list", True, []
    yield "empty_dict_in_list", True, [{}]
    yield "plain_text", True, "I cannot help with that."
    yield "none", True, None
    yield "list_of_strings", True, ["get_weather(city='Paris')"]
    yield "bare_dict", True, {first: {}}
    yield "call_no_args", True, [{first: {}}]
    yield "call_with_args", True, [{first: {"zz": 1}}]
    yield "call_unknown_function", True, [{"zz_unknown": {"a": 1}}]
    yield "two_calls", True, [{first: {}}, {last: {}}]
    yield "call_then_empty_dict", True, [{first: {}}, {}]
    yield "two_keys_in_one_dict", True, [{first: {}, "other": {}}]
    yield "args_not_dict", True, [{first: "x=1"}]
    yield "args_list", True, [{first: [1]}]
    yield "nested_list", True, [[{first: {}}]]


# ====================================================================== hand-made edge cases
_EDGE_FUNCTION = {
    "name": "f",
    "parameters": {
        "type": "dict",
        "properties": {
            "opts": {"type": "dict"},
            "items": {"type": "array", "items": {"type": "dict"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "grid": {"type": "array", "items": {"type": "array"}},
            "pt": {"type": "tuple", "items": {"type": "float"}},
            "x": {"type": "float"},
            "n": {"type": "integer"},
            "s": {"type": "string"},
            "flag": {"type": "boolean"},
            "anything": {"type": "any"},
        },
        "required": [],
    },
}

# (parameter, accepted values, argument values to send)
_EDGE_ARGUMENTS: list[tuple[str, list[Any], list[Any]]] = [
    ("opts", [""], [{"a": 1}, {}, "", None]),
    (
        "opts",
        [{"a": [1, ""], "b": ["x"]}],
        [
            {"a": 2},
            {"b": "X"},
            {"b": "x", "a": 1},
            {"a": 1, "b": "x", "c": 0},
            {"b": ["x"]},
            {"b": "x", "a": ""},
        ],
    ),
    ("opts", ["", {"a": ["x"]}, {"a": ["y"], "b": [""]}], [{"a": "y"}, {"a": "z"}, {"b": 1}]),
    ("opts", ["optsVar"], ["optsVar", "optsvar", {"a": 1}]),
    (
        "items",
        [[{"k": ["v"]}], [{"k": ["v"]}, {"k": ["w"]}]],
        [[{"k": "v"}], [{"k": "v"}, {"k": "w"}], [{"k": "w"}], [], [1], [{"k": "v"}, {"k": "v"}]],
    ),
    ("items", ["", [{"k": ["v"]}]], [[], [1, 2], [1], ["a"], [{"k": "V"}]]),
    ("items", [], [[], [{"k": "v"}]]),
    ("tags", ["tagVar", ["a", "b"]], ["tagVar", "tagvar", ["a", "b"], ["A", "B"], [1], ("a", "b")]),
    ("tags", [["a"], ["", "b"]], [["a"], [""], ["B"], [None]]),
    ("grid", [[["a", "b"], ["c"]]], [[["A", "b"], ["c"]], [["a", "b"], ["c"]], [["a", "b"]]]),
    ("pt", [[1.0, 2.0]], [(1.0, 2.0), [1, 2], (1, 2.0), [1.0, 2.0], (1.0,)]),
    ("pt", [[1, 2]], [[1, 2], [1.0, 2.0], (1, 2)]),
    ("x", [1], [1, 1.0, True, "1"]),
    ("x", [2.5, "xVar"], [2.5, "xVar", "xvar", 2]),
    ("n", ["nVar", 3], ["nVar", "nvar", 3, 3.0, False]),
    ("n", [0, ""], [0, False, -0, 0.0]),
    ("s", [True, "yes"], [True, "yes", "Yes", 1]),
    ("s", [None, ""], [None, "None", ""]),
    ("s", ["it's"], ['it"s', "its", "IT'S", "it' s"]),
    ("s", [""], ["", "x"]),
    ("flag", [True], [True, 1, "true", 1.0]),
    ("flag", ["flagVar"], ["flagVar", True]),
    ("anything", ["x", 5], [5, "X", 5.0, "5"]),
]


def edge_entries() -> Iterator[tuple[str, list[dict[str, Any]], list[dict[str, Any]], list[Case]]]:
    """Hand-made (category, functions, ground truth, cases) for branches the data rarely hits.

    They cover optional-only dicts, ground-truth "variables" of every declared type, tuples,
    item type checks, nested lists, ``None`` and ``bool``/``int`` equality, dict error
    precedence, ground truths naming unknown functions and greedy matching traps.
    """
    functions = [_EDGE_FUNCTION]
    for param, accepted, values in _EDGE_ARGUMENTS:
        truth = [{"f": {param: accepted}}]
        cases = [Case("edge", f"{param}={value!r}", [{"f": {param: value}}]) for value in values]
        cases.append(Case("edge", f"{param} omitted", [{"f": {}}]))
        yield "simple_python", functions, truth, cases
    unknown = [{"g": {"s": ["x"]}}]
    yield "multiple", functions, unknown, [Case("edge", "unknown gt function", [{"f": {"s": "x"}}])]
    yield "parallel", functions, unknown, [Case("edge", "unknown gt function", [{"f": {"s": "x"}}])]
    trap = [{"f": {"s": ["a", "b"]}}, {"f": {"s": ["a"]}}]
    trap_cases = [
        Case("edge", "greedy trap", [{"f": {"s": "a"}}, {"f": {"s": "b"}}]),
        Case("edge", "greedy trap reversed", [{"f": {"s": "b"}}, {"f": {"s": "a"}}]),
    ]
    yield "parallel", functions, trap, trap_cases
    two = [{"f": {"s": ["a"]}}, {"f": {"s": ["b"]}}]
    yield (
        "multiple",
        functions,
        two,
        [Case("edge", "two answers", [{"f": {"s": "a"}}, {"f": {"s": "b"}}])],
    )
