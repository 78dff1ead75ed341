"""How much of a score is the prompt format: the analysis behind ``results.json``'s
``format_sensitivity`` and the report's "Format sensitivity" section.

It reads records only (``format``: the configuration's name, ``format_item``: the sample played
under every configuration; see :mod:`harness._formats`), so it serves any task that declares
format axes. Per (task, backend, metric):

- the score per configuration (mean over its records, ``n``);
- the spread (max - min over configurations) and the standard deviation (``statistics.stdev``,
  as BFCL's ``format_sensitivity`` runner reports it), each with a percentile bootstrap
  interval over *items*: one resample draws items with replacement and keeps each drawn item
  under every configuration, so the configurations stay paired as they were played;
- per axis, its effect: the mean absolute difference between configurations that differ in
  that axis alone (BFCL's 26 configurations are not a full grid: comparing marginal means
  would mix axes), with its interval; the axis with the largest effect is named (none when
  no axis moves the score);
- per (task, metric) with two backends or more, how stable their ranking is across
  configurations: Kendall's tau between each pair of configurations' scores, its mean and min.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from collections.abc import Mapping
from itertools import combinations
from typing import Any

from harness._formats import parse_format

JSON = dict[str, Any]
RESAMPLES = 2_000
LEVEL = 0.95
SEED = 0
#: cells of one weight matrix at most (resamples are drawn in chunks under it)
CHUNK_CELLS = 4_000_000


class Table:
    """One (task, backend, metric): the mean value per (item, configuration) cell."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str], list[float]] = {}

    def add(self, item: str, config: str, value: float) -> None:
        cell = self.cells.setdefault((item, config), [0.0, 0.0])
        cell[0] += value
        cell[1] += 1.0

    def matrix(self) -> tuple[list[str], list[str], Any, Any]:
        """(items, configurations in first-seen order, sums, counts) as numpy arrays."""
        import numpy as np

        items = list(dict.fromkeys(i for i, _ in self.cells))
        configs = list(dict.fromkeys(c for _, c in self.cells))
        row = {k: n for n, k in enumerate(items)}
        col = {k: n for n, k in enumerate(configs)}
        sums, counts = np.zeros((len(items), len(configs))), np.zeros((len(items), len(configs)))
        for (item, config), (total, count) in self.cells.items():
            sums[row[item], col[config]] = total / count
            counts[row[item], col[config]] = 1.0
        return items, configs, sums, counts


def collect(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], Table]:
    """Tables per (task, backend, metric) from the records that carry ``format``."""
    tables: dict[tuple[str, str, str], Table] = {}
    for rec in records:
        config = rec.get("format")
        if not isinstance(config, str):
            continue
        item = str(rec.get("format_item", rec.get("sample_id")))
        for metric, value in (rec.get("scores") or {}).items():
            if isinstance(value, int | float) and not math.isnan(value):
                key = (str(rec["task"]), str(rec["backend"]), metric)
                tables.setdefault(key, Table()).add(item, config, float(value))
    return tables


def analyse(records: Iterable[Mapping[str, Any]], resamples: int = RESAMPLES) -> JSON:
    """``{task: {"backends": {backend: {metric: ...}}, "ranking": {metric: ...}}}``; empty
    when no record carries a configuration."""
    out: JSON = {}
    for (task, backend, metric), table in sorted(collect(records).items()):
        entry = out.setdefault(task, {"backends": {}, "ranking": {}})
        entry["backends"].setdefault(backend, {})[metric] = summarise(table, resamples)
    for entry in out.values():
        entry["ranking"] = rankings(entry["backends"])
    return out


# --- one (task, backend, metric) --------------------------------------------------------------


