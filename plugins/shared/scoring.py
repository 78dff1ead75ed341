"""``Backend.loglikelihood`` for every local backend that can score a text (``logprobs``).

One rule, the one lm-eval's own models follow, so that a score is the same whichever backend
gives it and whichever side (lm-eval or a manifest) asks:

- trailing spaces of the context move to the front of the continuation (``"A: " + "Paris"``
  is scored as ``"A:" + " Paris"``: tokenizers attach a space to the word after it);
- the text ``context + continuation`` is scored in one pass (teacher forcing); the
  continuation's tokens are those after the context's own tokens;
- with an empty context the whole text is scored, every token but the first (nothing
  predicts the first one): lm-eval's ``loglikelihood_rolling`` on a text that fits the
  context window.
"""

from __future__ import annotations

from typing import Any
from typing import Protocol


class Scorer(Protocol):
    """What a backend needs for :func:`loglikelihood`."""

    def tokenize(self, text: str) -> list[int]: ...

    def logprobs(self, text: str) -> tuple[list[int], Any]: ...


def split_spaces(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing spaces to the continuation (lm-eval's ``_encode_pair``)."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        return context[:-spaces], context[-spaces:] + continuation
    return context, continuation


def loglikelihood(backend: Scorer, context: str, continuation: str) -> tuple[float, bool]:
    """The continuation's summed log-probability after the context, and whether every one
    of its tokens is the most likely one (greedy)."""
    context, continuation = split_spaces(context, continuation)
    ids, rows = backend.logprobs(context + continuation)
    start = max(1, len(backend.tokenize(context))) if context else 1
    if start >= len(ids):
        raise ValueError(
            f"cannot score {continuation!r} after {context[-40:]!r}: the continuation adds no "
            "token (or the text is a single token)"
        )
    positions = range(start, len(ids))
    total = sum(float(rows[i - 1][ids[i]]) for i in positions)
    greedy = all(int(rows[i - 1].argmax()) == ids[i] for i in positions)
    return total, greedy
