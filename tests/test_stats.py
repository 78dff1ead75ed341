"""The statistics of ``harness compare``: McNemar's exact test against a table computed by
hand, the bootstrap interval's coverage on simulated data, seeding and degenerate inputs."""

from __future__ import annotations

import math
from math import comb

import numpy as np
import pytest

from harness._stats import bootstrap_ci
from harness._stats import bootstrap_diff_ci
from harness._stats import flips
from harness._stats import is_binary
from harness._stats import mcnemar_exact


def test_mcnemar_exact_on_a_table_computed_by_hand() -> None:
    # 1 discordant pair one way, 9 the other: 2 * P(X <= 1), X ~ Binomial(10, 1/2)
    expected = 2 * (comb(10, 0) + comb(10, 1)) / 2**10
    assert expected == 0.021484375
    assert mcnemar_exact(1, 9) == pytest.approx(expected, abs=1e-12)
    assert mcnemar_exact(9, 1) == pytest.approx(expected, abs=1e-12)  # two-sided: symmetric
    assert mcnemar_exact(5, 5) == pytest.approx(1.0)
    assert mcnemar_exact(0, 3) == pytest.approx(0.25)  # 2 * (1/2)^3


def test_mcnemar_without_discordant_pairs_is_1() -> None:
    assert mcnemar_exact(0, 0) == 1.0


def test_flips_count_each_direction() -> None:
    a = [1, 1, 0, 0, 1, 0]
    b = [1, 0, 1, 1, 0, 0]
    assert flips(a, b) == (2, 2)  # better: A wrong, B right; worse: A right, B wrong
    assert flips([1, 1, 1], [0, 1, 0]) == (0, 2)
    assert is_binary(a, b) and not is_binary([0.5], [1.0])


def test_bootstrap_interval_covers_the_true_difference_about_95_percent() -> None:
    """1,000 simulated comparisons of 50 paired samples (differences ~ Normal(0.3, 1)):
    a 95% interval must cover 0.3 in about 95% of them."""
    rng = np.random.default_rng(12345)
    true = 0.3
    covered = 0
    for i in range(1000):
        low, high = bootstrap_ci(rng.normal(true, 1.0, 50), resamples=2000, seed=i)
        covered += low <= true <= high
    assert 0.92 <= covered / 1000 <= 0.98, covered


def test_the_unpaired_interval_covers_the_true_difference() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    for i in range(300):
        a, b = rng.normal(0.0, 1.0, 40), rng.normal(0.5, 2.0, 60)
        low, high = bootstrap_diff_ci(a, b, resamples=1000, seed=i)
        covered += low <= 0.5 <= high
    assert 0.90 <= covered / 300 <= 0.99, covered


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    values = np.random.default_rng(0).normal(0, 1, 30).tolist()
    first = bootstrap_ci(values, resamples=500, seed=3)
    assert bootstrap_ci(values, resamples=500, seed=3) == first
    assert bootstrap_ci(values, resamples=500, seed=4) != first
    a, b = values[:15], values[15:]
    assert bootstrap_diff_ci(a, b, 500, 3) == bootstrap_diff_ci(a, b, 500, 3)


def test_the_interval_brackets_the_mean() -> None:
    values = [0.0, 1.0, 1.0, -1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    low, high = bootstrap_ci(values, resamples=2000)
    assert low < float(np.mean(values)) < high
    assert low >= -1.0 and high <= 1.0


def test_degenerate_data() -> None:
    assert bootstrap_ci([0.0, 0.0, 0.0]) == (0.0, 0.0)  # nothing varies: BCa would be NaN
    assert bootstrap_ci([0.25] * 5) == (0.25, 0.25)
    assert all(math.isnan(v) for v in bootstrap_ci([1.0]))  # one sample: no spread known
    assert all(math.isnan(v) for v in bootstrap_diff_ci([1.0], [0.0, 1.0]))
    assert bootstrap_diff_ci([1.0, 1.0], [0.0, 0.0]) == (-1.0, -1.0)
    # almost constant: BCa's jackknife can be degenerate; an interval still comes back
    low, high = bootstrap_ci([0.0] * 29 + [1.0], resamples=1000)
    assert not math.isnan(low) and low <= 1 / 30 <= high