def summarise(table: Table, resamples: int = RESAMPLES) -> JSON:
    """Scores per configuration, spread, std and axis effects, with bootstrap intervals."""
    items, configs, values, present = table.matrix()
    means = _means(values.sum(axis=0), present.sum(axis=0))
    pairs = axis_pairs(configs)
    replicates = bootstrap_means(values, present, resamples)
    low, high = (1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2
    counts = present.sum(axis=0)
    out: JSON = {
        "configurations": {
            c: {"value": _num(m), "n": int(n)}
            for c, m, n in zip(configs, means, counts, strict=True)
        },
        "n_items": len(items),
        "resamples": resamples,
        "level": LEVEL,
    }
    for name, stat in (("spread", spread), ("std", stdev)):
        out[name] = _num(stat(means[None, :])[0])
        out[f"{name}_ci"] = _interval(stat(replicates), low, high)
    out |= _extremes(configs, means)
    out["axes"] = _axes(configs, means, replicates, pairs, low, high)
    effects = {a: v["effect"] for a, v in out["axes"].items() if v["effect"]}
    out["most_sensitive_axis"] = max(effects, key=lambda a: effects[a]) if effects else None
    return out


def _means(sums: Any, counts: Any) -> Any:
    import numpy as np

    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def bootstrap_means(values: Any, present: Any, resamples: int, seed: int = SEED) -> Any:
    """(resamples, configurations): each configuration's mean over items drawn with
    replacement (a missing cell is left out of its configuration's mean)."""
    import numpy as np

    n_items = values.shape[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_CELLS // max(n_items, 1))
    parts = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        weights = rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=size)
        parts.append(_means(weights @ (values * present), weights @ present))
    return np.vstack(parts) if parts else np.empty((0, values.shape[1]))


def spread(means: Any) -> Any:
    """max - min over configurations, per row."""
    import numpy as np

    with np.errstate(invalid="ignore"):
        return np.nanmax(means, axis=1) - np.nanmin(means, axis=1)


def stdev(means: Any) -> Any:
    """Sample standard deviation over configurations (ddof 1, as ``statistics.stdev``)."""
    import numpy as np

    if means.shape[1] < 2:
        return np.zeros(means.shape[0])
    return np.nanstd(means, axis=1, ddof=1)


def axis_pairs(configs: list[str]) -> dict[str, list[tuple[int, int]]]:
    """Per axis: the index pairs of configurations that differ in that axis alone."""
    parsed = [parse_format(c) for c in configs]
    out: dict[str, list[tuple[int, int]]] = {}
    for axis in dict.fromkeys(a for p in parsed for a in p):
        out[axis] = [
            (i, j)
            for i, j in combinations(range(len(configs)), 2)
            if _differ_only_in(parsed[i], parsed[j], axis)
        ]
    return out


def _differ_only_in(a: dict[str, str], b: dict[str, str], axis: str) -> bool:
    return a.get(axis) != b.get(axis) and all(
        a.get(k) == b.get(k) for k in a.keys() | b.keys() if k != axis
    )


def _axes(
    configs: list[str],
    means: Any,
    replicates: Any,
    pairs: dict[str, list[tuple[int, int]]],
    low: float,
    high: float,
) -> JSON:
    out: JSON = {}
    for axis, index in pairs.items():
        effect = _pair_effect(means[None, :], index)
        out[axis] = {
            "effect": _num(effect[0]) if index else None,
            "effect_ci": _interval(_pair_effect(replicates, index), low, high) if index else None,
            "pairs": len(index),
            "values": _marginals(configs, means, axis),
        }
    return out


def _pair_effect(means: Any, index: list[tuple[int, int]]) -> Any:
    """Mean |difference| over the configuration pairs, per row."""
    import numpy as np

    if not index:
        return np.full(means.shape[0], np.nan)
    left, right = zip(*index, strict=True)
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.abs(means[:, list(left)] - means[:, list(right)]), axis=1)


def _marginals(configs: list[str], means: Any, axis: str) -> dict[str, float | None]:
    """Mean score over the configurations with each value of the axis (descriptive only)."""
    groups: dict[str, list[float]] = {}
    for config, mean in zip(configs, means, strict=True):
        value = parse_format(config).get(axis)
        if value is not None and not math.isnan(mean):
            groups.setdefault(value, []).append(float(mean))
    return {v: _num(statistics.fmean(m)) for v, m in groups.items()}


def _extremes(configs: list[str], means: Any) -> JSON:
    """The best and worst configurations; none when every configuration scores the same."""
    scored = [(float(m), c) for c, m in zip(configs, means, strict=True) if not math.isnan(m)]
    if not scored or max(scored)[0] == min(scored)[0]:
        return {"best": None, "worst": None}
    return {"best": max(scored)[1], "worst": min(scored)[1]}


def _interval(values: Any, low: float, high: float) -> list[float | None]:
    import numpy as np

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [None, None]
    return [_num(np.quantile(finite, low)), _num(np.quantile(finite, high))]


def _num(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(value, 10)


# --- across backends ---------------------------------------------------------------------------


def rankings(backends: Mapping[str, Mapping[str, JSON]]) -> JSON:
    """Per metric with two backends or more: Kendall's tau between the backends' scores under
    each pair of configurations (mean, min, pairs) and the order under each configuration."""
    out: JSON = {}
    metrics = dict.fromkeys(m for per in backends.values() for m in per)
    for metric in metrics:
        scores = {b: per[metric]["configurations"] for b, per in backends.items() if metric in per}
        if len(scores) >= 2:
            out[metric] = _ranking(scores)
    return out


def _ranking(scores: Mapping[str, Mapping[str, JSON]]) -> JSON:
    from scipy.stats import kendalltau

    names = list(scores)
    configs = [c for c in next(iter(scores.values())) if all(c in s for s in scores.values())]
    column = {c: [scores[b][c]["value"] for b in names] for c in configs}
    taus = []
    for a, b in combinations(configs, 2):
        if None not in column[a] and None not in column[b]:
            tau = kendalltau(column[a], column[b]).statistic
            if not math.isnan(tau):
                taus.append(float(tau))
    order = {c: sorted(names, key=lambda n: -(column[c][names.index(n)] or 0.0)) for c in configs}
    return {
        "kendall_tau_mean": _num(statistics.fmean(taus)) if taus else None,
        "kendall_tau_min": _num(min(taus)) if taus else None,
        "pairs": len(taus),
        "order": order,
    }
