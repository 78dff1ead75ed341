"""Task ``qa`` and metric ``exact_match``: short-answer questions from a JSONL file.

The smallest task that exercises the whole core (manifest, runner, store, aggregation), and a
template for task plugins: one line per question, ``{"id", "question", "answer"}``, where
``answer`` is a string or a list of accepted strings.

Hooks and parameters only: the task and the metric live in :mod:`harness_plugins.qa._task`.
"""

from __future__ import annotations

from harness import Params
from harness import Register
from harness import hookimpl
from harness import param


@hookimpl
def register_tasks(register: Register) -> None:
    register("qa", "harness_plugins.qa._task:QATask", params=QAParams)


class QAParams(Params):
    """Short-answer questions from a JSONL file, scored by exact match."""

    path: str = param(description="JSONL file of questions.", format="file")
    id_field: str = param(
        "id", description="Field holding the sample id (default: the line number)."
    )
    question_field: str = param("question", description="Field holding the question.")
    answer_field: str = param(
        "answer", description="Field holding the answer: a string or a list of them."
    )
    system_prompt: str = param(
        "Answer with a few words only.", description="System message sent before each question."
    )
    limit: int | None = param(None, minimum=1, description="Play only the first N questions.")


class ExactMatchParams(Params):
    """1 when the output equals an accepted answer after normalisation, else 0."""

    ignore_case: bool = param(True, description="Compare lowercased.")
    ignore_punctuation: bool = param(True, description="Drop ASCII punctuation before comparing.")


@hookimpl
def register_metrics(register: Register) -> None:
    register("exact_match", "harness_plugins.qa._task:ExactMatch", params=ExactMatchParams)
