"""Forward-only layer-wise diagnosis: the same table as :mod:`._diagnose` for models that can
only be run forward (ONNX Runtime: no autograd; intermediate tensors only as graph outputs).

A :class:`ForwardModel` runs a probe and can *override* the hidden state at one boundary
(``override=(l, h)``: boundary ``l`` holds ``h`` and the rest of the model runs from it). That
is all the diagnosis needs:

- **local** hidden and attention: ``C.forward(ids, override=(l-1, h^R_{l-1}))`` gives C's block
  ``l`` on the reference's input, compared with ``h^R_l`` (and R's attention of block ``l``);
- **path**: ``C.forward(ids)`` against ``R.forward(ids)``;
- **derivatives**, by finite differences. With ``y = sum_t log p(g_t)`` (``g``: the reference's
  greedy next tokens), ``f_X(x)`` is ``y`` after X's block ``l`` on input ``x`` followed by the
  *reference's* remaining blocks and head. For the same seeded Rademacher ``v_1..v_k`` for both
  models, at ``x = h^R_{l-1}`` and step ``eps``:

  * Jacobian alignment: the sketch ``[(f_X(x + eps v_i) - f_X(x - eps v_i)) / 2 eps]_i``
    (``grad f_X . v_i``, a Johnson-Lindenstrauss sketch of the gradient), ``jacobian_cos`` the
    cosine of R's and C's sketches; the error of the cosine falls like ``1/sqrt(k)``;
  * curvature: ``mean_i (f_X(x + eps v_i) - 2 f_X(x) + f_X(x - eps v_i)) / eps^2``, the
    Hutchinson estimate of ``tr(d2 f_X / dx2)``.

This is the *full-tail* version of the autograd definitions in :mod:`._diagnose`, which
linearise the tail (``s_X(x) = G_l . block_X(x)`` with ``G_l = dy/dh^R_l`` fixed). For R both
gradients are ``dy/dh^R_{l-1}``; for C the full tail evaluates ``dy/dh_l`` at C's block output
rather than R's, a second-order difference. The curvatures differ by design: ``f_X`` includes
the tail's own curvature (``J^T H_tail J``), ``s_X`` only the block's. Both versions give
exactly zero divergence at a layer whose block is unchanged: ``f_C`` and ``f_R`` are then the
same function, evaluated at the same points.

The step is relative: ``eps = rel_eps * rms(x)``, so the perturbation ``eps v`` has norm
``rel_eps * ||x||`` whatever the layer's scale (hidden states grow with depth). Each layer
also reports ``fd_asymmetry``, ``mean_i |d+ + d-| / (|d+| + |d-|)`` with
``d+- = f_R(x +- eps v_i) - f_R(x)``: near 0 when the step is in the linear regime (the
Jacobian sketch is trustworthy), near 1 when curvature or rounding dominate.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import Protocol

import numpy as np
import torch

from . import _measures as m
from ._diagnose import ProbeOptions
from ._diagnose import _hidden
from ._llama import Llama

#: Default relative step: the central difference's truncation error (O(eps^2)) against the
#: rounding of a float32 runtime (O(u / eps)); measured on SmolLM2 (docs/layerwise.md).
REL_EPS = 1e-2
DERIVATIVE_FAMILIES = {"jacobian", "curvature"}


@dataclass(frozen=True)
class ForwardTrace:
    """One forward pass as float64 arrays: L+1 hidden states [T, d], L attention maps
    [H, T, T] (None when the runtime cannot give them), log-probabilities [T, V]."""

    hidden: list[np.ndarray]
    attention: list[np.ndarray] | None
    logprobs: np.ndarray


class ForwardModel(Protocol):
    """A model that runs forward only, with one boundary optionally overridden."""

    layers: int

    def forward(
        self, ids: Sequence[int], override: tuple[int, np.ndarray] | None = None
    ) -> ForwardTrace:
        """``override=(l, h)``: boundary ``l`` (0 = embedding output, ``l`` = block ``l-1``'s
        output) holds ``h`` [T, d] and everything after it runs from there."""
        ...


class TorchForward:
    """:class:`ForwardModel` over the plain-torch :class:`Llama`. The plain run of the last
    probe is kept, so an override at ``l`` runs only the blocks after it."""

    def __init__(self, llama: Llama) -> None:
        self.llama = llama
        self.layers = llama.config.layers
        self._plain: tuple[tuple[int, ...], ForwardTrace] | None = None

    def forward(
        self, ids: Sequence[int], override: tuple[int, np.ndarray] | None = None
    ) -> ForwardTrace:
        base = self._base(ids)
        if override is None:
            return base
        start, h = override
        _check_override(start, h, base)
        dtype = self.llama.embed.weight.dtype
        x = torch.as_tensor(np.asarray(h), dtype=dtype)
        hidden, attention = list(base.hidden[:start]), list(base.attention or [])[:start]
        with torch.no_grad():
            rope = self.llama.rope(x.shape[0], dtype)
            hidden.append(_np(x))
            for block in self.llama.blocks[start:]:
                x, probs = block(x, rope)
                hidden.append(_np(x))
                attention.append(_np(probs))
            logprobs = _np(self.llama.logprobs(x))
        return ForwardTrace(hidden, attention, logprobs)

    def _base(self, ids: Sequence[int]) -> ForwardTrace:
        key, plain = tuple(int(i) for i in ids), self._plain
        if plain is not None and plain[0] == key:
            return plain[1]
        with torch.no_grad():
            trace = self.llama.run(list(key))
        found = ForwardTrace(
            [_np(h) for h in trace.hidden], [_np(a) for a in trace.attention], _np(trace.logprobs)
        )
        self._plain = (key, found)
        return found


def _check_override(start: int, h: np.ndarray, base: ForwardTrace) -> None:
    if not 0 <= start < len(base.hidden):
        raise ValueError(f"override boundary {start} is outside 0..{len(base.hidden) - 1}")
    if np.shape(h) != base.hidden[start].shape:
        raise ValueError(
            f"override at boundary {start} has shape {np.shape(h)}, the model's hidden state "
            f"there is {base.hidden[start].shape}"
        )


def _np(t: torch.Tensor) -> np.ndarray:
    return np.asarray(t.detach().double().numpy())


def as_forward(model: Any) -> ForwardModel:
    """A layer model as a :class:`ForwardModel` (a torch :class:`Llama` is wrapped)."""
    return TorchForward(model) if isinstance(model, Llama) else model  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------ diagnosis
@dataclass(frozen=True)
class ForwardReference:
    """The reference's trace, its greedy tokens and, per layer, its finite-difference readings
    (index 0 unused; None when no derivative family is asked for): once per probe."""

    trace: ForwardTrace
    greedy: np.ndarray
    readings: list[Readings | None]


@dataclass(frozen=True)
class Readings:
    """``grad f . v_i`` per direction, the Hutchinson curvature and the step's asymmetry."""

    sketch: np.ndarray
    curvature: float
    asymmetry: float


