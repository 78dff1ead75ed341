"""The repair experiment: distil a low-bit student back towards its reference with a uniform
learning rate, or with per-layer rates from a divergence family, same steps and same seeds.

One arm is one :class:`Arm` (a name and per-layer multipliers); one run is an arm under a seed.
The seed picks the training windows, so arms under the same seed see the same batches and can
be compared pair by pair. Only the decoder blocks learn: the token embedding and the head it is
tied to stay as the student's file has them (training a tied pair apart would give a model no
GGUF could hold).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from . import _measures
from ._llama import Llama
from ._torch import torch


@dataclass(frozen=True)
class Arm:
    """A learning-rate scheme: a multiplier per block (layer 1..L); uniform is all ones."""

    name: str
    multipliers: tuple[float, ...]


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    lr: float
    window: int
    batch: int


@dataclass(frozen=True)
class QA:
    """A multiple-choice question scored by log-likelihood: right when the answer is the most
    likely of the choices after the prompt."""

    prompt: str
    choices: tuple[str, ...]
    answer: int


def windows(ids: Sequence[int], size: int, count: int, rng: np.random.Generator) -> list[list[int]]:
    """``count`` random windows of ``size`` tokens from a token stream."""
    starts = rng.integers(0, max(1, len(ids) - size), size=count)
    return [list(ids[s : s + size]) for s in starts]


def token_kl(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """Mean over positions of KL(teacher || student) over the vocabulary (log-probs in)."""
    return (teacher.exp() * (teacher - student)).sum(-1).mean()


def param_groups(model: Llama, arm: Arm, lr: float) -> list[dict[str, Any]]:
    """One optimizer group per block at ``lr * multiplier``; embedding and head frozen."""
    for p in (*model.embed.parameters(), *model.head.parameters(), model.norm):
        p.requires_grad_(False)
    return [
        {"params": list(block.parameters()), "lr": lr * mult}
        for block, mult in zip(model.blocks, arm.multipliers, strict=True)
    ]


def distil(
    student: Llama,
    teacher: Llama,
    stream: Sequence[int],
    arm: Arm,
    settings: TrainSettings,
    seed: int,
) -> tuple[Llama, list[float]]:
    """A trained copy of ``student`` and its loss per step (Adam, full-vocabulary KL)."""
    model = copy.deepcopy(student).train()
    optimizer = torch.optim.Adam(param_groups(model, arm, settings.lr))
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(settings.steps):
        batch = windows(stream, settings.window, settings.batch, rng)
        loss = torch.stack([_window_loss(model, teacher, ids) for ids in batch]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model.eval(), losses


def _window_loss(model: Llama, teacher: Llama, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        target = teacher.run(ids).logprobs
    return token_kl(target, model.run(ids).logprobs)


@torch.no_grad()
def heldout_kl(teacher: Llama, model: Llama, texts: Sequence[list[int]]) -> float:
    """Mean token KL(teacher || model) over held-out token lists."""
    values = [float(token_kl(teacher.run(ids).logprobs, model.run(ids).logprobs)) for ids in texts]
    return float(np.mean(values))


@torch.no_grad()
def qa_accuracy(model: Llama, encode: Any, questions: Sequence[QA]) -> float:
    """Share of questions whose right answer is the most likely choice."""
    right = 0
    for qa in questions:
        choices = [encode(c, bos=False) for c in qa.choices]
        scores = model.choice_logprobs(encode(qa.prompt), choices)
        right += int(int(np.argmax(scores)) == qa.answer)
    return right / len(questions)


def _continuation_logprob(model: Llama, encode: Any, prompt: str, continuation: str) -> float:
    context = encode(prompt)
    ids = context + encode(continuation, bos=False)
    rows = model.run(ids).logprobs
    return float(sum(rows[i - 1, ids[i]] for i in range(len(context), len(ids))))


def interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval over seeds (the interval is the mean itself for one value)."""
    data = np.asarray(values, dtype=np.float64)
    mean = float(data.mean())
    if data.size < 2 or float(data.std()) == 0.0:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, data.size - 1) * stats.sem(data))
    return mean, mean - half, mean + half


def multipliers_from(
    table: list[dict[str, Any]], key: str, mapping: str, low: float, high: float
) -> tuple[float, ...]:
    """Block multipliers (layers 1..L) from a per-layer table's divergence ``key``."""
    blocks = [e for e in table if e["layer"] >= 1]
    values = [float(e.get(key) or 0.0) for e in blocks]
    return tuple(_measures.lr_multipliers(values, mapping, low, high, 1.0))


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - started


def finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)
