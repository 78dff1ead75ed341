"""The statistics of ``harness compare``: is a difference between two columns real?

Pure functions over arrays of per-sample values. The bootstrap and the binomial test come from
SciPy (imported lazily, so ``import harness`` stays fast): a well-kept library, not our own.

Why BCa: the bias-corrected and accelerated bootstrap is second-order accurate, so its
intervals keep their coverage on the skewed differences that 0/1 metrics give on small
samples better than the plain percentile interval does. BCa needs a jackknife with some spread:
when it cannot be computed (NaN, as on degenerate data) the percentile interval is used; when
every value is the same there is nothing to resample and the interval is that value.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

Interval = tuple[float, float]
NO_INTERVAL: Interval = (math.nan, math.nan)
MEMORY_BUDGET = 2_000_000  # values resampled at once (16 MB of float64), whatever n is


def bootstrap_ci(
    values: Sequence[float], resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> Interval:
    """Bootstrap interval of the mean of ``values`` (paired differences B - A, one per sample).

    Resampling the differences keeps each sample's pairing, so what both columns find hard
    cancels out. NaN with fewer than 2 values: one sample says nothing about the spread.
    """
    import numpy as np

    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return NO_INTERVAL
    return _bootstrap((data,), _mean, resamples, seed, level)


def bootstrap_diff_ci(
    a: Sequence[float],
    b: Sequence[float],
    resamples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Bootstrap interval of mean(b) - mean(a) for samples that do not pair (different
    samples on each side): each side is resampled on its own, as Welch's test treats them.
    NaN when a side has fewer than 2 values."""
    import numpy as np

    data = (np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    if min(d.size for d in data) < 2:
        return NO_INTERVAL
    return _bootstrap(data, _mean_diff, resamples, seed, level)


def mcnemar_exact(better: int, worse: int) -> float:
    """McNemar's exact test: two-sided p of the discordant pairs splitting as they did if
    either way were equally likely (binomial, p = 0.5). Concordant pairs carry no evidence;
    with no discordant pair there is none either way (p = 1)."""
    if better + worse == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(worse, better + worse, 0.5).pvalue)


def flips(a: Sequence[float], b: Sequence[float]) -> tuple[int, int]:
    """(better, worse) of paired 0/1 values: samples A got wrong and B right, and the
    reverse. The counts McNemar's test reads; a mean hides them when they cancel out."""
    better = sum(1 for x, y in zip(a, b, strict=True) if x == 0 and y == 1)
    worse = sum(1 for x, y in zip(a, b, strict=True) if x == 1 and y == 0)
    return better, worse


def is_binary(*columns: Sequence[float]) -> bool:
    """Whether every value is 0 or 1 (a right/wrong metric, after averaging any repeats)."""
    return all(v in (0.0, 1.0) for column in columns for v in column)


def _mean(x: Any, axis: int = -1) -> Any:
    return x.mean(axis=axis)


def _mean_diff(a: Any, b: Any, axis: int = -1) -> Any:
    return b.mean(axis=axis) - a.mean(axis=axis)


def _bootstrap(
    data: tuple[Any, ...], statistic: Callable[..., Any], resamples: int, seed: int, level: float
) -> Interval:
    """BCa, else percentile; a constant sample gives its own value (nothing to resample)."""
    if all(float(d.min()) == float(d.max()) for d in data):
        value = float(statistic(*data))
        return value, value
    interval = _scipy_interval(data, statistic, resamples, seed, level, "BCa")
    if math.isnan(interval[0]) or math.isnan(interval[1]):
        interval = _scipy_interval(data, statistic, resamples, seed, level, "percentile")
    return interval


def _scipy_interval(
    data: tuple[Any, ...],
    statistic: Callable[..., Any],
    resamples: int,
    seed: int,
    level: float,
    method: str,
) -> Interval:
    import numpy as np
    from scipy.stats import bootstrap

    batch = max(1, MEMORY_BUDGET // max(d.size for d in data))
    with warnings.catch_warnings():  # BCa on degenerate data warns, then gives NaN: handled
        warnings.simplefilter("ignore")
        result = bootstrap(
            data,
            statistic,
            n_resamples=resamples,
            batch=batch,
            vectorized=True,
            confidence_level=level,
            method=method,
            **{_rng_keyword(): np.random.default_rng(seed)},
        )
    low, high = result.confidence_interval
    return float(low), float(high)


def _rng_keyword() -> str:
    """SciPy 1.15 renamed ``random_state`` to ``rng``; both take a seeded Generator."""
    from scipy.stats import bootstrap

    return "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
