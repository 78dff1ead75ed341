"""Repeats (``run.repeats: k``): each sample played k times, and what k plays of one sample
say beyond their mean: pass@k, pass^k and consistency.

Pure functions and one small accumulator: no I/O, no knowledge of run directories. The
aggregates stream: per (backend, task, subtask, metric) and per sample, only two counts are
kept (``n`` scored repeats, ``c`` successes), for metrics whose every value is 0 or 1.

- pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", eq. 1): the
  chance that at least one of k repeats drawn without replacement from the sample's n
  succeeds, unbiased: ``1 - C(n - c, k) / C(n, k)``.
- pass^k (Yao et al. 2024, "τ-bench", section 5): the chance that all k drawn repeats
  succeed: ``C(c, k) / C(n, k)``; it falls as k grows when a model is right only sometimes.
- consistency: the share of samples (with at least 2 scored repeats) whose repeats all agree.

Each is averaged over the samples with at least k scored repeats.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable
from collections.abc import Iterator
from math import comb

#: seeds stay below 2**31 so that every backend's seed type holds them
SEED_MODULUS = 2**31


def repeat_seed(seed: int | None, repeat: int) -> int | None:
    """The seed of repeat ``repeat``: the run's own for repeat 0 (a run with one repeat is
    exactly a run without repeats), else ``int(sha256(f"{seed}:{repeat}").hexdigest()[:8],
    16) % 2**31`` with an unset seed taken as 0. A hash, not ``seed + repeat``, so that
    repeat 1 of seed 0 is not repeat 0 of seed 1."""
    if repeat == 0:
        return seed
    text = f"{0 if seed is None else seed}:{repeat}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % SEED_MODULUS


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al.'s unbiased pass@k of one sample: ``1 - C(n - c, k) / C(n, k)``, the chance
    that some of k of its n repeats (c of them right) succeeds. ``k <= n``."""
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """τ-bench's pass^k of one sample: ``C(c, k) / C(n, k)``, the chance that all of k of its
    n repeats (c of them right) succeed. ``k <= n``."""
    return comb(c, k) / comb(n, k)


def estimates(counts: Iterable[tuple[int, int]]) -> Iterator[tuple[str, array[float]]]:
    """``(name, per-sample values)`` for ``pass@k``, ``pass^k`` (k = 1 up to the most
    repeats a sample has) and ``consistency``, from each sample's ``(n, c)``. A sample with
    fewer than k scored repeats is left out of k's values; consistency needs 2."""
    pairs = [(n, c) for n, c in counts if n > 0]
    for k in range(1, max((n for n, _ in pairs), default=0) + 1):
        eligible = [(n, c) for n, c in pairs if n >= k]
        yield f"pass@{k}", array("d", (pass_at_k(n, c, k) for n, c in eligible))
        yield f"pass^{k}", array("d", (pass_hat_k(n, c, k) for n, c in eligible))
    agree = [float(c in (0, n)) for n, c in pairs if n >= 2]
    if agree:
        yield "consistency", array("d", agree)


class RepeatCounts:
    """Per key (backend, task, subtask, metric) and sample: ``[n, c]``. A key that meets a
    value other than 0 or 1 is dropped for good (pass@k is defined for successes only), which
    also frees its counts."""

    def __init__(self) -> None:
        self.samples: dict[tuple[str, str, str, str], dict[str, list[int]]] = {}
        self.not_binary: set[tuple[str, str, str, str]] = set()

    def add(self, key: tuple[str, str, str, str], sample_id: str, value: float | None) -> None:
        if value is None or value != value or key in self.not_binary:
            return  # None and NaN are no score
        if value not in (0.0, 1.0):
            self.not_binary.add(key)
            self.samples.pop(key, None)
            return
        counts = self.samples.setdefault(key, {}).setdefault(sample_id, [0, 0])
        counts[0] += 1
        counts[1] += value == 1.0