def forward_reference_pass(
    reference: ForwardModel, ids: Sequence[int], options: ProbeOptions, rel_eps: float = REL_EPS
) -> ForwardReference:
    trace = reference.forward(ids)
    greedy = trace.logprobs.argmax(-1)
    readings: list[Readings | None] = [None] * (reference.layers + 1)
    if DERIVATIVE_FAMILIES & set(options.families):
        for index in range(1, reference.layers + 1):
            f = _composed(reference, reference, index, ids, greedy, own=True)
            centre = _score(trace.logprobs, greedy)
            readings[index] = _readings(f, trace.hidden[index - 1], centre, index, options, rel_eps)
    return ForwardReference(trace, greedy, readings)


def diagnose_forward(
    reference: ForwardModel,
    changed: ForwardModel,
    ids: Sequence[int],
    options: ProbeOptions,
    rel_eps: float = REL_EPS,
    ref: ForwardReference | None = None,
) -> dict[str, Any]:
    """Per-layer measures and output statistics of ``changed`` against ``reference``, in the
    schema of :func:`._diagnose.diagnose`, by forward passes and finite differences only."""
    if reference.layers != changed.layers:
        raise ValueError(
            f"the backend has {changed.layers} layers, the reference {reference.layers}; "
            "layer mapping is identity only"
        )
    ref = ref or forward_reference_pass(reference, ids, options, rel_eps)
    path = changed.forward(ids)
    layers = [_embedding_layer(ref.trace, path)]
    for index in range(1, reference.layers + 1):
        layers.append(_layer(reference, changed, index, ids, ref, path, options, rel_eps))
    output = m.output_stats(ref.trace.logprobs[:-1], path.logprobs[:-1], list(ids[1:]))
    return {"method": "finite differences", "rel_eps": rel_eps, "layers": layers, "output": output}


def _embedding_layer(ref: ForwardTrace, path: ForwardTrace) -> dict[str, Any]:
    hidden = _hidden(ref.hidden[0], path.hidden[0])
    return {
        "layer": 0,
        "name": "embedding",
        **hidden,
        **{f"path_{k}": v for k, v in hidden.items()},
    }


