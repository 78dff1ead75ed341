"""The parts the example plugin registers."""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterator

from harness import Backend
from harness import ChatRequest
from harness import ChatResponse
from harness import Message
from harness import Metric
from harness import Sample
from harness import Task

QUESTION = re.compile(r"What is (-?\d+) plus (-?\d+)\?")


class CalculatorBackend(Backend):
    """Adds the two numbers of the question; can be told to err, fail or dawdle."""

    capabilities = frozenset()

    def __init__(self, params, context):
        super().__init__(params, context)
        self.max_concurrency = params["max_concurrency"]
        self._calls = 0
        self._lock = threading.Lock()

    def chat(self, request: ChatRequest) -> ChatResponse:
        with self._lock:
            self._calls += 1
            n = self._calls
        time.sleep(self.params["delay_s"])
        if self.params["fail_every"] and n % self.params["fail_every"] == 0:
            raise RuntimeError("calculator overheated")
        a, b = map(int, QUESTION.search(request.messages[-1].content or "").groups())
        wrong = self.params["wrong_every"] and n % self.params["wrong_every"] == 0
        return ChatResponse(text=f"The answer is {a + b + (1 if wrong else 0)}.")


class AdditionTask(Task):
    default_metrics = ("numeric_match",)

    def samples(self) -> Iterator[Sample]:
        rng = random.Random(self.context.seed or 0)
        for i in range(self.params["count"]):
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            yield Sample(
                id=f"add-{i}", messages=(Message("user", f"What is {a} plus {b}?"),), target=a + b
            )


class NumericMatch(Metric):
    def score(self, sample, outcome):
        found = re.search(r"-?\d+", outcome.output or "")
        return {self.context.id: float(found is not None and int(found.group()) == sample.target)}
