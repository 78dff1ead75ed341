"""Prompt-format axes a task declares, and the names of their configurations.

A score moves with how functions are shown and how answers are asked for (BFCL V4's
``format_sensitivity`` set; xLAM's data unification). A task whose prompt has such axes
declares them (:meth:`harness.Task.format_axes`: axis -> values) and plays each sample under
one or more *configurations*. A configuration is named as BFCL names its own, ``axis=value``
pairs joined by ``&`` in the declared axis order (``ret_fmt=json&tool_call_tag=True&...``),
so a name says every axis value without a lookup table, and the analysis
(:mod:`harness._sensitivity`) needs no knowledge of the task.

A manifest asks for configurations with a ``formats`` list (:func:`formats_param`): ``all``
(the task's own set), a full name, or a partial name (``ret_fmt=json``) that selects every
configuration of the task's set agreeing with it. Records carry ``format`` (the name) and
``format_item`` (the sample played under every configuration), so aggregates fall out per
configuration and items pair across configurations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from harness._errors import InputError
from harness._schema import param

#: Axis name -> the values it can take, in a stable order.
FormatAxes = Mapping[str, Sequence[str]]
ALL = "all"


def format_name(values: Mapping[str, str], axes: FormatAxes) -> str:
    """The configuration's name: ``axis=value`` pairs in the declared axis order."""
    return "&".join(f"{axis}={values[axis]}" for axis in axes if axis in values)


def parse_format(name: str) -> dict[str, str]:
    """``{"axis": "value"}`` from a configuration name (the inverse of :func:`format_name`)."""
    pairs = (part.partition("=") for part in name.split("&") if part)
    return {axis: value for axis, _, value in pairs}


def format_pattern(axes: FormatAxes) -> str:
    """A regular expression a requested name must match: ``all`` or ``axis=value`` pairs of
    declared axes and values, joined by ``&`` (a manifest is refused before anything runs)."""
    pair = "|".join(
        f"{re.escape(axis)}=(?:{'|'.join(re.escape(v) for v in values)})"
        for axis, values in axes.items()
    )
    return f"^(?:{ALL}|(?:{pair})(?:&(?:{pair}))*)$"


def formats_hint(axes: FormatAxes) -> str:
    """The fix, in one line, for a name that is not a configuration."""
    listing = "; ".join(f"{axis}: {'|'.join(values)}" for axis, values in axes.items())
    return f"use 'all' or axis=value pairs joined by '&' ({listing})"


def formats_param(axes: FormatAxes, description: str, optional: bool = False) -> Any:
    """The ``formats`` parameter of a task with format axes: a list of names, ``[all]`` by
    default (``None`` when ``optional``: a task that plays no probe unless asked), checked
    against the axes when the manifest is validated (exit 2, one line)."""
    return param(
        None if optional else [ALL],
        description=description,
        schema={
            "minItems": 1,
            "uniqueItems": True,
            "items": {
                "type": "string",
                "pattern": format_pattern(axes),
                "x-hint": formats_hint(axes),
            },
        },
    )


def select_formats(
    requested: Sequence[str], axes: FormatAxes, configurations: Sequence[str]
) -> list[str]:
    """The configurations to play, in request order without repeats.

    ``all`` is the task's own set (``configurations``); a name giving every axis is that
    configuration; a partial name selects each configuration of the set that agrees with it.
    """
    chosen: list[str] = []
    for index, name in enumerate(requested):
        for config in _matches(index, name, axes, configurations):
            if config not in chosen:
                chosen.append(config)
    return chosen


def _matches(index: int, name: str, axes: FormatAxes, configurations: Sequence[str]) -> list[str]:
    if name == ALL:
        return list(configurations)
    wanted = parse_format(name)
    _check(index, name, wanted, axes)
    if len(wanted) == len(axes):
        return [format_name(wanted, axes)]
    found = [c for c in configurations if wanted.items() <= parse_format(c).items()]
    if not found:
        raise InputError(f"formats[{index}]: {name!r} selects none of the task's configurations")
    return found


def _check(index: int, name: str, wanted: dict[str, str], axes: FormatAxes) -> None:
    """Refuse what the schema's pattern lets through: an axis named twice."""
    if len(wanted) != name.count("&") + 1:
        raise InputError(f"formats[{index}]: {name!r} names an axis twice; {formats_hint(axes)}")
    for axis, value in wanted.items():
        if axis not in axes or value not in axes[axis]:
            raise InputError(f"formats[{index}]: {name!r}: {formats_hint(axes)}")