def _layer(
    reference: ForwardModel,
    changed: ForwardModel,
    index: int,
    ids: Sequence[int],
    ref: ForwardReference,
    path: ForwardTrace,
    options: ProbeOptions,
    rel_eps: float,
) -> dict[str, Any]:
    x, target = ref.trace.hidden[index - 1], ref.trace.hidden[index]
    local = changed.forward(ids, override=(index - 1, x))
    layer: dict[str, Any] = {"layer": index, "name": f"block {index - 1}"}
    layer |= _hidden(target, local.hidden[index])
    layer |= {f"path_{k}": v for k, v in _hidden(target, path.hidden[index]).items()}
    if "attention" in options.families:
        layer |= _attention(ref.trace.attention, local.attention, path.attention, index - 1)
    readings_r = ref.readings[index]
    if readings_r is not None:
        f = _composed(changed, reference, index, ids, ref.greedy)
        centre = _score(
            reference.forward(ids, override=(index, local.hidden[index])).logprobs, ref.greedy
        )
        readings_c = _readings(f, x, centre, index, options, rel_eps)
        layer |= _derivatives(readings_r, readings_c, options)
    return layer


def _attention(
    ref: list[np.ndarray] | None,
    local: list[np.ndarray] | None,
    path: list[np.ndarray] | None,
    block: int,
) -> dict[str, Any]:
    """Attention JS when both runtimes give the maps (nothing otherwise)."""
    if ref is None or local is None or path is None:
        return {}
    heads = m.attention_js(ref[block], local[block])
    return {
        "attention_js": float(heads.mean()),
        "attention_js_heads": heads.tolist(),
        "path_attention_js": float(m.attention_js(ref[block], path[block]).mean()),
    }


def _derivatives(r: Readings, c: Readings, options: ProbeOptions) -> dict[str, float]:
    out: dict[str, float] = {"fd_asymmetry": r.asymmetry}
    if "jacobian" in options.families:
        out["jacobian_cos"] = m.vector_cosine(r.sketch, c.sketch)
        out["jacobian_div"] = max(0.0, 1.0 - out["jacobian_cos"])
    if "curvature" in options.families:
        out |= {"curvature_r": r.curvature, "curvature_c": c.curvature}
        out["curvature_div"] = m.relative_difference(r.curvature, c.curvature)
    return out


# ------------------------------------------------------------------------------ f_X
def _score(logprobs: np.ndarray, greedy: np.ndarray) -> float:
    """``y``: the log-probability of the reference's greedy tokens, summed over positions."""
    return float(logprobs[np.arange(len(greedy)), greedy].sum())


def _composed(
    model: ForwardModel,
    reference: ForwardModel,
    index: int,
    ids: Sequence[int],
    greedy: np.ndarray,
    own: bool = False,
) -> Callable[[np.ndarray], float]:
    """``f_X``: X's block ``index`` on ``x``, then the reference's tail. For the reference
    itself (``own``) that is one override at ``index - 1``: the same numbers, one pass."""

    def f(x: np.ndarray) -> float:
        if own:
            return _score(reference.forward(ids, override=(index - 1, x)).logprobs, greedy)
        out = model.forward(ids, override=(index - 1, x)).hidden[index]
        return _score(reference.forward(ids, override=(index, out)).logprobs, greedy)

    return f


def _readings(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    centre: float,
    index: int,
    options: ProbeOptions,
    rel_eps: float,
) -> Readings:
    """Central differences along the layer's seeded Rademacher directions (each ``f(x +- eps
    v)`` evaluated once and shared by the sketch, the curvature and the asymmetry)."""
    eps = rel_eps * float(np.sqrt(np.mean(x * x)))
    vs = m.rademacher(x.shape, options.hutchinson_samples, options.seed + index, torch.float64)
    f = _memo(f)
    sketch, forms, asym = [], [], []
    for v in (np.asarray(t.numpy()) for t in vs):
        sketch.append(m.fd_directional(f, x, v, eps))
        forms.append(m.fd_quadratic_form(f, x, v, eps, centre))
        up, down = f(x + eps * v) - centre, f(x - eps * v) - centre
        asym.append(abs(up + down) / max(abs(up) + abs(down), m.TINY))
    return Readings(np.asarray(sketch), float(np.mean(forms)), float(np.mean(asym)))


def _memo(f: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], float]:
    """``f`` remembering its values by the argument's bytes (the same point, computed the same
    way, has the same bytes), so each finite-difference point costs one evaluation."""
    seen: dict[bytes, float] = {}

    def g(x: np.ndarray) -> float:
        key = np.ascontiguousarray(x).tobytes()
        if key not in seen:
            seen[key] = f(x)
        return seen[key]

    return g
