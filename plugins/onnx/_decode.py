"""Generation with a KV cache over an ONNX Runtime session: numpy only, no torch.

The graph follows optimum's ``text-generation-with-past`` convention (see ``_tiny.py``): the
``present.*`` outputs of one step are fed back as ``past_key_values.*``, so each new token
costs one step over one token. ``use_cache=False`` runs the whole sequence at every step
instead: the reference that the cached loop must reproduce token for token.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass
class Tokens:
    """What one generation produced, with the clock readings its timings come from."""

    ids: list[int]
    finish_reason: str
    started: float
    first_token: float | None
    ended: float


class KVDecoder:
    """One session; the names of its cache inputs, the KV heads and head size from the graph."""

    def __init__(self, session: Any) -> None:
        self.session = session
        inputs = {i.name: i for i in session.get_inputs()}
        self.past = sorted(
            (n for n in inputs if n.startswith("past_key_values.")),
            key=lambda n: (int(re.findall(r"\d+", n)[0]), n.endswith(".value")),
        )
        self.present = [n.replace("past_key_values.", "present.") for n in self.past]
        self.outputs = [o.name for o in session.get_outputs()]
        self.has_positions = "position_ids" in inputs
        self.has_mask = "attention_mask" in inputs
        shape = inputs[self.past[0]].shape if self.past else [1, 1, 0, 1]
        self.kv_heads, self.head_dim = int(shape[1]), int(shape[3])
        self.kv_dtype = _DTYPES.get(inputs[self.past[0]].type, np.float32) if self.past else None
        self.vocab = session.get_outputs()[0].shape[-1]

    def empty_past(self) -> dict[str, np.ndarray]:
        empty = np.zeros((1, self.kv_heads, 0, self.head_dim), dtype=self.kv_dtype)
        return dict.fromkeys(self.past, empty)

    def step(
        self, ids: list[int], past: dict[str, np.ndarray] | None, past_len: int
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Run ``ids`` after ``past_len`` cached tokens: (logits [len(ids), vocab], new cache)."""
        feed: dict[str, np.ndarray] = {"input_ids": np.array([ids], dtype=np.int64)}
        if self.has_mask:
            feed["attention_mask"] = np.ones((1, past_len + len(ids)), dtype=np.int64)
        if self.has_positions:
            positions = np.arange(past_len, past_len + len(ids), dtype=np.int64)
            feed["position_ids"] = positions[None, :]
        feed.update(past if past is not None else self.empty_past())
        results = dict(zip(self.outputs, self.session.run(None, feed), strict=True))
        cache = {p: results[q] for p, q in zip(self.past, self.present, strict=True)}
        return results["logits"][0], cache

    def logits(self, ids: list[int]) -> np.ndarray:
        """Logits at every position of ``ids`` in one pass (teacher forcing)."""
        return self.step(ids, None, 0)[0]

    def generate(
        self,
        prompt: list[int],
        max_new: int,
        pick: Callable[[np.ndarray], int],
        stop: set[int],
        use_cache: bool = True,
    ) -> Tokens:
        """Tokens after ``prompt`` until a stop token (not kept) or ``max_new`` tokens."""
        started, first = time.perf_counter(), None
        out: list[int] = []
        past, past_len, feed = None, 0, list(prompt)
        finish = "length"
        while len(out) < max_new:
            if use_cache:
                logits, past = self.step(feed, past, past_len)
                past_len += len(feed)
            else:
                logits = self.step(list(prompt) + out, None, 0)[0]
            token = pick(logits[-1])
            first = first or time.perf_counter()
            if token in stop:
                finish = "stop"
                break
            out.append(token)
            feed = [token]
        return Tokens(out, finish, started, first, time.perf_counter())


def sampler(temperature: float, top_p: float, top_k: int, seed: int) -> Callable[[Any], int]:
    """Greedy at temperature 0; else softmax sampling with top-k / top-p, seeded."""
    if temperature <= 0:
        return lambda logits: int(np.argmax(logits))
    rng = np.random.default_rng(seed)

    def pick(logits: np.ndarray) -> int:
        scaled = logits.astype(np.float64) / temperature
        order = np.argsort(-scaled)
        if top_k > 0:
            order = order[:top_k]
        probs = np.exp(scaled[order] - scaled[order[0]])
        probs /= probs.sum()
        if top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(probs), top_p) + 1)
            order, probs = order[:keep], probs[:keep] / probs[:keep].sum()
        return int(rng.choice(order, p=probs))

    return pick
