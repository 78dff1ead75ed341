"""The divergence measures, each a small function of arrays, so each can be tested alone.

Similarity of hidden states (relative L2, cosine, linear CKA), attention maps (Jensen-Shannon per
query row), gradients and Hessian-vector products (autograd, or central finite differences where
a runtime has none), the output statistics llama.cpp's ``perplexity --kl-divergence`` prints,
and the mapping from per-layer divergences to learning-rate multipliers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Sequence

import numpy as np

from ._torch import torch

Tensor = torch.Tensor

TINY = 1e-12
LN2 = math.log(2.0)


# ------------------------------------------------------------------ hidden states
def rel_l2(reference: np.ndarray, other: np.ndarray) -> float:
    """``||R - C|| / ||R||`` over the whole [tokens, dim] matrix (0 when equal)."""
    return float(np.linalg.norm(reference - other) / max(np.linalg.norm(reference), TINY))


def cosine(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean over tokens of the cosine between the two models' vectors (1 when equal)."""
    dot = (reference * other).sum(-1)
    norms = np.linalg.norm(reference, axis=-1) * np.linalg.norm(other, axis=-1)
    return float((dot / np.maximum(norms, TINY)).mean())


def linear_cka(reference: np.ndarray, other: np.ndarray) -> float:
    """Linear centred kernel alignment of two [tokens, features] matrices (Kornblith et al.
    2019): 1 for representations equal up to rotation and scale; widths may differ."""
    x = reference - reference.mean(0, keepdims=True)
    y = other - other.mean(0, keepdims=True)
    if x.shape[0] < max(x.shape[1], y.shape[1]):  # fewer tokens than features: Gram form
        kx, ky = x @ x.T, y @ y.T
        cross, scale = float((kx * ky).sum()), float(np.linalg.norm(kx) * np.linalg.norm(ky))
    else:
        cross = float(np.linalg.norm(y.T @ x) ** 2)
        scale = float(np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    return cross / scale if scale > TINY else 1.0


# ------------------------------------------------------------------ attention
def js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (natural log, in [0, ln 2]) between matching rows."""
    m = 0.5 * (p + q)
    return 0.5 * (_kl_rows(p, m) + _kl_rows(q, m))


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    ratio = np.where(p > 0, p / np.maximum(q, TINY), 1.0)
    return np.asarray((p * np.log(ratio)).sum(-1))


def attention_js(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per head: JS between the two models' attention rows ([heads, queries, keys]), averaged
    over queries. Each causal row is a distribution over the keys it may see."""
    return np.asarray(js_rows(reference, other).mean(-1))


# ------------------------------------------------------------------ derivatives (autograd)
def gradient(fn: Callable[[Tensor], Tensor], at: Tensor) -> Tensor:
    """``d fn / d x`` at ``x = at`` for a scalar ``fn``."""
    x = at.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x), x)
    return grad


def hessian_quadratic_forms(
    fn: Callable[[Tensor], Tensor], at: Tensor, vectors: Sequence[Tensor]
) -> list[float]:
    """``v^T H v`` for each ``v``, by double backpropagation (Pearlmutter's trick): the terms
    of Hutchinson's trace estimate, whose mean over Rademacher ``v`` is ``tr(H)``."""
    x = at.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x), x, create_graph=True)
    forms = []
    for index, v in enumerate(vectors):
        keep = index < len(vectors) - 1
        (hv,) = torch.autograd.grad(grad, x, grad_outputs=v, retain_graph=keep)
        forms.append(float((hv * v).sum()))
    return forms


def rademacher(shape: Sequence[int], count: int, seed: int, dtype: torch.dtype) -> list[Tensor]:
    """``count`` seeded vectors of +-1: the same seed gives both models the same directions."""
    generator = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (count, *shape), generator=generator)
    return [(2 * s - 1).to(dtype) for s in signs]


# ------------------------------------------------------------------ derivatives (forward only)
def fd_directional(
    fn: Callable[[np.ndarray], float], at: np.ndarray, v: np.ndarray, eps: float
) -> float:
    """``grad . v`` by central differences: two forward passes, error O(eps^2)."""
    return (fn(at + eps * v) - fn(at - eps * v)) / (2 * eps)


def fd_quadratic_form(
    fn: Callable[[np.ndarray], float], at: np.ndarray, v: np.ndarray, eps: float, centre: float
) -> float:
    """``v^T H v`` by the second central difference (``centre`` is ``fn(at)``)."""
    return (fn(at + eps * v) - 2 * centre + fn(at - eps * v)) / eps**2


# ------------------------------------------------------------------ vectors
def vector_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two flattened arrays; two zero arrays count as aligned."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < TINY and nb < TINY:
        return 1.0
    return float((a.ravel() @ b.ravel()) / max(na * nb, TINY))


def relative_difference(a: float, b: float) -> float:
    """``|a - b| / (|a| + |b|)``: 0 when equal, 1 at most; suits signed curvature traces."""
    total = abs(a) + abs(b)
    return abs(a - b) / total if total > TINY else 0.0


# ------------------------------------------------------------------ output
def output_stats(
    reference: np.ndarray, other: np.ndarray, targets: Sequence[int]
) -> dict[str, float]:
    """The statistics ``llama-perplexity --kl-divergence`` prints, from two [tokens, vocab]
    log-probability arrays and the text's next tokens (``targets[t]`` follows position t)."""
    p = np.exp(reference)
    kl = (p * (reference - other)).sum(-1)
    rows = np.arange(len(targets))
    nll_ref, nll = -reference[rows, targets], -other[rows, targets]
    delta_p = np.exp(-nll) - np.exp(-nll_ref)
    return {
        "kl_mean": float(kl.mean()),
        "kl_median": float(np.median(kl)),
        "kl_p90": float(np.percentile(kl, 90)),
        "kl_p99": float(np.percentile(kl, 99)),
        "kl_max": float(kl.max()),
        "top1": float((reference.argmax(-1) == other.argmax(-1)).mean()),
        "delta_p_mean": float(delta_p.mean()),
        "ppl_reference": float(np.exp(nll_ref.mean())),
        "ppl": float(np.exp(nll.mean())),
        "ppl_delta": float(np.exp(nll.mean()) - np.exp(nll_ref.mean())),
        "tokens": len(targets),
    }


# ------------------------------------------------------------------ learning rates
def lr_multipliers(
    divergences: Sequence[float], mapping: str, low: float, high: float, temperature: float
) -> list[float]:
    """Per-layer learning-rate multipliers ``g(D_l)``: layers that diverge more learn faster.

    ``linear``: ``clip(D_l / mean(D), low, high)``; ``softmax``: ``L * softmax(D / (T mean D))``
    clipped; ``rank``: ``low`` for the least divergent layer up to ``high`` for the most.
    Equal divergences (or none) give 1 everywhere.
    """
    d = np.asarray(divergences, dtype=np.float64)
    mean = float(d.mean()) if d.size else 0.0
    if d.size == 0 or mean <= TINY or np.ptp(d) <= TINY * max(mean, 1.0):
        return [1.0] * int(d.size)
    if mapping == "linear":
        raw = d / mean
    elif mapping == "softmax":
        z = d / (temperature * mean)
        raw = d.size * np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    elif mapping == "rank":
        ranks = np.argsort(np.argsort(d))
        raw = low + (high - low) * ranks / (d.size - 1)
    else:
        raise ValueError(f"unknown mapping {mapping!r} (linear, softmax or rank)")
    return [float(x) for x in np.clip(raw, low, high)]
