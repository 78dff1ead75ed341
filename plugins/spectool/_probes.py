"""A deterministic generator of SpecTool-style probe queries over the project's tool sets.

SpecTool's 150 queries are not released, so probes are derived here, reproducibly, from:

- BFCL entries (``simple_python``, ``parallel``) whose ground-truth calls map onto one of our
  executable tool sets (argument names through a small documented alias table);
- APIGen-format items (``query``, ``tools``, ``answers``) whose tools belong to one tool set;
  the project ships one such file, ``registry/data/spectool-seeds.apigen.jsonl``.

Each seed is then augmented as the paper does (added constraints, template paraphrase,
irrelevant information) and two more ways: multi-call queries (two seeds in one request, to
expose insufficient calls, IAC) and similar-name probes (the obvious function withheld, its
similarly named siblings offered, to expose invented function names, IFN).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any
from typing import get_args

from harness_plugins.shared.toolsets import TOOLSETS

from . import Augmentation

AUGMENTATIONS: tuple[str, ...] = get_args(Augmentation)
#: BFCL argument names -> our tool sets' names (same meaning, different spelling).
ALIASES = {"num1": "a", "num2": "b", "number1": "a", "number2": "b", "location": "city"}
PARAPHRASES = (
    "Could you help me with this? {q}",
    "{q} Please use the tools you have.",
    "I need an answer quickly: {q}",
    "Here is my request. {q}",
)
IRRELEVANT = (
    "My flight was delayed twice last week, which was annoying.",
    "By the way, I am learning to play the violin.",
    "My cousin lives in Lisbon and loves jazz.",
    "Yesterday I finally finished reading a long novel.",
)
#: (tool set, function) -> (optional argument, value, sentence that asks for it)
CONSTRAINTS = {
    ("weather", "get_current_weather"): (
        "unit",
        "fahrenheit",
        "Give the temperature in fahrenheit.",
    ),
    ("weather", "get_weather_forecast"): ("unit", "fahrenheit", "Use fahrenheit, please."),
    ("math_tools", "calculate_triangle_area"): ("unit", "cm", "The lengths are in cm."),
    ("movies", "search_movies"): ("year", 1999, "It came out in 1999."),
}
#: (tool set, function asked for) -> the sibling that must be used when it is withheld
SIMILAR = {("weather", "get_current_weather"): ("get_weather_forecast", {"days": 1})}


@dataclass(frozen=True)
class Probe:
    """One query: the tool set it runs against, the calls that solve it, where it came from."""

    id: str
    toolset: str
    query: str
    expected: tuple[dict[str, Any], ...]
    augmentation: str = "seed"
    source: str = ""
    offered: tuple[str, ...] | None = None  # None: every function of the tool set
    metadata: dict[str, Any] = field(default_factory=dict)


def _function_index() -> dict[str, tuple[str, dict[str, Any]]]:
    return {f["name"]: (name, f) for name, ts in TOOLSETS.items() for f in ts.functions}


def _map_call(name: str, args: dict[str, Any], index: dict) -> tuple[str, dict] | None:
    """A BFCL ground-truth call as (tool set, call) when it fits one of our functions."""
    short = name.split(".")[-1]
    if short not in index:
        return None
    toolset, spec = index[short]
    props = spec["parameters"]["properties"]
    call = {}
    for key, accepted in args.items():
        key = ALIASES.get(key, key)
        values = [v for v in accepted if v != ""] if isinstance(accepted, list) else [accepted]
        if key in props and values:
            call[key] = values[0]
    if not set(spec["parameters"].get("required", [])) <= set(call):
        return None
    return toolset, {"name": short, "arguments": call}


def bfcl_seeds(categories: tuple[str, ...] = ("simple_python", "parallel")) -> list[Probe]:
    from harness_plugins.bfcl import entries

    index, probes = _function_index(), []
    for category in categories:
        for entry, truth in entries(category):
            mapped = [_map_call(*next(iter(c.items())), index) for c in truth or []]
            if not mapped or None in mapped or len({m[0] for m in mapped}) != 1:
                continue
            query = entry["question"][0][-1]["content"]
            calls = tuple(m[1] for m in mapped)
            probes.append(
                Probe(
                    f"bfcl:{entry['id']}", mapped[0][0], query, calls, source=f"bfcl:{entry['id']}"
                )
            )
    return probes


def default_seed_file() -> Path:
    return Path(
        str(resources.files("harness_registry").joinpath("data/spectool-seeds.apigen.jsonl"))
    )


def apigen_seeds(path: Path | None = None) -> list[Probe]:
    from harness_plugins.apigen import read_records

    path = path or default_seed_file()
    index, probes = _function_index(), []
    for number, row in enumerate(read_records(path)):
        sets = {index[a["name"]][0] for a in row["answers"] if a["name"] in index}
        if len(sets) != 1 or any(a["name"] not in index for a in row["answers"]):
            continue
        ident = f"apigen:{row.get('id', number)}"
        calls = tuple(
            {"name": a["name"], "arguments": dict(a["arguments"])} for a in row["answers"]
        )
        probes.append(Probe(ident, sets.pop(), row["query"], calls, source=f"{path.name}#{number}"))
    return probes


def augment(seeds: list[Probe], kinds: tuple[str, ...], seed: int = 0) -> Iterator[Probe]:
    """Every requested augmentation of every seed, in a fixed order (reproducible)."""
    rng = random.Random(seed)
    for index, probe in enumerate(seeds):
        if "seed" in kinds:
            yield probe
        if "paraphrase" in kinds:
            text = rng.choice(PARAPHRASES).format(q=probe.query)
            yield replace(probe, id=f"{probe.id}/paraphrase", query=text, augmentation="paraphrase")
        if "irrelevant" in kinds:
            text = f"{rng.choice(IRRELEVANT)} {probe.query}"
            yield replace(probe, id=f"{probe.id}/irrelevant", query=text, augmentation="irrelevant")
        if "constraint" in kinds and (extra := _constrained(probe)) is not None:
            yield extra
        if "similar_names" in kinds and (extra := _similar(probe)) is not None:
            yield extra
        if "multi_call" in kinds and (extra := _multi(probe, seeds[index + 1 :])) is not None:
            yield extra


def _constrained(probe: Probe) -> Probe | None:
    if len(probe.expected) != 1:
        return None
    call = probe.expected[0]
    rule = CONSTRAINTS.get((probe.toolset, call["name"]))
    if rule is None or rule[0] in call["arguments"]:
        return None
    arg, value, sentence = rule
    new_call = {"name": call["name"], "arguments": {**call["arguments"], arg: value}}
    return replace(
        probe,
        id=f"{probe.id}/constraint",
        query=f"{probe.query} {sentence}",
        expected=(new_call,),
        augmentation="constraint",
    )


def _similar(probe: Probe) -> Probe | None:
    if len(probe.expected) != 1:
        return None
    call = probe.expected[0]
    rule = SIMILAR.get((probe.toolset, call["name"]))
    if rule is None:
        return None
    sibling, extra = rule
    offered = tuple(n for n in TOOLSETS[probe.toolset].names() if n != call["name"])
    new_call = {"name": sibling, "arguments": {**call["arguments"], **extra}}
    return replace(
        probe,
        id=f"{probe.id}/similar_names",
        expected=(new_call,),
        offered=offered,
        augmentation="similar_names",
    )


def _multi(probe: Probe, later: list[Probe]) -> Probe | None:
    partner = next(
        (
            p
            for p in later
            if p.toolset == probe.toolset
            and p.expected != probe.expected
            and p.augmentation == "seed"
        ),
        None,
    )
    if partner is None:
        return None
    query = f"{probe.query.rstrip()} Also: {partner.query}"
    return replace(
        probe,
        id=f"{probe.id}+{partner.id}",
        query=query,
        expected=probe.expected + partner.expected,
        augmentation="multi_call",
    )
