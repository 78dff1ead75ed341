"""SpecTool's seven error patterns, detected in a tool-use answer or a multi-step trajectory.

Everything here is pure: no harness state, no model output is ever evaluated (literals are read
with ``json`` and ``ast.literal_eval``). Three layers:

1. **Normalised views.** Offered functions (:class:`FunctionSpec`) are built from BFCL function
   docs, APIGen tool specs or OpenAI tools; expected calls (:class:`ExpectedCall`) from BFCL
   ground truth (accepted values per argument, ``""`` = may be omitted), APIGen answers (exact
   values) or SpecTool's own ground-truth format (``"optional"`` values). One shape for all, so
   one classifier serves every source.
2. **The corrected classifier** (:func:`classify`, :func:`classify_trajectory`): the paper's
   definitions, applied precisely and with explicit denominators. See ``docs/spectool.md``.
3. **The paper's own scoring** (:func:`compat_scores`): ToolScan's code, quirks included
   (missing required counted as IAN, ``isinstance`` types, RAC among executed calls only,
   exact-dict IAV, accuracies over N = 10 steps), for comparison with the paper's tables.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from functools import cache
from typing import Any

#: The seven codes, in the paper's order of presentation.
PATTERNS: tuple[str, ...] = ("IAC", "IAV", "IAN", "IAT", "RAC", "IFN", "IFE")
#: Evidence labels for wrong answers that show none of the seven (never put in ``patterns``).
OTHER_UNEXPECTED = "other:unexpected_call"  # a valid call to an offered, unexpected function
OTHER_EXTRA = "other:extra_call"  # one call too many to an expected function
OTHER_UNCLASSIFIED = "other:unclassified"  # the task says wrong; no pattern explains why
#: Calls that end an episode rather than use a tool (ToolScan's ``finish``).
TERMINAL_NAMES: frozenset[str] = frozenset({"finish"})
#: Paper's normaliser: "accuracies" are (N - errors) / N with N the step budget.
PAPER_MAX_STEPS = 10

# Declared type names of every source -> one vocabulary.
_KINDS: dict[str, str] = {
    **dict.fromkeys(("string", "str", "enum", "char", "text"), "string"),
    **dict.fromkeys(("integer", "int", "long", "short", "byte", "bigint"), "integer"),
    **dict.fromkeys(("number", "float", "double", "num", "decimal"), "number"),
    **dict.fromkeys(("boolean", "bool"), "boolean"),
    **dict.fromkeys(("array", "list", "tuple", "set", "arraylist", "sequence"), "array"),
    **dict.fromkeys(("object", "dict", "hashmap", "mapping"), "object"),
}
_STRING_NOISE = str.maketrans("", "", " ,./-_*^")


# ====================================================================== normalised views
@dataclass(frozen=True)
class Param:
    """One declared parameter: ``kind`` in our vocabulary, ``raw_type`` as declared (the
    compat scorer maps the raw name the way the paper's code does)."""

    kind: str = "any"
    raw_type: str = ""
    items: str | None = None
    default: Any = None
    has_default: bool = False


@dataclass(frozen=True)
class FunctionSpec:
    """An offered function: its parameters and which of them are required."""

    name: str
    params: Mapping[str, Param]
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArgExpectation:
    """What an expected call wants for one argument: any of ``values``; ``may_omit`` when
    leaving it out is also right (BFCL's ``""``, SpecTool's ``"optional"``)."""

    values: tuple[Any, ...] = ()
    may_omit: bool = False


@dataclass(frozen=True)
class ExpectedCall:
    """One expected call. ``normalize`` selects BFCL's string normalisation (BFCL data) or
    near-exact comparison (APIGen answers, strings stripped, ints equal to floats)."""

    name: str
    args: Mapping[str, ArgExpectation]
    normalize: bool = True


@dataclass(frozen=True)
class Call:
    """One call the model made."""

    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class Step:
    """One step of a trajectory: its calls (``None`` = output not decodable) and whether they
    were executed (``None`` = not recorded; the compat scorer then applies the paper's
    validator, a single-turn answer counts as executed)."""

    calls: tuple[Call, ...] | None
    executed: bool | None = None
    detail: str = ""


@dataclass(frozen=True)
class Evidence:
    """Why a pattern was reported: which call (0-based over the whole answer), which argument."""

    pattern: str
    call_index: int | None = None
    function: str | None = None
    argument: str | None = None
    detail: str = ""
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Classification:
    """The patterns found (sorted codes), their evidence, per-pattern counts and denominators.

    Counts: IFE = undecodable steps; IFN, IAN, IAT, IAV = calls showing the pattern; RAC =
    repeated calls; IAC = the expected calls never made (per-function count deficit).
    """

    patterns: list[str]
    evidence: list[Evidence]
    counts: dict[str, int]
    denominators: dict[str, int]

    @property
    def others(self) -> list[str]:
        return sorted({e.pattern for e in self.evidence if e.pattern.startswith("other:")})

    def rates(self) -> dict[str, float]:
        """Per-call, per-expected-call and per-step rates; a rate without denominator is left
        out (not 0), so averages run only over samples where it means something."""
        calls, steps, expected = (
            self.denominators[k] for k in ("calls", "steps", "expected_calls")
        )
        out: dict[str, float] = {}
        if calls:
            for code in ("IFN", "IAN", "IAT", "IAV", "RAC"):
                out[f"{code}_per_call"] = self.counts[code] / calls
        if expected:
            out["IAC_per_expected_call"] = min(1.0, self.counts["IAC"] / expected)
        if steps:
            out["IFE_per_step"] = self.counts["IFE"] / steps
        return out


def _kind(raw: Any) -> str:
    if isinstance(raw, list):  # JSON Schema union: the first non-null type
        raw = next((r for r in raw if r != "null"), "any")
    text = str(raw or "").strip()
    head = re.split(r"[\[\s|<,]", text, maxsplit=1)[0].lower()
    return _KINDS.get(head, "any")


def _schema_param(spec: Mapping[str, Any]) -> Param:
    raw = spec.get("type", "")
    items = spec.get("items")
    return Param(
        kind=_kind(raw),
        raw_type=str(raw),
        items=_kind(items.get("type")) if isinstance(items, Mapping) and "type" in items else None,
        default=spec.get("default"),
        has_default="default" in spec,
    )


def functions_from_bfcl(docs: Iterable[Mapping[str, Any]]) -> dict[str, FunctionSpec]:
    """BFCL function docs (``parameters`` with BFCL type names, ``properties``, ``required``)."""
    return {doc["name"]: _from_schema(doc["name"], doc.get("parameters") or {}) for doc in docs}


def functions_from_openai(tools: Iterable[Mapping[str, Any]]) -> dict[str, FunctionSpec]:
    """OpenAI tools (``{"type": "function", "function": {...}}``) or bare function objects."""
    out = {}
    for tool in tools:
        function = tool.get("function", tool)
        out[function["name"]] = _from_schema(function["name"], function.get("parameters") or {})
    return out


def _from_schema(name: str, schema: Mapping[str, Any]) -> FunctionSpec:
    properties = schema.get("properties") or {}
    params = {key: _schema_param(spec or {}) for key, spec in properties.items()}
    return FunctionSpec(name, params, tuple(schema.get("required") or ()))


def functions_from_apigen(tools: Iterable[Mapping[str, Any]]) -> dict[str, FunctionSpec]:
    """APIGen tool specs: a flat ``name -> {type, default}`` map, ``", optional"`` suffixes."""
    out = {}
    for tool in tools:
        params, required = {}, []
        for key, spec in (tool.get("parameters") or {}).items():
            raw = str((spec or {}).get("type", ""))
            optional = bool(re.search(r",\s*optional\s*$", raw))
            base = re.sub(r",\s*optional\s*$", "", raw).strip()
            inner = re.match(r"\w+\[(\w+)", base)
            params[key] = Param(
                kind=_kind(base),
                raw_type=base,
                items=_kind(inner.group(1)) if inner else None,
                default=(spec or {}).get("default"),
                has_default="default" in (spec or {}),
            )
            if not optional:
                required.append(key)
        out[tool["name"]] = FunctionSpec(tool["name"], params, tuple(required))
    return out


def functions_from_any(functions: Any) -> dict[str, FunctionSpec]:
    """Guess the source format: OpenAI tools, APIGen specs (flat params) or BFCL docs."""
    functions = list(functions or [])
    if not functions:
        return {}
    first = functions[0]
    if "function" in first or first.get("type") == "function":
        return functions_from_openai(functions)
    params = first.get("parameters") or {}
    if "properties" in params or params.get("type") in ("dict", "object"):
        return functions_from_bfcl(functions)
    return functions_from_apigen(functions)


def expected_from_bfcl(ground_truth: Iterable[Mapping[str, Any]]) -> list[ExpectedCall]:
    """BFCL ground truth ``[{name: {arg: [accepted, ...]}}]``; ``""`` means may be omitted."""
    out = []
    for answer in ground_truth:
        ((name, args),) = answer.items()
        expectations = {}
        for key, accepted in args.items():
            accepted = accepted if isinstance(accepted, list) else [accepted]
            values = tuple(v for v in accepted if not (isinstance(v, str) and v == ""))
            expectations[key] = ArgExpectation(values, len(values) < len(accepted))
        out.append(ExpectedCall(name, expectations, normalize=True))
    return out


def expected_from_apigen(answers: Iterable[Mapping[str, Any]]) -> list[ExpectedCall]:
    """APIGen answers ``[{name, arguments}]``: one exact value per argument."""
    return [
        ExpectedCall(
            a["name"],
            {k: ArgExpectation((v,)) for k, v in (a.get("arguments") or {}).items()},
            normalize=False,
        )
        for a in answers
    ]


def expected_from_paper(
    trajectory: Mapping[str, Sequence[Mapping[str, Any]]],
) -> list[ExpectedCall]:
    """SpecTool's format: ``{api_name: [argument dict, ...]}``; ``"optional"`` values may be
    omitted (and, as in the paper, any supplied value for them is wrong)."""
    out = []
    for name, arg_dicts in trajectory.items():
        for args in arg_dicts:
            out.append(
                ExpectedCall(
                    name,
                    {
                        k: ArgExpectation((), True) if v == "optional" else ArgExpectation((v,))
                        for k, v in args.items()
                    },
                    normalize=False,
                )
            )
    return out


def expected_from_any(target: Any) -> list[ExpectedCall] | None:
    """BFCL ground truth, APIGen answers, SpecTool ``{api: [args]}``, or ``None`` (unknown)."""
    if target is None:
        return None
    if isinstance(target, Mapping):
        return expected_from_paper(target)
    target = list(target)
    if target and "name" in target[0] and "arguments" in target[0]:
        return expected_from_apigen(target)
    return expected_from_bfcl(target)


def calls_from_any(calls: Iterable[Any] | None) -> tuple[Call, ...] | None:
    """Model calls as :class:`Call`; ``None`` stays ``None`` (decoding failed). Accepts
    ``{name, arguments}`` dicts, BFCL's ``{name: {args}}`` dicts and objects with ``name`` and
    ``arguments`` attributes (``harness.ToolCall``). Arguments given as a JSON string are read."""
    if calls is None:
        return None
    out = []
    for call in calls:
        if isinstance(call, Mapping):
            if "name" in call:
                name, arguments = call["name"], call.get("arguments") or {}
            else:
                ((name, arguments),) = call.items()
        else:
            name, arguments = call.name, call.arguments
        if isinstance(arguments, str):
            arguments = json.loads(arguments) if arguments.strip() else {}
        out.append(Call(str(name), arguments))
    return tuple(out)


def steps_from_any(steps: Iterable[Mapping[str, Any]]) -> list[Step]:
    """Trajectory steps ``{calls: [...] | null, executed: bool, observation, decode_error}``."""
    out = []
    for step in steps:
        calls = step.get("calls")
        out.append(
            Step(
                calls=calls_from_any(calls) if calls is not None else None,
                executed=step.get("executed"),
                detail=str(step.get("decode_error") or ""),
            )
        )
    return out


# ====================================================================== values and types
def type_ok(value: Any, kind: str, items: str | None = None) -> bool:
    """BFCL's rules in our vocabulary: int is a number, bool is no int, tuples are arrays,
    ``any`` accepts anything; one level of array items is checked, as BFCL does."""
    if kind == "any":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        if not isinstance(value, list | tuple):
            return False
        return items is None or all(type_ok(v, items) for v in value)
    return True


_NOT_COERCIBLE = object()


def coerce(value: Any, kind: str, items: str | None = None) -> Any:
    """The value the model meant, in the declared type (``"5"`` -> 5, ``"True"`` -> True,
    ``5.0`` -> 5 for an integer, ``7`` -> ``"7"`` for a string); ``_NOT_COERCIBLE`` otherwise.
    Read with ``json``/``ast.literal_eval`` only: model text is never evaluated."""
    if kind == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        for parsed in _literals(value.strip()):
            if type_ok(parsed, kind, items):
                return parsed
            if kind == "integer" and isinstance(parsed, float) and parsed.is_integer():
                return int(parsed)
    if kind == "array" and isinstance(value, list | tuple) and items:
        parts = [coerce(v, items) for v in value]
        if all(p is not _NOT_COERCIBLE for p in parts):
            return parts
    return _NOT_COERCIBLE


def _literals(text: str) -> list[Any]:
    """Readings of a string literal: ``true``/``True``, JSON, then a Python literal."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return [lowered == "true"]
    out = []
    with contextlib.suppress(ValueError, RecursionError):
        out.append(json.loads(text))
    if len(text) < 10_000:
        with contextlib.suppress(ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            out.append(ast.literal_eval(text))
    return out


def standardize(value: Any) -> Any:
    """BFCL's string normalisation: drop `` ,./-_*^``, lower-case, ``'`` -> ``"``."""
    if isinstance(value, str):
        return value.translate(_STRING_NOISE).lower().replace("'", '"')
    return value


def value_ok(value: Any, expect: ArgExpectation, normalize: bool) -> bool:
    """Whether ``value`` is one of the accepted values."""
    return any(_same(value, candidate, normalize) for candidate in expect.values)


def _same(value: Any, candidate: Any, normalize: bool) -> bool:
    if isinstance(value, bool) or isinstance(candidate, bool):
        return isinstance(value, bool) and isinstance(candidate, bool) and value is candidate
    if isinstance(value, str) and isinstance(candidate, str):
        if normalize:
            return standardize(value) == standardize(candidate)
        return value.strip() == candidate.strip()
    if isinstance(value, int | float) and isinstance(candidate, int | float):
        return float(value) == float(candidate)
    if isinstance(value, list | tuple) and isinstance(candidate, list | tuple):
        return len(value) == len(candidate) and all(
            _same(v, c, normalize) for v, c in zip(value, candidate, strict=True)
        )
    if isinstance(value, Mapping) and isinstance(candidate, Mapping):
        return _same_dict(value, candidate, normalize)
    return bool(value == candidate)


def _same_dict(value: Mapping[str, Any], candidate: Mapping[str, Any], normalize: bool) -> bool:
    """BFCL dict answers list accepted values per key (``""`` = optional); APIGen's are exact."""
    bfcl_style = normalize and all(isinstance(v, list) for v in candidate.values())
    if not bfcl_style:
        return value.keys() == candidate.keys() and all(
            _same(value[k], candidate[k], normalize) for k in candidate
        )
    for key, item in value.items():
        if key not in candidate or not any(_same(item, c, True) for c in candidate[key] if c != ""):
            return False
    return all(key in value or "" in options for key, options in candidate.items())


def _canonical(call: Call) -> str:
    """A call's identity for RAC: name plus arguments, key order ignored."""
    return call.name + json.dumps(call.arguments, sort_keys=True, default=repr)


# ====================================================================== the classifier
@dataclass
class _Judged:
    """One decoded call with where it sits and what the per-call checks found."""

    index: int
    step: int
    call: Call
    executed: bool
    spec: FunctionSpec | None
    bad_types: set[str] = field(default_factory=set)


def classify(
    functions: Mapping[str, FunctionSpec],
    calls: Sequence[Call] | None,
    expected: Sequence[ExpectedCall] | None,
    *,
    require_call: bool = False,
    detail: str = "",
) -> Classification:
    """Classify one single-turn answer. ``calls=None``: the output could not be decoded.
    ``expected=None``: the right calls are unknown (BFCL ``live_relevance``), so IAC only
    means "no call at all" when ``require_call``; ``expected=[]``: no call is wanted."""
    step = Step(None if calls is None else tuple(calls), True, detail)
    return classify_trajectory([step], functions, expected, require_call=require_call)


def classify_trajectory(
    steps: Sequence[Step],
    functions: Mapping[str, FunctionSpec],
    expected: Sequence[ExpectedCall] | None,
    *,
    alternatives: Sequence[Sequence[ExpectedCall]] = (),
    require_call: bool = False,
) -> Classification:
    """Classify a multi-step trajectory (a single-turn answer is one step).

    Undecodable steps are IFE; the other steps are judged. Calls that were not executed are
    judged for IFN/IAN/IAT/RAC but do not count towards the expected calls. With
    ``alternatives`` (other valid ground truths) the one with fewest (IAC, IAV) wins.
    """
    options = [expected, *alternatives] if alternatives else [expected]
    results = [_classify_once(steps, functions, e, require_call) for e in options]
    return min(results, key=lambda r: (r.counts["IAC"], r.counts["IAV"], len(r.patterns)))


def _classify_once(
    steps: Sequence[Step],
    functions: Mapping[str, FunctionSpec],
    expected: Sequence[ExpectedCall] | None,
    require_call: bool,
) -> Classification:
    evidence: list[Evidence] = []
    judged = _collect_calls(steps, functions, evidence)
    ife_steps = sum(1 for s in steps if s.calls is None)
    decoded_any = ife_steps < len(steps)
    if decoded_any:
        for item in judged:
            _check_call(item, expected, evidence)
        repeats = _repeats(judged, expected, evidence)
        usable = [j for j in judged if j.spec and j.executed and j.index not in repeats]
        _check_expected(usable, expected, require_call, evidence)
    return _summarise(evidence, len(judged), len(steps), len(expected or ()))


def _collect_calls(
    steps: Sequence[Step], functions: Mapping[str, FunctionSpec], evidence: list[Evidence]
) -> list[_Judged]:
    """Number the calls across steps; record IFE steps and IFN calls on the way."""
    judged: list[_Judged] = []
    for number, step in enumerate(steps):
        if step.calls is None:
            detail = f"output could not be decoded: {step.detail}".strip().rstrip(":")
            evidence.append(Evidence("IFE", step=number, detail=detail))
            continue
        for call in step.calls:
            if call.name in TERMINAL_NAMES and call.name not in functions:
                continue
            item = _Judged(len(judged), number, call, step.executed is not False, None)
            item.spec = functions.get(call.name)
            if item.spec is None:
                evidence.append(
                    Evidence(
                        "IFN",
                        item.index,
                        call.name,
                        step=number,
                        detail=f"{call.name!r} is not an offered function",
                    )
                )
            judged.append(item)
    return judged


def _check_call(
    item: _Judged, expected: Sequence[ExpectedCall] | None, evidence: list[Evidence]
) -> None:
    """IAN (unknown argument names) and IAT (declared type not met) for one offered call."""
    if item.spec is None:
        return
    accepted = _accepted_values(item.call.name, expected)
    for name, value in item.call.arguments.items():
        param = item.spec.params.get(name)
        if param is None:
            evidence.append(
                Evidence(
                    "IAN",
                    item.index,
                    item.call.name,
                    name,
                    f"not a parameter of {item.call.name}; expected one of "
                    f"{sorted(item.spec.params)}",
                    item.step,
                )
            )
        elif not type_ok(value, param.kind, param.items) and not _is_variable(
            value, accepted.get(name, ())
        ):
            item.bad_types.add(name)
            evidence.append(
                Evidence(
                    "IAT",
                    item.index,
                    item.call.name,
                    name,
                    f"{type(value).__name__} {_short(value)} given, {param.kind} declared",
                    item.step,
                )
            )


def _accepted_values(name: str, expected: Sequence[ExpectedCall] | None) -> dict[str, tuple]:
    """Every accepted value per argument of the expected calls to ``name``."""
    out: dict[str, tuple] = {}
    for exp in expected or ():
        if exp.name == name:
            for arg, expect in exp.args.items():
                out[arg] = out.get(arg, ()) + expect.values
    return out


def _is_variable(value: Any, accepted: tuple) -> bool:
    """BFCL's "variable" answers: a ground-truth value of a type other than the declared one
    (``"docFields"`` for a dict) is compared as is; giving exactly it is no type error."""
    return any(type(value) is type(a) and value == a for a in accepted)


def _repeats(
    judged: Sequence[_Judged], expected: Sequence[ExpectedCall] | None, evidence: list[Evidence]
) -> set[int]:
    """RAC: a call identical to an earlier one, beyond what the expected calls ask for (an
    answer that must call ``f(a=1)`` twice may)."""
    seen: Counter[str] = Counter()
    repeats = set()
    for item in judged:
        key = _canonical(item.call)
        seen[key] += 1
        if seen[key] > max(1, _times_expected(item, expected)):
            repeats.add(item.index)
            evidence.append(
                Evidence(
                    "RAC",
                    item.index,
                    item.call.name,
                    step=item.step,
                    detail=f"identical to an earlier call ({seen[key] - 1} before)",
                )
            )
    return repeats


def _times_expected(item: _Judged, expected: Sequence[ExpectedCall] | None) -> int:
    if item.spec is None or item.bad_types:
        return 0
    return sum(
        1 for exp in expected or () if exp.name == item.call.name and not _value_errors(item, exp)
    )


def _check_expected(
    usable: Sequence[_Judged],
    expected: Sequence[ExpectedCall] | None,
    require_call: bool,
    evidence: list[Evidence],
) -> None:
    """IAC (expected calls never made) and IAV (matched calls with wrong or missing values)."""
    if expected is None:
        if require_call and not usable:
            evidence.append(Evidence("IAC", detail="a call was expected; none was made"))
        return
    by_name: dict[str, list[ExpectedCall]] = {}
    for exp in expected:
        by_name.setdefault(exp.name, []).append(exp)
    for item in usable:
        if item.call.name not in by_name:
            evidence.append(
                Evidence(
                    OTHER_UNEXPECTED,
                    item.index,
                    item.call.name,
                    step=item.step,
                    detail="valid call to a function the answer should not call",
                )
            )
    for name, wanted in by_name.items():
        made = [j for j in usable if j.call.name == name]
        _match_function(name, made, wanted, evidence)


def _match_function(
    name: str, made: list[_Judged], wanted: list[ExpectedCall], evidence: list[Evidence]
) -> None:
    """Pair the model's calls to ``name`` with the expected ones (fewest value errors)."""
    if len(made) < len(wanted):
        missing = len(wanted) - len(made)
        evidence.append(
            Evidence(
                "IAC",
                function=name,
                detail=f"{len(wanted)} call(s) to {name} expected, {len(made)} made "
                f"({missing} missing)",
            )
        )
    costs = [[len(_value_errors(j, w)) for w in wanted] for j in made]
    pairs = _assign(costs)
    matched = {i for i, _ in pairs}
    for i, w in pairs:
        for arg, detail in _value_errors(made[i], wanted[w]):
            evidence.append(Evidence("IAV", made[i].index, name, arg, detail, made[i].step))
    for i, item in enumerate(made):
        if i not in matched:
            evidence.append(_surplus(item, made[:i], len(wanted)))


def _surplus(item: _Judged, earlier: list[_Judged], wanted: int) -> Evidence:
    """A call left over after pairing: RAC when it repeats an earlier call (two identical
    calls can each match an expected call that normalises alike, yet one of them is one
    too many), else ``other:extra_call``."""
    name = item.call.name
    if any(_canonical(e.call) == _canonical(item.call) for e in earlier):
        detail = f"identical to an earlier call, beyond the {wanted} expected call(s) to {name}"
        return Evidence("RAC", item.index, name, step=item.step, detail=detail)
    detail = f"more calls to {name} than expected"
    return Evidence(OTHER_EXTRA, item.index, name, step=item.step, detail=detail)


def _value_errors(item: _Judged, exp: ExpectedCall) -> list[tuple[str, str]]:
    """(argument, why) for every wrong or omitted value of a call against one expected call.

    A value of the wrong type is first read as the declared type (``"5"`` -> 5): if it then
    matches, the error is IAT alone; if not (or unreadable), it is IAV as well.
    """
    spec = item.spec
    assert spec is not None
    args = item.call.arguments
    errors = []
    for arg, expect in exp.args.items():
        if arg not in args:
            if arg in spec.required or not expect.may_omit:
                errors.append(
                    (
                        arg,
                        "omitted; "
                        + ("required" if arg in spec.required else "the expected call sets it"),
                    )
                )
            continue
        value = args[arg]
        param = spec.params.get(arg, Param())
        if arg in item.bad_types:
            value = coerce(value, param.kind, param.items)
            if value is _NOT_COERCIBLE:
                errors.append((arg, f"{_short(args[arg])} cannot be read as {param.kind}"))
                continue
        if not value_ok(value, expect, exp.normalize):
            errors.append((arg, f"{_short(args[arg])} given; accepted {_short(expect.values)}"))
    for arg in spec.required:
        if arg not in args and arg not in exp.args:
            errors.append((arg, "omitted; required"))
    for arg, value in args.items():
        if arg in exp.args or arg not in spec.params:
            continue
        param = spec.params[arg]
        if arg in item.bad_types:
            value = coerce(value, param.kind, param.items)
        if not (param.has_default and _same(value, param.default, exp.normalize)):
            errors.append((arg, f"{_short(args[arg])} given; the expected call does not set it"))
    return errors


def _assign(costs: list[list[int]]) -> list[tuple[int, int]]:
    """Minimum-cost assignment of rows (model calls) to columns (expected calls), as many pairs
    as the smaller side allows. Exact for small sizes (bitmask DP), greedy beyond."""
    rows = len(costs)
    cols = len(costs[0]) if rows else 0
    if not rows or not cols:
        return []
    transpose = rows > cols
    matrix = [list(r) for r in zip(*costs, strict=True)] if transpose else costs
    pairs = _greedy(matrix) if len(matrix[0]) > 16 else _exact(tuple(tuple(r) for r in matrix))
    return [(c, r) for r, c in pairs] if transpose else pairs


def _greedy(matrix: list[list[int]]) -> list[tuple[int, int]]:
    used: set[int] = set()
    pairs = []
    for r, row in enumerate(matrix):
        c = min((c for c in range(len(row)) if c not in used), key=lambda c: row[c])
        used.add(c)
        pairs.append((r, c))
    return pairs


def _exact(matrix: tuple[tuple[int, ...], ...]) -> list[tuple[int, int]]:
    """Every row gets a distinct column (rows <= columns), minimum total cost, ties to the
    earliest columns (so calls pair with expected calls in order when it makes no difference)."""

    @cache
    def best(r: int, used: int) -> tuple[int, tuple[int, ...]]:
        if r == len(matrix):
            return 0, ()
        options = []
        for c, cost in enumerate(matrix[r]):
            if not used & (1 << c):
                rest, picks = best(r + 1, used | (1 << c))
                options.append((cost + rest, (c, *picks)))
        return min(options)

    return list(enumerate(best(0, 0)[1]))


def _summarise(evidence: list[Evidence], calls: int, steps: int, expected: int) -> Classification:
    counts = dict.fromkeys(PATTERNS, 0)
    per_call: dict[str, set[int]] = {code: set() for code in ("IFN", "IAN", "IAT", "IAV")}
    for e in evidence:
        if e.pattern in per_call and e.call_index is not None:
            per_call[e.pattern].add(e.call_index)
        elif e.pattern in ("IFE", "RAC"):
            counts[e.pattern] += 1
        elif e.pattern == "IAC":
            counts["IAC"] += _missing(e)
    for code, indices in per_call.items():
        counts[code] = len(indices)
    patterns = sorted({e.pattern for e in evidence if e.pattern in PATTERNS})
    return Classification(
        patterns, evidence, counts, {"calls": calls, "steps": steps, "expected_calls": expected}
    )


def _missing(e: Evidence) -> int:
    match = re.search(r"\((\d+) missing\)", e.detail)
    return int(match.group(1)) if match else 1


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ====================================================================== the paper's scoring
def paper_type(raw_type: str) -> type | tuple[type, ...]:
    """The paper's ``map_apilist``: str/enum/string -> str, number/num -> int|float|complex,
    bool/boolean -> bool; any other declared name is used as the Python type of that name
    (``int``, ``float``, ``list``, ``tuple``, ``dict``); unknown names accept anything."""
    head = re.split(r"[\[\s|<,]", str(raw_type).strip(), maxsplit=1)[0].lower()
    if head in ("str", "enum", "string"):
        return str
    if head in ("number", "num"):
        return (int, float, complex)
    if head in ("bool", "boolean"):
        return bool
    direct = {"int": int, "integer": int, "float": float, "list": list, "array": list}
    direct |= {"tuple": tuple, "dict": dict, "object": dict}
    return direct.get(head, object)


def compat_scores(
    trajectory: Sequence[Step],
    ground_truth_trajectories: Sequence[Sequence[ExpectedCall]],
    functions: Mapping[str, FunctionSpec],
    *,
    max_steps: int = PAPER_MAX_STEPS,
) -> dict[str, float]:
    """Scores as ToolScan's ``ErrorMetric`` computes them: per-pattern "accuracies".

    Each call is one agent step (a parallel answer is read as consecutive steps). Per step:
    IFN if the name is not offered; IAN if any argument name is unknown *or any required one
    is missing*; IAT if any known argument fails ``isinstance`` with :func:`paper_type`; each
    at most 1 per step, counted independently (the validator's first-hit order only decides
    the feedback text). A step whose ``executed`` is not recorded is executed when it passes
    the validator (feedback on). Executed calls go to a route; an executed call already in the
    route is RAC and is not added again. IAC misses and IAV errors come from the ground-truth
    trajectory minimising (misses, errors); see :func:`_paper_iac` and :func:`_paper_iav`.
    Accuracies are (N - errors) / N with N = ``max_steps`` for all but IAC, which is
    (GT calls - misses) / GT calls. No executed call: every score is 0. Raw counts are
    returned too, as ``<code>_errors``.
    """
    errors = dict.fromkeys(("IFN", "IAN", "IAT", "IFE", "RAC"), 0)
    route: dict[str, list[Mapping[str, Any]]] = {}
    for step in trajectory:
        if step.calls is None:
            errors["IFE"] += 1
            continue
        for call in step.calls:
            _paper_step(call, step.executed, functions, errors, route)
    if not route:
        return {code: 0.0 for code in PATTERNS} | {f"{c}_errors": 0.0 for c in PATTERNS}
    scored = [
        (_paper_iac(gt, route), _paper_iav(gt, route), _gt_total(gt))
        for gt in ground_truth_trajectories
    ] or [(0, 0, 0)]
    misses, wrong, total = min(scored, key=lambda s: (s[0], s[1]))
    errors["IAC"], errors["IAV"] = misses, wrong
    out = {code: (max_steps - errors[code]) / max_steps for code in PATTERNS if code != "IAC"}
    out["IAC"] = (total - misses) / total if total else 1.0
    return out | {f"{code}_errors": float(errors[code]) for code in PATTERNS}


def _paper_step(
    call: Call,
    executed: bool | None,
    functions: Mapping[str, FunctionSpec],
    errors: dict[str, int],
    route: dict[str, list[Mapping[str, Any]]],
) -> None:
    """One action through the paper's validator and, if executed, its repeat check."""
    failed = False
    if call.name in TERMINAL_NAMES:
        return  # finish: not validated, never logged in the route
    spec = functions.get(call.name)
    if spec is None:
        errors["IFN"] += 1
        failed = True
    else:
        unknown = [a for a in call.arguments if a not in spec.params]
        missing = [a for a in spec.required if a not in call.arguments]
        bad = [
            a
            for a, v in call.arguments.items()
            if a in spec.params and not isinstance(v, paper_type(spec.params[a].raw_type))
        ]
        errors["IAN"] += 1 if unknown or missing else 0
        errors["IAT"] += 1 if bad else 0
        failed = bool(unknown or missing or bad)
    ran = (not failed) if executed is None else executed
    if not ran:
        return
    log = route.setdefault(call.name, [])
    if call.arguments in log:
        errors["RAC"] += 1
    else:
        log.append(call.arguments)


def _gt_total(gt: Sequence[ExpectedCall]) -> int:
    return len(gt)


def _paper_iac(gt: Sequence[ExpectedCall], route: Mapping[str, list[Any]]) -> int:
    """Per GT function name: max(0, GT count - distinct executed calls to it)."""
    wanted = Counter(e.name for e in gt)
    return sum(max(0, n - len(route.get(name, ()))) for name, n in wanted.items())


def _paper_iav(gt: Sequence[ExpectedCall], route: Mapping[str, list[Any]]) -> int:
    """Per GT call to a function the model called: 1 unless some executed argument dict of
    that function equals it exactly (optional arguments dropped; a supplied optional argument
    therefore breaks the equality, as in the paper)."""
    return sum(
        1
        for exp in gt
        if exp.name in route and not any(_paper_equal(args, exp) for args in route[exp.name])
    )


def _paper_equal(args: Mapping[str, Any], exp: ExpectedCall) -> bool:
    """Python ``==`` of the argument dict with one of the GT dicts the alternatives spell out:
    the keys are exactly the non-omitted ones, each value one of the accepted values."""
    for key in args:
        expect = exp.args.get(key)
        if expect is None or not any(args[key] == v for v in expect.values):
            return False
    return all(key in args or expect.may_omit for key, expect in exp.args.items())


def paper_product(exp: ExpectedCall, limit: int = 64) -> list[dict[str, Any]]:
    """The concrete GT argument dicts an :class:`ExpectedCall` stands for (for docs/tests)."""
    choices = []
    for key, expect in exp.args.items():
        options: list[Any] = [(key, v) for v in expect.values]
        if expect.may_omit:
            options.append(None)
        choices.append(options)
    out = []
    for combo in itertools.islice(itertools.product(*choices), limit):
        out.append(dict(c for c in combo if c is not None))
    return out
