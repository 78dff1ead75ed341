"""Task ``qa`` and metric ``exact_match``: short-answer questions from a JSONL file.

The smallest task that exercises the whole core (manifest, runner, store, aggregation), and a
template for task plugins: one line per question, ``{"id", "question", "answer"}``, where
``answer`` is a string or a list of accepted strings.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import BuildContext, Message, Metric, Outcome, Sample, Score, Task, hookimpl
from harness.errors import InputError

TASK_SCHEMA = {
    "description": "Short-answer questions from a JSONL file, scored by exact match.",
    "properties": {
        "path": {"type": "string", "format": "file", "description": "JSONL file of questions."},
        "id_field": {
            "type": "string",
            "default": "id",
            "description": "Field holding the sample id (default: the line number).",
        },
        "question_field": {
            "type": "string",
            "default": "question",
            "description": "Field holding the question.",
        },
        "answer_field": {
            "type": "string",
            "default": "answer",
            "description": "Field holding the answer: a string or a list of them.",
        },
        "system_prompt": {
            "type": "string",
            "default": "Answer with a few words only.",
            "description": "System message sent before each question.",
        },
        "limit": {
            "type": "integer",
            "minimum": 1,
            "description": "Play only the first N questions.",
        },
    },
    "required": ["path"],
}

METRIC_SCHEMA = {
    "description": "1 when the output equals an accepted answer after normalisation, else 0.",
    "properties": {
        "ignore_case": {"type": "boolean", "default": True, "description": "Compare lowercased."},
        "ignore_punctuation": {
            "type": "boolean",
            "default": True,
            "description": "Drop ASCII punctuation before comparing.",
        },
    },
}


class QATask(Task):
    """One user question per sample; the target is the list of accepted answers."""

    default_metrics = ("exact_match",)

    def __init__(self, params: dict[str, Any], context: BuildContext) -> None:
        super().__init__(params, context)
        self.path = Path(params["path"])

    def samples(self) -> Iterator[Sample]:
        p = self.params
        system = Message(role="system", content=p["system_prompt"])
        limit = p.get("limit")
        yielded = 0
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                if limit is not None and yielded >= limit:
                    return
                yielded += 1
                row = self._row(line, number)
                answers = row[p["answer_field"]]
                yield Sample(
                    id=str(row.get(p["id_field"], number)),
                    messages=(system, Message(role="user", content=str(row[p["question_field"]]))),
                    target=answers if isinstance(answers, list) else [answers],
                )

    def _row(self, line: str, number: int) -> dict[str, Any]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{self.path}: line {number}: not valid JSON ({exc.msg})") from None
        for field in (self.params["question_field"], self.params["answer_field"]):
            if not isinstance(row, dict) or field not in row:
                raise InputError(
                    f"{self.path}: line {number}: missing field {field!r} "
                    "(set question_field/answer_field to the names your file uses)"
                )
        return row

    def data_files(self) -> list[Path]:
        return [self.path]

    def size(self) -> int:
        with self.path.open("rb") as handle:
            size = sum(1 for line in handle if line.strip())
        limit = self.params.get("limit")
        return size if limit is None else min(size, limit)


_SPACES = re.compile(r"\s+")
_PUNCT = str.maketrans("", "", string.punctuation)


class ExactMatch(Metric):
    """Compares the normalised output with each accepted answer."""

    def normalise(self, text: str) -> str:
        if self.params.get("ignore_case", True):
            text = text.lower()
        if self.params.get("ignore_punctuation", True):
            text = text.translate(_PUNCT)
        return _SPACES.sub(" ", text).strip()

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        output = self.normalise(outcome.output or "")
        targets = sample.target if isinstance(sample.target, list) else [sample.target]
        hit = any(output == self.normalise(str(t)) for t in targets)
        return Score(values={self.context.id: 1.0 if hit else 0.0})


@hookimpl
def register_tasks(register: Any) -> None:
    register("qa", "harness_plugins.qa:QATask", schema=TASK_SCHEMA)


@hookimpl
def register_metrics(register: Any) -> None:
    register("exact_match", "harness_plugins.qa:ExactMatch", schema=METRIC_SCHEMA)
