"""The ``qa`` task (one question per JSONL line) and the ``exact_match`` metric."""

from __future__ import annotations

import string
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from harness import InputError
from harness import Message
from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score
from harness import Task
from harness import read_jsonl

from . import ExactMatchParams
from . import QAParams


class QATask(Task):
    """One user question per sample; the target is the list of accepted answers."""

    default_metrics = ("exact_match",)
    params: QAParams

    @property
    def path(self) -> Path:
        return Path(self.params.path)

    def samples(self) -> Iterator[Sample]:
        p = self.params
        system = Message(role="system", content=p.system_prompt)
        for number, row in islice(read_jsonl(self.path), p.limit):
            self._check(row, number)
            answers = row[p.answer_field]
            yield Sample(
                id=str(row.get(p.id_field, number)),
                messages=(system, Message(role="user", content=str(row[p.question_field]))),
                target=answers if isinstance(answers, list) else [answers],
            )

    def _check(self, row: Any, number: int) -> None:
        for field in (self.params.question_field, self.params.answer_field):
            if not isinstance(row, dict) or field not in row:
                raise InputError(
                    f"{self.path}: line {number}: missing field {field!r} "
                    "(set question_field/answer_field to the names your file uses)"
                )

    def data_files(self) -> list[Path]:
        return [self.path]

    def size(self) -> int:
        with self.path.open("rb") as handle:
            size = sum(1 for line in handle if line.strip())
        limit = self.params.limit
        return size if limit is None else min(size, limit)


_PUNCT = str.maketrans("", "", string.punctuation)


class ExactMatch(Metric):
    """Compares the normalised output with each accepted answer."""

    params: ExactMatchParams

    def normalise(self, text: str) -> str:
        if self.params.ignore_case:
            text = text.lower()
        if self.params.ignore_punctuation:
            text = text.translate(_PUNCT)
        return " ".join(text.split())  # runs of whitespace to one space, ends stripped

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        output = self.normalise(outcome.output or "")
        targets = sample.target if isinstance(sample.target, list) else [sample.target]
        hit = any(output == self.normalise(str(t)) for t in targets)
        return Score(values={self.context.id: 1.0 if hit else 0.0})
